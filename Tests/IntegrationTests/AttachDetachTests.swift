import Foundation
import Testing

extension IntegrationSuite {
    /// `netkeep attach/detach/list` end to end on the real test bed: real
    /// containers, real OVS, real veths and namespaces.
    @Suite struct AttachDetachTests {
        @Test func twoContainersPingEachOtherThroughTheBridge() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer(), b = try TestContainer()
            let net = randomSubnet()
            let r1 = netkeep("attach", a.name, "--bridge", Testbed.bridge, "--ip", "\(net).10/24", "--gateway", "\(net).1", "--mac", "02:aa:00:00:00:10", "--mtu", "1400", "--vlan", "42")
            #expect(r1.status == 0, "\(r1.stderr)")
            let r2 = netkeep("attach", b.name, "--bridge", Testbed.bridge, "--ifname", "net0", "--ip", "\(net).11/24", "--vlan", "42")
            #expect(r2.status == 0, "\(r2.stderr)")
            defer { netkeep("detach", a.name); netkeep("detach", b.name) }

            #expect(eventually { a.exec("ping", "-c", "1", "-W", "1", "\(net).11").status == 0 }, "a cannot reach b")
            #expect(b.exec("ping", "-c", "1", "-W", "1", "\(net).10").status == 0, "b cannot reach a")

            // Inside: name, MAC, MTU, address, default route.
            let link = a.exec("ip", "-o", "link", "show", "eth1").stdout
            #expect(link.contains("mtu 1400"))
            #expect(link.contains("02:aa:00:00:00:10"))
            #expect(a.exec("ip", "-o", "addr", "show", "eth1").stdout.contains("\(net).10/24"))
            #expect(a.exec("ip", "route").stdout.contains("default via \(net).1 dev eth1"))
            #expect(b.exec("ip", "-o", "addr", "show", "net0").stdout.contains("\(net).11/24"))

            // The netns link makes `ip netns exec <name>` work, and offload is off on both ends.
            let entries = try netkeep.list()
            let host = try #require(entries.first { $0["container_name"] as? String == a.name }?["host_ifname"] as? String)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/var/run/netns/\(a.name)") == "/proc/\(a.pid)/ns/net")
            #expect(run(["ethtool", "-k", host]).stdout.contains("tx-checksumming: off"))
            #expect(run(["ip", "netns", "exec", a.name, "ethtool", "-k", "eth1"]).stdout.contains("tx-checksumming: off"))
        }

        @Test func ovsRowsCarryTheSpecifiedIdsAndTag() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            let r = netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).5/24", "--vlan", "7")
            #expect(r.status == 0, "\(r.stderr)")
            defer { netkeep("detach", c.name) }
            let entry = try #require(try netkeep.list().first)
            let host = try #require(entry["host_ifname"] as? String)
            #expect(host.count <= 15 && host.hasPrefix("nk"))
            #expect(entry["container_id"] as? String == c.id)
            #expect(entry["mode"] as? String == "static")
            #expect(entry["status"] as? String == "ready")
            #expect(entry["vlan"] as? Int == 7)
            #expect(entry.keys.contains("gateway"))

            #expect(run(["ovs-vsctl", "port-to-br", host]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == Testbed.bridge)
            #expect(run(["ovs-vsctl", "get", "Port", host, "tag"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "7")
            // ovs-vsctl quotes values that start with a digit; compare without quotes.
            let ids = run(["ovs-vsctl", "get", "Interface", host, "external_ids"]).stdout.replacingOccurrences(of: "\"", with: "")
            #expect(ids.contains("container_id=\(c.id),"))
            #expect(ids.contains("container_iface=eth1"))
            let id = try #require(entry["id"] as? String, "\(entry)")
            #expect(ids.contains("netkeep-attachment=\(id)}"), "\(ids)")
            // The same lookup ovs-docker does finds the port.
            let found = run(["ovs-vsctl", "--data=bare", "--no-heading", "--columns=name", "find", "interface",
                             "external_ids:container_id=\(c.id)", "external_ids:container_iface=eth1"])
            #expect(found.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == host)
            #expect(run(["ovs-vsctl", "get", "Interface", host, "ofport"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) != "-1")
        }

        @Test func detachLeavesNoPortVethLinkOrRecord() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).5/24").status == 0)
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ifname", "eth2", "--ip", "\(randomSubnet()).5/24").status == 0)
            let hosts = try netkeep.list().compactMap { $0["host_ifname"] as? String }
            #expect(hosts.count == 2)

            let one = netkeep("detach", c.name, "--ifname", "eth2")
            #expect(one.status == 0, "\(one.stderr)")
            #expect(try netkeep.list().count == 1)
            #expect(FileManager.default.fileExists(atPath: "/var/run/netns/\(c.name)"), "the link stays while eth1 is attached")

            let all = netkeep("detach", c.name)
            #expect(all.status == 0, "\(all.stderr)")
            try expectNothingLeft(hosts: hosts, container: c, netkeep: netkeep)
            #expect(c.exec("ip", "link", "show", "eth1").status != 0)
        }

        @Test func detachWorksWhenTheContainerIsGone() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).5/24").status == 0)
            let hosts = try netkeep.list().compactMap { $0["host_ifname"] as? String }
            c.remove()
            let r = netkeep("detach", c.name)
            #expect(r.status == 0, "\(r.stderr)")
            try expectNothingLeft(hosts: hosts, container: c, netkeep: netkeep)
        }

        @Test func detachWorksWhenHalfIsAlreadyMissing() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).5/24").status == 0)
            let hosts = try netkeep.list().compactMap { $0["host_ifname"] as? String }
            // ovs-docker removes the port and the veth it finds by external_ids.
            let del = run(["ovs-docker", "del-port", Testbed.bridge, "eth1", c.id])
            #expect(del.status == 0, "\(del.stderr)")
            #expect(run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines.contains(hosts[0]) == false)
            let r = netkeep("detach", c.id)
            #expect(r.status == 0, "\(r.stderr)")
            try expectNothingLeft(hosts: hosts, container: c, netkeep: netkeep)
        }

        @Test func concurrentAttachesAreSerialisedByTheLock() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let containers = try (0..<4).map { _ in try TestContainer() }
            let net = randomSubnet()
            let group = DispatchGroup()
            let statuses = Statuses()
            for (i, c) in containers.enumerated() {
                DispatchQueue.global().async(group: group) {
                    let r = netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(net).\(20 + i)/24")
                    statuses.append(r.status)
                }
            }
            group.wait()
            defer { for c in containers { netkeep("detach", c.name) } }
            #expect(statuses.values == [0, 0, 0, 0])
            #expect(try netkeep.list().count == 4)
        }

        func expectNothingLeft(hosts: [String], container: TestContainer, netkeep: Netkeep) throws {
            let ports = run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines
            for host in hosts {
                #expect(!ports.contains(host), "port \(host) is left")
                #expect(run(["ip", "link", "show", host]).status != 0, "veth \(host) is left")
                #expect(run(["ovs-vsctl", "--columns=name", "find", "Interface", "name=\(host)"]).stdout.isEmpty, "interface row \(host) is left")
            }
            #expect(!FileManager.default.fileExists(atPath: "/var/run/netns/\(container.name)") &&
                    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/var/run/netns/\(container.name)")) == nil, "netns link is left")
            #expect(try netkeep.list().isEmpty, "state entry is left")
        }
    }
}

final class Statuses: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Int32] = []
    func append(_ v: Int32) { lock.lock(); items.append(v); lock.unlock() }
    var values: [Int32] { lock.lock(); defer { lock.unlock() }; return items }
}
