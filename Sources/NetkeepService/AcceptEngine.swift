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

    public func run(dryRun: Bool) throws(Failure) -> Outcome {
        let lock = try environment.lockState(logger: logger)
        defer { lock.release() }
        var state = try environment.loadState()
        let engine: EngineIdentity
        do { engine = try environment.docker.engine() } catch { throw Failure.component("accept-engine", error) }
        guard engine.isUsable else {
            throw Failure.badInput("accept-engine: the engine on \(environment.dockerSocket) gives no ID or data root in GET /info; not recorded")
        }
        let outcome = Outcome(previous: state.engine, current: engine)
        guard !dryRun, state.engine != engine else { return outcome }
        state.engine = engine
        try environment.saveState(state)
        environment.audit.record([AuditEvent(kind: .engineAccepted,
                                             message: "Docker engine \(engine) accepted for \(state.attachments.count) records (was \(outcome.previous.map(\.description) ?? "none"))")])
        return outcome
    }
}
