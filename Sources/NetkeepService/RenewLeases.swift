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
        public var due: LeaseLifecycle.Due
        public var error: String?
    }

    /// `all`: every lease now, due or not (a renewal at T1 is harmless):
    /// written as the intent (T1 moved to now), then the same pass as any
    /// other, scoped to the containers whose leases are due. The lock is
    /// held only to read and write records, never across an exchange.
    public func run(all: Bool) throws(Failure) -> [Outcome] {
        let now = environment.now()
        var state = try environment.loadState()
        if all {
            state = try environment.updateRecords(logger: logger) { state in
                for var a in state.attachments where a.mode == .dhcp && a.status == .ready {
                    guard let lease = a.lease.flatMap({ LeaseLifecycle.dueNow($0, at: now) }) else { continue }
                    a.lease = lease
                    state.upsert(a)
                }
            }
        }
        let due = LeaseLifecycle.due(in: state, at: now)
        guard !due.isEmpty else { return [] }
        let report = try Reconcile(environment: environment, logger: logger)
            .run(dryRun: false, scope: .containers(Set(due.map(\.0.containerID))), verify: false)
        if let why = report.dockerUnreachable { throw Failure.unreachable("dhcp-renew: Docker unreachable (\(why))") }
        var outcomes: [Outcome] = []
        for result in report.results ?? [] {
            let when: LeaseLifecycle.Due
            switch result.action {
            case .renewLease(_, _, let d, _): when = d
            case .obtainLease(_, _, .leaseExpired): when = .expired
            default: continue
            }
            guard let a = result.action.attachment else { continue }
            let now = report.state.attachments.first { $0.id == a.id } ?? a
            outcomes.append(Outcome(attachment: now, due: when, error: result.error))
        }
        return outcomes
    }
}
