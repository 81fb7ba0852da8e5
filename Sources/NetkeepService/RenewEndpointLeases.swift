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

    public func run() throws(Failure) -> [Outcome] {
        let now = environment.now()
        let due = LeaseLifecycle.dueEndpoints(in: try environment.loadState(), at: now)
        return due.map { endpoint, when in
            var e = endpoint
            var failure: String?
            do throws(PluginError) {
                try renew(&e, due: when, now: now)
            } catch {
                failure = error.message
                if var lease = e.lease { lease = LeaseLifecycle.afterAttempt(lease, at: now); e.lease = lease }
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
            if failure == nil, let lease = e.lease {
                environment.audit.record(AuditEvent(kind: endpoint.lease?.address == lease.address ? .leaseRenewed : .leaseChanged,
                                                    message: "endpoint \(e.shortID): DHCP lease of \(lease.address) \(when == .expired ? "obtained again" : "renewed") until \(lease.expiresAt)",
                                                    port: e.hostIfname, bridge: e.bridge, ip: lease.address.description))
            }
            return Outcome(endpoint: e, due: when, error: failure)
        }
    }

    private func renew(_ e: inout Endpoint, due: LeaseLifecycle.Due, now: Timestamp) throws(PluginError) {
        guard let key = e.sandboxKey, Endpoint.isSandboxKey(key), let lease = e.lease else {
            throw PluginError("endpoint \(e.shortID): no sandbox or lease recorded")
        }
        let renewed: Lease
        do {
            // Docker renamed the interface eth<N>: it is found by its MAC.
            renewed = try SandboxDHCP.renew(lease, due: due, namespacePath: key, ifname: nil, mac: e.mac, bridge: e.bridge, now: now)
        } catch {
            throw PluginError("endpoint \(e.shortID): \(error)")
        }
        if renewed.address != lease.address {
            // Docker's own record keeps the first.
            logger.warning("endpoint \(e.shortID): the DHCP server changed its address \(lease.address) -> \(renewed.address)")
        }
        e.lease = renewed
        e.address = renewed.address
        e.gateway = renewed.router
    }
}
