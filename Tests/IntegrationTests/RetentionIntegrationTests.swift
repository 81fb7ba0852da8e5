import Foundation
import Testing

/// A removed container's MAC and DHCP lease kept for a container recreated
/// under its name (the real dnsmasq, the real daemon and Docker).
extension IntegrationSuite {
    @Suite struct RetentionIntegrationTests {
        static let day = ["NETKEEP_RETENTION": "24h"]

        static func dnsmasqLog() -> String {
            (try? String(contentsOfFile: DHCPIntegrationTests.runDir + "/dnsmasq.log", encoding: .utf8)) ?? ""
        }

        static func rows(_ netkeep: Netkeep, name: String) -> [[String: Any]] {
            ((try? netkeep.list()) ?? []).filter { $0["container_name"] as? String == name }
        }

        static func inside(_ c: TestContainer) -> (mac: String, address: String) {
            let mac = c.exec("cat", "/sys/class/net/eth1/address").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let words = c.exec("ip", "-o", "-4", "addr", "show", "eth1").stdout.split(separator: " ").map(String.init)
            return (mac, words.firstIndex(of: "inet").map { words[$0 + 1] } ?? "")
        }

        @Test func aRecreatedContainerKeepsItsMACAndDHCPAddressInOneRoundTrip() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let since = Int(Date().timeIntervalSince1970) - 1
            let daemon = try BackgroundProcess([Testbed.netkeepBinary, "daemon", "--verbose", "--state-dir", netkeep.stateDirectory],
                                               environment: Self.day)
            defer { daemon.stop() }
            let labels = ["netkeep.eth1.bridge": Testbed.bridge, "netkeep.eth1.ip": "dhcp"]
            let first = try TestContainer(labels: labels)
            let name = first.name
            #expect(eventually(within: 30) { !Self.inside(first).address.isEmpty }, "not attached: \(daemon.log)")
            let before = Self.inside(first)
            let oldPort = try #require(Self.rows(netkeep, name: name).first?["host_ifname"] as? String)

            first.remove()
            #expect(eventually(within: 20) { Self.rows(netkeep, name: name).first?["status"] as? String == "retained" }, "\(Self.rows(netkeep, name: name))")
            #expect(eventually { !run(["ovs-vsctl", "list-ports", Testbed.bridge]).stdout.contains(oldPort) }, "the old port stays")
            #expect(DHCPIntegrationTests.leaseLine(before.mac) != nil, "the lease was given back during the retention")

            let logBefore = Self.dnsmasqLog()
            let again = run(["docker", "run", "-d", "--net=none", "--name", name] + TestContainer.labelArguments(labels)
                            + [Testbed.image, "sleep", "1000000"])
            #expect(again.status == 0, "\(again.stderr)")
            defer { run(["docker", "rm", "-f", name]); netkeep("detach", name) }
            let newID = again.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            var after = (mac: "", address: "")
            #expect(eventually(within: 30) {
                after = (run(["docker", "exec", name, "cat", "/sys/class/net/eth1/address"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                         run(["docker", "exec", name, "ip", "-o", "-4", "addr", "show", "eth1"]).stdout.split(separator: " ").map(String.init)
                            .drop { $0 != "inet" }.dropFirst().first ?? "")
                return !after.address.isEmpty
            }, "the recreated container was not attached: \(daemon.log)")
            #expect(after.mac == before.mac && after.address == before.address, "\(before) -> \(after)")
            let rows = Self.rows(netkeep, name: name)
            #expect(rows.count == 1 && rows.first?["container_id"] as? String == newID && rows.first?["recreated_from"] as? String == first.id, "\(rows)")
            // INIT-REBOOT: a REQUEST and its ACK, no DISCOVER.
            #expect(eventually { Self.dnsmasqLog().dropFirst(logBefore.count).contains("DHCPACK(eth0) \(before.address.split(separator: "/")[0]) \(before.mac)") })
            let exchange = Self.dnsmasqLog().dropFirst(logBefore.count).split(separator: "\n").filter { $0.contains(before.mac) }
            #expect(!exchange.contains { $0.contains("DHCPDISCOVER") }, "\(exchange)")
            let creates = LabelsIntegrationTests.journal(action: "create", since: since).filter { $0["NETKEEP_CONTAINER_ID"] as? String == newID }
            #expect(creates.contains { ($0["MESSAGE"] as? String ?? "").contains("recreated: container \(first.id.prefix(12)) -> \(newID.prefix(12))") }, "\(creates)")
        }

        @Test func afterTheRetentionTheLeaseIsReleasedAndANewContainerGetsANewMAC() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            let name = c.name
            #expect(netkeep("attach", name, "--bridge", Testbed.bridge, "--dhcp").status == 0)
            let mac = try DHCPIntegrationTests.mac(netkeep, c)
            c.remove()
            let kept = netkeep("reconcile", "--retention", "2s")
            #expect(kept.status == 0, "\(kept.stdout) \(kept.stderr)")
            #expect(kept.stdout.contains("keep MAC \(mac)"), "\(kept.stdout)")
            #expect(Self.rows(netkeep, name: name).first?["status"] as? String == "retained")
            #expect(DHCPIntegrationTests.leaseLine(mac) != nil)
            // Once the time is up, a pass gives the lease back and forgets the record.
            #expect(eventually(within: 15) {
                netkeep("reconcile", "--retention", "2s")
                return Self.rows(netkeep, name: name).isEmpty
            }, "\(Self.rows(netkeep, name: name))")
            #expect(eventually { DHCPIntegrationTests.leaseLine(mac) == nil }, "the lease of \(mac) was not released")
            let again = try TestContainer(named: name)
            defer { netkeep("detach", name) }
            #expect(netkeep("attach", name, "--bridge", Testbed.bridge, "--dhcp").status == 0)
            #expect(try DHCPIntegrationTests.mac(netkeep, again) != mac)
        }

        /// The daemon (labels) and `netkeep attach` race for the recreated
        /// container: one attachment, the kept MAC, no second port.
        @Test func theDaemonAndAnAttachRacingForARecreatedNameMakeOneAttachment() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let labels = ["netkeep.eth1.bridge": Testbed.bridge, "netkeep.eth1.ip": "dhcp"]
            let first = try TestContainer(labels: labels)
            let name = first.name
            #expect(netkeep.invoke(["reconcile"], environment: Self.day).status == 0)
            let mac = try DHCPIntegrationTests.mac(netkeep, first)
            first.remove()
            #expect(netkeep.invoke(["reconcile"], environment: Self.day).status == 0)
            #expect(Self.rows(netkeep, name: name).first?["status"] as? String == "retained")

            let daemon = try LabelsIntegrationTests.daemon(netkeep, environment: Self.day)
            defer { daemon.stop() }
            let again = run(["docker", "run", "-d", "--net=none", "--name", name] + TestContainer.labelArguments(labels)
                            + [Testbed.image, "sleep", "1000000"])
            #expect(again.status == 0, "\(again.stderr)")
            defer { run(["docker", "rm", "-f", name]); netkeep("detach", name) }
            let attach = netkeep.invoke(["attach", name, "--bridge", Testbed.bridge, "--dhcp"], environment: Self.day)
            #expect(attach.status == 0 || attach.stderr.contains("already has eth1 attached"), "\(attach.stderr)")
            #expect(eventually(within: 30) { Self.rows(netkeep, name: name).first?["status"] as? String == "ready" }, "\(daemon.log)")
            let rows = Self.rows(netkeep, name: name)
            #expect(rows.count == 1 && rows.first?["mac"] as? String == mac, "\(rows)")
            let newID = again.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let ports = run(["ovs-vsctl", "--data=bare", "--no-heading", "--columns=name", "find", "interface", "external_ids:container_id=\(newID)"]).lines
            #expect(ports.count == 1, "\(ports)")
        }

        @Test func aNameTakenMeanwhileOnAnotherInterfaceInheritsNothingAndTheOwnerStillDoes() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let env = Self.day
            let c = try TestContainer()
            let name = c.name
            #expect(netkeep.invoke(["attach", name, "--bridge", Testbed.bridge, "--dhcp"], environment: env).status == 0)
            let mac = try DHCPIntegrationTests.mac(netkeep, c)
            c.remove()
            #expect(netkeep.invoke(["reconcile"], environment: env).status == 0)
            // Another project takes the name, on eth2.
            let other = try TestContainer(named: name)
            #expect(netkeep.invoke(["attach", name, "--ifname", "eth2", "--bridge", Testbed.bridge, "--dhcp"], environment: env).status == 0)
            let taken = Self.rows(netkeep, name: name).first { $0["container_id"] as? String == other.id }
            #expect(taken?["mac"] as? String != mac && taken?["recreated_from"] is NSNull, "\(String(describing: taken))")
            #expect(netkeep.invoke(["detach", name, "--ifname", "eth2"], environment: env).status == 0)
            other.remove()
            #expect(netkeep.invoke(["reconcile"], environment: env).status == 0)
            // The owner comes back on eth1: its MAC again.
            let owner = try TestContainer(named: name)
            defer { netkeep("detach", name) }
            #expect(netkeep.invoke(["attach", name, "--bridge", Testbed.bridge, "--dhcp"], environment: env).status == 0)
            #expect(try DHCPIntegrationTests.mac(netkeep, owner) == mac)
        }
    }
}
