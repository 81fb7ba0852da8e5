import NetkeepCore
import PropertyBased
import Testing

/// Issue 28: no plan touches the pieces of a record whose claim another
/// caller holds (a command, a plugin request, a CNI call that is making,
/// changing or removing it), whatever else the world looks like; and a
/// pending record whose claim is free is a dead caller's, never kept for ever.
@Suite struct ClaimPropertyTests {
    /// Which of the world's records are busy: bit i of `mask` for the i-th.
    static func busy<T>(_ items: [T], mask: Int) -> [T] { items.enumerated().filter { mask >> ($0.offset % 16) & 1 == 1 }.map(\.element) }

    @Test func theContainerPlannerLeavesWhatAnotherCallerHolds() async {
        await propertyCheck(count: 2000, input: PlanPropertyTests.scripts, Gen.int(in: 0...65535)) { script, mask in
            let world = World(script: script)
            let busy = Set(Self.busy(Array(Set(world.state.attachments.map(\.containerID))).sorted(), mask: mask))
            var observed = world.observed
            observed.busyContainers = busy
            let held = world.state.attachments.filter { busy.contains($0.containerID) }
            for action in plan(desired: world.state, observed: observed, retention: world.retention).actions {
                if let a = action.attachment { #expect(!busy.contains(a.containerID), "\(action.summary) of a held container") }
                switch action {
                case .removePort(let name, _, _): #expect(!held.contains { $0.hostIfname == name }, "\(action.summary) of a held record's port")
                case .removeNetnsLink(let name, _, _): #expect(!held.contains { $0.netnsLink == name }, "\(action.summary) of a held record's link")
                default: break
                }
            }
        }
    }

    /// Endpoints in every status, seen or not by Docker and the host.
    static let endpointWorlds = Gen.int(in: 0...4095).array(of: 1...12)

    @Test func theEndpointSweepLeavesWhatAnotherCallerHoldsAndCollectsADeadCallersPendingRecord() async throws {
        let network = try DockerNetwork.parse(id: String(repeating: "a", count: 64), options: ["bridge": "br0"], pool: "10.9.0.0/16",
                                              gateway: "10.9.0.1/16", now: Timestamp(secondsSinceEpoch: 0))
        await propertyCheck(count: 2000, input: Self.endpointWorlds, Gen.int(in: 0...65535)) { codes, mask in
            var state = State()
            state.networks = [network]
            var links = Set<String>(), ports = Set<String>(), live = Set<String>(), inherited = Set<String>()
            for (i, code) in codes.enumerated() {
                let id = String(format: "%064x", i + 1)
                var e = Endpoint(id: id, network: network, mac: Endpoint.mac(for: IPv4Address(10, 9, 1, UInt8(i + 2))), macFromDocker: false,
                                 address: try? IPv4CIDR(parsing: "10.9.1.\(i + 2)/16"), createdAt: Timestamp(secondsSinceEpoch: 0))
                e.status = EndpointStatus.allCases[code % 4]
                state.endpoints.append(e)
                if code & 4 != 0 { links.insert(e.hostIfname) }
                if code & 8 != 0 { links.insert(e.peerIfname) }
                if code & 16 != 0 { ports.insert(e.hostIfname) }
                if code & 32 != 0 { live.insert(e.id) }
                if code & 64 != 0 { inherited.insert(e.id) }
            }
            let busy = Set(Self.busy(state.endpoints.map(\.id), mask: mask))
            var observed = EndpointSweep.Observed(hostLinks: links, networks: [network.id: codes.count % 5 == 0 ? .missing : .endpoints(live)],
                                                  sameEngine: codes.count % 7 != 0, inherited: inherited, ports: ports)
            observed.busy = busy
            observed.unjoinedBefore = Set(state.endpoints.map(\.id))
            let actions = EndpointSweep.plan(state, observed)
            for action in actions {
                switch action {
                case .removeEndpoint(let e, _), .addPort(let e, _): #expect(!busy.contains(e.id), "\(action) of a held endpoint")
                case .removeNetwork(let n, _):
                    #expect(!state.endpoints.contains { $0.networkID == n.id && busy.contains($0.id) }, "the network of a held endpoint removed")
                }
            }
            for e in state.endpoints where e.status == .pending && !busy.contains(e.id) {
                #expect(actions.contains(.removeEndpoint(e, reason: "create-endpoint-unanswered")), "a dead caller's pending \(e.shortID) kept")
            }
        }
    }
}
