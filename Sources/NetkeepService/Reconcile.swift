import Logging
import NetkeepCore
import NetkeepState
import OVSDB

/// What one reconcile pass saw, planned, did and left.
public struct ReconcileReport: Sendable {
    public var dryRun: Bool
    public var plan: Plan
    /// nil for a dry run.
    public var results: [ActionResult]?
    /// Differences a second look still found after executing.
    public var remaining: [Action]
    public var timings: PhaseTimings
    /// Docker or OVSDB could not be reached.
    public var unreachable: Bool
    public var ovsdbReachable = true

    public var failed: [ActionResult] { results?.filter { $0.error != nil } ?? [] }

    /// 0: the host matches the state; 4: a source was unreachable; 1: otherwise.
    public var exitCode: Int32 {
        if unreachable { return 4 }
        if !failed.isEmpty || !remaining.isEmpty || plan.hasErrors { return 1 }
        return 0
    }
}

/// `netkeep reconcile`: observe, plan, execute, look again.
public struct Reconcile {
    public let environment: HostEnvironment
    public let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    /// One pass. `scope` narrows it to one container's attachments (only its
    /// own things can then be collected); `verify` looks again afterwards.
    /// `vswitch`: an open OVSDB connection to use (the daemon keeps one); nil opens one.
    public func run(dryRun: Bool, scope: ReconcileScope = .host, verify: Bool = true,
                    vswitch shared: VSwitchClient? = nil) throws(Failure) -> ReconcileReport {
        var timings = PhaseTimings()
        let lock = try timings.measure("lock") { () throws(Failure) in try environment.lockState(logger: logger) }
        defer { lock.release() }
        var state = try timings.measure("load") { () throws(Failure) in try environment.loadState() }
        var desired = state
        if case .container(let id) = scope {
            desired.attachments = state.attachments.filter { $0.containerID == id }
            if desired.attachments.isEmpty { return ReconcileReport(dryRun: dryRun, plan: Plan(), results: [], remaining: [], timings: timings, unreachable: false) }
        }
        let vswitch = shared ?? (try? VSwitchClient(socketPath: environment.ovsdbSocket))
        defer { if shared == nil { vswitch?.close() } }
        let observer = Observer(environment: environment)

        let observation = observer.observe(desired, scope: scope, vswitch: vswitch, timings: &timings)
        let thePlan = timings.measure("plan") { plan(desired: desired, observed: observation.host) }
        var report = ReconcileReport(dryRun: dryRun, plan: thePlan, results: nil, remaining: [], timings: timings,
                                     unreachable: Self.unreachable(observation.host))
        report.ovsdbReachable = observation.host.ovs != nil
        guard !dryRun else { return report }
        // First contact with an engine (a state file of an older netkeep): it is recorded.
        if state.engine == nil, let engine = observation.host.engine, engine.isUsable {
            state.engine = engine
            if thePlan.actions.isEmpty { try environment.saveState(state) }
        }
        if thePlan.actions.isEmpty { return report }

        let before = state
        let results = Executor(environment: environment, logger: logger)
            .execute(thePlan, state: &state, observed: observation.host, snapshot: observation.snapshot, vswitch: vswitch, timings: &timings)
        let after = state
        environment.audit.record(AuditEvent.of(
            reconciled: thePlan.actions, succeeded: { results[$0].error == nil },
            leaseBefore: { id in before.attachments.first { $0.id == id }?.lease?.address },
            recorded: { id in after.attachments.first { $0.id == id } }))
        report.results = results
        if verify {
            var verifyTimings = PhaseTimings()
            if case .container(let id) = scope { desired.attachments = state.attachments.filter { $0.containerID == id } } else { desired = state }
            let again = observer.observe(desired, scope: scope, vswitch: vswitch, timings: &verifyTimings)
            timings.add("verify", verifyTimings.values.reduce(0) { $0 + $1.1 })
            report.remaining = plan(desired: desired, observed: again.host).actions
        }
        report.timings = timings
        return report
    }

    static func unreachable(_ host: ObservedHost) -> Bool {
        if case .unreachable = host.docker { return true }
        return host.ovs == nil
    }
}
