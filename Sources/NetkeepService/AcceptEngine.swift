import DockerEngine
import Logging
import NetkeepCore

/// `netkeep accept-engine`: records the Docker engine that answers now as
/// the one the records belong to, after a real change (a reinstalled
/// dockerd, a moved data root). Until then a different engine's 404s remove
/// nothing (DESIGN.md rule 5).
public struct AcceptEngine {
    public let environment: HostEnvironment
    public let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    public struct Outcome: Sendable {
        public var previous: EngineIdentity?
        public var current: EngineIdentity
    }

    /// Docker is asked first, holding nothing (DESIGN.md rule 7); the state
    /// lock is taken only to record the answer.
    public func run(dryRun: Bool) throws(Failure) -> Outcome {
        let engine: EngineIdentity
        do { engine = try environment.docker.engine() } catch { throw Failure.component("accept-engine", error) }
        guard engine.isUsable else {
            throw Failure.badInput("accept-engine: the engine on \(environment.dockerSocket) gives no ID or data root in GET /info; not recorded")
        }
        guard !dryRun else { return Outcome(previous: try environment.loadState().engine, current: engine) }
        var outcome = Outcome(previous: nil, current: engine)
        var records = 0
        let state = try environment.updateRecords(logger: logger) { state in
            outcome.previous = state.engine
            records = state.attachments.count
            state.engine = engine
        }
        guard outcome.previous != state.engine else { return outcome }
        environment.audit.record([AuditEvent(kind: .engineAccepted,
                                             message: "Docker engine \(engine) accepted for \(records) records (was \(outcome.previous.map(\.description) ?? "none"))")])
        return outcome
    }
}
