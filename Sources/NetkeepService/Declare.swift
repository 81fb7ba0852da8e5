import DockerEngine
import Logging
import NetkeepCore
import NetkeepState
import OVSDB

/// The attachments that containers declare with their labels
/// (`netkeep.<ifname>.bridge`, `.ip`, ...): a thin intent writer in front of
/// the planner, as `netkeep attach` is. For every declared interface without
/// a record it runs attach's own checks and writes attach's own pending
/// record, marked as declared by labels; the pass that follows (the daemon's,
/// or `netkeep reconcile`'s) makes it. A container with one bad label is
/// left alone, and said so.
public struct Declare {
    public let environment: HostEnvironment
    public let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    public struct Outcome: Sendable {
        /// Recorded as pending (with `dryRun`: what would be).
        public var declared: [Attachment] = []
        /// Containers whose labels are refused: nothing of theirs is attached.
        public var refused: [(container: Container, problems: [LabelProblem])] = []
        /// Declared interfaces that attach's checks refused, with why.
        public var failed: [(container: Container, ifname: String, error: String)] = []
        /// Containers another netkeep was changing: declared at the next pass.
        public var busy: [Container] = []

        public var isEmpty: Bool { declared.isEmpty && refused.isEmpty && failed.isEmpty && busy.isEmpty }
    }

    /// Every running container that declares something (one `GET
    /// /containers/json`, which carries the labels).
    public func run(dryRun: Bool) throws(Failure) -> Outcome {
        let listed: [Container]
        do { listed = try environment.adapters.docker.list() } catch { throw Failure.component("docker", error) }
        let state = try environment.loadState()
        var refused: [(container: Container, problems: [LabelProblem])] = []
        var missing: [String] = []
        for c in listed where c.running {
            switch c.declaration(for: environment.instance) {
            case .nothing: continue
            case .refused(let problems): refused.append((c, problems))
            case .interfaces(let requests):
                if requests.contains(where: { state.attachment(containerID: c.id, ifname: $0.ifname) == nil }) { missing.append(c.id) }
            }
        }
        // The list has no PIDs: only a container with something to declare is looked at closely.
        var outcome = try run(containerIDs: missing, dryRun: dryRun)
        outcome.refused += refused
        return outcome
    }

    /// The declarations of these containers (a container gone meanwhile
    /// declares nothing). `knownEngine`, `vswitch`: see `Attach.check`.
    public func run(containerIDs: [String], dryRun: Bool, knownEngine: EngineIdentity? = nil,
                    vswitch: (any VSwitchAccess)? = nil) throws(Failure) -> Outcome {
        var inspected: [Container] = []
        for id in containerIDs {
            do { inspected.append(try environment.adapters.docker.inspect(id)) } catch {
                if case .noSuchContainer = error { continue }
                throw Failure.component("docker", error)
            }
        }
        return inspected.isEmpty ? Outcome() : try run(inspected, dryRun: dryRun, knownEngine: knownEngine, vswitch: vswitch)
    }

    /// The declarations of these containers, as Docker just described them.
    public func run(_ containers: [Container], dryRun: Bool, knownEngine: EngineIdentity? = nil,
                    vswitch: (any VSwitchAccess)? = nil) throws(Failure) -> Outcome {
        var outcome = Outcome()
        let state = try environment.loadState()
        let attach = Attach(environment: environment, logger: logger)
        var intents: [Attachment] = []
        var requested: [String: MACAddress?] = [:]
        var stopped = Set<String>()
        var engine: EngineIdentity?
        for container in containers where container.running && container.pid > 0 {
            switch container.declaration(for: environment.instance) {
            case .nothing:
                continue
            case .refused(let problems):
                outcome.refused.append((container, problems))
            case .interfaces(let requests):
                // All of a container's missing interfaces pass the checks, or none is declared.
                var mine: [(Attachment, MACAddress?, State)] = []
                var failed: [(container: Container, ifname: String, error: String)] = []
                for request in requests where state.attachment(containerID: container.id, ifname: request.ifname) == nil {
                    let context = "labels of \(container.name) \(request.ifname)"
                    do {
                        let checked: Attach.Checked
                        do {
                            checked = try attach.check(request, context: context, inspected: container, knownEngine: knownEngine, vswitch: vswitch)
                        } catch where vswitch != nil {
                            // The kept connection may be the one that broke: once more with a new one.
                            checked = try attach.check(request, context: context, inspected: container, knownEngine: knownEngine)
                        }
                        if let found = checked.engine, found.isUsable { engine = found }
                        mine.append((Attach.intent(request, checked: checked, now: environment.now()), request.mac, checked.state))
                    } catch {
                        failed.append((container, request.ifname, "\(error)"))
                    }
                }
                guard failed.isEmpty else {
                    let others = mine.map(\.0.ifname)
                    outcome.failed += failed.map { f in
                        (f.container, f.ifname, f.error + (others.isEmpty ? "" : "; so \(others.joined(separator: ", ")) wait\(others.count == 1 ? "s" : "") too"))
                    }
                    continue
                }
                for (intent, mac, checkedState) in mine {
                    intents.append(intent)
                    requested[intent.id] = mac
                    stopped.formUnion(attach.stoppedPredecessors(of: intent, in: checkedState))
                }
            }
        }
        guard !dryRun, !intents.isEmpty else {
            outcome.declared = intents
            return outcome
        }
        // Claimed while the intents are written: a container another netkeep
        // is changing is left for the next pass.
        let claims = try environment.claims()
        defer { claims.release() }
        let busy = try Reconcile.claimFree(Set(intents.map(\.containerID)), in: claims)
        outcome.busy = containers.filter { busy.contains($0.id) }
        let mine = intents.filter { !busy.contains($0.containerID) }
        guard !mine.isEmpty else { return outcome }
        try environment.updateRecords(logger: logger) { (state: inout State) throws(Failure) in
            if let engine {
                try Attach.refuseOtherEngine(engine, recorded: state.engine, context: "labels")
                state.engine = engine
            }
            for intent in mine where state.attachment(containerID: intent.containerID, ifname: intent.ifname) == nil {
                var a = intent
                Attach.takeOver(&a, requestedMAC: requested[a.id] ?? nil, in: &state, stopped: stopped, claims: claims, now: environment.now())
                state.upsert(a)
                outcome.declared.append(a)
            }
        }
        return outcome
    }
}

extension Declare.Outcome {
    /// One line per declaration, refusal and failure, for `reconcile`.
    public var lines: [String] { progress + refused.map { Self.refusal($0.container, $0.problems).message } }

    /// The lines of what was (or could not be) declared, refusals aside: the
    /// daemon logs these at every pass, a refusal once, as its journal entry.
    public var progress: [String] {
        declared.map { "declare: \($0.containerName) \($0.ifname) on \($0.bridge) (\($0.mode == .dhcp ? "dhcp" : $0.address?.description ?? "-")), as its labels say\($0.recreatedFrom.map { "; recreated from \($0.prefix(12)), its MAC kept" } ?? "")" }
            + failed.map { "not declared: \($0.error)" }
            + busy.map { "later: \($0.name) is being changed by another netkeep" }
    }

    static func refusal(_ container: Container, _ problems: [LabelProblem]) -> AuditEvent {
        AuditEvent.labelsRefused(containerID: container.id, containerName: container.name, problems: problems)
    }
}
