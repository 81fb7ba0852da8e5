#if canImport(Glibc)
import Glibc
#endif
import DockerEngine
import Logging
import NetkeepCore
import NetkeepState
import Netlink
import OVSDB

/// `netkeep attach`: checks everything first, then claims the container,
/// records the attachment as pending (the intent) and runs one pass of the
/// planner scoped to the container, which makes it (the same steps as any
/// repair). A failed pass is undone the same way: the record is marked
/// `removing` and one more pass removes what was made. A crash leaves the
/// pending record, which the next pass finishes.
public struct Attach {
    public let environment: HostEnvironment
    public let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    public func run(_ request: AttachRequest) throws(Failure) -> Attachment {
        let context = "attach \(request.container) \(request.ifname)"
        let checked = try check(request, context: context)
        let container = checked.container
        var attachment = Self.intent(request, checked: checked, now: environment.now())
        let stopped = stoppedPredecessors(of: attachment, in: checked.state)

        // From here to the end this is the only netkeep changing the container.
        let claims = try environment.claims()
        defer { claims.release() }
        try environment.claim([container.id], in: claims, logger: logger)

        // Intent first, checked again against the records as they are now:
        // of two attaches of the same interface, the second finds the first's.
        try environment.updateRecords(logger: logger) { (state: inout State) throws(Failure) in
            try Self.refuseTaken(request, of: container, in: state, context: context)
            // The records are made with one engine; another one on the socket is not mixed in.
            if let engine = checked.engine, engine.isUsable {
                try Self.refuseOtherEngine(engine, recorded: state.engine, context: context)
                state.engine = engine
            }
            Self.takeOver(&attachment, requestedMAC: request.mac, in: &state, stopped: stopped, claims: claims, now: environment.now())
            state.upsert(attachment)
        }
        FaultPoint.attachPendingWritten.check()

        let reconcile = Reconcile(environment: environment, logger: logger)
        let report: ReconcileReport
        do { report = try reconcile.run(dryRun: false, scope: .container(container.id), verify: false, claims: claims, audit: false) } catch {
            // Reported as failed: it must not be finished by a later pass.
            undo(attachment, claims: claims, context: context)
            throw error
        }
        let made = report.state.attachments.first { $0.id == attachment.id }
        let errors = report.errors(of: attachment.id)
        if let made, made.status == .ready, errors.isEmpty {
            record(made)
            return made
        }
        let cause = Self.cause(errors, plan: report.plan, bridge: checked.bridge)
        undo(attachment, claims: claims, context: context)
        throw Failure.failed("\(context): \(cause)")
    }

    /// The pending record of a checked request. An interface that the
    /// container's labels declare is recorded as theirs (a `netkeep attach`
    /// that agrees with them is let through, see `check`).
    static func intent(_ request: AttachRequest, checked: Checked, now: Timestamp) -> Attachment {
        let container = checked.container
        var generator = SystemRandomNumberGenerator()
        var attachment = Attachment(
            containerID: container.id, containerName: container.name, ifname: request.ifname, bridge: checked.bridge,
            mac: request.mac ?? MACAddress.randomLocal(using: &generator), mtu: request.mtu, vlan: request.vlan,
            mode: request.dhcp ? .dhcp : .static, address: request.address, gateway: request.gateway, netnsLink: container.name,
            status: .pending, createdAt: now)
        if checked.declared { attachment.declaredBy = .labels }
        return attachment
    }

    /// The containers of records this attachment could take over (see
    /// `Recreate`) that Docker says are stopped or gone; `state`: the records
    /// the checks read (the choice is made again under the lock).
    func stoppedPredecessors(of intent: Attachment, in state: State) -> Set<String> {
        var stopped = Set<String>()
        for candidate in Recreate.candidates(for: intent, in: state) {
            do {
                let c = try environment.adapters.docker.inspect(candidate.containerID)
                if !c.running { stopped.insert(candidate.containerID) }
            } catch {
                if case .noSuchContainer = error { stopped.insert(candidate.containerID) }
            }
        }
        return stopped
    }

    /// Under the state lock: a container recreated under its predecessor's
    /// name takes its MAC and lease, when that predecessor's container can
    /// be claimed (no other pass is changing it).
    static func takeOver(_ intent: inout Attachment, requestedMAC: MACAddress?, in state: inout State, stopped: Set<String>,
                         claims: ContainerClaims, now: Timestamp) {
        guard let donor = Recreate.donor(for: intent, requestedMAC: requestedMAC, in: state, stopped: stopped, now: now),
              (try? claims.tryClaim(donor.containerID)) == true else { return }
        let (taken, left) = Recreate.inherit(intent, from: donor, now: now)
        intent = taken
        if let left { state.upsert(left) } else { state.remove(id: donor.id) }
    }

    /// What makes the attach fail, for the person who asked for it.
    static func cause(_ errors: [(Action, String)], plan: Plan, bridge: String) -> String {
        if let (action, error) = errors.first {
            if case .obtainLease = action { return "no lease on bridge \(bridge): \(error)" }
            return "\(action.summary): \(error)"
        }
        if let notice = plan.notices.first(where: { $0.severity == .error }) { return notice.message }
        return "the attachment was not made (the container stopped meanwhile?)"
    }

    /// The failed attach goes: marked `removing`, then one pass removes what
    /// was made (and gives back a lease it got). What that pass cannot
    /// remove, the next one does: a failed attach is never finished.
    private func undo(_ attachment: Attachment, claims: ContainerClaims, context: String) {
        do {
            try environment.updateRecords(logger: logger) { state in
                guard var a = state.attachments.first(where: { $0.id == attachment.id }) else { return }
                a.status = .removing
                state.upsert(a)
            }
        } catch {
            logger.critical("\(context): the failed attach could not be marked for removal (\(error)); its record stays pending: run `netkeep detach \(attachment.containerName) \(attachment.ifname)`")
            return
        }
        do {
            let report = try Reconcile(environment: environment, logger: logger)
                .run(dryRun: false, scope: .container(attachment.containerID), verify: false, claims: claims, audit: false)
            if report.state.attachments.contains(where: { $0.id == attachment.id }) {
                logger.error("\(context): undo not finished (\(report.failed.map { "\($0.action.summary): \($0.error ?? "")" }.joined(separator: "; "))); the next reconcile removes the rest")
            }
        } catch {
            logger.error("\(context): undo not finished: \(error); the next reconcile removes the rest")
        }
    }

    private func record(_ attachment: Attachment) {
        var events = [AuditEvent(kind: .create, message: "\(attachment.containerName) \(attachment.ifname): attached to \(attachment.bridge) as \(attachment.hostIfname) (mac \(attachment.mac), \(attachment.address.map(\.description) ?? "no address"))\(AuditEvent.recreated(attachment))",
                                 reason: attachment.recreatedFrom == nil ? nil : "recreated", attachment: attachment)]
        if let lease = attachment.lease {
            events.append(AuditEvent(kind: .leaseObtained, message: "\(attachment.containerName) \(attachment.ifname): DHCP lease of \(lease.address) from \(lease.serverID) until \(lease.expiresAt)",
                                     attachment: attachment, ip: lease.address.description))
        }
        environment.audit.record(events)
    }

    /// Checked before the claim and again under the lock: the second of two attaches finds the first's record.
    static func refuseTaken(_ request: AttachRequest, of container: Container, in state: State, context: String) throws(Failure) {
        if let existing = state.attachment(containerID: container.id, ifname: request.ifname) {
            throw Failure.badInput("\(context): container \(container.name) already has \(request.ifname) attached to \(existing.bridge) (\(existing.status.rawValue)); detach it first")
        }
    }

    static func refuseOtherEngine(_ engine: EngineIdentity, recorded: EngineIdentity?, context: String) throws(Failure) {
        if let recorded, engine != recorded {
            throw Failure.badInput("\(context): the Docker socket answers for engine \(engine), not \(recorded) that the records were made with; run `netkeep accept-engine` if the engine really changed")
        }
    }

    struct Checked {
        var container: Container
        var bridge: String
        var engine: EngineIdentity?
        /// The container's labels declare this interface, as the request has it.
        var declared = false
        /// The records as the checks read them.
        var state: State
    }

    /// Every check, before anything is changed or locked. `inspected`: the
    /// container as Docker just described it (a declaration by labels), else
    /// it is asked for. The daemon passes what it already holds: the engine
    /// identity its passes checked (`knownEngine`, else `GET /info` is asked,
    /// 10 ms) and its OVSDB connection (`vswitch`, else one is opened).
    func check(_ request: AttachRequest, context: String, inspected: Container? = nil, knownEngine: EngineIdentity? = nil,
               vswitch shared: (any VSwitchAccess)? = nil) throws(Failure) -> Checked {
        let adapters = environment.adapters
        let container: Container
        if let inspected { container = inspected } else {
            do { container = try adapters.docker.inspect(request.container) } catch {
                if case .noSuchContainer = error { throw Failure.badInput("\(context): container \(quoted(request.container)) does not exist") }
                throw Failure.component(context, error)
            }
        }
        // Labels win: an interface the container declares is made as declared.
        var declared = false
        if case .interfaces(let requests) = container.declaration(for: environment.instance), let labelled = requests.first(where: { $0.ifname == request.ifname }) {
            let differences = inspected == nil ? labelled.differences(from: request) : []
            guard differences.isEmpty else {
                throw Failure.badInput("\(context): container \(container.name) declares \(request.ifname) with its labels, and labels win: \(differences.joined(separator: "; ")); attach it without options that differ, or let the daemon attach it")
            }
            declared = true
        }
        guard container.running, container.pid > 0 else {
            throw Failure.badInput("\(context): container \(container.name) is not running (\(container.status))")
        }
        do { _ = try Names.containerName(container.name) } catch { throw Failure.badInput("\(context): \(error)") }
        if let shared = container.sharedNamespace {
            throw Failure.badInput("\(context): container \(container.name) uses \(shared); netkeep attaches only containers with a network namespace of their own")
        }
        // Asked now, checked after the other checks, which hide its 11 ms.
        let docker = adapters.docker
        let engineLookup = knownEngine == nil ? Pending { try? docker.engine() } : nil
        let state = try environment.loadState()
        try Self.refuseTaken(request, of: container, in: state, context: context)
        let hostName = Names.hostInterface(containerID: container.id, ifname: request.ifname)
        let vswitch: any VSwitchAccess
        if let shared { vswitch = shared } else {
            do { vswitch = try adapters.openVSwitch() } catch { throw Failure.component("ovsdb", error) }
        }
        defer { if shared == nil { vswitch.close() } }
        let snapshot: VSwitchSnapshot
        do { snapshot = try vswitch.snapshot() } catch { throw Failure.component(context, error) }
        guard let bridge = snapshot.bridge(named: request.bridge) else {
            throw Failure.badInput("\(context): bridge \(quoted(request.bridge)) does not exist (ovsdb)")
        }
        if snapshot.port(named: hostName) != nil || snapshot.interface(named: hostName) != nil {
            throw Failure.badInput("\(context): OVS already has a port \(hostName), left by an interrupted attach; run `netkeep reconcile`")
        }
        do {
            let links = try adapters.namespaces.enter(pid: container.pid, expecting: adapters.namespaces.namespaceID(ofSandbox: container.sandboxKey))
            if try links.insideLink(named: request.ifname) != nil {
                throw Failure.badInput("\(context): interface \(request.ifname) already exists in container \(container.name)")
            }
            if request.gateway != nil, let route = try links.insideRoutes().first(where: \.isDefault) {
                throw Failure.badInput("\(context): container \(container.name) already has a default route\(route.gateway.map { " via \($0)" } ?? ""); attach without --gateway")
            }
            if try adapters.openHostLinks().link(named: hostName) != nil {
                throw Failure.badInput("\(context): host interface \(hostName) already exists, left by an interrupted attach; run `netkeep reconcile`")
            }
        } catch {
            throw Failure.component(context, error)
        }
        let engine = knownEngine ?? engineLookup?.value ?? nil
        if let engine, engine.isUsable { try Self.refuseOtherEngine(engine, recorded: state.engine, context: context) }
        return Checked(container: container, bridge: bridge.name, engine: engine, declared: declared, state: state)
    }
}

extension PortSpec {
    /// netkeep's own id plus the two ids `ovs-docker` uses, so that
    /// `ovs-docker del-port BRIDGE IF CONTAINER_ID` still finds the port.
    public static func forAttachment(_ attachment: Attachment) -> PortSpec {
        PortSpec(bridge: attachment.bridge, name: attachment.hostIfname, tag: attachment.vlan, interfaceExternalIDs: [
            "netkeep-attachment": attachment.id,
            "container_id": attachment.containerID,
            "container_iface": attachment.ifname,
        ])
    }
}
