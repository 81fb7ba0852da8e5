#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A 64-hex-digit id, as Docker gives networks and endpoints.
func hexID() -> String { (UUID().uuidString + UUID().uuidString).replacingOccurrences(of: "-", with: "").lowercased() }

/// The CNI error code in a plugin's output; nil when it printed none.
func cniCode(_ output: String) -> Int? { jsonObject(output)?["code"] as? Int }

/// A request to a plugin socket as Docker sends it; HTTP status and body.
func pluginCommand(_ socket: String, _ method: String, _ body: String) -> (arguments: [String], environment: [String: String], stdin: String?) {
    (["curl", "-s", "--max-time", "60", "--unix-socket", socket, "-H", "Content-Type: application/json", "--data-binary", "@-",
      "-w", "\n%{http_code}", "http://plugin/NetworkDriver.\(method)"], [:], body)
}

func pluginAnswer(_ r: CommandResult) -> (status: Int, body: String) {
    let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
    return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
}

func post(_ daemon: PluginDaemon, _ method: String, _ body: String) -> (status: Int, body: String) {
    let c = pluginCommand(daemon.socket, method, body)
    return pluginAnswer(run(c.arguments, environment: c.environment, stdin: c.stdin))
}

/// Issue 28: the CNI plugin, the Docker plugin and the DHCP client under
/// racing and hostile callers, each numbered case of the issue on the real
/// test bed. Concurrency cases: 20 callers at once, 10 rounds.
extension IntegrationSuite {
    @Suite struct HostileCallerTests {
        static let callers = 20
        static let rounds = 10

        // MARK: 1. Concurrent CNI ADDs of one container and interface

        @Test func concurrentCNIAddsOfOneInterfaceGiveOneResultAndNothingHalfMade() throws {
            try Testbed.check()
            let net = CNINetwork()
            for round in 0..<Self.rounds {
                let ns = try TestNamespace()
                let container = "race\(round)-\(UUID().uuidString.prefix(8).lowercased())"
                let results = runAtOnce((0..<Self.callers).map { _ in net.command("ADD", container: container, netns: ns.path) })
                let winners = results.filter { $0.status == 0 }
                try #require(winners.count == 1, "round \(round): \(winners.count) of \(Self.callers) ADDs were told they succeeded")
                let losers = results.filter { $0.status != 0 }
                #expect(losers.allSatisfy { cniCode($0.stdout) == 100 }, "round \(round): \(losers.map(\.stdout).filter { cniCode($0) != 100 })")
                let address = try #require(firstAddress(winners[0].stdout), "\(winners[0].stdout)")
                // Exactly one of each piece: the record, its veth and port, the interface, host-local's address.
                let records = net.records.filter { $0["container_id"] as? String == container }
                #expect(records.count == 1 && records.first?["status"] as? String == "ready", "round \(round): \(records)")
                let port = try #require(records.first?["host_ifname"] as? String)
                #expect(portExists(port) && run(["ip", "link", "show", port]).status == 0, "round \(round): \(port) is not whole")
                #expect(ns.exec("ip", "-o", "-4", "addr", "show", "eth0").stdout.contains(" \(address)/"), "round \(round)")
                #expect(net.allocated == [address], "round \(round): host-local holds \(net.allocated), the interface \(address)")
                // DEL takes all of it.
                let del = net.call("DEL", container: container, netns: ns.path)
                #expect(del.status == 0, "\(del.stdout)")
                #expect(!portExists(port) && run(["ip", "link", "show", port]).status != 0, "round \(round): \(port) left behind")
                #expect(net.records.isEmpty && net.allocated.isEmpty, "round \(round): \(net.records) \(net.allocated)")
            }
        }

        // MARK: 2. Concurrent Docker CreateEndpoint with one ID

        @Test func concurrentCreateEndpointsOfOneIDGiveOneEndpointThatJoins() throws {
            try Testbed.check()
            let daemon = try PluginDaemon()
            let networkID = hexID(), net = randomSubnet()
            let created = post(daemon, "CreateNetwork", #"{"NetworkID":"\#(networkID)","Options":{"com.docker.network.generic":{"bridge":"\#(Testbed.bridge)"}},"IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"\#(net).0/24","Gateway":"\#(net).1/24"}],"IPv6Data":[]}"#)
            try #require(created.status == 200, "\(created.body) \(daemon.log)")
            defer { _ = post(daemon, "DeleteNetwork", #"{"NetworkID":"\#(networkID)"}"#) }
            for round in 0..<Self.rounds {
                let endpointID = hexID()
                let body = #"{"NetworkID":"\#(networkID)","EndpointID":"\#(endpointID)","Interface":{"Address":"\#(net).\#(10 + round)/24","AddressIPv6":"","MacAddress":""},"Options":{}}"#
                let answers = runAtOnce((0..<Self.callers).map { _ in pluginCommand(daemon.socket, "CreateEndpoint", body) }).map(pluginAnswer)
                #expect(answers.allSatisfy { $0.status == 200 }, "round \(round): \(answers.filter { $0.status != 200 })")
                #expect(Set(answers.map(\.body)).count == 1, "round \(round): different answers \(Set(answers.map(\.body)))")
                let records = try daemon.netkeep.list().filter { $0["id"] as? String == endpointID }
                #expect(records.count == 1 && records.first?["status"] as? String == "ready", "round \(round): \(records)")
                let port = try #require(records.first?["host_ifname"] as? String)
                #expect(portExists(port) && run(["ip", "link", "show", port]).status == 0, "round \(round)")
                let join = post(daemon, "Join", #"{"NetworkID":"\#(networkID)","EndpointID":"\#(endpointID)","SandboxKey":"/var/run/docker/netns/nkt\#(round)","Options":{}}"#)
                #expect(join.status == 200 && join.body.contains("SrcName"), "round \(round): \(join.body)")
                #expect(post(daemon, "Leave", #"{"NetworkID":"\#(networkID)","EndpointID":"\#(endpointID)"}"#).status == 200)
                #expect(post(daemon, "DeleteEndpoint", #"{"NetworkID":"\#(networkID)","EndpointID":"\#(endpointID)"}"#).status == 200)
                #expect(!portExists(port) && run(["ip", "link", "show", port]).status != 0, "round \(round): \(port) left behind")
            }
        }

        // MARK: 3. CNI GC without the list of valid attachments

        @Test(arguments: ["", #","cni.dev/valid-attachments":null"#, #","cni.dev/attachments":null"#])
        func cniGCWithoutAListRemovesNothing(extra: String) throws {
            try Testbed.check()
            let net = CNINetwork()
            let ns = try TestNamespace()
            let add = net.call("ADD", container: "kept", netns: ns.path)
            try #require(add.status == 0, "\(add.stdout)")
            let record = try #require(net.records.first)
            let port = try #require(record["host_ifname"] as? String)
            let before = (net.netkeep.stateBytes, net.allocated)
            let gc = net.call("GC", config: net.config(extra: extra))
            #expect(gc.status != 0 && cniCode(gc.stdout) == 7 && gc.stdout.contains("valid-attachments"), "\(gc.stdout)")
            #expect(net.netkeep.stateBytes == before.0 && net.allocated == before.1, "GC without a list changed the records or IPAM")
            #expect(portExists(port) && ns.exec("ip", "link", "show", "eth0").status == 0)
            // A list that names it keeps it; an empty list is a list: it goes.
            #expect(net.call("GC", config: net.config(extra: #","cni.dev/valid-attachments":[{"containerID":"kept","ifname":"eth0"}]"#)).status == 0)
            #expect(net.records.count == 1 && portExists(port))
            #expect(net.call("GC", config: net.config(extra: #","cni.dev/valid-attachments":[]"#)).status == 0)
            #expect(net.records.isEmpty && !portExists(port) && net.allocated.isEmpty)
        }

        // MARK: 4. A CNI ADD into the host's own namespace

        @Test func aCNIAddIntoTheHostsNamespaceIsRefusedWhateverPathNamesIt() throws {
            try Testbed.check()
            let net = CNINetwork()
            // The host's namespace by every name: the plugin's own, the test's, a thread's, a bind mount, a link to one.
            let bind = "/run/nkt-hostns-\(UUID().uuidString.prefix(6).lowercased())"
            #expect(FileManager.default.createFile(atPath: bind, contents: nil))
            #expect(run(["mount", "--bind", "/proc/self/ns/net", bind]).status == 0)
            defer { run(["umount", bind]); unlink(bind) }
            let link = bind + "-link"
            #expect(symlink("/proc/\(getpid())/ns/net", link) == 0)
            defer { unlink(link) }
            let paths = ["/proc/self/ns/net", "/proc/thread-self/ns/net", "/proc/\(getpid())/ns/net", "/proc/\(getpid())/task/\(getpid())/ns/net", bind, link]
            for (i, path) in paths.enumerated() {
                let ifname = "nkhost\(i)\(UUID().uuidString.prefix(4).lowercased())"
                let r = net.call("ADD", container: "hostns-\(i)", netns: path, ifname: ifname)
                #expect(r.status != 0 && cniCode(r.stdout) == 4 && r.stdout.contains("host's own network namespace"), "\(path): \(r.stdout)")
                #expect(run(["ip", "link", "show", ifname]).status != 0, "\(path): \(ifname) was made on the host")
                #expect(net.records.isEmpty, "\(path): \(net.records)")
            }
            #expect(net.allocated.isEmpty, "IPAM was asked for an address")
        }

        // MARK: 5. Unbounded strings

        @Test func unboundedNamesAndValuesAreRefusedWhereTheyEnter() throws {
            try Testbed.check()
            let net = CNINetwork()
            let ns = try TestNamespace()
            let portsBefore = bridgePorts
            let longName = String(repeating: "n", count: 300)
            let named = net.call("ADD", container: "long", netns: ns.path,
                                 config: net.config().replacingOccurrences(of: #""name":"\#(net.name)""#, with: #""name":"\#(longName)""#))
            #expect(named.status != 0 && cniCode(named.stdout) == 7 && named.stdout.contains("at most 253"), "\(named.stdout.prefix(300))")
            let huge = net.config(extra: #","args":{"x":"\#(String(repeating: "a", count: 2 << 20))"}"#)
            let started = Date()
            let big = net.call("ADD", container: "huge", netns: ns.path, config: huge)
            #expect(big.status != 0 && cniCode(big.stdout) == 6 && big.stdout.contains("over 1048576 bytes"), "\(big.stdout.prefix(300))")
            #expect(Date().timeIntervalSince(started) < 10)
            #expect(net.netkeep.stateBytes == nil, "a refused ADD wrote the state file")
            #expect(bridgePorts == portsBefore)
            // The Docker plugin: an option value and a body beyond their bounds.
            let daemon = try PluginDaemon()
            let stateBefore = daemon.netkeep.stateBytes
            let option = post(daemon, "CreateNetwork", #"{"NetworkID":"\#(hexID())","Options":{"com.docker.network.generic":{"bridge":"\#(String(repeating: "b", count: 100_000))"}},"IPv4Data":[{"Pool":"10.99.0.0/24","Gateway":"10.99.0.1/24"}]}"#)
            #expect(option.status != 200 && option.body.contains("bridge"), "\(option.status) \(option.body.prefix(300))")
            let body = post(daemon, "CreateNetwork", #"{"NetworkID":"\#(String(repeating: "a", count: 2 << 20))"}"#)
            #expect(body.status == 413, "\(body.status) \(body.body.prefix(200))")
            #expect(daemon.netkeep.stateBytes == stateBefore)
        }

        // MARK: 6. Renewals that must change the interface

        /// netkeep-dhcp's renewal on a private bridge: a NAK and a new
        /// address move the interface to it, default route included; a lease
        /// that runs out without an answer takes its address and route away.
        @Test func renewalsDriveTheInterfaceOnANewAddressAndOnExpiry() throws {
            try Testbed.check()
            try withPrivateBridge { bridge, net, serverNamespace, netkeep in
                var responder = try dhcpResponder(in: serverNamespace, net: net, offer: 50, ["--lease-time", "120"])
                let cni = CNINetwork(netkeep: netkeep, ipam: #"{"type":"netkeep-dhcp"}"#, bridge: bridge)
                let ns = try TestNamespace()
                let add = cni.call("ADD", container: "renewed", netns: ns.path)
                try #require(add.status == 0, "\(add.stdout) \(add.stderr)")
                #expect(ns.exec("ip", "-o", "-4", "addr", "show", "eth0").stdout.contains(" \(net).50/24 "))
                #expect(ns.exec("ip", "route").stdout.contains("default via \(net).1 dev eth0"))

                // The server NAKs the renewal and offers another address: the interface follows, route and all.
                responder.stop()
                responder = try dhcpResponder(in: serverNamespace, net: net, offer: 60, ["--lease-time", "120", "--mode", "nak-requests"])
                let renew = netkeep("dhcp-renew", environment: ["NETKEEP_TIME_OFFSET": "70"])
                #expect(renew.status == 0 || renew.status == 1, "\(renew.stdout) \(renew.stderr)")
                let addresses = ns.exec("ip", "-o", "-4", "addr", "show", "eth0").stdout
                #expect(addresses.contains(" \(net).60/24 ") && !addresses.contains(" \(net).50/24 "), "\(addresses) \(renew.stdout) \(renew.stderr)")
                #expect(ns.exec("ip", "route").stdout.contains("default via \(net).1 dev eth0"), "the route did not come back: \(ns.exec("ip", "route").stdout)")
                #expect(cni.records.first.flatMap { $0["addresses"] as? [String] } == ["\(net).60/24"], "\(cni.records)")

                // Nobody answers until the lease has run out: address and route go, the record says so.
                responder.stop()
                let expired = netkeep("dhcp-renew", environment: ["NETKEEP_TIME_OFFSET": "400"])
                #expect(expired.status != 0 || expired.stderr.contains("expired"), "\(expired.stdout) \(expired.stderr)")
                #expect(!ns.exec("ip", "-o", "-4", "addr", "show", "eth0").stdout.contains(" inet "), "the expired address stayed")
                #expect(!ns.exec("ip", "route").stdout.contains("default"), "the route of the expired lease stayed")
                #expect(cni.records.first.flatMap { $0["addresses"] as? [String] } == [], "\(cni.records)")
                #expect(cni.call("DEL", container: "renewed", netns: ns.path).status == 0)
            }
        }

        // MARK: 7. A rogue ACK

        /// The client selects the first server's OFFER; a second server
        /// acknowledges the REQUEST first, for another address, under its own
        /// name. Only the selected server's ACK for the offered address counts.
        @Test func anAckOfAServerNotSelectedForAnAddressNotAskedForIsIgnored() throws {
            try Testbed.check()
            try withPrivateBridge { bridge, net, serverNamespace, netkeep in
                let honest = try dhcpResponder(in: serverNamespace, net: net, offer: 50, ["--delay", "0.3"])
                defer { honest.stop() }
                let rogueLog = netkeep.stateDirectory + "/rogue.log"
                let rogue = try dhcpResponder(in: serverNamespace, net: net, offer: 66, ["--mode", "rogue-ack", "--log", rogueLog], serverID: 2)
                defer { rogue.stop() }
                let c = try TestContainer()
                defer { netkeep("detach", c.name) }
                let r = netkeep("attach", c.name, "--bridge", bridge, "--dhcp")
                #expect(r.status == 0, "\(r.stderr)")
                #expect(c.exec("ip", "-o", "-4", "addr", "show", "eth1").stdout.contains(" \(net).50/24 "), "\(c.exec("ip", "-o", "addr").stdout)")
                #expect(try netkeep.list().first?["address"] as? String == "\(net).50/24")
                let log = (try? String(contentsOfFile: rogueLog, encoding: .utf8)) ?? ""
                #expect(log.contains("sent ACK") && log.contains("yiaddr=\(net).66"), "the rogue never answered: \(log)")
            }
        }

        /// A server that moves a client to an address another host already
        /// uses: the ARP probe (RFC 5227) finds the other host, the server
        /// gets a DHCPDECLINE, and the address never goes on the interface.
        @Test func aChangedAddressThatAnotherHostAnswersForIsDeclined() throws {
            try Testbed.check()
            try withPrivateBridge { bridge, net, serverNamespace, netkeep in
                var responder = try dhcpResponder(in: serverNamespace, net: net, offer: 50, ["--lease-time", "120"])
                let c = try TestContainer()
                defer { netkeep("detach", c.name) }
                try #require(netkeep("attach", c.name, "--bridge", bridge, "--dhcp").status == 0)
                // Another host on the bridge holds .60.
                let squatter = try TestNamespace()
                let veth = "nksq\(UUID().uuidString.prefix(6).lowercased())"
                #expect(run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", squatter.name]).status == 0)
                defer { run(["ovs-vsctl", "--if-exists", "del-port", veth]); run(["ip", "link", "del", veth]) }
                squatter.exec("ip", "addr", "add", "\(net).60/24", "dev", "eth0")
                squatter.exec("ip", "link", "set", "eth0", "up")
                squatter.exec("ethtool", "-K", "eth0", "tx", "off")
                run(["ip", "link", "set", veth, "up"])
                run(["ethtool", "-K", veth, "tx", "off"])
                #expect(run(["ovs-vsctl", "add-port", bridge, veth]).status == 0)
                responder.stop()
                let log = netkeep.stateDirectory + "/moved.log"
                responder = try dhcpResponder(in: serverNamespace, net: net, offer: 60, ["--lease-time", "120", "--mode", "nak-requests", "--log", log])
                defer { responder.stop() }
                let renew = netkeep("dhcp-renew", environment: ["NETKEEP_TIME_OFFSET": "70"])
                let said = renew.stdout + renew.stderr
                #expect(said.contains("\(net).60 is in use by") && said.contains("declined"), "\(said)")
                #expect(!c.exec("ip", "-o", "-4", "addr", "show", "eth1").stdout.contains("\(net).60"), "the conflicting address was used")
                #expect(eventually(within: 5) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("recv DECLINE") },
                        "no DHCPDECLINE reached the server")
                #expect(try netkeep.list().first?["address"] as? String != "\(net).60/24")
            }
        }

        // MARK: 8. The plugin socket under load

        @Test func idleConnectionsNeitherStarveNorStopThePluginServer() throws {
            try Testbed.check()
            let daemon = try PluginDaemon(start: false)
            // A daemon that may hold 512 descriptors: more idle connections than that come.
            try daemon.start(environment: ["NETKEEP_PLUGIN_IDLE_SECONDS": "3"], wrapper: ["prlimit", "--nofile=512:512"])
            guard let pid = daemon.pid else { Issue.record("no daemon"); return }
            var sockets: [Int32] = []
            defer { sockets.forEach { close($0) } }
            for _ in 0..<700 { if let fd = connectUnix(daemon.socket) { sockets.append(fd) } }
            #expect(sockets.count > 600, "only \(sockets.count) connections were made")
            // Requests are answered at once, including one that needs the claims lock and the state file.
            let started = Date()
            let activate = run(["curl", "-s", "--max-time", "10", "--unix-socket", daemon.socket, "-X", "POST", "http://plugin/Plugin.Activate"])
            #expect(activate.stdout.contains("NetworkDriver"), "\(activate.stdout) \(activate.stderr)")
            let created = post(daemon, "CreateNetwork", #"{"NetworkID":"\#(hexID())","Options":{"com.docker.network.generic":{"bridge":"\#(Testbed.bridge)","dhcp":"true"}},"IPv4Data":[{"Pool":"0.0.0.0/0"}]}"#)
            #expect(created.status == 200, "\(created.body) \(daemon.log.suffix(2000))")
            #expect(Date().timeIntervalSince(started) < 5, "answers took \(Date().timeIntervalSince(started)) s")
            // It does not spin: less than half a core over two seconds.
            let cpu = processCPUSeconds(pid)
            usleep(2_000_000)
            #expect(processCPUSeconds(pid) - cpu < 1.0, "the daemon spins with idle connections open")
            // At most its cap is kept, and idle ones are closed.
            #expect(eventually(within: 10) { openDescriptors(pid) < 400 }, "\(openDescriptors(pid)) descriptors open")
            #expect(daemon.process?.exitStatus == nil, "the daemon died: \(daemon.log.suffix(2000))")
        }

        // MARK: 9. A FIFO (or anything else that is no namespace) as CNI_NETNS

        @Test func aCNINetnsThatIsNoNamespaceIsRefusedAtOnce() throws {
            try Testbed.check()
            let net = CNINetwork()
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nkfifo-\(UUID().uuidString.prefix(6))").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            #expect(mkfifo(dir + "/fifo", 0o600) == 0)
            #expect(FileManager.default.createFile(atPath: dir + "/file", contents: Data("x".utf8)))
            for path in [dir + "/fifo", dir + "/file", dir, "/dev/null", "/proc/self/ns/mnt"] {
                let started = Date()
                let r = net.call("ADD", container: "fifo", netns: path)
                #expect(r.status != 0 && cniCode(r.stdout) == 3, "\(path): \(r.stdout)")
                #expect(Date().timeIntervalSince(started) < 5, "\(path): ADD took \(Date().timeIntervalSince(started)) s")
            }
            #expect(net.records.isEmpty && net.allocated.isEmpty)
        }

        // MARK: 10. Wrong object, wrong words

        @Test func pluginRequestsAboutAnotherNetworkOrWithBadValuesChangeNothing() throws {
            try Testbed.check()
            let daemon = try PluginDaemon()
            let networkID = hexID(), otherID = hexID(), net = randomSubnet()
            func create(_ pool: String, gateway: String, options: String = "") -> (status: Int, body: String) {
                post(daemon, "CreateNetwork", #"{"NetworkID":"\#(hexID())","Options":{"com.docker.network.generic":{"bridge":"\#(Testbed.bridge)"\#(options)}},"IPv4Data":[{"Pool":"\#(pool)","Gateway":"\#(gateway)"}]}"#)
            }
            for (pool, gateway) in [("224.0.0.0/8", "224.0.0.1/8"), ("127.0.0.0/8", "127.0.0.1/8"), ("239.1.0.0/16", "239.1.0.1/16")] {
                let r = create(pool, gateway: gateway)
                #expect(r.status != 200 && r.body.contains("not a unicast range"), "\(pool): \(r.body)")
            }
            let vlan = create("\(net).0/24", gateway: "\(net).1/24", options: #","vlan":"4095""#)
            #expect(vlan.status != 200 && vlan.body.contains("reserved"), "\(vlan.body)")
            let made = post(daemon, "CreateNetwork", #"{"NetworkID":"\#(networkID)","Options":{"com.docker.network.generic":{"bridge":"\#(Testbed.bridge)"}},"IPv4Data":[{"Pool":"\#(net).0/24","Gateway":"\#(net).1/24"}]}"#)
            try #require(made.status == 200, "\(made.body)")
            defer { _ = post(daemon, "DeleteNetwork", #"{"NetworkID":"\#(networkID)"}"#) }
            for (address, why) in [("10.254.254.5/24", "not an address of the network's subnet"), ("\(net).1/24", "the network's gateway")] {
                let r = post(daemon, "CreateEndpoint", #"{"NetworkID":"\#(networkID)","EndpointID":"\#(hexID())","Interface":{"Address":"\#(address)"}}"#)
                #expect(r.status != 200 && r.body.contains(why), "\(address): \(r.body)")
            }
            let endpointID = hexID()
            #expect(post(daemon, "CreateEndpoint", #"{"NetworkID":"\#(networkID)","EndpointID":"\#(endpointID)","Interface":{"Address":"\#(net).9/24"}}"#).status == 200)
            defer { _ = post(daemon, "DeleteEndpoint", #"{"NetworkID":"\#(networkID)","EndpointID":"\#(endpointID)"}"#) }
            func record() throws -> [String?] {
                let row = try daemon.netkeep.list().first { $0["id"] as? String == endpointID }
                return ["status", "sandbox_key", "network_id", "host_ifname"].map { row?[$0] as? String }
            }
            let recordBefore = try record()
            #expect(recordBefore.first == "ready", "\(recordBefore)")
            for method in ["Join", "Leave", "DeleteEndpoint"] {
                let r = post(daemon, method, #"{"NetworkID":"\#(otherID)","EndpointID":"\#(endpointID)","SandboxKey":"/var/run/docker/netns/x"}"#)
                #expect(r.status != 200 && r.body.contains("not \(otherID.prefix(12))"), "\(method): \(r.body)")
            }
            #expect(try record() == recordBefore, "a request about another network changed it")
            // An unknown network's DeleteNetwork is no deletion; an id with CR LF is no id, and no log line is forged.
            #expect(post(daemon, "DeleteNetwork", #"{"NetworkID":"\#(hexID())"}"#).status == 200)
            #expect(eventually { daemon.log.contains("DeleteNetwork of a network netkeep has no record of") }, "\(daemon.log.suffix(1000))")
            let forged = post(daemon, "DeleteNetwork", #"{"NetworkID":"x\r\nnetkeep: forged line"}"#)
            #expect(forged.status != 200 && forged.body.contains("not 64 hex digits"), "\(forged.body)")
            #expect(!daemon.log.contains("\nnetkeep: forged line"), "a raw CR LF reached the log")
        }

        @Test func cniErrorsSayWhatIsWrongInTheRuntimesVersionAndWords() throws {
            try Testbed.check()
            let net = CNINetwork()
            let ns = try TestNamespace()
            let config = net.config(version: "1.0.0", extra: #","vlan":1.5"#)
            let r = net.call("ADD", container: "words", netns: ns.path, config: config)
            let error = try #require(jsonObject(r.stdout), "\(r.stdout)")
            #expect(error["cniVersion"] as? String == "1.0.0", "\(r.stdout)")
            #expect(error["code"] as? Int == 7 && (error["msg"] as? String ?? "").contains("\"vlan\" must be a whole number"), "\(r.stdout)")
            let odd = net.call("ADD", container: "words", netns: ns.path, config: net.config(version: "1.0.0", extra: #","brige\n":"x""#))
            #expect(odd.stdout.contains(#"\\n"#) && !odd.stdout.contains("\\u{") && !odd.stdout.contains("Array<"), "\(odd.stdout)")
        }

        /// A renewal answered only by datagrams that are no DHCP says so
        /// (a renewal: two sends, some 12 s; a DISCOVER would take 47).
        @Test func malformedDHCPRepliesAreCalledMalformed() throws {
            try Testbed.check()
            try withPrivateBridge { bridge, net, serverNamespace, netkeep in
                let honest = try dhcpResponder(in: serverNamespace, net: net, offer: 50, ["--lease-time", "120"])
                let c = try TestContainer()
                defer { netkeep("detach", c.name) }
                let attached = netkeep("attach", c.name, "--bridge", bridge, "--dhcp")
                try #require(attached.status == 0, "\(attached.stderr)")
                honest.stop()
                let garbage = try dhcpResponder(in: serverNamespace, net: net, offer: 50, ["--mode", "garbage"])
                defer { garbage.stop() }
                let r = netkeep("dhcp-renew", environment: ["NETKEEP_TIME_OFFSET": "70"])
                let said = r.stdout + r.stderr
                #expect(said.contains("malformed repl"), "\(said)")
                #expect(!said.contains("no DHCP server answered"), "\(said)")
            }
        }
    }
}

/// A bridge of the test's own with a namespace for DHCP servers on it
/// (`net`.1), for `body(bridge, net, namespace, netkeep)`.
func withPrivateBridge(_ body: (_ bridge: String, _ net: String, _ namespace: String, _ netkeep: Netkeep) throws -> Void) throws {
    let tag = String(UUID().uuidString.prefix(4).lowercased())
    let bridge = "nkpv\(tag)", ns = "nkpv\(tag)", veth = "nkpvv\(tag)"
    let net = "10.251.\(Int.random(in: 10...250))"
    run(["ovs-vsctl", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev"])
    defer { run(["ovs-vsctl", "--if-exists", "del-br", bridge]) }
    run(["ip", "netns", "add", ns])
    defer { run(["ip", "netns", "del", ns]) }
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "c"])
    defer { run(["ip", "link", "del", veth]) }
    run(["ip", "link", "set", veth + "c", "netns", ns])
    run(["ip", "-n", ns, "link", "set", veth + "c", "name", "eth0"])
    run(["ip", "-n", ns, "addr", "add", "\(net).1/24", "dev", "eth0"])
    run(["ip", "-n", ns, "addr", "add", "\(net).2/24", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"])
    run(["ip", "link", "set", veth, "up"])
    run(["ethtool", "-K", veth, "tx", "off"])
    run(["ovs-vsctl", "add-port", bridge, veth])
    let netkeep = Netkeep()
    try FileManager.default.createDirectory(atPath: netkeep.stateDirectory, withIntermediateDirectories: true)
    try body(bridge, net, ns, netkeep)
}

/// dhcp_responder.py in `namespace`, as server `net`.`serverID`, offering `net`.`offer` with router `net`.1.
func dhcpResponder(in namespace: String, net: String, offer: Int, _ options: [String], serverID: Int = 1) throws -> BackgroundProcess {
    try startTool(["ip", "netns", "exec", namespace, "python3", toolsDirectory + "/dhcp_responder.py", "--interface", "eth0",
                   "--server-ip", "\(net).\(serverID)", "--offer", "\(net).\(offer)", "--mask", "255.255.255.0", "--router", "\(net).1"] + options)
}

/// A connected unix stream socket, or nil.
func connectUnix(_ path: String) -> Int32? {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { close(fd); return nil }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else { close(fd); return nil }
    return fd
}

/// User and system CPU seconds of a process (/proc/PID/stat fields 14 and 15).
func processCPUSeconds(_ pid: pid_t) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

func openDescriptors(_ pid: pid_t) -> Int { ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count }
