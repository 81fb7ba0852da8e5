import Foundation
import Testing

/// netkeep-dhcp, CNI's built-in IPAM, against the test bed's dnsmasq on
/// nk-br0 (10.1.2.0/24, router 10.1.2.1): leases in netkeep's state, kept
/// across DEL for the same client, renewed and released by netkeep.
extension IntegrationSuite {
    @Suite struct CNIDHCPTests {
        static let ipam = #"{"type":"netkeep-dhcp"}"#
        typealias DHCP = DHCPIntegrationTests

        static var dnsmasqLog: String { (try? String(contentsOfFile: DHCP.runDir + "/dnsmasq.log", encoding: .utf8)) ?? "" }

        /// dnsmasq's log lines for `mac` written after `before` was read.
        static func linesSince(_ before: String, mac: String) -> [String] {
            dnsmasqLog.dropFirst(before.count).split(separator: "\n").map(String.init).filter { $0.contains(mac) }
        }

        /// ADD gets a lease and a working interface; DEL keeps the lease; the
        /// next ADD of the same client (same container id, or the same pod
        /// under a new id) gets the same address in one REQUEST, no DISCOVER;
        /// what is never claimed back is released when its time is up.
        @Test func aKeptLeaseBringsTheSameAddressBack() throws {
            try Testbed.check()
            let net = CNINetwork(ipam: Self.ipam)
            let ns = try TestNamespace()
            let add = net.call("ADD", container: "dhcp-a", netns: ns.path)
            #expect(add.status == 0, "\(add.stdout) \(add.stderr)")
            let result = try #require(jsonObject(add.stdout), "\(add.stdout)")
            let ip = try #require((result["ips"] as? [[String: Any]])?.first, "\(add.stdout)")
            let address = try #require(firstAddress(add.stdout))
            #expect(address.hasPrefix("10.1.2.") && ip["gateway"] as? String == "10.1.2.1" && ip["interface"] as? Int == 1, "\(add.stdout)")
            #expect((result["routes"] as? [[String: Any]])?.first?["dst"] as? String == "0.0.0.0/0", "\(add.stdout)")
            #expect(ns.exec("ip", "route").stdout.contains("default via 10.1.2.1 dev eth0"))
            #expect(eventually(within: 10) { ns.exec("busybox", "ping", "-c", "1", "-W", "1", "10.1.2.1").status == 0 }, "no traffic to the router")
            let record = try #require(net.records.first)
            let mac = try #require(record["mac"] as? String)
            #expect((record["lease"] as? [String: Any])?["address"] as? String == "\(address)/24" && record["ipam"] as? String == "netkeep-dhcp")
            #expect(DHCP.leaseLine(mac)?.contains(" \(address) ") == true, "dnsmasq does not know \(mac)")

            // CHECK asks nothing of the server and passes.
            let withPrev = net.config(extra: #","prevResult":\#(add.stdout.trimmingCharacters(in: .whitespacesAndNewlines))"#)
            let check = net.call("CHECK", container: "dhcp-a", netns: ns.path, config: withPrev)
            #expect(check.status == 0, "\(check.stdout) \(check.stderr)")

            // DEL keeps the lease, for this client, and the server still holds it.
            #expect(net.call("DEL", container: "dhcp-a", netns: ns.path).status == 0)
            #expect(net.records.isEmpty && net.keptLeases.map { $0["mac"] as? String } == [mac])
            #expect(DHCP.leaseLine(mac) != nil)

            // The runtime's next ADD (a restarted container: a new namespace) gets it back.
            ns.remove()
            let again = try TestNamespace()
            let before = Self.dnsmasqLog
            let readd = net.call("ADD", container: "dhcp-a", netns: again.path)
            #expect(readd.status == 0, "\(readd.stdout) \(readd.stderr)")
            #expect(firstAddress(readd.stdout) == address && net.keptLeases.isEmpty)
            let lines = Self.linesSince(before, mac: mac)
            #expect(lines.contains { $0.contains("DHCPREQUEST") } && !lines.contains { $0.contains("DHCPDISCOVER") }, "\(lines)")
            #expect(eventually(within: 10) { again.exec("busybox", "ping", "-c", "1", "-W", "1", "10.1.2.1").status == 0 })
            #expect(net.call("DEL", container: "dhcp-a", netns: again.path).status == 0)

            // A pod is the same client under a new container id (a kubelet's and Podman's CNI_ARGS).
            let pod = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=x"
            let first = net.call("ADD", container: "sandbox-1", netns: again.path, args: pod)
            #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
            let podMAC = try #require(net.records.first?["mac"] as? String)
            // A second sandbox of the pod while the first lives gets a MAC of its own, not a duplicate on the bridge.
            let overlapping = try TestNamespace()
            #expect(net.call("ADD", container: "sandbox-0", netns: overlapping.path, args: pod).status == 0)
            let other = net.records.first { $0["container_id"] as? String == "sandbox-0" }?["mac"] as? String
            #expect(other != nil && other != podMAC)
            #expect(net.call("DEL", container: "sandbox-0", netns: overlapping.path, args: pod).status == 0)
            #expect(net.call("DEL", container: "sandbox-1", netns: again.path, args: pod).status == 0)
            let recreated = try TestNamespace()
            let second = net.call("ADD", container: "sandbox-2", netns: recreated.path, args: pod)
            #expect(second.status == 0, "\(second.stdout) \(second.stderr)")
            #expect(net.records.first?["mac"] as? String == podMAC && firstAddress(second.stdout) == firstAddress(first.stdout))
            #expect(net.call("DEL", container: "sandbox-2", netns: recreated.path, args: pod).status == 0)

            // Unclaimed: early, nothing goes; after releaseAfter (600 s by default) all three go back to the server.
            #expect(net.netkeep("dhcp-renew").stdout.contains("no lease is due"))
            #expect(net.keptLeases.count == 3)
            let release = net.netkeep("dhcp-renew", environment: ["NETKEEP_TIME_OFFSET": "700"])
            #expect(release.status == 0 && release.stdout.components(separatedBy: ": released").count == 4, "\(release.stdout) \(release.stderr)")
            #expect(net.keptLeases.isEmpty)
            #expect(eventually { DHCP.leaseLine(mac) == nil && DHCP.leaseLine(podMAC) == nil }, "dnsmasq still holds a lease")
        }

        /// A reboot as the test bed simulates it (the veths and the namespaces
        /// gone, OVS's rows kept): the sweep removes the dead rows, the records
        /// wait; the runtime's ADD of the same interfaces after the boot (no
        /// DEL came) replaces them, host-local's address is not held twice,
        /// and the DHCP attachment gets its address back from the kept lease.
        @Test func afterARebootTheRuntimesNextADDReplacesTheOldRecord() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let dhcp = CNINetwork(netkeep: netkeep, ipam: Self.ipam), local = CNINetwork(netkeep: netkeep)
            var a = try TestNamespace(), b = try TestNamespace()
            let addA = dhcp.call("ADD", container: "boot", netns: a.path), addB = local.call("ADD", container: "boot", netns: b.path)
            #expect(addA.status == 0 && addB.status == 0, "\(addA.stdout) \(addB.stdout)")
            let hosts = [dhcp, local].compactMap { $0.records.first?["host_ifname"] as? String }
            #expect(hosts.count == 2)

            for host in hosts { run(["ip", "link", "del", host]) }
            a.remove()
            b.remove()
            let swept = netkeep("reconcile")
            for host in hosts { #expect(swept.stdout.contains("removed dead port \(host)"), "\(swept.stdout) \(swept.stderr)") }
            #expect(dhcp.records.count == 1 && local.records.count == 1, "the records wait for the runtime")

            a = try TestNamespace()
            b = try TestNamespace()
            let again = dhcp.call("ADD", container: "boot", netns: a.path), againB = local.call("ADD", container: "boot", netns: b.path)
            #expect(again.status == 0 && againB.status == 0, "\(again.stdout) \(againB.stdout)")
            #expect(firstAddress(again.stdout) == firstAddress(addA.stdout) && dhcp.keptLeases.isEmpty)
            let held = ((try? FileManager.default.contentsOfDirectory(atPath: "\(local.ipamDirectory)/\(local.name)")) ?? [])
                .filter { $0.hasPrefix(local.subnet) }
            #expect(held == [try #require(firstAddress(againB.stdout))], "host-local holds \(held)")
            #expect(dhcp.records.count == 1 && local.records.count == 1 && Set(hosts).isSubset(of: bridgePorts))
            #expect(eventually(within: 10) { a.exec("busybox", "ping", "-c", "1", "-W", "1", "10.1.2.1").status == 0 })
            // An interface that still exists is not replaced: the spec's ADD-twice rule stands.
            let twice = dhcp.call("ADD", container: "boot", netns: a.path)
            #expect(twice.status != 0 && jsonObject(twice.stdout)?["code"] as? Int == 100, "\(twice.stdout)")
            #expect(dhcp.call("DEL", container: "boot", netns: a.path).status == 0)
            #expect(netkeep("dhcp-renew", environment: ["NETKEEP_TIME_OFFSET": "700"]).stdout.contains(": released"))
        }

        /// The lease timer renews a live CNI lease from inside the runtime's
        /// namespace (the same pass the daemon runs); the running daemon
        /// releases a kept lease once `releaseAfter` is up, and audits it.
        @Test func leasesAreRenewedAndUnclaimedOnesReleasedByTheDaemon() throws {
            try Testbed.check()
            let net = CNINetwork(ipam: #"{"type":"netkeep-dhcp","releaseAfter":1}"#)
            let ns = try TestNamespace()
            let add = net.call("ADD", container: "renew", netns: ns.path)
            #expect(add.status == 0, "\(add.stdout) \(add.stderr)")
            let address = try #require(firstAddress(add.stdout))
            let record = try #require(net.records.first)
            let mac = try #require(record["mac"] as? String)
            let obtained = try #require((record["lease"] as? [String: Any])?["obtained_at"] as? String)

            // Not due yet, but asked for: --all renews it too.
            let asked = net.netkeep("dhcp-renew", "--all")
            #expect(asked.status == 0 && asked.stdout.contains("CNI \(net.name)/renew/eth0 (renew): \(address)/24"), "\(asked.stdout) \(asked.stderr)")

            // T1 of dnsmasq's hour is 1800 s: 1900 s on, it is due.
            let before = Self.dnsmasqLog
            let renew = net.netkeep("dhcp-renew", environment: ["NETKEEP_TIME_OFFSET": "1900"])
            #expect(renew.status == 0 && renew.stdout.contains("CNI \(net.name)/renew/eth0 (renew): \(address)/24"), "\(renew.stdout) \(renew.stderr)")
            #expect(Self.linesSince(before, mac: mac).contains { $0.contains("DHCPACK(eth0) \(address) \(mac)") }, "no renewal reached dnsmasq")
            let renewed = try #require((net.records.first?["lease"] as? [String: Any])?["obtained_at"] as? String)
            #expect(renewed > obtained, "the renewal was not recorded")
            #expect(ns.exec("ip", "-o", "-4", "addr", "show", "eth0").stdout.contains(" \(address)/24 "))

            let since = Int(Date().timeIntervalSince1970) - 1
            let daemon = try BackgroundProcess([Testbed.netkeepBinary, "daemon", "-v", "--foreground", "--plugin-socket", "none",
                                                "--state-dir", net.netkeep.stateDirectory])
            defer { daemon.stop() }
            #expect(eventually(within: 20) { daemon.log.contains("following Docker events") }, "daemon did not start: \(daemon.log)")
            #expect(net.call("DEL", container: "renew", netns: ns.path).status == 0)
            #expect(eventually(within: 15) { net.keptLeases.isEmpty }, "the daemon did not release the kept lease: \(daemon.log)")
            #expect(eventually { DHCP.leaseLine(mac) == nil }, "dnsmasq still holds the lease of \(mac)")
            #expect(eventually(within: 10) {
                run(["journalctl", "--since=@\(since)", "-t", "netkeep", "--no-pager", "-o", "cat"]).stdout
                    .contains("CNI \(net.name): DHCP lease of \(address)/24 (MAC \(mac)) released")
            }, "no audit entry")
        }
    }
}
