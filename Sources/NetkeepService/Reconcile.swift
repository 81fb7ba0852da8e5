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
    /// Containers another pass held, left to it.
    public var busy: Set<String> = []
    /// Why Docker could not be asked, when it could not.
    public var dockerUnreachable: String?
    /// The records after the pass (those of containers it did not claim as it read them).
    public var state = State()
    /// What containers' labels declared before the pass (`Declare.Outcome.lines`).
    public var declarations: [String] = []
    /// The engine that answered `GET /info` during the look, when it was asked.
    public var engine: EngineIdentity?

    /// Why each of an attachment's actions failed, in plan order.
    public func errors(of attachmentID: String) -> [(Action, String)] {
        (results ?? []).compactMap { r in
            guard let error = r.error, r.action.attachment?.id == attachmentID else { return nil }
            return (r.action, error)
        }
    }

    public var failed: [ActionResult] { results?.filter { $0.error != nil } ?? [] }

    init(dryRun: Bool, plan: Plan, results: [ActionResult]?, remaining: [Action], timings: PhaseTimings, unreachable: Bool, state: State) {
        self.dryRun = dryRun
        self.plan = plan
        self.results = results
        self.remaining = remaining
        self.timings = timings
        self.unreachable = unreachable
        self.state = state
    }

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

    /// One pass. `scope` narrows it to some containers' attachments (only
    /// their own things can then be collected); `verify` looks again afterwards.
    /// `vswitch`: an open OVSDB connection to use (the daemon keeps one); nil opens one.
    /// `claims`: claims the caller already holds (an attach holds its
    /// container's from before it writes the intent); `audit`: false when
    /// the caller writes the audit entries of its own command;
    /// `waitForClaims`: false to leave the containers another pass holds
    /// (they are in the report's `busy`) instead of waiting for them;
    /// `confirmLeasesLater`: unexpired leases are applied and left for the
    /// lease timer to confirm (see `Executor.execute`).
    ///
    /// No lock is held while the pass talks to the network: it claims the
    /// containers it may change, reads the records, works, and then writes
    /// back only the records of its claimed containers (DESIGN.md rule 7).
    public func run(dryRun: Bool, scope: ReconcileScope = .host, verify: Bool = true,
                    vswitch shared: (any VSwitchAccess)? = nil, claims held: ContainerClaims? = nil,
                    audit: Bool = true, waitForClaims: Bool = true, confirmLeasesLater: Bool = false) throws(Failure) -> ReconcileReport {
        var timings = PhaseTimings()
        let claims: ContainerClaims
        if let held { claims = held } else { claims = try environment.claims() }
        defer { if held == nil { claims.release() } }
        var busy = Set<String>()
        var state: State
        if dryRun {
            state = try timings.measure("load") { () throws(Failure) in try environment.loadState() }
        } else if let ids = scope.containerIDs {
            try timings.measure("claim") { () throws(Failure) in
                if waitForClaims { return try environment.claim(ids, in: claims, logger: logger) }
                busy = try Self.claimFree(ids, in: claims)
            }
            state = try timings.measure("load") { () throws(Failure) in try environment.loadState() }
        } else {
            // The whole host: every container that no other pass holds; the
            // records are read again once claimed, as their holders left them.
            let first = try timings.measure("load") { () throws(Failure) in try environment.loadState() }
            try timings.measure("claim") { () throws(Failure) in
                busy = try Self.claimFree(first.containerIDs, in: claims)
            }
            state = try timings.measure("load") { () throws(Failure) in try environment.loadState() }
            busy.formUnion(state.containerIDs.subtracting(claims.claimed))
        }
        let loaded = state
        var desired = scope.containerIDs.map { state.only($0) } ?? state
        if scope.containerIDs != nil, desired.attachments.isEmpty {
            return ReconcileReport(dryRun: dryRun, plan: Plan(), results: [], remaining: [], timings: timings, unreachable: false, state: state)
        }
        let vswitch = shared ?? (try? environment.adapters.openVSwitch())
        defer { if shared == nil { vswitch?.close() } }
        let observer = Observer(environment: environment)

        var observation = observer.observe(desired, scope: scope, vswitch: vswitch, timings: &timings)
        observation.host.busyContainers = busy
        let observed = observation.host
        let thePlan = timings.measure("plan") { plan(desired: desired, observed: observed, retention: environment.retentionSeconds) }
        var report = ReconcileReport(dryRun: dryRun, plan: thePlan, results: nil, remaining: [], timings: timings,
                                     unreachable: Self.unreachable(observation.host), state: state)
        report.ovsdbReachable = observation.host.ovs != nil
        report.engine = observation.host.engine
        if case .unreachable(let why) = observation.host.docker { report.dockerUnreachable = why }
        guard !dryRun else { return report }
        // First contact with an engine (a state file of an older netkeep): it is recorded.
        if state.engine == nil, let engine = observation.host.engine, engine.isUsable { state.engine = engine }

        var results: [ActionResult] = []
        if !thePlan.actions.isEmpty {
            results = Executor(environment: environment, logger: logger)
                .execute(thePlan, state: &state, observed: observation.host, snapshot: observation.snapshot, vswitch: vswitch,
                         confirmLater: confirmLeasesLater, timings: &timings)
        }
        if state != loaded {
            let mine = claims.claimed
            do {
                _ = try timings.measure("save") { () throws(Failure) in
                    try environment.updateRecords(logger: logger) { file in file = file.merging(state, for: mine) }
                }
            } catch {
                results = results.map { r in
                    var r = r
                    if r.error == nil, Executor.touchesRecord(r.action) { r.error = "state not written: \(error)" }
                    return r
                }
                state = loaded
            }
        }
        report.state = state
        report.busy = busy
        if thePlan.actions.isEmpty { report.results = []; return report }

        let before = loaded
        let after = state
        let done = results
        if audit {
            environment.audit.record(AuditEvent.of(
                reconciled: thePlan.actions, succeeded: { done[$0].error == nil },
                leaseBefore: { id in before.attachments.first { $0.id == id }?.lease?.address },
                recorded: { id in after.attachments.first { $0.id == id } }))
        }
        report.results = results
        if verify {
            var verifyTimings = PhaseTimings()
            desired = scope.containerIDs.map { state.only($0) } ?? state
            var again = observer.observe(desired, scope: scope, vswitch: vswitch, timings: &verifyTimings)
            again.host.busyContainers = busy
            timings.add("verify", verifyTimings.values.reduce(0) { $0 + $1.1 })
            report.remaining = plan(desired: desired, observed: again.host, retention: environment.retentionSeconds).actions.filter { action in
                // Confirmations left for the lease timer on purpose are not unfinished work.
                if confirmLeasesLater, case .renewLease(_, _, .confirm, _) = action { return false }
                return true
            }
        }
        report.timings = timings
        return report
    }

    /// Claims those of `ids` that no other pass holds; returns the others.
    static func claimFree(_ ids: Set<String>, in claims: ContainerClaims) throws(Failure) -> Set<String> {
        var busy = Set<String>()
        for id in ids.sorted() {
            do throws(StateFileError) { if try !claims.tryClaim(id) { busy.insert(id) } } catch { throw Failure.from(error) }
        }
        return busy
    }

    static func unreachable(_ host: ObservedHost) -> Bool {
        if case .unreachable = host.docker { return true }
        return host.ovs == nil
    }
}
