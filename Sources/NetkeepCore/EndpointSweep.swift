/// What Docker says of one of netkeep's networks (`GET /networks/ID`).
public enum DockerNetworkView: Equatable, Sendable {
    /// The network exists; these endpoints are attached to containers.
    case endpoints(Set<String>)
    /// Docker answered 404 for this network: positive evidence it is gone.
    case missing
}

/// The records of the Docker network plugin that nothing will ever delete,
/// and why. Docker sends no DeleteEndpoint for an endpoint whose sandbox died
/// with the host (an ungraceful shutdown, a reboot) and none for a network
/// removed while netkeep was stopped. Pure: the daemon observes, this decides.
public enum EndpointSweep {
    public struct Observed: Sendable {
        /// Host interface names; nil when they could not be listed (nothing is collected).
        public var hostLinks: Set<String>?
        /// Per recorded network; a network Docker did not answer for is absent.
        public var networks: [String: DockerNetworkView]
        /// Docker answered as the engine the records were made with (DESIGN.md rule 5).
        public var sameEngine: Bool
        /// Set when this process serves the plugin API: the endpoints recorded
        /// when it began to, which only an earlier process can have made (for
        /// `unjoined`: a Join for one of this process's may still come).
        public var inherited: Set<String>?
        /// What `unjoined` returned at the previous sweep of this process.
        public var unjoinedBefore: Set<String>
        /// The bridges' port names in OVSDB; nil when OVSDB could not be read.
        public var ports: Set<String>?
        /// Endpoints whose claim another caller holds (a request under way):
        /// nothing of theirs is touched, and a `pending` or `removing` one
        /// whose claim is free was left by a caller that died.
        public var busy: Set<String> = []

        public init(hostLinks: Set<String>?, networks: [String: DockerNetworkView], sameEngine: Bool, inherited: Set<String>?,
                    unjoinedBefore: Set<String> = [], ports: Set<String>? = nil) {
            self.hostLinks = hostLinks
            self.ports = ports
            self.networks = networks
            self.sameEngine = sameEngine
            self.inherited = inherited
            self.unjoinedBefore = unjoinedBefore
        }
    }

    /// Endpoints an earlier process answered CreateEndpoint for whose Join
    /// never came: `ready`, the container end still on the host, not in
    /// Docker's list. Docker's own rollback (DeleteEndpoint) found no netkeep
    /// to answer it. A Join may still be on its way, so one observation is
    /// no evidence: an endpoint is collected when two sweeps, a resync apart,
    /// both find it so.
    public static func unjoined(_ state: State, _ observed: Observed) -> Set<String> {
        guard observed.sameEngine, let inherited = observed.inherited, let links = observed.hostLinks else { return [] }
        var out = Set<String>()
        for e in state.endpoints where e.status == .ready && inherited.contains(e.id) && links.contains(e.peerIfname) {
            if case .endpoints(let live)? = observed.networks[e.networkID], !live.contains(e.id) { out.insert(e.id) }
        }
        return out
    }

    public enum Action: Equatable, Sendable {
        case removeEndpoint(Endpoint, reason: String)
        /// The veth lives but its port is gone from OVSDB (a database replaced
        /// or cleared): added back, the veth is left as it is.
        case addPort(Endpoint, reason: String)
        /// The network's endpoints go first, each its own action.
        case removeNetwork(DockerNetwork, reason: String)
    }

    public static func plan(_ state: State, _ observed: Observed) -> [Action] {
        var actions: [Action] = []
        var removed = Set<String>()
        func remove(_ e: Endpoint, _ reason: String) {
            guard removed.insert(e.id).inserted else { return }
            actions.append(.removeEndpoint(e, reason: reason))
        }
        let endpoints = state.endpoints.filter { !observed.busy.contains($0.id) }
        for e in endpoints {
            // A CreateEndpoint whose caller died (it held the claim while it
            // worked): Docker took the endpoint as failed and will not use or
            // delete it. A DeleteEndpoint that died is finished.
            if e.status == .pending { remove(e, "create-endpoint-unanswered") }
            if e.status == .removing { remove(e, "delete-endpoint-unfinished") }
        }
        guard observed.sameEngine else { return actions }
        for network in state.networks {
            switch observed.networks[network.id] {
            case .missing?:
                for e in endpoints where e.networkID == network.id { remove(e, "docker-network-removed") }
                // The record goes once none of its endpoints is under way.
                if !state.endpoints.contains(where: { $0.networkID == network.id && observed.busy.contains($0.id) }) {
                    actions.append(.removeNetwork(network, reason: "docker-network-removed"))
                }
            case .endpoints(let live)?:
                guard let links = observed.hostLinks else { continue }
                // Gone on both sides: the veth died with its sandbox and Docker
                // has no such endpoint. Either alone is no evidence.
                for e in endpoints where e.networkID == network.id && (e.status == .ready || e.status == .joined)
                    && !links.contains(e.hostIfname) && !live.contains(e.id) {
                    remove(e, "sandbox-gone")
                }
            case nil:
                continue
            }
        }
        for e in endpoints where observed.unjoinedBefore.contains(e.id) && unjoined(state, observed).contains(e.id) {
            remove(e, "join-never-came")
        }
        if let ports = observed.ports, let links = observed.hostLinks {
            for e in endpoints where !removed.contains(e.id) && (e.status == .ready || e.status == .joined)
                && links.contains(e.hostIfname) && !ports.contains(e.hostIfname) {
                actions.append(.addPort(e, reason: "port-missing"))
            }
        }
        return actions
    }
}
