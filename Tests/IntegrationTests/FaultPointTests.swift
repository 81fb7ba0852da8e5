import Foundation
import Testing

/// A kill -9 at each named point of attach, detach and reconcile; the next
/// `netkeep reconcile` must leave no attachment lost and nothing untracked.
extension IntegrationSuite {
    @Suite struct FaultPointTests {
        static let killed: Int32 = 9

        /// No port, veth or netns link of these containers outside the state file.
        func expectNothingUntracked(_ netkeep: Netkeep, containers: [TestContainer]) throws {
            let tracked = Set(try netkeep.list().compactMap { $0["host_ifname"] as? String })
            for c in containers {
                let ports = run(["ovs-vsctl", "--data=bare", "--no-heading", "--columns=name", "find", "Interface",
                                 "external_ids:container_id=\(c.id)"]).lines
                for port in ports { #expect(tracked.contains(port), "untracked port \(port)") }
            }
            let veths = run(["ip", "-o", "link", "show", "type", "veth"]).lines.compactMap { line -> String? in
                let name = line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces).split(separator: "@")[0]
                return String(name)
            }
            for c in containers {
                for ifname in ["eth1"] {
                    let host = "nk" + String(fnv1a("\(c.id)/\(ifname)").prefix(12))
                    if veths.contains(host) { #expect(tracked.contains(host), "untracked veth \(host)") }
                }
            }
        }

        // The attach's own pass is a reconcile pass: its fault points are the pass's.
        @Test(arguments: ["attach.pending-written", "reconcile.links-repaired", "reconcile.ports-added"])
        func attachKilled(_ point: String) throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer(), b = try TestContainer()
            let net = randomSubnet()
            defer { netkeep("detach", a.name); netkeep("detach", b.name) }
            #expect(netkeep("attach", b.name, "--bridge", Testbed.bridge, "--ip", "\(net).11/24").status == 0)
            let r = netkeep("attach", a.name, "--bridge", Testbed.bridge, "--ip", "\(net).10/24", environment: ["NETKEEP_FAULT": point])
            #expect(r.status == Self.killed, "\(point): exit \(r.status) \(r.stderr)")
            #expect(try netkeep.list().contains { $0["container_name"] as? String == a.name && $0["status"] as? String == "pending" })
            let repair = netkeep("reconcile")
            #expect(repair.status == 0, "\(point): \(repair.stdout) \(repair.stderr)")
            #expect(try netkeep.list().filter { $0["status"] as? String == "ready" }.count == 2)
            #expect(eventually { b.exec("ping", "-c", "1", "-W", "1", "\(net).10").status == 0 }, "\(point): attachment lost")
            try expectNothingUntracked(netkeep, containers: [a, b])
        }

        @Test(arguments: ["detach.marked", "reconcile.ports-deleted", "reconcile.links-repaired"])
        func detachKilled(_ point: String) throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer()
            #expect(netkeep("attach", a.name, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).10/24").status == 0)
            let host = try #require(try netkeep.list().first?["host_ifname"] as? String)
            let r = netkeep("detach", a.name, environment: ["NETKEEP_FAULT": point])
            #expect(r.status == Self.killed, "\(point): exit \(r.status) \(r.stderr)")
            let repair = netkeep("reconcile")
            #expect(repair.status == 0, "\(point): \(repair.stdout) \(repair.stderr)")
            #expect(try netkeep.list().isEmpty, "\(point): the detach was not finished")
            #expect(!run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines.contains(host))
            #expect(run(["ip", "link", "show", host]).status != 0)
            #expect(!FileManager.default.fileExists(atPath: "/var/run/netns/\(a.name)"))
        }

        @Test(arguments: ["reconcile.intent-written", "reconcile.ports-deleted", "reconcile.links-repaired", "reconcile.ports-added"])
        func reconcileKilled(_ point: String) throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer(), b = try TestContainer()
            let net = randomSubnet()
            defer { netkeep("detach", a.name); netkeep("detach", b.name) }
            #expect(netkeep("attach", a.name, "--bridge", Testbed.bridge, "--ip", "\(net).10/24").status == 0)
            #expect(netkeep("attach", b.name, "--bridge", Testbed.bridge, "--ip", "\(net).11/24").status == 0)
            #expect(run(["docker", "restart", "-t", "0", a.name]).status == 0)
            let r = netkeep("reconcile", environment: ["NETKEEP_FAULT": point])
            #expect(r.status == Self.killed, "\(point): exit \(r.status) \(r.stdout) \(r.stderr)")
            let repair = netkeep("reconcile")
            #expect(repair.status == 0, "\(point): \(repair.stdout) \(repair.stderr)")
            #expect(eventually { b.exec("ping", "-c", "1", "-W", "1", "\(net).10").status == 0 }, "\(point): no traffic after the repair")
            #expect(try netkeep.list().allSatisfy { $0["status"] as? String == "ready" })
            try expectNothingUntracked(netkeep, containers: [a, b])
        }
    }
}

func fnv1a(_ text: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
    }
    return String(format: "%016llx", hash)
}
