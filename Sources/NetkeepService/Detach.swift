import DHCP
import DockerEngine
import Logging
import NetkeepCore
import NetkeepState
import Netlink
import OVSDB

/// `netkeep detach`: claims the container, records its attachments as
/// `removing` (the intent), then one pass of the planner scoped to the
/// container gives the lease back and removes the port, the veth, the netns
/// link and the record. Works when the container, the veth or the port is
/// already gone; a crash leaves the intent, which the next pass finishes.
public struct Detach {
    public let environment: HostEnvironment
    public let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    /// Returns the attachments that were removed.
    public func run(container reference: String, ifname: String?) throws(Failure) -> [Attachment] {
        let context = "detach \(reference)\(ifname.map { " \($0)" } ?? "")"
        // Docker names the container if it still exists; otherwise the record does.
        var container: Container?
        do { container = try environment.adapters.docker.inspect(reference) } catch {
            switch error {
            case .noSuchContainer: container = nil
            case .unreachable: logger.warning("\(context): \(error); detaching by the recorded name or id")
            default: throw Failure.component(context, error)
            }
        }
        func targets(in state: State) throws(Failure) -> [Attachment] {
            var targets = state.attachments.filter { a in
                container.map { a.containerID == $0.id } ?? a.matchesContainer(reference)
            }
            if targets.isEmpty, container != nil {
                targets = state.attachments.filter { $0.matchesContainer(reference) }
            }
            if let ifname { targets = targets.filter { $0.ifname == ifname } }
            guard !targets.isEmpty else {
                throw Failure.badInput("\(context): container \(quoted(reference)) has no attachment\(ifname.map { " named \($0)" } ?? "")")
            }
            guard Set(targets.map(\.containerID)).count == 1 else {
                throw Failure.badInput("\(context): \(quoted(reference)) matches attachments of \(Set(targets.map(\.containerID)).count) containers; use the full container id")
            }
            return targets
        }
        let containerID = try targets(in: environment.loadState())[0].containerID

        let claims = try environment.claims()
        defer { claims.release() }
        try environment.claim([containerID], in: claims, logger: logger)
        var marked: [Attachment] = []
        try environment.updateRecords(logger: logger) { (state: inout State) throws(Failure) in
            marked = try targets(in: state.only([containerID]))
            for var target in marked {
                target.status = .removing
                state.upsert(target)
            }
        }
        FaultPoint.detachMarked.check()

        let report = try Reconcile(environment: environment, logger: logger)
            .run(dryRun: false, scope: .container(containerID), verify: false, claims: claims, audit: false)
        for result in report.results ?? [] {
            guard case .releaseLease(let a, let pid, _) = result.action else { continue }
            if let error = result.error {
                logger.warning("\(context): \(a.ifname): \(error)")
            } else if pid != nil, let lease = a.lease {
                environment.audit.record(AuditEvent(kind: .leaseReleased, message: "\(a.containerName) \(a.ifname): DHCP lease of \(lease.address) released",
                                                    attachment: a, ip: lease.address.description))
            }
        }
        let left = marked.filter { a in report.state.attachments.contains { $0.id == a.id } }
        if !left.isEmpty {
            let errors = left.flatMap { report.errors(of: $0.id) }.map { "\($0.0.summary): \($0.1)" }
            let why = errors.first ?? report.plan.notices.first { $0.severity == .error }?.message ?? "the pass could not remove it"
            let failure = "\(context): \(left.map(\.ifname).joined(separator: ", ")) recorded as removing but not yet removed: \(why); `netkeep reconcile` finishes it"
            throw report.unreachable ? Failure.unreachable(failure) : Failure.failed(failure)
        }
        environment.audit.record(marked.map { a in
            AuditEvent(kind: .detach, message: "\(a.containerName) \(a.ifname): detached from \(a.bridge) (port and veth \(a.hostIfname) removed)", attachment: a)
        })
        return marked
    }
}
