#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A network namespace made as a runtime makes one (`ip netns add`), deleted at the end.
final class TestNamespace: @unchecked Sendable {
    let name: String
    var path: String { "/var/run/netns/\(name)" }

    init() throws {
        name = "nktns-\(UUID().uuidString.prefix(8).lowercased())"
        let r = run(["ip", "netns", "add", name])
        guard r.status == 0 else { throw Testbed.TestbedMissing("ip netns add \(name): \(r.stderr)") }
    }

    @discardableResult
    func exec(_ arguments: String...) -> CommandResult { run(["ip", "netns", "exec", name] + arguments) }

    func remove() { run(["ip", "netns", "del", name]) }

    deinit { remove() }
}

/// A CNI network of netkeep's: a name, a subnet for host-local (whose data
/// directory is the test's own), and the state directory netkeep records in.
/// `call` runs netkeep as a runtime runs a plugin.
final class CNINetwork: @unchecked Sendable {
    let name: String
    let subnet: String
    let netkeep: Netkeep
    let ipamDirectory: String
    /// The config's `ipam`: host-local on `subnet` unless given.
    let ipam: String?

    /// The OVS bridge the network's ports go on.
    let bridge: String

    init(netkeep: Netkeep = Netkeep(), ipam: String? = nil, bridge: String = Testbed.bridge) {
        name = "nktcni-\(UUID().uuidString.prefix(6).lowercased())"
        subnet = randomSubnet()
        self.netkeep = netkeep
        self.ipam = ipam
        self.bridge = bridge
        ipamDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("nkipam-\(UUID().uuidString.prefix(8))").path
    }

    /// netkeep's entry of the config list, with the list's keys merged in as a runtime does.
    func config(version: String = "1.1.0", type: String = "netkeep", extra: String = "") -> String {
        #"{"cniVersion":"\#(version)","name":"\#(name)","type":"\#(type)","bridge":"\#(bridge)","#
            + #""ipam":\#(ipam ?? #"{"type":"host-local","subnet":"\#(subnet).0/24","routes":[{"dst":"0.0.0.0/0"}],"dataDir":"\#(ipamDirectory)"}"#)\#(extra)}"#
    }

    func call(_ command: String, container: String = "", netns: String = "", ifname: String = "eth0", args: String = "",
              config: String? = nil, environment extra: [String: String] = [:]) -> CommandResult {
        let c = self.command(command, container: container, netns: netns, ifname: ifname, args: args, config: config, environment: extra)
        return run(c.arguments, environment: c.environment, stdin: c.stdin)
    }

    /// A call as `runAtOnce` takes it.
    func command(_ command: String, container: String = "", netns: String = "", ifname: String = "eth0", args: String = "",
                 config: String? = nil, environment extra: [String: String] = [:]) -> (arguments: [String], environment: [String: String], stdin: String?) {
        ([Testbed.netkeepBinary], [
            "CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": args,
            "CNI_PATH": "/usr/lib/cni", "NETKEEP_STATE_DIR": netkeep.stateDirectory,
        ].merging(extra) { $1 }, config ?? self.config())
    }

    /// The addresses host-local holds for this network (its data directory's address files).
    var allocated: Set<String> {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: ipamDirectory + "/" + name)) ?? []
        return Set(files.filter { $0.split(separator: ".").count == 4 && $0.allSatisfy { $0.isNumber || $0 == "." } })
    }

    /// The state file's kept leases (`cni_leases`) of this network.
    var keptLeases: [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: netkeep.statePath),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [] }
        return ((object["cni_leases"] as? [[String: Any]]) ?? []).filter { $0["network"] as? String == name }
    }

    /// The `cni` records of the state file, of this network.
    var records: [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: netkeep.statePath),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [] }
        return ((object["cni"] as? [[String: Any]]) ?? []).filter { $0["network"] as? String == name }
    }

    /// What a test left, taken down as a runtime's DEL would.
    deinit {
        for record in records {
            _ = call("DEL", container: record["container_id"] as? String ?? "", ifname: record["ifname"] as? String ?? "")
        }
        try? FileManager.default.removeItem(atPath: ipamDirectory)
    }
}

func jsonObject(_ text: String) -> [String: Any]? {
    try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
}

/// The first address of an ADD result, without its prefix.
func firstAddress(_ result: String) -> String? {
    ((jsonObject(result)?["ips"] as? [[String: Any]])?.first?["address"] as? String)?.split(separator: "/").first.map(String.init)
}

var bridgePorts: Set<String> { Set(run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines) }

extension IntegrationSuite {
    @Suite struct CNITests {
        /// The spec's rules on real namespaces, OVS and host-local: ADD gives a
        /// working interface; ADD again fails; CHECK passes, and fails once the
        /// interface is changed; DEL twice succeeds, also with the namespace gone.
        @Test func addCheckAndDelFollowTheSpec() throws {
            try Testbed.check()
            let net = CNINetwork()
            let a = try TestNamespace(), b = try TestNamespace()
            let addA = net.call("ADD", container: "ctr-a", netns: a.path)
            #expect(addA.status == 0, "\(addA.stdout) \(addA.stderr)")
            let addB = net.call("ADD", container: "ctr-b", netns: b.path)
            #expect(addB.status == 0, "\(addB.stdout) \(addB.stderr)")
            let result = try #require(jsonObject(addA.stdout), "\(addA.stdout)")
            #expect(result["cniVersion"] as? String == "1.1.0")
            let interfaces = try #require(result["interfaces"] as? [[String: Any]])
            #expect(interfaces.count == 2 && interfaces[1]["name"] as? String == "eth0" && interfaces[1]["sandbox"] as? String == a.path)
            let ip = try #require((result["ips"] as? [[String: Any]])?.first)
            #expect(ip["interface"] as? Int == 1 && ip["gateway"] as? String == "\(net.subnet).1")
            let addressA = try #require(firstAddress(addA.stdout)), addressB = try #require(firstAddress(addB.stdout))
            #expect(addressA.hasPrefix(net.subnet + ".") && addressA != addressB)
            #expect(a.exec("ip", "route").stdout.contains("default via \(net.subnet).1 dev eth0"))
            #expect(eventually(within: 10) { a.exec("busybox", "ping", "-c", "1", "-W", "1", addressB).status == 0 }, "no traffic between the two")

            // The record and the port, marked as netkeep's.
            let records = net.records
            #expect(records.count == 2 && records.allSatisfy { $0["status"] as? String == "ready" })
            let host = try #require(records.first { $0["container_id"] as? String == "ctr-a" }?["host_ifname"] as? String)
            #expect(interfaces[0]["name"] as? String == host)
            let marked = run(["ovs-vsctl", "get", "Interface", host, "external_ids:netkeep-cni"]).stdout
            #expect(marked.contains("\(net.name)/ctr-a/eth0"), "\(marked)")
            let listed = try net.netkeep.list().filter { $0["declared_by"] as? String == "cni" }
            #expect(Set(listed.compactMap { $0["id"] as? String }) == ["\(net.name)/ctr-a/eth0", "\(net.name)/ctr-b/eth0"])
            #expect(listed.allSatisfy { $0["network_id"] as? String == net.name && ($0["address"] as? String)?.hasPrefix(net.subnet) == true })
            #expect(net.netkeep("list").stdout.contains("cni ctr-a"))

            // ADD of an existing interface fails, and changes nothing.
            let again = net.call("ADD", container: "ctr-a", netns: a.path)
            #expect(again.status != 0 && jsonObject(again.stdout)?["code"] as? Int == 100, "\(again.stdout)")
            #expect(net.records.count == 2 && bridgePorts.contains(host))

            // CHECK against prevResult.
            let withPrev = net.config(extra: #","prevResult":\#(addA.stdout.trimmingCharacters(in: .whitespacesAndNewlines))"#)
            let check = net.call("CHECK", container: "ctr-a", netns: a.path, config: withPrev)
            #expect(check.status == 0, "\(check.stdout) \(check.stderr)")
            a.exec("ip", "link", "set", "eth0", "address", "02:11:22:33:44:55")
            let tampered = net.call("CHECK", container: "ctr-a", netns: a.path, config: withPrev)
            #expect(tampered.status != 0 && tampered.stdout.contains("MAC 02:11:22:33:44:55"), "\(tampered.stdout)")

            // DEL, twice: everything goes, host-local's address too.
            for _ in 0..<2 {
                let del = net.call("DEL", container: "ctr-a", netns: a.path, config: withPrev)
                #expect(del.status == 0, "\(del.stdout) \(del.stderr)")
            }
            #expect(!bridgePorts.contains(host) && !run(["ip", "-o", "link"]).stdout.contains(host))
            #expect(net.records.count == 1)
            #expect(!FileManager.default.fileExists(atPath: "\(net.ipamDirectory)/\(net.name)/\(addressA)"))

            // DEL after the namespace is gone (the runtime removed it first).
            let hostB = try #require(net.records.first?["host_ifname"] as? String)
            b.remove()
            let delB = net.call("DEL", container: "ctr-b", netns: b.path)
            #expect(delB.status == 0, "\(delB.stdout) \(delB.stderr)")
            #expect(net.records.isEmpty && !bridgePorts.contains(hostB))
        }

        /// GC takes what the runtime no longer lists, of that network only:
        /// another network's attachment and a port that is not netkeep's stay.
        @Test func gcCollectsOnlyThisNetworksStaleAttachments() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let x = CNINetwork(netkeep: netkeep), y = CNINetwork(netkeep: netkeep)
            let a = try TestNamespace(), b = try TestNamespace(), c = try TestNamespace()
            #expect(x.call("ADD", container: "keep", netns: a.path).status == 0)
            #expect(x.call("ADD", container: "stale", netns: b.path).status == 0)
            #expect(y.call("ADD", container: "other", netns: c.path).status == 0)
            let foreign = "nktfor\(UUID().uuidString.prefix(6).lowercased())"
            #expect(run(["ovs-vsctl", "add-port", Testbed.bridge, foreign, "--", "set", "Interface", foreign, "type=internal"]).status == 0)
            defer { run(["ovs-vsctl", "--if-exists", "del-port", Testbed.bridge, foreign]) }
            let stale = try #require(x.records.first { $0["container_id"] as? String == "stale" }?["host_ifname"] as? String)

            let gc = x.call("GC", config: x.config(extra: #","cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]"#))
            #expect(gc.status == 0, "\(gc.stdout) \(gc.stderr)")
            #expect(x.records.map { $0["container_id"] as? String } == ["keep"])
            #expect(y.records.count == 1 && bridgePorts.contains(foreign) && !bridgePorts.contains(stale))
            #expect(b.exec("ip", "link", "show", "eth0").status != 0, "the stale interface is still in its namespace")

            // libcni's older key, and an empty list: every attachment of y goes, none of x.
            let gcY = y.call("GC", config: y.config(extra: #","cni.dev/attachments":[]"#))
            #expect(gcY.status == 0 && y.records.isEmpty && x.records.count == 1, "\(gcY.stdout)")
        }

        /// STATUS and VERSION; a config naming a bridge that does not exist.
        @Test func statusVersionAndABadBridge() throws {
            try Testbed.check()
            let net = CNINetwork()
            #expect(net.call("STATUS").status == 0)
            let version = net.call("VERSION", config: #"{"cniVersion":"0.4.0"}"#)
            #expect(jsonObject(version.stdout)?["supportedVersions"] as? [String] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
            let nope = net.config().replacingOccurrences(of: "\"bridge\":\"\(Testbed.bridge)\"", with: "\"bridge\":\"nope\"")
            let status = net.call("STATUS", config: nope)
            #expect(status.status != 0 && jsonObject(status.stdout)?["code"] as? Int == 50, "\(status.stdout)")
            let ns = try TestNamespace()
            let before = bridgePorts
            let add = net.call("ADD", container: "ctr", netns: ns.path, config: nope)
            #expect(add.status != 0 && add.stdout.contains(#"bridge \"nope\" does not exist"#), "\(add.stdout)")
            #expect(net.records.isEmpty && bridgePorts == before && ns.exec("ip", "link", "show", "eth0").status != 0)
            // An old runtime's version gets an old result.
            let old = net.call("ADD", container: "ctr", netns: ns.path, config: net.config(version: "0.4.0"))
            #expect(old.status == 0, "\(old.stdout)")
            #expect((jsonObject(old.stdout)?["ips"] as? [[String: Any]])?.first?["version"] as? String == "4")
            #expect(net.call("DEL", container: "ctr", netns: ns.path, config: net.config(version: "0.4.0")).status == 0)
        }
    
        /// The daemon's repairs, through `netkeep reconcile`: a port deleted
        /// behind netkeep's back comes back; once the veth is gone (a reboot,
        /// the namespace deleted without DEL) the dead port row goes and the
        /// record waits for the runtime's DEL, which still succeeds.
        @Test func reconcileMendsPortsOfCNIAttachments() throws {
            try Testbed.check()
            let net = CNINetwork()
            let ns = try TestNamespace(), neighbour = try TestNamespace()
            let add = net.call("ADD", container: "mend", netns: ns.path)
            #expect(add.status == 0, "\(add.stdout)")
            #expect(net.call("ADD", container: "neighbour", netns: neighbour.path).status == 0)
            let target = try #require(firstAddress(add.stdout))
            let host = try #require(net.records.first { $0["container_id"] as? String == "mend" }?["host_ifname"] as? String)

            #expect(run(["ovs-vsctl", "del-port", Testbed.bridge, host]).status == 0)
            let repaired = net.netkeep("reconcile")
            #expect(repaired.stdout.contains("added port \(host) of CNI \(net.name)/mend/eth0"), "\(repaired.stdout) \(repaired.stderr)")
            #expect(bridgePorts.contains(host))
            #expect(eventually(within: 10) { neighbour.exec("busybox", "ping", "-c", "1", "-W", "1", target).status == 0 }, "no traffic after the repair")

            ns.remove()  // the veth goes with it; no DEL came
            #expect(eventually(within: 5) { !run(["ip", "-o", "link"]).stdout.contains(host) })
            let collected = net.netkeep("reconcile")
            #expect(collected.stdout.contains("removed dead port \(host) of CNI \(net.name)/mend/eth0"), "\(collected.stdout) \(collected.stderr)")
            #expect(!bridgePorts.contains(host) && net.records.count == 2)
            let del = net.call("DEL", container: "mend", netns: ns.path)
            #expect(del.status == 0 && net.records.count == 1, "\(del.stdout)")
        }
    
        /// netkeep killed (SIGKILL) in ADD once the interface is made: the
        /// runtime's next ADD of that interface takes the pieces down and makes
        /// it whole, with one address from IPAM, not two.
        @Test func anADDKilledHalfWayIsMadeWholeByTheNext() throws {
            try Testbed.check()
            let net = CNINetwork()
            let ns = try TestNamespace()
            let killed = run([Testbed.netkeepBinary], environment: [
                "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "crash", "CNI_NETNS": ns.path, "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni",
                "NETKEEP_STATE_DIR": net.netkeep.stateDirectory, "NETKEEP_FAULT": "cni.link-made",
            ], stdin: net.config())
            #expect(killed.status == SIGKILL, "the fault point was not reached: \(killed.status) \(killed.stdout)")
            #expect(net.records.first?["status"] as? String == "pending" && ns.exec("ip", "link", "show", "eth0").status == 0)
            let add = net.call("ADD", container: "crash", netns: ns.path)
            #expect(add.status == 0, "\(add.stdout) \(add.stderr)")
            #expect(net.records.count == 1 && net.records.first?["status"] as? String == "ready")
            let held = ((try? FileManager.default.contentsOfDirectory(atPath: "\(net.ipamDirectory)/\(net.name)")) ?? [])
                .filter { $0.hasPrefix(net.subnet) }
            #expect(held == [try #require(firstAddress(add.stdout))], "host-local holds \(held)")
            let host = try #require(net.records.first?["host_ifname"] as? String)
            #expect(bridgePorts.contains(host))
        }
}
}
