#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A Python helper of Tests/IntegrationTests/Tools, started in the background;
/// waits for its `ready` line.
func startTool(_ arguments: [String]) throws -> BackgroundProcess {
    let tool = try BackgroundProcess(arguments)
    guard eventually(within: 10, { tool.log.contains("ready") }) else {
        throw Testbed.TestbedMissing("\(arguments.joined(separator: " ")) did not start: \(tool.log)")
    }
    return tool
}

let toolsDirectory = Testbed.packageRoot + "/Tests/IntegrationTests/Tools"

func portExists(_ name: String) -> Bool { run(["ovs-vsctl", "port-to-br", name]).status == 0 }

extension IntegrationSuite {
    /// DESIGN.md rules 5 and 6 against the real test bed: renames, hostile
    /// OVSDB values, another engine on the socket, shared namespaces, names at
    /// the limit, hostile DHCP servers.
    @Suite struct HostileWorldTests {
        @Test func aRenamedOvsDockerContainerKeepsItsPortAndIsAdopted() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            let net = randomSubnet()
            let added = run(["ovs-docker", "add-port", Testbed.bridge, "eth1", c.name, "--ipaddress=\(net).7/24"])
            #expect(added.status == 0, "ovs-docker: \(added.stderr)")
            let port = run(["ovs-vsctl", "--data=bare", "--no-heading", "--columns=name", "find", "interface",
                            "external_ids:container_id=\(c.name)"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(!port.isEmpty)
            defer { run(["ovs-vsctl", "--if-exists", "del-port", port]) }
            let renamed = c.name + "-renamed"
            #expect(run(["docker", "rename", c.name, renamed]).status == 0)
            defer { run(["docker", "rm", "-f", renamed]) }

            // Docker answers 404 for the old name; the port's veth lives: nothing is garbage.
            let r = netkeep("reconcile")
            #expect(!r.stdout.contains("remove"), "\(r.stdout)")
            #expect(portExists(port), "the renamed container's port was removed")
            #expect(run(["ip", "link", "show", port]).status == 0, "its veth was removed")

            // adopt finds the container by its veth's peer and records it by id.
            let adopted = netkeep("adopt", "--port", port)
            #expect(adopted.status == 0, "\(adopted.stdout + adopted.stderr)")
            let list = try netkeep.list()
            #expect(list.first?["container_id"] as? String == c.id)
            #expect(list.first?["container_name"] as? String == renamed)
            #expect(netkeep("reconcile").status == 0)
            #expect(portExists(port))
            #expect(run(["docker", "exec", renamed, "ip", "-o", "addr", "show", "eth1"]).stdout.contains("\(net).7/24"))
            #expect(netkeep("detach", renamed).status == 0)
        }

        @Test func hostileContainerIDsInOVSDBAreNeverSentAndNeverEvidence() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let dir = netkeep.stateDirectory
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let proxy = try startTool(["python3", toolsDirectory + "/docker_proxy.py", "--listen", dir + "/docker.sock",
                                       "--mode", "forward", "--log", dir + "/requests.log"])
            defer { proxy.stop() }
            let tag = String(UUID().uuidString.prefix(6).lowercased())
            let hostile = [#""nkt\/\#(tag)""#, #""nkt\r\nGET /containers/json HTTP/1.1\r\nX: \#(tag)""#,
                           "\"" + String(repeating: "n", count: 300) + tag + "\"", #""nkt?all=1#\#(tag) %2e""#]
            var ports: [String] = []
            for (i, value) in hostile.enumerated() {
                let name = "nkh\(tag)\(i)"
                run(["ovs-vsctl", "add-port", Testbed.bridge, name, "--", "set", "interface", name,
                     "external_ids:container_id=\(value)", "external_ids:container_iface=eth1"])
                #expect(portExists(name))
                ports.append(name)
            }
            defer { for p in ports { run(["ovs-vsctl", "--if-exists", "del-port", p]) } }
            let r = netkeep("reconcile", "--docker-socket", dir + "/docker.sock")
            #expect(!r.stdout.contains("remove"), "\(r.stdout)")
            for p in ports { #expect(portExists(p), "\(p) was removed on a hostile reference") }
            let log = (try? String(contentsOfFile: dir + "/requests.log", encoding: .utf8)) ?? ""
            #expect(log.contains("/containers/json"), "the proxy saw no request: \(log)")
            #expect(!log.contains(tag), "a hostile reference reached Docker: \(log)")
        }

        @Test(arguments: ["empty-engine", "not-found"])
        func anotherEngineOnTheSocketRemovesNothing(_ mode: String) throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            let net = randomSubnet()
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(net).5/24").status == 0)
            let state = try String(contentsOfFile: netkeep.statePath, encoding: .utf8)
            #expect(state.contains("\"docker_engine\""), "the engine was not recorded")
            let host = try netkeep.list().first?["host_ifname"] as? String ?? ""
            c.remove()
            let dir = netkeep.stateDirectory
            let proxy = try startTool(["python3", toolsDirectory + "/docker_proxy.py", "--listen", dir + "/docker.sock", "--mode", mode])
            defer { proxy.stop() }
            let r = netkeep("reconcile", "--docker-socket", dir + "/docker.sock")
            #expect(r.status != 0)
            #expect(!r.stdout.contains("remove port"), "\(r.stdout)")
            #expect((r.stdout + r.stderr).contains("nothing removed"), "\(r.stdout + r.stderr)")
            #expect(portExists(host), "the port went on the word of another engine")
            #expect(try netkeep.list().count == 1)
            // The real engine's 404 counts.
            #expect(netkeep("reconcile").status == 0)
            #expect(!portExists(host))
            #expect(try netkeep.list().isEmpty)
        }

        @Test func acceptEngineRecordsAnotherEngineOnlyWhenAsked() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).5/24").status == 0)
            defer { netkeep("detach", c.name) }
            let dir = netkeep.stateDirectory
            let proxy = try startTool(["python3", toolsDirectory + "/docker_proxy.py", "--listen", dir + "/docker.sock",
                                       "--mode", "empty-engine", "--engine-id", "NKTEST:OTHER"])
            defer { proxy.stop() }
            let dry = netkeep("accept-engine", "--dry-run", "--docker-socket", dir + "/docker.sock")
            #expect(dry.status == 0 && dry.stdout.contains("NKTEST:OTHER") && dry.stdout.contains("not recorded"), "\(dry.stdout + dry.stderr)")
            #expect(try !String(contentsOfFile: netkeep.statePath, encoding: .utf8).contains("NKTEST:OTHER"))
            let attach = netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ifname", "eth2", "--ip", "\(randomSubnet()).5/24",
                                 "--docker-socket", dir + "/docker.sock")
            #expect(attach.status == 2, "\(attach.stderr)")
            #expect(netkeep("accept-engine", "--docker-socket", dir + "/docker.sock").status == 0)
            #expect(try String(contentsOfFile: netkeep.statePath, encoding: .utf8).contains("NKTEST:OTHER"))
            #expect(netkeep("accept-engine").status == 0, "and back to the real one")
        }

        @Test func containersWithoutANamespaceOfTheirOwnAreRefused() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let owner = try TestContainer()
            let suffix = String(UUID().uuidString.prefix(8).lowercased())
            let hostNet = "nkt-hostnet-\(suffix)", shared = "nkt-shared-\(suffix)"
            #expect(run(["docker", "run", "-d", "--network", "host", "--name", hostNet, Testbed.image, "sleep", "1000000"]).status == 0)
            defer { run(["docker", "rm", "-f", hostNet]) }
            #expect(run(["docker", "run", "-d", "--network", "container:\(owner.name)", "--name", shared, Testbed.image, "sleep", "1000000"]).status == 0)
            defer { run(["docker", "rm", "-f", shared]) }
            let before = hostFingerprint(containers: [owner])
            for (name, why) in [(hostNet, "--network host"), (shared, "--network \"container:")] {
                let r = netkeep("attach", name, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).5/24")
                #expect(r.status == 2, "\(name): \(r.stderr)")
                #expect(r.stderr.contains(why), "\(r.stderr)")
            }
            #expect(hostFingerprint(containers: [owner]) == before)
            #expect(try netkeep.stateBytes == nil || netkeep.list().isEmpty)
        }

        @Test func aContainerNameAtTheLimitWorksOneMoreIsRefused() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let suffix = String(UUID().uuidString.prefix(8).lowercased())
            let longest = "nkt-" + suffix + String(repeating: "x", count: 255 - 12)
            let tooLong = longest.dropLast(1) + "yy"
            for name in [longest, String(tooLong)] {
                #expect(run(["docker", "run", "-d", "--net=none", "--name", name, Testbed.image, "sleep", "1000000"]).status == 0)
            }
            defer { for name in [longest, String(tooLong)] { run(["docker", "rm", "-f", name]) } }
            #expect(longest.utf8.count == 255)
            let ok = netkeep("attach", longest, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).5/24")
            #expect(ok.status == 0, "\(ok.stderr)")
            #expect(try netkeep.list().first?["container_name"] as? String == longest)
            #expect(netkeep("reconcile").status == 0)
            let stateBefore = netkeep.stateBytes
            let refused = netkeep("attach", String(tooLong), "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).5/24")
            #expect(refused.status == 2)
            #expect(refused.stderr.contains("at most 255"), "\(refused.stderr)")
            #expect(netkeep.stateBytes == stateBefore)
            #expect(netkeep("detach", longest).status == 0)
        }

        /// A DHCP server of the test's own (dhcp_responder.py, offering
        /// `<net>.<host>`) on a bridge of its own, for `body(bridge, net, netkeep, count, log)`.
        func withPrivateDHCPServer(host: String, _ options: [String],
                                   _ body: (_ bridge: String, _ net: String, _ netkeep: Netkeep, _ count: String, _ log: String) throws -> Void) throws {
            try withPrivateBridge { bridge, net, namespace, netkeep in
                let count = netkeep.stateDirectory + "/count", log = netkeep.stateDirectory + "/responder.log"
                let responder = try startTool(["ip", "netns", "exec", namespace, "python3", toolsDirectory + "/dhcp_responder.py",
                                               "--interface", "eth0", "--server-ip", "\(net).1", "--offer", "\(net).\(host)",
                                               "--mask", "255.255.255.0", "--count-file", count, "--log", log] + options)
                defer { responder.stop() }
                try body(bridge, net, netkeep, count, log)
            }
        }

        /// dnsmasq can offer one free address to two clients that DISCOVER at
        /// the same moment and NAK the second REQUEST: that client starts over
        /// with one more DISCOVER and gets an address all the same.
        @Test func aNakOfTheRequestAfterAnOfferStartsOverWithDISCOVER() throws {
            try Testbed.check()
            try withPrivateDHCPServer(host: "50", ["--mode", "nak-first-select"]) { bridge, net, netkeep, _, log in
                let c = try TestContainer()
                defer { netkeep("detach", c.name) }
                let r = netkeep("attach", c.name, "--bridge", bridge, "--dhcp")
                #expect(r.status == 0, "\(r.stderr)")
                #expect(try netkeep.list().first?["address"] as? String == "\(net).50/24")
                #expect(c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(net).50/24 "))
                let lines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
                let exchange = lines.compactMap { line -> String? in
                    let words = line.split(separator: " ")
                    return words.count > 1 && ["recv", "sent"].contains(words[0]) ? "\(words[0]) \(words[1])" : nil
                }
                #expect(exchange.prefix(8) == ["recv DISCOVER", "sent OFFER", "recv REQUEST", "sent NAK",
                                               "recv DISCOVER", "sent OFFER", "recv REQUEST", "sent ACK"], "\(lines)")
            }
        }

        /// Its offers are refused where they enter, and the failed attach leaves nothing.
        @Test(arguments: [("broadcast", "255", "3600"), ("lease time 0", "50", "0")])
        func hostileDHCPOffersAreRefused(_ label: String, _ host: String, _ leaseTime: String) throws {
            try Testbed.check()
            try withPrivateDHCPServer(host: host, ["--lease-time", leaseTime]) { bridge, _, netkeep, count, _ in
                let c = try TestContainer()
                let before = hostFingerprint(containers: [c])
                let r = netkeep("attach", c.name, "--bridge", bridge, "--dhcp")
                #expect(r.status == 1, "\(label): \(r.stderr)")
                #expect(r.stderr.contains("no acceptable DHCP answer"), "\(r.stderr)")
                #expect(Int((try? String(contentsOfFile: count, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "0") ?? 0 > 0,
                        "the responder saw no DISCOVER")
                // Undone: no record, no port, no veth, no address.
                #expect(try netkeep.stateBytes == nil || netkeep.list().isEmpty)
                #expect(hostFingerprint(containers: [c]) == before)
                #expect(netkeep("reconcile").status == 0, "a later reconcile brings nothing back")
                #expect(hostFingerprint(containers: [c]) == before)
            }
        }
    }
}
