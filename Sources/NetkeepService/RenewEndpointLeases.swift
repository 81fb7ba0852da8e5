import DHCP
import DockerPlugin
import Logging
import NetkeepCore
import Netlink

/// The lease timer for DHCP endpoints of netkeep's Docker networks: renews
/// (T1, unicast), rebinds (T2, broadcast) and, once expired, asks for the
/// address again, from inside the container's sandbox (its SandboxKey), on
/// the interface that carries the endpoint's MAC (Docker renamed it eth<N>).
/// The state lock is held only to write the result.
public struct RenewEndpointLeases {
    let environment: HostEnvironment
    let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    public struct Outcome: Sendable {
        public var endpoint: Endpoint
        public var due: LeaseLifecycle.Due
        public var error: String?
    }

    /// `all`: every valid lease now, due or not (`dhcp-renew --all`),
    /// written as the intent first, as for the other kinds.
    public func run(all: Bool = false) throws(Failure) -> [Outcome] {
        let now = environment.now()
        var state = try environment.loadState()
        if all {
            state = try environment.updateRecords(logger: logger) { state in
                for var e in state.endpoints where e.status == .joined {
                    guard let lease = e.lease.flatMap({ LeaseLifecycle.dueNow($0, at: now) }) else { continue }
                    e.lease = lease
                    state.upsert(e)
                }
            }
        }
        let due = LeaseLifecycle.dueEndpoints(in: state, at: now)
        return due.compactMap { endpoint, when -> Outcome? in
            // A request of Docker's (Leave, DeleteEndpoint) holds the endpoint: left to it.
            guard let held = try? environment.claims() else { return nil }
            defer { held.release() }
            guard (try? held.tryClaim(endpoint.claimKey)) == true,
                  let current = try? environment.loadState().endpoint(id: endpoint.id), current.status == .joined,
                  let key = current.sandboxKey, Endpoint.isSandboxKey(key), let lease = current.lease else { return nil }
            var e = current
            // Docker renamed the interface eth<N>: it is found by its MAC.
            let renewal = SandboxDHCP.renew(lease, due: when, namespacePath: key, ifname: nil, mac: e.mac, bridge: e.bridge, now: now)
            if let renewed = renewal.lease, renewed.address != lease.address {
                // Docker's own record keeps the first.
                logger.warning("endpoint \(e.shortID): the DHCP server changed its address \(lease.address) -> \(renewed.address)")
            }
            e.lease = renewal.lease
            if renewal.applied {
                let carried = renewal.lease.flatMap { $0.isValid(at: now) ? $0 : nil }
                e.address = carried?.address
                e.gateway = carried?.router
            }
            let result = e
            do {
                _ = try environment.updateRecords(logger: logger) { state in
                    // Deleted or left meanwhile: the result is for nobody.
                    guard let current = state.endpoint(id: result.id), current.status == .joined else { return }
                    state.upsert(result)
                }
            } catch {
                logger.warning("endpoint \(e.shortID): lease not recorded: \(error)")
            }
            if renewal.problem == nil, let lease = e.lease {
                environment.audit.record(AuditEvent(kind: endpoint.lease?.address == lease.address ? .leaseRenewed : .leaseChanged,
                                                    message: "endpoint \(e.shortID): DHCP lease of \(lease.address) \(when == .expired ? "obtained again" : "renewed") until \(lease.expiresAt)",
                                                    port: e.hostIfname, bridge: e.bridge, ip: lease.address.description))
            } else if let problem = renewal.problem, e.address == nil {
                environment.audit.record(AuditEvent(kind: .leaseExpired, message: "endpoint \(e.shortID): \(problem)", port: e.hostIfname, bridge: e.bridge,
                                                    ip: lease.address.description))
            }
            return Outcome(endpoint: e, due: when, error: renewal.problem)
        }
    }
}
