#if canImport(Glibc)
import Glibc
#endif
import DockerEngine
import Foundation
import NetkeepCore
import NetkeepState
import Netlink
import OVSDB
import Testing

/// Throw-away "host" and "container" namespaces, so the adapters are tested
/// for real without touching the machine's own interfaces.
final class NamespacePair {
    let host: String, container: String
    init() throws {
        let tag = UUID().uuidString.prefix(6).lowercased()
        host = "nktest-h-\(tag)"
        container = "nktest-c-\(tag)"
        for ns in [host, container] {
            let r = run(["ip", "netns", "add", ns])
            guard r.status == 0 else { throw Testbed.TestbedMissing("ip netns add: \(r.stderr)") }
        }
    }
    deinit { for ns in [host, container] { run(["ip", "netns", "del", ns]) } }
}

extension IntegrationSuite {
    @Suite struct NetlinkAdapterTests {
        @Test func vethAddressRouteAndEthtoolAcrossNamespaces() throws {
            try Testbed.check()
            let pair = try NamespacePair()
            let hostNS = try NetworkNamespace(path: "/var/run/netns/\(pair.host)")
            let containerNS = try NetworkNamespace(path: "/var/run/netns/\(pair.container)")
            #expect(hostNS.inode != containerNS.inode)
            let host = try NetlinkSession.open(in: hostNS)
            let inside = try NetlinkSession.open(in: containerNS)
            let mac = try MACAddress(parsing: "02:12:34:56:78:9a")

            try host.createVeth(name: "nkv0", mtu: 1450, peerName: "eth1", peerMAC: mac, peerMTU: 1450, peerNamespace: containerNS)
            #expect(throws: NetlinkError.self) {
                try host.createVeth(name: "nkv0", mtu: 1450, peerName: "eth9", peerMAC: mac, peerMTU: 1450, peerNamespace: containerNS)
            }
            let hostLink = try #require(try host.link(named: "nkv0"))
            #expect(hostLink.kind == "veth")
            #expect(hostLink.mtu == 1450)
            let peer = try #require(try inside.link(named: "eth1"))
            #expect(peer.mac == mac)
            // What `ip` sees agrees with what the session read.
            #expect(run(["ip", "-n", pair.container, "-o", "link", "show", "eth1"]).stdout.contains("02:12:34:56:78:9a"))
            #expect(try host.link(named: "eth1") == nil)

            try host.setUp(index: hostLink.index, name: "nkv0")
            try inside.setUp(index: peer.index, name: "eth1")
            let cidr = try IPv4CIDR(parsing: "192.168.77.5/24")
            try inside.addAddress(cidr, index: peer.index, name: "eth1")
            try inside.addDefaultRoute(via: try IPv4Address(parsing: "192.168.77.1"), index: peer.index, name: "eth1")
            #expect(try inside.addresses().contains(InterfaceAddress(index: peer.index, cidr: cidr)))
            #expect(try inside.routes().contains { $0.isDefault && $0.gateway?.description == "192.168.77.1" && $0.outputIndex == peer.index })
            #expect(run(["ip", "-n", pair.container, "route"]).stdout.contains("default via 192.168.77.1 dev eth1"))
            #expect(try inside.link(named: "eth1")?.isUp == true)

            try Ethtool.setTxChecksum(false, interface: "eth1", in: containerNS)
            #expect(try Ethtool.txChecksum(interface: "eth1", in: containerNS) == false)
            #expect(run(["ip", "netns", "exec", pair.container, "ethtool", "-k", "eth1"]).stdout.contains("tx-checksumming: off"))

            try inside.configure(index: peer.index, name: "eth1", mac: try MACAddress(parsing: "02:00:00:00:00:77"), mtu: 1300)
            let changed = try #require(try inside.link(named: "eth1"))
            #expect(changed.mtu == 1300 && changed.mac?.description == "02:00:00:00:00:77")

            // Deleting one end removes both; deleting again reports it was gone.
            #expect(try host.deleteLink(named: "nkv0"))
            #expect(try inside.link(named: "eth1") == nil)
            #expect(try host.deleteLink(named: "nkv0") == false)
        }

        @Test func sessionsStayInTheirNamespaceAndTheCallerIsNotMoved() throws {
            try Testbed.check()
            let pair = try NamespacePair()
            let before = "/proc/thread-self/ns/net".resolvingSymlinks
            let ns = try NetworkNamespace(path: "/var/run/netns/\(pair.container)")
            let inside = try NetlinkSession.open(in: ns)
            // A fresh namespace holds only lo.
            #expect(try inside.links().map(\.name) == ["lo"])
            #expect(try NetlinkSession.open().links().count > 1)
            #expect("/proc/thread-self/ns/net".resolvingSymlinks == before)
        }
    }
}

extension String {
    var resolvingSymlinks: String { (try? FileManager.default.destinationOfSymbolicLink(atPath: self)) ?? self }
}

extension IntegrationSuite {
    @Suite struct DockerAndOVSDBAdapterTests {
        @Test func dockerClientInspectsListsAndReportsMissingContainers() throws {
            try Testbed.check()
            let c = try TestContainer()
            let docker = DockerClient()
            let inspected = try docker.inspect(c.name)
            #expect(inspected.id == c.id)
            #expect(inspected.name == c.name)
            #expect(inspected.running && inspected.pid == c.pid)
            #expect(try docker.inspect(String(c.id.prefix(12))).id == c.id)
            #expect(try docker.list().contains { $0.id == c.id && $0.running })
            do {
                _ = try docker.inspect("nkt-definitely-missing")
                Issue.record("inspect of a missing container succeeded")
            } catch {
                #expect(error == .noSuchContainer("nkt-definitely-missing"))
            }
        }

        @Test func vswitchSnapshotSeesTheTestbedBridge() throws {
            try Testbed.check()
            let client = try VSwitchClient()
            defer { client.close() }
            let snapshot = try client.snapshot()
            let bridge = try #require(snapshot.bridge(named: Testbed.bridge))
            #expect(bridge.isUserspace)
            #expect(snapshot.port(named: "nkdhcp").map { snapshot.bridge(holding: $0)?.name } == Testbed.bridge)
        }
    }
}

extension IntegrationSuite {
    @Suite struct FullDiskTests {
        @Test func saveOnAFullDiskFailsAndKeepsThePreviousFile() throws {
            try Testbed.check()
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nkfull-\(UUID().uuidString.prefix(6))").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            #expect(run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir]).status == 0)
            defer { run(["umount", dir]); try? FileManager.default.removeItem(atPath: dir) }
            let store = StateStore(directory: dir)
            let small = State(attachments: [])
            try store.save(small)
            let before = try Data(contentsOf: URL(fileURLWithPath: store.statePath))
            // Fill the file system, then try to write a much larger state.
            run(["dd", "if=/dev/zero", "of=\(dir)/filler", "bs=4k", "count=64"])
            var big = State()
            for i in 0..<300 {
                let id = String(format: "%064x", i + 1)
                big.attachments.append(NetkeepCore.Attachment(
                    containerID: id, containerName: "c\(i)", ifname: "eth1", bridge: "br0",
                    mac: try MACAddress(parsing: "02:00:00:00:\(String(format: "%02x:%02x", i / 256, i % 256))"), mtu: 1500, vlan: nil,
                    mode: .static, address: try IPv4CIDR(parsing: "10.0.\(i / 250).\(i % 250 + 1)/16"), gateway: nil, netnsLink: nil,
                    status: .ready, createdAt: Timestamp(secondsSinceEpoch: 0)))
            }
            do {
                try store.save(big)
                Issue.record("save on a full disk succeeded")
            } catch {
                guard case .io(let e) = error else { Issue.record("\(error)"); return }
                #expect(e.errno == ENOSPC)
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: store.statePath)) == before)
            #expect(try store.load() == small)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["filler", "state.json"])
        }
    }
}
