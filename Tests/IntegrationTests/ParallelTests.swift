import Foundation
import NetkeepState
import Testing

extension IntegrationSuite {
    /// DESIGN.md rule 7 on the real test bed: the state lock is held only to
    /// read and write records, so commands for different containers run at
    /// once; two for the same container and interface give one attachment.
    @Suite struct ParallelTests {
        /// While another netkeep holds container A (as a DHCP attach waiting
        /// for its server would), an attach of B goes through, and A's waits.
        /// The claim is held by the test itself, so nothing here depends on
        /// how long a DHCP server takes.
        @Test func anAttachIsNotHeldUpByWorkOnAnotherContainer() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer(), b = try TestContainer()
            let net = randomSubnet()
            defer { netkeep("detach", a.name); netkeep("detach", b.name) }
            try FileManager.default.createDirectory(atPath: netkeep.stateDirectory, withIntermediateDirectories: true)
            let holder = try ContainerClaims(directory: netkeep.stateDirectory)
            #expect(try holder.tryClaim(a.id))

            let waiting = try BackgroundProcess([Testbed.netkeepBinary, "attach", a.name, "--bridge", Testbed.bridge, "--ip", "\(net).10/24",
                                                 "--state-dir", netkeep.stateDirectory])
            #expect(eventually { waiting.log.contains("another netkeep is changing it") }, "attach of A did not wait for its claim: \(waiting.log)")
            let r = netkeep("attach", b.name, "--bridge", Testbed.bridge, "--ip", "\(net).11/24")
            #expect(r.status == 0, "attach of B was held up: \(r.stderr)")
            #expect(waiting.exitStatus == nil, "attach of A finished while its container was claimed")

            holder.release()
            #expect(waiting.wait(within: 30) == 0, "\(waiting.log)")
            #expect(eventually { b.exec("ping", "-c", "1", "-W", "1", "\(net).10").status == 0 }, "A and B do not reach each other")
            #expect(try netkeep.list().filter { $0["status"] as? String == "ready" }.count == 2)
        }

        @Test func attachesOfDifferentContainersAllLand() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let containers = try (0..<6).map { _ in try TestContainer() }
            let net = randomSubnet()
            defer { for c in containers { netkeep("detach", c.name) } }
            let statuses = Statuses()
            DispatchQueue.concurrentPerform(iterations: containers.count) { i in
                statuses.append(netkeep("attach", containers[i].name, "--bridge", Testbed.bridge, "--ip", "\(net).\(20 + i)/24").status)
            }
            #expect(statuses.values == Array(repeating: 0, count: containers.count))
            let records = try netkeep.list()
            #expect(records.count == containers.count)
            #expect(records.allSatisfy { $0["status"] as? String == "ready" })
            #expect(eventually { containers[0].exec("ping", "-c", "1", "-W", "1", "\(net).25").status == 0 })
        }

        /// Two attaches of the same container and interface at once, static
        /// and DHCP: exactly one wins, the other says why, and one record,
        /// one port and one interface remain.
        @Test(arguments: [false, true])
        func theSameInterfaceTwiceAtOnceGivesOneAttachment(dhcp: Bool) throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            let net = randomSubnet()
            defer { netkeep("detach", c.name) }
            let results = Results()
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                let address = dhcp ? ["--dhcp"] : ["--ip", "\(net).\(30 + i)/24"]
                results.append(netkeep.invoke(["attach", c.name, "--bridge", Testbed.bridge] + address))
            }
            let all = results.values
            #expect(all.filter { $0.status == 0 }.count == 1, "\(all.map { "\($0.status): \($0.stderr)" })")
            let loser = all.first { $0.status != 0 }
            #expect(loser?.status == 2, "\(loser?.stderr ?? "")")
            #expect(loser?.stderr.contains("already has eth1 attached") == true, "\(loser?.stderr ?? "")")
            let records = try netkeep.list()
            #expect(records.count == 1 && records.first?["status"] as? String == "ready", "\(records)")
            let host = try #require(records.first?["host_ifname"] as? String)
            let ports = run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines.filter { $0.hasPrefix("nk") && $0 != "nkdhcp" && $0 == host }
            #expect(ports == [host])
            let inside = c.exec("ip", "-o", "link", "show").stdout.split(separator: "\n").filter { $0.contains(" eth1@") }
            #expect(inside.count == 1, "\(inside)")
        }
    }
}

final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [CommandResult] = []
    func append(_ v: CommandResult) { lock.lock(); items.append(v); lock.unlock() }
    var values: [CommandResult] { lock.lock(); defer { lock.unlock() }; return items }
}
