import NetkeepCore
@testable import NetkeepService
import Testing

/// Random worlds and random sequences of commands and Docker events; every
/// command is also run with a crash after each of its changes, and one host
/// pass afterwards must leave every attachment whole and nothing leaked or lost.
@Suite struct CrashPropertyTests {
    enum Step: CustomStringConvertible {
        case attach(container: Int, ifname: String, bridge: String, dhcp: Bool, vlan: Int?)
        case detach(container: Int, ifname: String?)
        case reconcileHost
        case reconcileContainer(Int)
        case renew
        case restart(Int), stop(Int), remove(Int), run

        var description: String {
            switch self {
            case .attach(let c, let i, let b, let d, let v): return "attach c\(c) \(i) \(b)\(d ? " dhcp" : "")\(v.map { " vlan \($0)" } ?? "")"
            case .detach(let c, let i): return "detach c\(c)\(i.map { " \($0)" } ?? "")"
            case .reconcileHost: return "reconcile"
            case .reconcileContainer(let c): return "reconcile c\(c)"
            case .renew: return "dhcp-renew --all"
            case .restart(let c): return "docker restart c\(c)"
            case .stop(let c): return "docker stop c\(c)"
            case .remove(let c): return "docker rm c\(c)"
            case .run: return "docker run"
            }
        }

        var isCommand: Bool {
            switch self {
            case .restart, .stop, .remove, .run: return false
            default: return true
            }
        }
    }

    static func steps(_ rng: inout SeededGenerator, containers: Int) -> [Step] {
        (0..<Int.random(in: 6...9, using: &rng)).map { _ in
            let c = Int.random(in: 0..<containers + 1, using: &rng)
            switch Int.random(in: 0..<12, using: &rng) {
            case 0...3:
                return .attach(container: c, ifname: ["eth1", "eth2"].randomElement(using: &rng)!, bridge: ["br0", "br1"].randomElement(using: &rng)!,
                               dhcp: Bool.random(using: &rng), vlan: Bool.random(using: &rng) ? Int.random(in: 1...9, using: &rng) : nil)
            case 4: return .detach(container: c, ifname: Bool.random(using: &rng) ? "eth1" : nil)
            case 5: return .reconcileHost
            case 6: return .reconcileContainer(c)
            case 7: return .renew
            case 8: return .restart(c)
            case 9: return .stop(c)
            case 10: return .remove(c)
            default: return .run
            }
        }
    }

    /// Runs one step; commands may fail (a bad request, the injected crash).
    func perform(_ step: Step, on bed: Bed, names: inout [String], macs: inout UInt8) {
        func id(_ c: Int) -> String? { c < names.count ? bed.host.snapshot.containers.values.first { $0.name == names[c] }?.id : nil }
        switch step {
        case .attach(let c, let ifname, let bridge, let dhcp, let vlan):
            guard c < names.count else { return }
            macs &+= 1
            let octet = String(macs, radix: 16)
            _ = try? bed.attach(names[c], bridge: bridge, ifname: ifname, ip: dhcp ? nil : "10.1.3.\(macs)/24", gateway: nil, dhcp: dhcp,
                                mac: "02:00:00:00:00:\(octet.count == 1 ? "0" + octet : octet)", vlan: vlan)
        case .detach(let c, let ifname):
            guard c < names.count else { return }
            _ = try? bed.detach(names[c], ifname: ifname)
        case .reconcileHost: _ = try? bed.reconcile()
        case .reconcileContainer(let c): if let id = id(c) { _ = try? bed.reconcile(.container(id)) }
        case .renew: _ = try? RenewLeases(environment: bed.environment, logger: bed.logger).run(all: true)
        case .restart(let c): if let id = id(c) { bed.host.restart(id) }
        case .stop(let c): if let id = id(c) { bed.host.stop(id) }
        case .remove(let c): if let id = id(c) { bed.host.remove(id) }
        case .run:
            names.append("c\(names.count)")
            bed.host.run(name: names.last!)
        }
    }

    @Test(arguments: 1...36)
    func aCrashAfterAnyChangeIsFinishedByTheNextPass(seed: Int) throws {
        var rng = SeededGenerator(seed: UInt64(seed))
        let bed = Bed()
        // Half the worlds keep removed containers' MACs and leases for a recreate.
        if seed % 2 == 1 { bed.environment.retentionSeconds = 86400 }
        var names = (0..<Int.random(in: 2...3, using: &rng)).map { "c\($0)" }
        for name in names { bed.host.run(name: name) }
        var macs: UInt8 = 0
        let steps = Self.steps(&rng, containers: names.count)
        for (n, step) in steps.enumerated() {
            guard step.isCommand else {
                perform(step, on: bed, names: &names, macs: &macs)
                continue
            }
            let world = bed.host.snapshot, file = bed.stateBytes, before = try bed.records()
            var namesAfter = names, macsAfter = macs
            bed.host.arm(crashAfter: nil)
            perform(step, on: bed, names: &namesAfter, macs: &macsAfter)
            let changes = bed.host.changes
            let cleanWorld = bed.host.snapshot, cleanFile = bed.stateBytes
            let made = Set(try bed.records().map(\.id)).subtracting(before.map(\.id))

            for k in 0...changes {
                bed.host.snapshot = world
                bed.stateBytes = file
                var names2 = names, macs2 = macs
                bed.host.arm(crashAfter: k)
                perform(step, on: bed, names: &names2, macs: &macs2)
                bed.host.arm(crashAfter: nil)
                let context = "seed \(seed), step \(n) (\(step)), crash after change \(k) of \(changes); steps \(steps)"
                let report = try bed.reconcile()
                #expect(report.failed.isEmpty && report.remaining.isEmpty,
                        "\(context): \(report.failed.map { "\($0.action.summary): \($0.error ?? "")" }) remaining \(report.remaining.map(\.summary))")
                let problems = try bed.problems()
                #expect(problems == [], "\(context)")
                // Nothing lost: what was recorded stays unless detached or its container is gone.
                let after = try bed.records()
                let world = bed.host.snapshot
                for a in before where world.containers[a.containerID] != nil && !after.contains(where: { $0.id == a.id }) {
                    let detached: Bool
                    if case .detach(let c, let ifname) = step { detached = c < names.count && a.containerName == names[c] && (ifname == nil || ifname == a.ifname) } else { detached = false }
                    #expect(detached, "\(context): \(a.containerName) \(a.ifname) lost")
                }
                for a in after where !before.contains(where: { $0.id == a.id }) {
                    #expect(made.contains(a.id), "\(context): \(a.containerName) \(a.ifname) appeared from nowhere")
                }
                if !problems.isEmpty || !report.failed.isEmpty { return }
            }
            bed.host.snapshot = cleanWorld
            bed.stateBytes = cleanFile
            names = namesAfter
            macs = macsAfter
        }
    }
}
