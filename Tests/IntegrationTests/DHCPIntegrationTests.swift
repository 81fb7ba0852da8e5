import Foundation
import Testing

/// DHCP attachments against the test bed's real dnsmasq.
extension IntegrationSuite {
    @Suite struct DHCPIntegrationTests {
        static let runDir = ProcessInfo.processInfo.environment["NETKEEP_TESTBED_DIR"] ?? "/run/netkeep-testbed"
        static var leaseFile: String { runDir + "/leases" }

        static func leaseLine(_ mac: String) -> String? {
            ((try? String(contentsOfFile: leaseFile, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init).first { $0.contains(mac) }
        }

        static func address(_ netkeep: Netkeep, _ container: TestContainer) throws -> String {
            try #require(try netkeep.list().first { $0["container_name"] as? String == container.name }?["address"] as? String)
        }

        static func mac(_ netkeep: Netkeep, _ container: TestContainer) throws -> String {
            try #require(try netkeep.list().first { $0["container_name"] as? String == container.name }?["mac"] as? String)
        }

        @Test func tenContainersGetDistinctAddressesAndKeepThemAcrossRestarts() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let containers = try (0..<10).map { _ in try TestContainer() }
            defer { for c in containers { netkeep("detach", c.name) } }
            for c in containers {
                let r = netkeep("attach", c.name, "--bridge", Testbed.bridge, "--dhcp")
                #expect(r.status == 0, "\(r.stderr)")
            }
            // Only this test's rows: the engine may run labelled containers of others.
            let names = Set(containers.map(\.name))
            let entries = try netkeep.list().filter { names.contains($0["container_name"] as? String ?? "") }
            #expect(entries.count == 10, "\(entries)")
            let addresses = entries.compactMap { $0["address"] as? String }
            #expect(Set(addresses).count == 10, "\(addresses)")
            for entry in entries {
                #expect(entry["mode"] as? String == "dhcp")
                #expect(entry["lease_expires_at"] as? String != nil)
                let address = try #require(entry["address"] as? String, "no address: \(entry)")
                let octets = address.split(separator: "/")[0].split(separator: ".").compactMap { Int($0) }
                #expect(octets.count == 4 && octets[0...2] == [10, 1, 2] && (100...250).contains(octets[3]), "outside the pool: \(entry)")
                let mac = try #require(entry["mac"] as? String, "no MAC: \(entry)")
                #expect(Self.leaseLine(mac) != nil, "dnsmasq does not know \(mac)")
            }
            for c in containers { #expect(run(["docker", "restart", "-t", "0", c.name]).status == 0) }
            let r = netkeep("reconcile")
            #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
            #expect(r.stdout.contains("INIT-REBOOT"), "\(r.stdout)")
            for c in containers {
                let recorded = try Self.address(netkeep, c)
                #expect(addresses.contains(recorded))
                #expect(c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(recorded) "), "\(c.name) lost \(recorded)")
                #expect(c.exec("ip", "route").stdout.contains("default via 10.1.2.1 dev eth1"))
            }
            #expect(Set(try netkeep.list().filter { names.contains($0["container_name"] as? String ?? "") }.compactMap { $0["address"] as? String }) == Set(addresses))
            #expect(containers[0].exec("ping", "-c", "1", "-W", "2", "10.1.2.1").status == 0)
        }

        @Test func rebootDrillWithDHCPKeepsTheAddresses() throws {
            try Testbed.check()
            let r = run([Testbed.packageRoot + "/scripts/reboot-drill", "3", "dhcp"], environment: ["NETKEEP_BIN": Testbed.netkeepBinary])
            #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
            #expect(r.stdout.contains("failures 0"), "\(r.stdout)")
        }

        /// After a reboot the daemon's first pass puts the unexpired leases
        /// back without waiting for the server (READY=1 does not wait for
        /// dnsmasq's ACKs); the lease timer confirms each of them right after.
        @Test func afterARebootLeasesAreAppliedFirstAndConfirmedRightAfter() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let containers = try (0..<2).map { _ in try TestContainer(restart: true) }
            defer { for c in containers { netkeep("detach", c.name) } }
            for c in containers { #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--dhcp").status == 0) }
            let addresses = try containers.map { try Self.address(netkeep, $0) }
            let macs = try containers.map { try Self.mac(netkeep, $0) }
            #expect(run([Testbed.packageRoot + "/scripts/testbed", "reboot"]).status == 0)
            // The first pass is to find them running (else their `start` events repair them).
            for c in containers {
                #expect(eventually(within: 60) { run(["docker", "inspect", "-f", "{{.State.Running}}", c.name]).stdout.hasPrefix("true") })
            }
            let logBefore = (try? String(contentsOfFile: Self.runDir + "/dnsmasq.log", encoding: .utf8)) ?? ""
            let since = Int(Date().timeIntervalSince1970) - 1
            let daemon = try BackgroundProcess([Testbed.netkeepBinary, "daemon", "--verbose", "--state-dir", netkeep.stateDirectory])
            defer { daemon.stop() }
            for (c, address) in zip(containers, addresses) {
                #expect(eventually(within: 30) { c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(address) ") }, "\(c.name) not repaired")
            }
            #expect(eventually(within: 30) {
                ((try? netkeep.list()) ?? []).filter { ($0["lease"] as? [String: Any])?["confirmed"] as? Bool == true }.count == 2
            }, "the leases were not confirmed: \(daemon.log)")
            #expect(Set(try netkeep.list().compactMap { $0["address"] as? String }) == Set(addresses))
            let newLines = ((try? String(contentsOfFile: Self.runDir + "/dnsmasq.log", encoding: .utf8)) ?? "").dropFirst(logBefore.count)
            for (mac, address) in zip(macs, addresses) {
                #expect(newLines.contains("DHCPACK(eth0) \(address.split(separator: "/")[0]) \(mac)"), "no confirmation of \(mac): \(newLines)")
            }
            // The first pass ended before the confirmations began (the log is
            // the journal's when journald runs, else the daemon's stderr).
            let log = daemon.log + run(["journalctl", "--since=@\(since)", "-t", "netkeep", "--no-pager", "-o", "cat"]).stdout
            let passEnded = try #require(log.range(of: "full reconcile:"), "\(log)")
            let confirmed = try #require(log.range(of: "(confirm): "), "\(log)")
            #expect(passEnded.lowerBound < confirmed.lowerBound, "\(log)")
        }

        @Test func renewalsReachTheServerWhenDue() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            let mac = "02:5e:\(String(format: "%02x:%02x:%02x:%02x", Int.random(in: 0...255), Int.random(in: 0...255), Int.random(in: 0...255), Int.random(in: 0...255)))"
            // A 2-minute lease (dnsmasq's shortest) for this MAC only.
            let hosts = Self.runDir + "/dhcp-hosts/\(c.name)"
            try "\(mac),2m\n".write(toFile: hosts, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: hosts); netkeep("detach", c.name) }
            #expect(eventually { (try? String(contentsOfFile: Self.runDir + "/dnsmasq.log", encoding: .utf8))?.contains("read " + hosts) == true },
                    "dnsmasq did not read \(hosts)")
            let attach = netkeep("attach", c.name, "--bridge", Testbed.bridge, "--dhcp", "--mac", mac)
            #expect(attach.status == 0, "\(attach.stderr)")
            let lease = try #require(try netkeep.list().first?["lease"] as? [String: Any])
            #expect(lease["lease_time"] as? Int == 120)
            let address = try Self.address(netkeep, c)
            let before = try #require(Self.leaseLine(mac))

            let early = netkeep("dhcp-renew")
            #expect(early.status == 0 && early.stdout.contains("no lease is due"), "\(early.stdout)")
            let logBefore = (try? String(contentsOfFile: Self.runDir + "/dnsmasq.log", encoding: .utf8)) ?? ""
            // T1 of a 2-minute lease is 60 s (plus jitter of at most 3 s): 70 s later it is due.
            let due = netkeep("dhcp-renew", environment: ["NETKEEP_TIME_OFFSET": "70"])
            #expect(due.status == 0, "\(due.stdout) \(due.stderr)")
            #expect(due.stdout.contains("(renew): \(address)"), "\(due.stdout)")
            let logAfter = (try? String(contentsOfFile: Self.runDir + "/dnsmasq.log", encoding: .utf8)) ?? ""
            let newLines = logAfter.dropFirst(logBefore.count)
            #expect(newLines.contains("DHCPREQUEST(eth0) \(address.split(separator: "/")[0]) \(mac)"), "no renewal in dnsmasq.log: \(newLines)")
            #expect(newLines.contains("DHCPACK(eth0) \(address.split(separator: "/")[0]) \(mac)"))
            let after = try #require(Self.leaseLine(mac))
            let expiryBefore = try #require(before.split(separator: " ").first.flatMap { Int($0) }, "\(before)")
            let expiryAfter = try #require(after.split(separator: " ").first.flatMap { Int($0) }, "\(after)")
            #expect(expiryAfter >= expiryBefore, "lease file expiry went back: \(before) → \(after)")
            let renewed = try #require(try netkeep.list().first?["lease"] as? [String: Any])
            #expect((renewed["obtained_at"] as? String ?? "") > (lease["obtained_at"] as? String ?? ""), "the renewal was not recorded")
        }

        @Test func detachReleasesTheLease() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--dhcp").status == 0)
            let mac = try Self.mac(netkeep, c)
            #expect(Self.leaseLine(mac) != nil)
            let r = netkeep("detach", c.name)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(eventually { Self.leaseLine(mac) == nil }, "dnsmasq still holds the lease of \(mac)")
        }

        /// `docker rm -f` takes the namespace along: the lease goes back from
        /// netkeep's release station (a VLAN-less one here), whose port is gone afterwards.
        @Test func leasesOfRemovedContainersAreReleased() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer(), b = try TestContainer()
            #expect(netkeep("attach", a.name, "--bridge", Testbed.bridge, "--dhcp").status == 0)
            #expect(netkeep("attach", b.name, "--bridge", Testbed.bridge, "--dhcp").status == 0)
            let macA = try Self.mac(netkeep, a), macB = try Self.mac(netkeep, b)
            #expect(Self.leaseLine(macA) != nil && Self.leaseLine(macB) != nil)
            a.remove()
            b.remove()
            let r = netkeep("reconcile")
            #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
            #expect(!r.stderr.contains("not sent") && !r.stderr.contains("did not confirm"), "\(r.stderr)")
            #expect(eventually { Self.leaseLine(macA) == nil && Self.leaseLine(macB) == nil }, "dnsmasq still holds the leases")
            #expect(try netkeep.list().isEmpty)
            #expect(!run(["ovs-vsctl", "list-ports", Testbed.bridge]).stdout.contains("nkrel"), "the release station stayed")
            #expect(!run(["ip", "-o", "link", "show"]).stdout.contains("nkrel"))
        }

        /// Detach of a container that is already gone releases its lease too.
        @Test func detachOfARemovedContainerReleasesTheLease() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--dhcp").status == 0)
            let mac = try Self.mac(netkeep, c)
            c.remove()
            let r = netkeep("detach", c.name)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(!r.stderr.contains("not sent") && !r.stderr.contains("did not confirm"), "\(r.stderr)")
            #expect(eventually { Self.leaseLine(mac) == nil }, "dnsmasq still holds the lease of \(mac)")
        }

        @Test func serverDownLeasesAreAppliedAnywayAndConfirmedWhenItIsBack() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer(), b = try TestContainer()
            defer { run([Testbed.packageRoot + "/scripts/testbed", "dhcp-start"]); netkeep("detach", a.name); netkeep("detach", b.name) }
            #expect(netkeep("attach", a.name, "--bridge", Testbed.bridge, "--dhcp").status == 0)
            #expect(netkeep("attach", b.name, "--bridge", Testbed.bridge, "--dhcp").status == 0)
            let addressA = try Self.address(netkeep, a), addressB = try Self.address(netkeep, b)
            #expect(run([Testbed.packageRoot + "/scripts/testbed", "dhcp-stop"]).status == 0)
            #expect(run(["docker", "restart", "-t", "0", a.name]).status == 0)
            #expect(run(["docker", "restart", "-t", "0", b.name]).status == 0)
            let r = netkeep("reconcile")
            #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains("keeping \(addressA)"), "\(r.stderr)")
            #expect(a.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(addressA) "))
            #expect(b.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(addressB) "))
            #expect(eventually { a.exec("ping", "-c", "1", "-W", "1", String(addressB.split(separator: "/")[0])).status == 0 })
            #expect(try netkeep.list().allSatisfy { ($0["lease"] as? [String: Any])?["confirmed"] as? Bool == false })

            #expect(run([Testbed.packageRoot + "/scripts/testbed", "dhcp-start"]).status == 0)
            let renew = netkeep("dhcp-renew", environment: ["NETKEEP_TIME_OFFSET": "31"])
            #expect(renew.status == 0, "\(renew.stdout) \(renew.stderr)")
            #expect(renew.stdout.contains("(confirm): \(addressA)"), "\(renew.stdout)")
            #expect(try netkeep.list().allSatisfy { ($0["lease"] as? [String: Any])?["confirmed"] as? Bool == true })
            #expect(Set(try netkeep.list().compactMap { $0["address"] as? String }) == [addressA, addressB])
        }

        @Test func refusedAddressStartsOverAndSaysSo() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            defer { netkeep("detach", c.name) }
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--dhcp").status == 0)
            let granted = try Self.address(netkeep, c)
            // Record an address this server never gave to this client.
            let bytes = try #require(netkeep.stateBytes, "no state file")
            var state = try #require(try JSONSerialization.jsonObject(with: bytes) as? [String: Any])
            var attachments = try #require(state["attachments"] as? [[String: Any]], "\(state)")
            try #require(attachments.count == 1, "\(attachments)")
            var lease = try #require(attachments[0]["lease"] as? [String: Any], "\(attachments)")
            lease["address"] = "10.1.2.99/24"
            attachments[0]["lease"] = lease
            attachments[0]["address"] = "10.1.2.99/24"
            state["attachments"] = attachments
            try JSONSerialization.data(withJSONObject: state).write(to: URL(fileURLWithPath: netkeep.statePath))
            #expect(run(["docker", "restart", "-t", "0", c.name]).status == 0)
            let r = netkeep("reconcile")
            #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains("DHCP address changed 10.1.2.99/24 → \(granted)"), "\(r.stderr)")
            #expect(try Self.address(netkeep, c) == granted)
            #expect(c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(granted) "))
            #expect(!c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains("10.1.2.99"), "the refused address is still in use")
        }
    }
}
