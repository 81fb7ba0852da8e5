import Foundation
import Testing

/// `netkeep reconcile` and `adopt` on the real test bed.
extension IntegrationSuite {
    @Suite struct ReconcileTests {
        /// Two containers on a fresh subnet; `a` is the one the test breaks.
        struct Pair {
            let netkeep = Netkeep()
            let a: TestContainer, b: TestContainer
            let net = randomSubnet()
            var aAddress: String { "\(net).10" }
            var bAddress: String { "\(net).11" }

            init(restart: Bool = false) throws {
                a = try TestContainer(restart: restart)
                b = try TestContainer(restart: restart)
                let ra = netkeep("attach", a.name, "--bridge", Testbed.bridge, "--ip", "\(aAddress)/24", "--mac", "02:bb:00:00:00:10", "--mtu", "1450")
                let rb = netkeep("attach", b.name, "--bridge", Testbed.bridge, "--ip", "\(bAddress)/24")
                guard ra.status == 0, rb.status == 0 else { throw Testbed.TestbedMissing("attach failed: \(ra.stderr) \(rb.stderr)") }
            }

            /// a's interface is as recorded and traffic flows both ways.
            func expectWorking(_ label: String) {
                let link = a.exec("ip", "-o", "link", "show", "eth1").stdout
                #expect(link.contains("02:bb:00:00:00:10") && link.contains("mtu 1450"), "\(label): \(link)")
                #expect(a.exec("ip", "-o", "addr", "show", "eth1").stdout.contains("\(aAddress)/24"), "\(label): address")
                #expect(eventually(within: 5) { b.exec("ping", "-c", "1", "-W", "1", aAddress).status == 0 }, "\(label): b cannot reach a")
                #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "/var/run/netns/\(a.name)")) == "/proc/\(a.pid)/ns/net", "\(label): netns link")
            }

            func cleanUp() {
                netkeep("detach", a.name)
                netkeep("detach", b.name)
            }
        }

        @Test func dockerRestartThenReconcileBringsTheInterfaceBack() throws {
            try Testbed.check()
            let pair = try Pair()
            defer { pair.cleanUp() }
            pair.expectWorking("before")
            #expect(run(["docker", "restart", "-t", "0", pair.a.name]).status == 0)
            #expect(pair.a.exec("ip", "link", "show", "eth1").status != 0, "restart should leave only lo")

            let dry = pair.netkeep("reconcile", "--dry-run")
            #expect(dry.stdout.contains("create veth") && dry.stdout.contains("container restarted"), "\(dry.stdout)")
            #expect(pair.a.exec("ip", "link", "show", "eth1").status != 0, "--dry-run changed the host")

            let r = pair.netkeep("reconcile", "--json")
            #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)")
            let actions = try #require(report["actions"] as? [[String: Any]], "\(report)")
            #expect(actions.contains { $0["action"] as? String == "create-veth" && $0["reason"] as? String == "container-restarted" })
            #expect(actions.contains { $0["action"] as? String == "replace-port" })
            #expect(actions.allSatisfy { $0["result"] as? String == "done" })
            pair.expectWorking("after reconcile")
            let again = pair.netkeep("reconcile")
            #expect(again.status == 0 && again.stdout.contains("nothing to do"), "\(again.stdout)")
        }

        @Test func driftInsideTheContainerAndOnTheBridgeIsRepairedInPlace() throws {
            try Testbed.check()
            let pair = try Pair()
            defer { pair.cleanUp() }
            let host = try #require(try pair.netkeep.list().first { $0["container_name"] as? String == pair.a.name }?["host_ifname"] as? String)
            run(["nsenter", "-t", String(pair.a.pid), "-n", "ip", "addr", "flush", "dev", "eth1"])
            run(["nsenter", "-t", String(pair.a.pid), "-n", "ip", "link", "set", "eth1", "mtu", "1300"])
            run(["ovs-vsctl", "set", "Port", host, "tag=33"])
            run(["rm", "-f", "/var/run/netns/\(pair.a.name)"])
            let r = pair.netkeep("reconcile")
            #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
            #expect(r.stdout.contains("interface misconfigured"), "\(r.stdout)")
            #expect(r.stdout.contains("VLAN tag drifted"), "\(r.stdout)")
            #expect(r.stdout.contains("netns link missing"), "\(r.stdout)")
            #expect(!r.stdout.contains("create veth"), "a working veth must not be recreated")
            #expect(run(["ovs-vsctl", "get", "Port", host, "tag"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
            pair.expectWorking("after drift")
        }

        @Test func rebootDrillWithFiveContainers() throws {
            try Testbed.check()
            let r = run([Testbed.packageRoot + "/scripts/reboot-drill", "5"], environment: ["NETKEEP_BIN": Testbed.netkeepBinary])
            #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
            #expect(r.stdout.contains("failures 0"), "\(r.stdout)")
        }

        @Test func ovsDockerPortsAreAdoptedThenRecovered() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer(), b = try TestContainer()
            let net = randomSubnet()
            defer { netkeep("detach", a.name); netkeep("detach", b.name) }
            #expect(run(["ovs-docker", "add-port", Testbed.bridge, "eth1", a.name, "--ipaddress=\(net).20/24", "--mtu=1400"]).status == 0)
            #expect(run(["ovs-docker", "set-vlan", Testbed.bridge, "eth1", a.name, "12"]).status == 0)
            #expect(netkeep("attach", b.name, "--bridge", Testbed.bridge, "--ip", "\(net).21/24", "--vlan", "12").status == 0)
            let mac = a.exec("cat", "/sys/class/net/eth1/address").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(eventually { b.exec("ping", "-c", "1", "-W", "1", "\(net).20").status == 0 })

            // Only its port: the bridge may carry ovs-docker ports of others.
            let port = run(["ovs-vsctl", "--data=bare", "--no-heading", "--columns=name", "find", "interface",
                            "external_ids:container_id=\(a.name)"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let adopt = netkeep("adopt", "--bridge", Testbed.bridge, "--port", port)
            #expect(adopt.status == 0, "\(adopt.stdout) \(adopt.stderr)")
            let entry = try #require(try netkeep.list().first { $0["container_name"] as? String == a.name })
            #expect(entry["mac"] as? String == mac)
            #expect(entry["mtu"] as? Int == 1400)
            #expect(entry["vlan"] as? Int == 12)
            #expect(entry["address"] as? String == "\(net).20/24")
            #expect((entry["host_ifname"] as? String)?.hasSuffix("_l") == true)
            let again = netkeep("adopt", "--port", port)
            #expect(again.stdout.contains("nothing to adopt"), "adopted twice: \(again.stdout)")

            #expect(run(["docker", "restart", "-t", "0", a.name]).status == 0)
            let r = netkeep("reconcile")
            #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
            #expect(a.exec("cat", "/sys/class/net/eth1/address").stdout.trimmingCharacters(in: .whitespacesAndNewlines) == mac)
            #expect(a.exec("ip", "-o", "addr", "show", "eth1").stdout.contains("\(net).20/24"))
            #expect(eventually { b.exec("ping", "-c", "1", "-W", "1", "\(net).20").status == 0 }, "adopted port carries no traffic after repair")
        }

        @Test func removedContainersAreCollectedAndNothingElseIsTouched() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let kept = try TestContainer(), attached = try TestContainer(), manual = try TestContainer()
            let net = randomSubnet()
            defer { netkeep("detach", kept.name) }
            #expect(netkeep("attach", kept.name, "--bridge", Testbed.bridge, "--ip", "\(net).5/24").status == 0)
            #expect(netkeep("attach", attached.name, "--bridge", Testbed.bridge, "--ip", "\(net).6/24").status == 0)
            #expect(run(["ovs-docker", "add-port", Testbed.bridge, "eth1", manual.name, "--ipaddress=\(net).7/24"]).status == 0)
            let entries = try netkeep.list()
            let attachedHost = try #require(entries.first { $0["container_name"] as? String == attached.name }?["host_ifname"] as? String)
            let manualPort = run(["ovs-vsctl", "--data=bare", "--no-heading", "--columns=name", "find", "Interface",
                                  "external_ids:container_id=\(manual.name)"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(!manualPort.isEmpty)
            // Things that are not garbage: an internal "uplink", a port without ids,
            // an `ip netns add` namespace, a link to a live process.
            let tag = UUID().uuidString.prefix(6).lowercased()
            let uplink = "nkup\(tag)", plain = "nkpl\(tag)", nsName = "nktest-keep-\(tag)", liveLink = "nktest-live-\(tag)", deadLink = "nktest-dead-\(tag)"
            run(["ovs-vsctl", "add-port", Testbed.bridge, uplink, "--", "set", "Interface", uplink, "type=internal"])
            run(["ovs-vsctl", "add-port", Testbed.bridge, plain])
            run(["ip", "netns", "add", nsName])
            defer {
                run(["ovs-vsctl", "--if-exists", "del-port", uplink])
                run(["ovs-vsctl", "--if-exists", "del-port", plain])
                run(["ip", "netns", "del", nsName])
                run(["rm", "-f", "/var/run/netns/\(liveLink)", "/var/run/netns/\(deadLink)"])
            }
            try FileManager.default.createSymbolicLink(atPath: "/var/run/netns/\(liveLink)", withDestinationPath: "/proc/1/ns/net")
            try FileManager.default.createSymbolicLink(atPath: "/var/run/netns/\(deadLink)", withDestinationPath: "/proc/999999/ns/net")

            attached.remove()
            manual.remove()
            let r = netkeep("reconcile")
            #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
            let ports = run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines
            #expect(!ports.contains(attachedHost), "netkeep port of a removed container")
            #expect(!ports.contains(manualPort), "ovs-docker port of a removed container")
            #expect(run(["ip", "link", "show", attachedHost]).status != 0)
            #expect(!FileManager.default.fileExists(atPath: "/var/run/netns/\(attached.name)"))
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "/var/run/netns/\(deadLink)")) == nil, "dangling link")
            #expect(ports.contains(uplink) && ports.contains(plain), "ports without ids were touched")
            #expect(FileManager.default.fileExists(atPath: "/var/run/netns/\(nsName)"), "ip netns add namespace was touched")
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "/var/run/netns/\(liveLink)")) == "/proc/1/ns/net")
            #expect(try netkeep.list().map { $0["container_name"] as? String } == [kept.name])
            #expect(kept.exec("ip", "-o", "addr", "show", "eth1").stdout.contains("\(net).5/24"))
        }

        @Test(arguments: ["docker", "ovsdb"])
        func nothingIsRemovedWhenASourceIsUnreachable(_ source: String) throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).5/24").status == 0)
            defer { netkeep("detach", c.name) }
            c.remove()
            let dead = "nktest-dead-\(UUID().uuidString.prefix(6).lowercased())"
            try FileManager.default.createSymbolicLink(atPath: "/var/run/netns/\(dead)", withDestinationPath: "/proc/999999/ns/net")
            defer { run(["rm", "-f", "/var/run/netns/\(dead)"]) }
            let before = hostFingerprint(containers: [])
            let stateBefore = netkeep.stateBytes
            let flag = source == "docker" ? "--docker-socket" : "--ovsdb-socket"
            let r = netkeep.invoke(["reconcile", flag, "/nonexistent/\(source).sock"])
            #expect(r.status == 4, "\(r.stdout) \(r.stderr)")
            #expect(r.stdout.contains("unreachable") && r.stdout.contains("nothing removed"), "\(r.stdout)")
            #expect(hostFingerprint(containers: []) == before)
            #expect(netkeep.stateBytes == stateBefore)
        }

        @Test func unreadableStateIsRefusedAndNothingIsRemoved() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            try FileManager.default.createDirectory(atPath: netkeep.stateDirectory, withIntermediateDirectories: true)
            try Data("{\"version\": 1, \"attachments\": [".utf8).write(to: URL(fileURLWithPath: netkeep.statePath))
            let dead = "nktest-dead-\(UUID().uuidString.prefix(6).lowercased())"
            try FileManager.default.createSymbolicLink(atPath: "/var/run/netns/\(dead)", withDestinationPath: "/proc/999999/ns/net")
            defer { run(["rm", "-f", "/var/run/netns/\(dead)"]) }
            let r = netkeep("reconcile")
            #expect(r.status == 3, "\(r.stderr)")
            #expect(r.stderr.contains("corrupt"), "\(r.stderr)")
            #expect(FileManager.default.fileExists(atPath: "/var/run/netns/\(dead)") || (try? FileManager.default.destinationOfSymbolicLink(atPath: "/var/run/netns/\(dead)")) != nil)
        }
    }
}
