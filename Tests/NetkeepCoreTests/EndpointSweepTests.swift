import NetkeepCore
import Testing

@Suite struct EndpointSweepTests {
    static let now = Timestamp(secondsSinceEpoch: 1_800_000_000)
    let network: DockerNetwork
    var state = State()

    init() throws {
        network = try DockerNetwork.parse(id: String(repeating: "a", count: 64), options: ["bridge": "br0"], pool: "10.9.9.0/24",
                                          gateway: "10.9.9.1/24", now: Self.now)
        state.networks = [network]
    }

    func endpoint(_ n: Int, _ status: EndpointStatus, createdAt: Timestamp = now) throws -> Endpoint {
        var e = Endpoint(id: String(repeating: String(n), count: 64), network: network, mac: Endpoint.mac(for: IPv4Address(10, 9, 9, UInt8(n))),
                         macFromDocker: false, address: try IPv4CIDR(parsing: "10.9.9.\(n)/24"), createdAt: createdAt)
        e.status = status
        return e
    }

    func observed(links: Set<String>?, live: Set<String>? = [], sameEngine: Bool = true, inherited: Set<String>? = nil,
                  busy: Set<String> = []) -> EndpointSweep.Observed {
        var o = EndpointSweep.Observed(hostLinks: links, networks: live.map { [network.id: .endpoints($0)] } ?? [:], sameEngine: sameEngine,
                                       inherited: inherited)
        o.busy = busy
        return o
    }

    @Test mutating func anEndpointIsCollectedOnlyWhenItsVethIsGoneAndDockerHasItNot() throws {
        let e = try endpoint(5, .joined)
        state.endpoints = [e]
        #expect(EndpointSweep.plan(state, observed(links: [])) == [.removeEndpoint(e, reason: "sandbox-gone")])
        // Either half alone is no evidence.
        #expect(EndpointSweep.plan(state, observed(links: [e.hostIfname])).isEmpty)
        #expect(EndpointSweep.plan(state, observed(links: [], live: [e.id])).isEmpty)
        // Nothing known about links, Docker's view, or another engine: nothing collected.
        #expect(EndpointSweep.plan(state, observed(links: nil)).isEmpty)
        #expect(EndpointSweep.plan(state, observed(links: [], live: nil)).isEmpty)
        #expect(EndpointSweep.plan(state, observed(links: [], sameEngine: false)).isEmpty)
    }

    /// Issue 28: a pending record whose CreateEndpoint is under way (it holds
    /// the claim) is never garbage; one whose claim is free was left by a
    /// caller that died, whoever sweeps (the serving daemon or a command).
    @Test mutating func aPendingRecordIsGarbageOnlyWhenNoCallerHoldsItsClaim() throws {
        let dead = try endpoint(1, .pending, createdAt: Self.now)
        let inFlight = try endpoint(2, .pending, createdAt: Self.now)
        state.endpoints = [dead, inFlight]
        let expected: [EndpointSweep.Action] = [.removeEndpoint(dead, reason: "create-endpoint-unanswered")]
        #expect(EndpointSweep.plan(state, observed(links: [], inherited: [dead.id, inFlight.id], busy: [inFlight.id])) == expected)
        #expect(EndpointSweep.plan(state, observed(links: [], busy: [inFlight.id])) == expected)
        // Even with another engine answering: Docker never had it.
        #expect(EndpointSweep.plan(state, observed(links: nil, sameEngine: false, busy: [inFlight.id])) == expected)
        #expect(EndpointSweep.plan(state, observed(links: [], busy: [dead.id, inFlight.id])).isEmpty)
    }

    @Test mutating func aNetworkDockerAnswers404ForGoesWithEveryEndpoint() throws {
        let a = try endpoint(3, .joined), b = try endpoint(4, .ready)
        state.endpoints = [a, b]
        let gone = EndpointSweep.Observed(hostLinks: [a.hostIfname, b.hostIfname], networks: [network.id: .missing], sameEngine: true, inherited: nil)
        #expect(EndpointSweep.plan(state, gone) == [.removeEndpoint(a, reason: "docker-network-removed"), .removeEndpoint(b, reason: "docker-network-removed"),
                                                     .removeNetwork(network, reason: "docker-network-removed")])
        var other = gone
        other.sameEngine = false
        #expect(EndpointSweep.plan(state, other).isEmpty)
    }

    @Test mutating func removingIsLeftForItsOwnRequestAndEachEndpointComesOnce() throws {
        let removing = try endpoint(6, .removing), pending = try endpoint(7, .pending)
        state.endpoints = [removing, pending]
        var missing = EndpointSweep.Observed(hostLinks: [], networks: [network.id: .missing], sameEngine: true, inherited: nil)
        missing.busy = [removing.id]
        // The DeleteEndpoint under way keeps its own, and the network's record waits for it.
        #expect(EndpointSweep.plan(state, missing) == [.removeEndpoint(pending, reason: "create-endpoint-unanswered")])
        // Its caller gone, it is finished, once, and the network goes after its endpoints.
        missing.busy = []
        #expect(EndpointSweep.plan(state, missing) == [.removeEndpoint(removing, reason: "delete-endpoint-unfinished"),
                                                       .removeEndpoint(pending, reason: "create-endpoint-unanswered"),
                                                       .removeNetwork(network, reason: "docker-network-removed")])
        #expect(EndpointSweep.plan(state, observed(links: [], busy: [removing.id, pending.id])).isEmpty)
    }
}

extension EndpointSweepTests {
    @Test mutating func anEndpointWhoseJoinNeverCameGoesAtTheSecondSweepThatFindsItSo() throws {
        let e = try endpoint(8, .ready, createdAt: Self.now)
        state.endpoints = [e]
        var seen = observed(links: [e.hostIfname, e.peerIfname], inherited: [e.id])
        #expect(EndpointSweep.unjoined(state, seen) == [e.id])
        #expect(EndpointSweep.plan(state, seen).isEmpty)
        seen.unjoinedBefore = [e.id]
        #expect(EndpointSweep.plan(state, seen) == [.removeEndpoint(e, reason: "join-never-came")])
        // Moved into a sandbox, listed by Docker, made by this process, or a command: kept.
        var moved = seen
        moved.hostLinks = [e.hostIfname]
        #expect(EndpointSweep.plan(state, moved).isEmpty)
        #expect(EndpointSweep.plan(state, { var o = seen; o.networks = [network.id: .endpoints([e.id])]; return o }()).isEmpty)
        #expect(EndpointSweep.plan(state, { var o = seen; o.inherited = []; return o }()).isEmpty)
        #expect(EndpointSweep.plan(state, { var o = seen; o.inherited = nil; return o }()).isEmpty)
    }
}

extension EndpointSweepTests {
    @Test mutating func aLiveEndpointWhosePortIsGoneGetsItBackAndOnlyThen() throws {
        let e = try endpoint(9, .joined), pending = try endpoint(10, .pending)
        state.endpoints = [e, pending]
        // The pending one's CreateEndpoint is under way.
        var seen = observed(links: [e.hostIfname, pending.hostIfname], live: [e.id], busy: [pending.id])
        seen.ports = []
        #expect(EndpointSweep.plan(state, seen) == [.addPort(e, reason: "port-missing")])
        seen.ports = [e.hostIfname]
        #expect(EndpointSweep.plan(state, seen).isEmpty)
        // OVSDB unread, or the veth gone too: nothing to add.
        seen.ports = nil
        #expect(EndpointSweep.plan(state, seen).isEmpty)
        seen.ports = []
        seen.hostLinks = []
        #expect(EndpointSweep.plan(state, seen).isEmpty)
    }
}
