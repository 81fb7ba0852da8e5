#if canImport(Glibc)
import Glibc
#endif
import DHCP
import Dispatch
import DockerEngine
import HostIO
import Logging
import NetkeepCore
import NetkeepState
import OVSDB
import ServiceLifecycle
import Synchronization

/// `netkeep daemon`: a full reconcile at start, then Docker events (repair on
/// `start`, collect on `destroy`, record `die`/`stop` as down), DHCP lease
/// timers, and a full reconcile every `resyncInterval`. Blocking work runs on
/// one worker thread, one item at a time, under the state lock the CLI also
/// takes. Graceful shutdown (SIGTERM) finishes the item in progress and tears
/// nothing down.
public final class Daemon: Service, @unchecked Sendable {
    public struct Options: Sendable {
        public var resyncInterval: Double
        public var maxBackoff: Double

        /// Seconds of silence on the event stream before its liveness is checked.
        public var idleCheck: Double
        /// READY=1 is sent when the first pass is done, or after this many
        /// seconds while it still runs (well inside the unit's TimeoutStartSec).
        public var startBudget: Double
        /// How long one piece of work may keep the watchdog fed; one that runs
        /// longer is stuck, and systemd's watchdog restarts the daemon.
        public var workBudget: Double
        /// The endpoints recorded when this process began serving the Docker
        /// plugin API (nil: it does not serve it); see `EndpointSweep`.
        public var inheritedEndpoints: Set<String>?
        /// What `netkeep --version` says: published in the status and `netkeep_build_info`.
        public var version = "unknown"
        public var commit = "unknown"
        /// Where the metrics go as a node_exporter textfile (written in one step after each piece of work).
        public var metricsTextfile: String?
        /// Where they are served (shown by `netkeep status`); the server is the caller's.
        public var metricsListen: String?

        public init(resyncInterval: Double = 60, maxBackoff: Double = 30, idleCheck: Double = 5, startBudget: Double = 45,
                    workBudget: Double = 150) {
            self.resyncInterval = resyncInterval
            self.maxBackoff = maxBackoff
            self.idleCheck = idleCheck
            self.startBudget = startBudget
            self.workBudget = workBudget
        }
    }

    /// What the daemon tells its supervisor (systemd's sd_notify).
    public struct Hooks: Sendable {
        /// READY=1, with the STATUS= line that goes with it.
        public var ready: @Sendable (String) -> Void = { _ in }
        public var status: @Sendable (String) -> Void = { _ in }
        /// From the working loop, at least every `watchdogInterval` seconds.
        public var watchdog: @Sendable () -> Void = {}
        public var watchdogInterval: Double?
        public var stopping: @Sendable () -> Void = {}
        public init() {}
    }

    let environment: HostEnvironment
    let logger: Logger
    let options: Options
    let hooks: Hooks
    let queue = WorkQueue()
    private let worker = DispatchQueue(label: "netkeep.worker")
    private let index: AttachmentIndex
    private let counters = Mutex(Counters())
    /// The OVSDB connection of the worker thread, kept between repairs.
    private var vswitch: VSwitchClient?
    /// When the work in progress began (monotonic seconds); nil when idle.
    private let working = Mutex<Double?>(nil)
    /// Containers whose `start` said they carry netkeep labels, to be
    /// declared by their next repair.
    private let declaring = Mutex<Set<String>>([])
    /// Containers whose refused labels were written to the journal: once
    /// per container and daemon run, not at every pass.
    private let warned = Mutex<Set<String>>([])
    /// Stopped containers looked at again until the kernel has torn their
    /// veth down (the looks so far).
    private let teardownLooks = Mutex<[String: Int]>([:])
    /// The engine identity the last full pass had from `GET /info`, matching
    /// the records: declarations at `start` events check against it instead
    /// of asking again (10 ms). Forgotten when the event stream is lost, so
    /// another engine on the socket is asked about before anything is declared.
    private let knownEngine = Mutex<EngineIdentity?>(nil)
    /// Endpoints the last sweep found never joined (`EndpointSweep.unjoined`).
    private let unjoinedEndpoints = Mutex<Set<String>>([])
    public let metrics: DaemonMetrics
    let publisher: StatusPublisher
    /// What asked for the full pass waiting in the queue (the first asker names it).
    private let fullTrigger = Mutex<String?>(nil)
    /// Containers whose labels are refused, by id (their names and problems).
    private let refused = Mutex<[String: DaemonStatus.Refusal]>([:])
    /// One publication at a time (the publisher's thread and the last one at shutdown).
    private let publishing = Mutex(())
    private let publishQueue = DispatchQueue(label: "netkeep.publish")
    private let publishRequested = Mutex(false)

    struct Counters {
        var docker = "connecting"
        var ovsdb = "connecting"
        var lastFullAt = 0.0
        var fullRetry: Double?
        var fullFailures = 0
        var persistedEventNano: Int64 = 0
        var persistedAt = 0.0
    }

    /// `metrics`: the ones a `--metrics-listen` server already serves; new ones otherwise.
    public init(environment: HostEnvironment, logger: Logger, options: Options = Options(), hooks: Hooks = Hooks(),
                metrics: DaemonMetrics? = nil) {
        var environment = environment
        // Waiting longer for a CLI command's lock would starve the watchdog.
        environment.lockTimeout = min(environment.lockTimeout, 20)
        self.environment = environment
        let publisher = StatusPublisher(stateDirectory: environment.store.directory, version: options.version, commit: options.commit,
                                        metricsTextfile: options.metricsTextfile, metricsListen: options.metricsListen, logger: logger)
        self.publisher = publisher
        // Its warnings and errors also go into the published status.
        let inner = logger.handler
        var recording = Logger(label: logger.label) { _ in ProblemRecordingLogHandler(inner: inner, publisher: publisher) }
        recording.logLevel = logger.logLevel
        self.logger = recording
        self.options = options
        self.hooks = hooks
        self.index = AttachmentIndex(store: environment.store)
        self.metrics = metrics ?? DaemonMetrics(version: options.version, commit: options.commit,
                                                startTime: Double(wallClockNanoseconds()) / 1e9)
    }

    public func run() async throws {
        // Unreadable state: refuse to start, touch nothing.
        let state = try environment.loadState()
        logger.notice("starting with \(state.attachments.count) attachments in \(environment.store.statePath)")
        // The first STATUS= line says what is under way, not counts of a pass not yet run.
        hooks.status("starting: first reconcile of \(state.recordCount) attachments")
        publisher.publish()
        let metrics = self.metrics
        ExchangeLoop.observer.withLock { $0 = { metrics.exchange($0) } }
        defer { ExchangeLoop.observer.withLock { $0 = nil } }
        fullTrigger.withLock { $0 = "start" }
        // The first pass, fed to the watchdog while it works; READY=1 when it is
        // done or when the start budget runs out (it then goes on), so a slow
        // first pass (no DHCP server, Docker starting) never fails the start.
        // It puts unexpired leases back on their interfaces without waiting
        // for the server's confirmation, which the lease timer asks for right
        // after (a boot with 500 leases waited 10 s for dnsmasq's ACKs).
        let firstPassStarted = wallClockNanoseconds()
        let first = Task { await self.perform(.full, confirmLeasesLater: true) }
        let feeder = Task { await self.feedWatchdogWhileWorking() }
        let readyInTime = await finishes(first, within: options.startBudget)
        feeder.cancel()
        if !readyInTime { logger.warning("the first reconcile takes longer than \(formatSeconds(options.startBudget)); ready meanwhile, it goes on") }
        hooks.watchdog()
        publisher.update { $0.readyAt = HostEnvironment.now() }
        hooks.ready(statusLine(readyInTime ? "ready" : "ready, first reconcile still running"))
        updateStatus()

        await withTaskGroup(of: Void.self) { group in
            group.addTask { await untilGracefulShutdown { await self.feedWatchdogWhileWorking() } }
            group.addTask { await untilGracefulShutdown { await self.followEvents(coveredUntil: firstPassStarted) } }
            group.addTask { await untilGracefulShutdown { await self.runTimers() } }
            group.addTask {
                await withGracefulShutdownHandler {
                    // The working loop: it alone feeds the watchdog, so a stuck repair stops the pings.
                    while let work = await self.queue.next(within: self.hooks.watchdogInterval) {
                        if work != .idle { await self.perform(work) }
                        self.hooks.watchdog()
                    }
                } onGracefulShutdown: {
                    self.hooks.stopping()
                    // Lock waits and DHCP exchanges in progress end early; nothing is torn down.
                    Interruption.request()
                    Task { await self.queue.close() }
                }
            }
            await group.waitForAll()
        }
        await onWorker { self.performNow(.persistEventTime) }
        drainPublications()
        publisher.update { $0.stoppedAt = HostEnvironment.now() }
        publish()
        logger.notice("stopped; attachments are left as they are")
    }

    // MARK: Docker events

    /// `coveredUntil`: when the first pass began to look at the host. The
    /// first subscription replays every event since then, so it needs no
    /// full pass of its own (which, run while containers restart, would wait
    /// on Docker for each of them); later ones, after a gap, do.
    func followEvents(coveredUntil: Int64? = nil) async {
        var backoff = 0.1
        var replayFrom = coveredUntil
        var subscriptions = 0
        while !Task.isCancelled {
            let since = replayFrom ?? index.lastEventNano()
            let needsFullPass = replayFrom == nil
            replayFrom = nil
            if needsFullPass { knownEngine.withLock { $0 = nil } }
            do {
                let subscribedAt = wallClockNanoseconds()
                let stream = try await onWorkerless { () throws(DockerError) in try DockerEventStream(client: self.environment.docker, sinceNano: since) }
                counters.withLock { $0.docker = "connected" }
                metrics.source("docker", up: true)
                subscriptions += 1
                if subscriptions > 1 { metrics.eventStreamReconnected() }
                logger.notice("following Docker events\(since.map { " since \($0 / 1_000_000_000)" } ?? "")")
                // Subscribed first, then a full pass: nothing falls in between.
                if needsFullPass { await submitFull("reconnect") }
                updateStatus()
                let connectedAt = ExchangeClock.now()
                var delivered = 0
                defer {
                    // Only a stream that lived a while (or brought events) resets the
                    // backoff: one that ends right after each subscribe is not retried in a tight loop.
                    if delivered > 0 || ExchangeClock.now() - connectedAt >= 10 { backoff = 0.1 }
                }
                try await withTaskCancellationHandler {
                    for try await event in Self.events(of: stream, client: environment.docker, subscribedAtNano: subscribedAt,
                                                       idleCheck: options.idleCheck) {
                        delivered += 1
                        await handle(event)
                    }
                } onCancel: {
                    stream.close()
                }
                stream.close()
                if !Task.isCancelled { logger.warning("the Docker event stream ended; reconnecting in \(formatSeconds(backoff))") }
            } catch let stalled as StreamStalled {
                logger.warning("the Docker event stream stalled: \(stalled.reason); subscribing again")
                backoff = 0.1
            } catch {
                counters.withLock { $0.docker = "unreachable" }
                metrics.source("docker", up: false)
                updateStatus()
                logger.warning("Docker events unavailable (\(error)); retrying in \(formatSeconds(backoff)); nothing is removed meanwhile")
            }
            try? await Task.sleep(nanoseconds: UInt64(backoff * 1e9))
            backoff = min(backoff * 2, options.maxBackoff)
        }
    }

    /// A container event costs nothing beyond parsing unless an attachment
    /// names the container.
    func handle(_ event: DockerEvent) async {
        guard event.type == "container" else { return }
        // A container with netkeep labels is declared at its start.
        let declares = event.declares && event.action == "start"
        if declares { declaring.withLock { _ = $0.insert(event.actorID) } }
        guard declares || index.contains(event.actorID) else { return }
        // Asking Docker about a container between its `die` and its next `start`
        // blocks until the start is done: a stop is recorded from the event alone.
        let work: Work
        switch event.action {
        case "start", "restart", "unpause", "destroy": work = .container(event.actorID, eventNano: event.timeNano)
        case "die", "stop": work = .containerDown(event.actorID, eventNano: event.timeNano)
        default: return
        }
        logger.info("Docker event \(event.action) for \(event.name ?? String(event.actorID.prefix(12)))")
        await queue.submit(work)
    }

    /// The stream's blocking reads, on a thread of their own, as an async sequence.
    ///
    /// Docker sends nothing while nothing happens, so silence alone proves
    /// nothing. After `idleCheck` seconds of it, a short `since=..&until=..`
    /// request asks the engine what happened meanwhile: an event the stream
    /// did not deliver (or no answer at all) means the stream stalled, and it
    /// ends with `StreamStalled`; the caller subscribes again and runs a full pass.
    static func events(of stream: DockerEventStream, client: DockerClient, subscribedAtNano: Int64,
                       idleCheck: Double) -> AsyncThrowingStream<DockerEvent, any Error> {
        AsyncThrowingStream(bufferingPolicy: .bufferingNewest(4096)) { continuation in
            DispatchQueue(label: "netkeep.docker-events").async {
                var delivered = subscribedAtNano
                do {
                    while true {
                        switch try stream.next(idleAfter: idleCheck) {
                        case .event(let event):
                            delivered = max(delivered, event.timeNano)
                            continuation.yield(event)
                        case .ended:
                            continuation.finish()
                            return
                        case .idle:
                            // Events older than a second must have come by now.
                            let until = wallClockNanoseconds() - 1_000_000_000
                            guard until > delivered else { continue }
                            let missed: [DockerEvent]
                            do {
                                missed = try DockerClient(socketPath: client.socketPath, timeout: min(client.timeout, 3))
                                    .containerEvents(sinceNano: delivered, untilNano: until, limit: 16)
                            } catch {
                                throw StreamStalled(reason: "the engine did not answer the liveness check (\(error))")
                            }
                            if let first = missed.first(where: { $0.timeNano > delivered && $0.timeNano <= until }) {
                                throw StreamStalled(reason: "it did not deliver the \(first.action) event of \(first.name ?? String(first.actorID.prefix(12)))")
                            }
                            delivered = until
                        }
                    }
                } catch {
                    continuation.finish(throwing: error)
                }
            }
        }
    }

    // MARK: Timers

    /// Resync every `resyncInterval`, DHCP leases when due, and retries of a
    /// failed full pass with capped backoff; one sleep for all of them.
    func runTimers() async {
        while !Task.isCancelled {
            let now = ExchangeClock.now()
            let (lastFull, retry) = counters.withLock { ($0.lastFullAt, $0.fullRetry) }
            var wake = lastFull + options.resyncInterval
            if let retry { wake = min(wake, retry) }
            var leaseDue = false
            if let next = index.nextLeaseWake() {
                let seconds = Double(next.secondsSinceEpoch - HostEnvironment.now().secondsSinceEpoch)
                if seconds <= 0 { leaseDue = true } else { wake = min(wake, now + seconds) }
            }
            if let handled = index.lastEventNano(), handled > counters.withLock({ $0.persistedEventNano }),
               now - counters.withLock({ $0.persistedAt }) >= 5 {
                counters.withLock { $0.persistedEventNano = handled; $0.persistedAt = now }
                await queue.submit(.persistEventTime)
            }
            if leaseDue {
                await queue.submit(.leases)
                wake = min(wake, now + 1)
            } else if wake <= now {
                await submitFull(retry.map { $0 <= now } == true ? "retry" : "resync")
                counters.withLock { $0.fullRetry = nil; $0.lastFullAt = now }
                continue
            }
            try? await Task.sleep(nanoseconds: UInt64(max(0.05, min(wake - now, 5)) * 1e9))
        }
    }

    // MARK: Work

    /// Queues a full pass; `trigger` is what its metrics and status name.
    private func submitFull(_ trigger: String) async {
        fullTrigger.withLock { $0 = $0 ?? trigger }
        await queue.submit(.full)
    }

    func perform(_ work: Work, confirmLeasesLater: Bool = false) async {
        working.withLock { $0 = ExchangeClock.now() }
        await onWorker { self.performNow(work, confirmLeasesLater: confirmLeasesLater) }
        working.withLock { $0 = nil }
        updateStatus()
    }

    /// While one piece of work runs (a DISCOVER of a new lease, a wait for the
    /// lock), the working loop cannot ping the watchdog: this does, every
    /// half interval, for as long as the work is within `workBudget`. Work
    /// stuck past it stops the pings, and systemd restarts the daemon.
    func feedWatchdogWhileWorking() async {
        guard let interval = hooks.watchdogInterval else { return }
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: UInt64(interval / 2 * 1e9))
            if let since = working.withLock({ $0 }), ExchangeClock.now() - since < options.workBudget { hooks.watchdog() }
        }
    }

    private func performNow(_ work: Work, confirmLeasesLater: Bool = false) {
        let reconcile = Reconcile(environment: environment, logger: logger)
        do {
            switch work {
            case .full:
                let trigger = fullTrigger.withLock { t in defer { t = nil }; return t ?? "resync" }
                let started = ExchangeClock.now()
                declare(replacingRefusals: true) { () throws(Failure) in try Declare(environment: environment, logger: logger).run(dryRun: false) }
                let report: ReconcileReport
                do { report = try reconcile.run(dryRun: false, confirmLeasesLater: confirmLeasesLater) } catch {
                    var unreachable = false
                    if case .unreachable = error { unreachable = true }
                    metrics.reconcile(trigger: trigger, result: unreachable ? "unreachable" : "failed", seconds: ExchangeClock.now() - started)
                    throw error
                }
                let recorded = report.state.engine
                knownEngine.withLock { $0 = report.engine.flatMap { $0.isUsable && $0 == recorded ? $0 : nil } }
                let (repaired, collected) = log(report)
                let seconds = ExchangeClock.now() - started
                metrics.reconcile(trigger: trigger, result: Self.result(of: report), seconds: seconds)
                metrics.fullPassEnded(at: Double(wallClockNanoseconds()) / 1e9)
                metrics.source("ovsdb", up: report.ovsdbReachable)
                if counters.withLock({ $0.docker }) == "connecting" || report.dockerUnreachable != nil {
                    // Before the event stream is followed, what the pass found is what is known.
                    counters.withLock { $0.docker = report.dockerUnreachable == nil ? "reachable" : "unreachable" }
                    metrics.source("docker", up: report.dockerUnreachable == nil)
                }
                publisher.update {
                    $0.lastFullPass = DaemonStatus.Pass(trigger: trigger, endedAt: HostEnvironment.now(), seconds: seconds,
                                                        actions: report.plan.actions.count, repairs: repaired, collected: collected,
                                                        failed: report.failed.count, unreachable: report.unreachable)
                    $0.engine = report.engine.map { "\($0)" } ?? $0.engine
                }
                logger.info("full reconcile: \(report.plan.actions.count) actions (\(report.timings.summary))")
                counters.withLock { c in
                    c.lastFullAt = ExchangeClock.now()
                    if report.unreachable {
                        c.fullFailures += 1
                        c.fullRetry = c.lastFullAt + min(options.maxBackoff, 0.5 * Double(1 << min(c.fullFailures, 10)))
                    } else {
                        c.fullFailures = 0
                        c.fullRetry = nil
                    }
                }
                counters.withLock { $0.ovsdb = report.ovsdbReachable ? "connected" : "unreachable" }
                // The plugin's records Docker will never delete (a reboot, a network removed meanwhile).
                if !report.unreachable {
                    var unjoined = unjoinedEndpoints.withLock { $0 }
                    let endpoints = try SweepEndpoints(environment: environment, logger: logger).run(inherited: options.inheritedEndpoints, unjoined: &unjoined)
                    unjoinedEndpoints.withLock { $0 = unjoined }
                    for action in endpoints {
                        switch action {
                        case .removeEndpoint: metrics.collected(reason: "endpoint-stale")
                        case .removeNetwork: metrics.collected(reason: "network-removed")
                        case .addPort: metrics.repaired(reason: "endpoint-port-missing")
                        }
                    }
                    for action in try SweepCNI(environment: environment, logger: logger).run() {
                        switch action {
                        case .removeDeadPort: metrics.collected(reason: "cni-port-dead")
                        case .addPort: metrics.repaired(reason: "cni-port-missing")
                        }
                    }
                }
                if report.unreachable {
                    logger.warning("a source is unreachable: nothing removed; retrying with backoff")
                }
            case .persistEventTime:
                if let nano = index.lastEventNano() { try recordLastEvent(nano) }
            case .container(let id, let nano):
                repair([ContainerEvent(id: id, down: false, nano: nano)], reconcile: reconcile)
            case .containerDown(let id, let nano):
                repair([ContainerEvent(id: id, down: true, nano: nano)], reconcile: reconcile)
            case .containers(let events):
                repair(events, reconcile: reconcile)
            case .idle:
                break
            case .leases:
                for outcome in try RenewEndpointLeases(environment: environment, logger: logger).run() {
                    let e = outcome.endpoint
                    if let error = outcome.error { logger.warning("lease of endpoint \(e.shortID) (\(outcome.due)): \(error)") } else {
                        logger.info("lease of endpoint \(e.shortID) (\(outcome.due)): \(e.lease.map { "\($0.address) until \($0.expiresAt)" } ?? "-")")
                    }
                }
                let cniLeases = CNILeases(environment: environment, logger: logger)
                for outcome in try cniLeases.renew() {
                    let a = outcome.attachment
                    if let error = outcome.error { logger.warning("lease of CNI \(a.key) (\(outcome.due)): \(error)") } else {
                        logger.info("lease of CNI \(a.key) (\(outcome.due)): \(a.lease.map { "\($0.address) until \($0.expiresAt)" } ?? "-")")
                    }
                }
                for outcome in try cniLeases.releaseUnclaimed() {
                    let k = outcome.lease
                    if outcome.error == nil { metrics.collected(reason: "cni-lease-unclaimed") }
                    if let error = outcome.error { logger.warning("CNI \(k.network): DHCPRELEASE of \(k.lease.address) (MAC \(k.mac)) not sent: \(error)") }
                    else if !outcome.confirmed { logger.warning("CNI \(k.network): DHCPRELEASE of \(k.lease.address) sent, but the server did not confirm it") }
                }
                for outcome in try RenewLeases(environment: environment, logger: logger).run(all: false) {
                    let a = outcome.attachment
                    if let error = outcome.error {
                        logger.warning("lease of \(a.containerName) \(a.ifname) (\(outcome.due)): \(error)")
                    } else {
                        logger.info("lease of \(a.containerName) \(a.ifname) (\(outcome.due)): \(a.lease.map { "\($0.address) until \($0.expiresAt)" } ?? "-")")
                    }
                }
            }
        } catch {
            logger.error("\(error)")
        }
    }

    /// The kept OVSDB connection, opened again when it was lost.
    private func connection() -> VSwitchClient? {
        if vswitch == nil { vswitch = try? VSwitchClient(socketPath: environment.ovsdbSocket) }
        return vswitch
    }

    private func dropConnection() {
        vswitch?.close()
        vswitch = nil
    }

    /// The journal lines and the counts of a pass: (repairs, collections) that succeeded.
    @discardableResult
    private func log(_ report: ReconcileReport) -> (Int, Int) {
        for result in report.results ?? [] {
            if let error = result.error {
                logger.error("\(result.action.summary): failed: \(error)")
            } else {
                logger.notice("\(result.action.summary)")
            }
        }
        let done = report.results?.filter { $0.error == nil } ?? []
        let collected = done.filter { DaemonMetrics.effect(of: $0.action) == .collection }.count
        let repaired = done.filter { DaemonMetrics.effect(of: $0.action) == .repair }.count
        metrics.actions(report.results ?? [])
        publisher.update { $0.repairsSinceStart += repaired; $0.collectedSinceStart += collected }
        for notice in report.plan.notices where notice.severity == .error { logger.warning("\(notice.message)") }
        return (repaired, collected)
    }

    /// ok, failed (an action failed), unreachable (Docker or OVSDB: nothing removed).
    static func result(of report: ReconcileReport) -> String {
        report.unreachable ? "unreachable" : report.failed.isEmpty ? "ok" : "failed"
    }

    /// A `die`, and even a `destroy`, often comes before the kernel has torn
    /// the container's namespace down, so its veth still exists and its OVS
    /// row (and, removed, its record) stays (rule 5: a live veth has a live
    /// peer). Such a container is looked at again with the same event every
    /// half second, at most 20 times; the resync catches the rest. (Looking
    /// again after a `destroy` as if it were the `die` would never ask Docker,
    /// and the record would stay down until the resync.)
    private func lookAgainAfterTeardown(_ events: [ContainerEvent], report: ReconcileReport) {
        let again = events.filter { report.plan.awaitingTeardown.contains($0.id) }
        let due = teardownLooks.withLock { looks in
            for e in events where !again.contains(where: { $0.id == e.id }) { looks[e.id] = nil }
            return again.filter { e in
                let n = looks[e.id, default: 0]
                looks[e.id] = n + 1
                return n < 20
            }
        }
        for event in due {
            Task {
                try? await Task.sleep(nanoseconds: 500_000_000)
                await self.queue.submit(event.down ? .containerDown(event.id, eventNano: event.nano) : .container(event.id, eventNano: event.nano))
            }
        }
    }

    /// Writes the intents of what containers declare with their labels (the
    /// pass that follows makes them); refused labels go to the journal as one
    /// warning per container.
    private func declare(replacingRefusals: Bool = false, _ body: () throws(Failure) -> Declare.Outcome) {
        let outcome: Declare.Outcome
        do { outcome = try body() } catch {
            logger.warning("labels not read: \(error); declared attachments wait for the next pass")
            return
        }
        // A full pass lists every running container: its refusals are all there are.
        refused.withLock { known in
            if replacingRefusals { known = [:] }
            for r in outcome.refused {
                known[r.container.id] = DaemonStatus.Refusal(container: r.container.name, problems: r.problems.map(\.description))
            }
        }
        for line in outcome.progress { logger.notice("\(line)") }
        let new = warned.withLock { seen in
            outcome.refused.filter { seen.insert($0.container.id).inserted }
        }
        guard !new.isEmpty else { return }
        let entries = new.map { Declare.Outcome.refusal($0.container, $0.problems) }
        // One warning each: the journal entry, or without journald the log line.
        if environment.audit.enabled { environment.audit.record(entries) } else { for entry in entries { logger.warning("\(entry.message)") } }
    }

    /// The event time goes into the state file so that a restarted daemon
    /// resumes the stream from there.
    private func recordLastEvent(_ nano: Int64) throws(Failure) {
        try environment.updateRecords(logger: logger) { state in
            if (state.lastEventNano ?? 0) < nano { state.lastEventNano = nano }
        }
    }

    /// One pass over the containers of a batch of events. A stopped one
    /// (`die`, `stop`) is not asked about (asking Docker between a `die` and
    /// the next `start` blocks until the start is done): the planner records
    /// it as down and unplugs the OVS rows whose veth went with its
    /// namespace, so that the next `start` adds the port in one step. A stale
    /// `die` (replayed after a restart of the daemon) names a process that
    /// still runs: that container is inspected as usual.
    private func repair(_ events: [ContainerEvent], reconcile: Reconcile) {
        let ids = Set(events.map(\.id))
        let stopped = Set(events.filter(\.down).map(\.id))
        let started = declaring.withLock { pending in
            let mine = ids.subtracting(stopped).intersection(pending)
            pending.subtract(ids)
            return mine
        }
        if !started.isEmpty {
            let engine = knownEngine.withLock { $0 }
            declare { () throws(Failure) in
                try Declare(environment: environment, logger: logger).run(containerIDs: started.sorted(), dryRun: false,
                                                                       knownEngine: engine, vswitch: connection())
            }
        }
        // A batch does not wait behind a container that a command holds (an
        // attach waiting for its DHCP server): the others are repaired first,
        // then that one alone, waiting for its claim.
        let wait = ids.count == 1
        let passStarted = ExchangeClock.now()
        do {
            var report = try reconcile.run(dryRun: false, scope: .containers(ids, stopped: stopped), verify: false, vswitch: connection(),
                                           waitForClaims: wait)
            if report.unreachable {
                // The kept connection may be the one that broke: once more with a new one.
                dropConnection()
                report = try reconcile.run(dryRun: false, scope: .containers(ids, stopped: stopped), verify: false, vswitch: connection(),
                                           waitForClaims: wait)
            }
            log(report)
            metrics.reconcile(trigger: "event", result: Self.result(of: report), seconds: ExchangeClock.now() - passStarted)
            lookAgainAfterTeardown(events, report: report)
            for event in events where ids.count > 1 && report.busy.contains(event.id) {
                logger.info("\(event.id.prefix(12)) is held by another netkeep: repaired after the batch, once it is free")
                repair([event], reconcile: reconcile)
            }
            if !report.plan.actions.isEmpty {
                logger.info("repair of \(ids.count == 1 ? String(ids.first!.prefix(12)) : "\(ids.count) containers") after the event\(ids.count == 1 ? "" : "s"): \(report.timings.summary)")
            }
        } catch {
            metrics.reconcile(trigger: "event", result: "failed", seconds: ExchangeClock.now() - passStarted)
            logger.error("\(error)")
        }
        for event in events { index.recordEvent(event.nano) }
    }

    /// STATUS=, the published status and the metrics, after each piece of
    /// work and each change of a source: on a thread of their own (reading
    /// the state file again takes milliseconds), so the next repair does not
    /// wait; requests that come while one is under way are one more round.
    private func updateStatus() {
        guard publishRequested.withLock({ requested in defer { requested = true }; return !requested }) else { return }
        publishQueue.async {
            self.publishRequested.withLock { $0 = false }
            self.hooks.status(self.statusLine())
            self.publish()
        }
    }

    /// Waits for a round under way (at shutdown, before the last one).
    private func drainPublications() { publishQueue.sync {} }

    /// Counts from the state file as it is now (not a cached view of it),
    /// so the line sent right after the first pass counts what it repaired.
    func statusLine(_ prefix: String? = nil) -> String {
        let (docker, ovsdb) = counters.withLock { ($0.docker, $0.ovsdb) }
        let repairs = publisher.current.repairsSinceStart
        guard let state = index.state() else {
            let line = "the state file \(environment.store.statePath) does not read; nothing is changed until it does"
            return prefix.map { "\($0): \(line)" } ?? line
        }
        var byStatus = state.countsByStatus
        let refusedCount = refused.withLock { $0.count }
        if refusedCount > 0 { byStatus["refused"] = refusedCount }
        let order = ["ready", "pending", "down", "retained", "removing", "refused"]
        let parts = order.compactMap { k in byStatus[k].map { "\($0) \(k)" } }
        let line = "\(state.recordCount) attachments\(parts.isEmpty ? "" : " (\(parts.joined(separator: ", ")))"), "
            + "\(repairs) repairs since start, Docker \(docker), OVSDB \(ovsdb)"
        return prefix.map { "\($0): \(line)" } ?? line
    }

    private func publish() {
        publishing.withLock { _ in
            let (docker, ovsdb) = counters.withLock { ($0.docker, $0.ovsdb) }
            let refusals = refused.withLock { Array($0.values) }.sorted { $0.container < $1.container }
            publisher.update {
                $0.docker = docker
                $0.ovsdb = ovsdb
                $0.refused = refusals
            }
            // A state file that does not read (changed by hand) leaves the gauges as they were.
            if let state = index.state() { metrics.attachments(in: state, refused: refusals.count) }
            publisher.publish(metricsText: options.metricsTextfile == nil ? nil : metrics.render())
        }
    }

    /// Runs blocking work on the worker thread.
    private func onWorker<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in worker.async { continuation.resume(returning: body()) } }
    }

    /// Blocking calls that must not wait behind the worker (connecting to Docker).
    private func onWorkerless<T: Sendable>(_ body: @escaping @Sendable () throws(DockerError) -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue(label: "netkeep.connect").async { continuation.resume(with: Result { () throws(DockerError) -> T in try body() }) }
        }
    }
}

/// Whether `task` ends within `seconds`; when the time runs out first, the
/// task goes on and this returns false at once (a task group would wait for it).
func finishes(_ task: Task<Void, Never>, within seconds: Double) async -> Bool {
    let waiter = OneAnswer()
    return await withCheckedContinuation { continuation in
        waiter.wait(continuation)
        Task { await task.value; waiter.answer(true) }
        Task { try? await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9)); waiter.answer(false) }
    }
}

/// The first answer resumes the waiter; later ones are dropped.
final class OneAnswer: Sendable {
    private let waiter = Mutex<CheckedContinuation<Bool, Never>?>(nil)
    func wait(_ continuation: CheckedContinuation<Bool, Never>) { waiter.withLock { $0 = continuation } }
    func answer(_ value: Bool) { waiter.withLock { $0.take() }?.resume(returning: value) }
}

/// The event stream delivered nothing although the engine had events.
struct StreamStalled: Error {
    let reason: String
}

func wallClockNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// Runs `body` and cancels it when graceful shutdown begins.
func untilGracefulShutdown(_ body: @escaping @Sendable () async -> Void) async {
    await cancelWhenGracefulShutdown { await body() }
}

enum ExchangeClock {
    static func now() -> Double { Double(monotonicNanoseconds()) / 1e9 }
}

func formatSeconds(_ s: Double) -> String { s < 1 ? "\(Int(s * 1000)) ms" : "\(Int(s)) s" }

/// Which containers have attachments and when the next lease is due, read
/// again only when the state file changes (a stat per event or timer tick:
/// decoding the file of 200 attachments costs about 14 ms).
final class AttachmentIndex: @unchecked Sendable {
    private let store: StateStore
    private let lock = Mutex<(key: [UInt64], ids: Set<String>, last: Int64?, leaseWake: Timestamp?, state: State?)>(([], [], nil, nil, nil))

    init(store: StateStore) { self.store = store }

    func contains(_ containerID: String) -> Bool { refresh().contains(containerID) }

    /// LeaseLifecycle.nextWake of the state file as it is now.
    func nextLeaseWake() -> Timestamp? {
        _ = refresh()
        return lock.withLock { $0.leaseWake }
    }

    /// The state file as it is now (nil when it does not read).
    func state() -> State? {
        _ = refresh()
        return lock.withLock { $0.state }
    }

    func lastEventNano() -> Int64? {
        _ = refresh()
        return lock.withLock { $0.last }
    }

    func recordEvent(_ nano: Int64) { lock.withLock { $0.last = max($0.last ?? 0, nano) } }

    private func refresh() -> Set<String> {
        var st = stat()
        let key: [UInt64] = stat(store.statePath, &st) == 0
            ? [UInt64(st.st_ino), UInt64(st.st_size), UInt64(st.st_mtim.tv_sec), UInt64(st.st_mtim.tv_nsec)] : []
        if let ids = lock.withLock({ $0.key == key && !key.isEmpty ? $0.ids : nil }) { return ids }
        let state = try? store.load()
        let ids = Set(state?.attachments.map(\.containerID) ?? [])
        let leaseWake = state.flatMap { LeaseLifecycle.nextWake(in: $0) }
        lock.withLock {
            $0.key = key
            $0.ids = ids
            $0.leaseWake = leaseWake
            $0.state = state
            if let last = state?.lastEventNano { $0.last = max($0.last ?? 0, last) }
        }
        return ids
    }
}
