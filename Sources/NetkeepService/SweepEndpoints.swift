import DockerEngine
import DockerPlugin
import Logging
import NetkeepCore
import Netlink

/// Collects the Docker plugin's records that Docker will never delete
/// (`EndpointSweep`): observes the host links and Docker's networks, plans,
/// removes. Run by the daemon after each full reconcile and by `netkeep
/// reconcile`. Asks the Docker API, so it never runs inside a plugin request.
public struct SweepEndpoints {
    let environment: HostEnvironment
    let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    /// `inherited`: the endpoints recorded when this process began serving the
    /// plugin API (the daemon); nil for a command.
    /// `unjoined`: the daemon's memory between sweeps (`EndpointSweep.unjoined`).
    ///
    /// Docker is asked first, holding nothing (it may be waiting for this very
    /// plugin at boot). Then every endpoint's claim is tried: one a request
    /// holds is left to it. Then the records and the host, in that order: a
    /// record that is ready has its veth.
    @discardableResult
    public func run(inherited: Set<String>?, dryRun: Bool = false, unjoined: inout Set<String>) throws(Failure) -> [EndpointSweep.Action] {
        let first = try environment.loadState()
        guard !first.endpoints.isEmpty || !first.networks.isEmpty else { return [] }
        var (observed, owners) = observeDocker(first, inherited: inherited)
        let held = try environment.claims()
        defer { held.release() }
        var busy = Set<String>()
        for e in first.endpoints where (try? held.tryClaim(e.claimKey)) != true { busy.insert(e.id) }
        let state = try environment.loadState()
        // One recorded since the first read was not claimed: a request may be making it.
        busy.formUnion(state.endpoints.map(\.id).filter { !held.claimed.contains(ClaimKey.endpoint($0)) })
        (observed.hostLinks, observed.ports) = environment.linkAndPortNames()
        observed.busy = busy
        if !dryRun { name(state, owners) }
        observed.unjoinedBefore = unjoined
        unjoined = EndpointSweep.unjoined(state, observed)
        let actions = EndpointSweep.plan(state, observed)
        guard !dryRun, !actions.isEmpty else { return actions }
        let plugin = NetworkPlugin(environment: environment, logger: logger)
        for action in actions {
            do throws(PluginError) {
                switch action {
                case .removeEndpoint(let e, let reason):
                    try plugin.removeEndpoint(e)
                    environment.audit.record(AuditEvent(kind: .garbageCollect, message: "endpoint \(e.shortID): port \(e.hostIfname) removed from \(e.bridge) (\(reason))",
                                                        reason: reason, port: e.hostIfname, bridge: e.bridge, ip: e.address?.description))
                    logger.notice("endpoint \(e.shortID): collected (\(reason))")
                case .addPort(let e, let reason):
                    // A DeleteEndpoint may have begun since the records were read: only a live record gets its port.
                    func live() -> Bool { ((try? environment.loadState())?.endpoint(id: e.id)).map { $0.status == .ready || $0.status == .joined } ?? false }
                    guard live() else { continue }
                    var timings = PhaseTimings()
                    try plugin.addPort(e, timings: &timings)
                    if !live() {
                        if let client = try? environment.vswitch() {
                            _ = try? client.deletePorts(named: [e.hostIfname], comment: "netkeep: endpoint \(e.shortID) deleted meanwhile")
                            client.close()
                        }
                        continue
                    }
                    environment.audit.record(AuditEvent(kind: .repair, message: "endpoint \(e.shortID): port \(e.hostIfname) added back to \(e.bridge) (\(reason))",
                                                        reason: reason, port: e.hostIfname, bridge: e.bridge, ip: e.address?.description,
                                                        steps: ["add-port"]))
                    logger.notice("endpoint \(e.shortID): port added back (\(reason))")
                case .removeNetwork(let n, let reason):
                    try plugin.update { state in state.networks.removeAll { $0.id == n.id } }
                    logger.notice("network \(n.id.prefix(12)): record collected (\(reason))")
                }
            } catch {
                logger.warning("\(error)")
            }
        }
        return actions
    }

    @discardableResult
    public func run(inherited: Set<String>?, dryRun: Bool = false) throws(Failure) -> [EndpointSweep.Action] {
        var none = Set<String>()
        return try run(inherited: inherited, dryRun: dryRun, unjoined: &none)
    }

    /// Records which container each endpoint is (for `netkeep list` and the audit); only a change is written.
    func name(_ state: State, _ owners: [String: (id: String, name: String)]) {
        let changes = state.endpoints.compactMap { e -> (String, String, String)? in
            guard let owner = owners[e.id], Names.isDockerID(owner.id), (try? Names.containerName(owner.name)) != nil,
                  e.containerID != owner.id || e.containerName != owner.name else { return nil }
            return (e.id, owner.id, owner.name)
        }
        guard !changes.isEmpty else { return }
        do {
            _ = try environment.updateRecords(logger: logger) { state in
                for (endpoint, id, name) in changes {
                    guard var e = state.endpoint(id: endpoint) else { continue }
                    e.containerID = id
                    e.containerName = name
                    state.upsert(e)
                }
            }
        } catch {
            logger.info("endpoints' containers not recorded: \(error)")
        }
    }

    /// The host and Docker as the sweep needs them, and each endpoint's container as Docker names it.
    /// What Docker says of the recorded networks (the host's links and ports are read later, under the claims).
    func observeDocker(_ state: State, inherited: Set<String>?) -> (EndpointSweep.Observed, [String: (id: String, name: String)]) {
        let docker = DockerClient(socketPath: environment.dockerSocket, timeout: 5)
        var sameEngine = false
        var networks: [String: DockerNetworkView] = [:]
        var owners: [String: (id: String, name: String)] = [:]
        do {
            let engine = try docker.engine()
            // Records made before any engine was recorded are this engine's.
            sameEngine = engine.isUsable && (state.engine == nil || state.engine == engine)
            if sameEngine {
                for network in state.networks {
                    do {
                        let (view, containers) = try docker.networkMembers(id: network.id)
                        networks[network.id] = view
                        owners.merge(containers) { _, new in new }
                    } catch {
                        logger.info("network \(network.id.prefix(12)): \(error); its endpoints are kept")
                    }
                }
            }
        } catch {
            logger.info("endpoints not swept: \(error)")
        }
        return (EndpointSweep.Observed(hostLinks: nil, networks: networks, sameEngine: sameEngine, inherited: inherited, ports: nil), owners)
    }
}

extension HostEnvironment {
    /// The names of the host's links and of OVSDB's ports, each nil when it
    /// could not be read (the sweeps then change nothing on that evidence).
    func linkAndPortNames() -> (links: Set<String>?, ports: Set<String>?) {
        let links: Set<String>? = (try? NetlinkSession.open().links()).map { Set($0.map(\.name)) }
        let ports: Set<String>? = try? { () throws(Failure) -> Set<String> in
            let client = try vswitch()
            defer { client.close() }
            do { return Set(try client.snapshot().ports.map(\.name)) } catch { throw Failure.component("ovsdb", error) }
        }()
        return (links, ports)
    }
}
