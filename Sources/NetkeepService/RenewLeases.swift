import DockerEngine
import DHCP
import Logging
import NetkeepCore

/// `netkeep dhcp-renew`: one pass of the lease timers. Renews at T1 (unicast
/// to the server), rebinds at T2 (broadcast), confirms addresses applied
/// without a server's answer, and starts over for expired leases.
public struct RenewLeases {
    public let environment: HostEnvironment
    public let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    public struct Outcome: Sendable {
        public var attachment: Attachment
        public var due: LeaseSchedule.Due
        public var error: String?
    }

    /// `all`: every lease now, due or not (a renewal at T1 is harmless).
    public func run(all: Bool) throws(Failure) -> [Outcome] {
        let lock = try environment.lockState(logger: logger)
        defer { lock.release() }
        var state = try environment.loadState()
        let now = HostEnvironment.now()
        var due = LeaseSchedule.due(in: state, at: now)
        if all {
            let planned = Set(due.map(\.0.id))
            due += state.attachments.filter { $0.mode == .dhcp && $0.status == .ready && $0.lease != nil && !planned.contains($0.id) }
                .map { ($0, LeaseSchedule.Due.renew) }
        }
        var jobs: [(LeaseKeeper.Job, LeaseSchedule.Due)] = []
        for (a, when) in due {
            let container: Container
            do { container = try environment.docker.inspect(a.containerID) } catch {
                if case .unreachable = error { throw Failure.unreachable("dhcp-renew: \(error)") }
                continue
            }
            guard container.running, let lease = a.lease else { continue }
            let goal: ClientMachine.Goal
            switch when {
            case .confirm: goal = .initReboot(lease.address.address)
            case .renew: goal = .renew(address: lease.address.address, server: lease.serverID)
            case .rebind: goal = .rebind(address: lease.address.address)
            case .expired: goal = .initReboot(lease.address.address)
            }
            jobs.append((LeaseKeeper.Job(attachment: a, pid: container.pid, goal: goal), when))
        }
        let results = LeaseKeeper(logger: logger).run(jobs.map(\.0), now: now)
        for result in results { state.upsert(result.attachment) }
        // Whatever is still due after this pass (no container, no answer) waits before the next try.
        var retried = false
        for (a, _) in due {
            guard var current = state.attachments.first(where: { $0.id == a.id }), let lease = current.lease else { continue }
            let after = LeaseSchedule.afterAttempt(lease, at: now)
            if after != lease { current.lease = after; state.upsert(current); retried = true }
        }
        var events: [AuditEvent] = []
        for ((job, _), result) in zip(jobs, results) {
            let a = result.attachment
            guard let before = job.attachment.lease, let after = a.lease else { continue }
            if after.address != before.address {
                events.append(AuditEvent(kind: .leaseChanged, message: "\(a.containerName) \(a.ifname): DHCP address changed from \(before.address) to \(after.address)",
                                         reason: "lease-refused", attachment: a, ip: after.address.description))
            } else if result.error != nil, !after.isValid(at: now) {
                events.append(AuditEvent(kind: .leaseExpired, message: "\(a.containerName) \(a.ifname): DHCP lease of \(after.address) expired; the address was removed",
                                         attachment: a, ip: after.address.description))
            } else if after.obtainedAt != before.obtainedAt {
                events.append(AuditEvent(kind: .leaseRenewed, message: "\(a.containerName) \(a.ifname): DHCP lease of \(after.address) renewed until \(after.expiresAt)",
                                         attachment: a, ip: after.address.description))
            }
        }
        environment.audit.record(events)
        if !results.isEmpty || retried { try environment.saveState(state) }
        return zip(jobs, results).map { Outcome(attachment: $1.attachment, due: $0.1, error: $1.error) }
    }
}
