import Logging
import NetkeepCore
import OVSDB

/// The daemon's part of netkeep-dhcp, CNI's built-in IPAM: it renews the
/// leases of live CNI attachments from inside the runtime's namespace, and
/// releases the leases that DEL kept for a client that did not come back in
/// time. The state lock is held only to read and to write results.
public struct CNILeases {
    let environment: HostEnvironment
    let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    public struct Renewal: Sendable {
        public var attachment: CNIAttachment
        public var due: LeaseLifecycle.Due
        public var error: String?
        /// Not renewed, and expired: the interface's address is no longer the client's.
        public var expired: Bool
    }

    /// RENEWING, REBINDING or INIT-REBOOT for every due lease (`all`: every
    /// valid one, written as the intent first, as RenewLeases does); a failed
    /// attempt waits (`LeaseLifecycle.afterAttempt`) instead of repeating at once.
    public func renew(all: Bool = false) throws(Failure) -> [Renewal] {
        let now = environment.now()
        var state = try environment.loadState()
        if all {
            state = try environment.updateRecords(logger: logger) { state in
                for var a in state.cni where a.status == .ready {
                    guard let lease = a.lease.flatMap({ LeaseLifecycle.dueNow($0, at: now) }) else { continue }
                    a.lease = lease
                    state.upsert(a)
                }
            }
        }
        return LeaseLifecycle.dueCNI(in: state, at: now).compactMap { record, due -> Renewal? in
            // A call of the runtime (ADD, DEL) holds the attachment: left to it.
            guard let held = try? environment.claims() else { return nil }
            defer { held.release() }
            guard (try? held.tryClaim(record.claimKey)) == true,
                  let current = try? environment.loadState().cniAttachment(network: record.network, containerID: record.containerID, ifname: record.ifname),
                  current.createdAt == record.createdAt, current.status == .ready, let lease = current.lease else { return nil }
            var a = current
            let renewal = SandboxDHCP.renew(lease, due: due, namespacePath: a.netns, ifname: a.ifname, mac: a.mac, bridge: a.bridge, now: now)
            if let renewed = renewal.lease, renewed.address != lease.address {
                logger.warning("CNI \(a.key): the DHCP server changed its address \(lease.address) -> \(renewed.address)")
            }
            a.lease = renewal.lease
            // What the interface carries: none once the lease is refused or has run out.
            if renewal.applied {
                let carried = renewal.lease.flatMap { $0.isValid(at: now) ? $0 : nil }
                a.addresses = carried.map { [$0.address] } ?? []
                a.gateway = carried?.router
            }
            let result = a
            do {
                _ = try environment.updateRecords(logger: logger) { state in
                    // Deleted meanwhile, or added again: the result is for nobody.
                    guard let current = state.cniAttachment(network: result.network, containerID: result.containerID, ifname: result.ifname),
                          current.status == .ready, current.createdAt == result.createdAt else { return }
                    state.upsert(result)
                }
            } catch {
                logger.warning("CNI \(a.key): lease not recorded: \(error)")
            }
            if renewal.problem == nil, let renewed = a.lease {
                environment.audit.record(AuditEvent(kind: renewed.address == lease.address ? .leaseRenewed : .leaseChanged,
                                                    message: "CNI \(a.key): DHCP lease of \(renewed.address) \(due == .expired ? "obtained again" : "renewed") until \(renewed.expiresAt)",
                                                    port: a.hostIfname, bridge: a.bridge, ip: renewed.address.description))
            } else if let problem = renewal.problem, renewal.lease.map({ !$0.isValid(at: now) }) ?? true {
                environment.audit.record(AuditEvent(kind: .leaseExpired, message: "CNI \(a.key): \(problem)", port: a.hostIfname, bridge: a.bridge,
                                                    ip: lease.address.description))
            }
            return Renewal(attachment: a, due: due, error: renewal.problem, expired: a.addresses.isEmpty)
        }
    }

    public struct Release: Sendable {
        public var lease: CNIKeptLease
        public var confirmed: Bool
        public var error: String?
    }

    /// Releases the kept leases whose time is up. They leave the state file
    /// first, under the lock, so that no ADD takes one while its RELEASE is
    /// on the way; one that could not be sent is not put back (the server's
    /// lease time ends it).
    public func releaseUnclaimed() throws(Failure) -> [Release] {
        let now = environment.now()
        var due: [CNIKeptLease] = []
        _ = try environment.updateRecords(logger: logger) { state in
            let (release, forget) = CNIRules.releases(in: state.cniLeases, now: now)
            due = release
            let gone = Set(release + forget)
            if !gone.isEmpty { state.cniLeases.removeAll { gone.contains($0) } }
        }
        guard !due.isEmpty else { return [] }
        // The release station speaks for a client whose namespace is gone: as one attachment each.
        let stand = due.map { k in
            var a = Attachment(containerID: "", containerName: "CNI \(k.network)", ifname: "eth0", bridge: k.bridge, mac: k.mac, mtu: 1500,
                               vlan: k.vlan, mode: .dhcp, address: k.lease.address, gateway: k.lease.router, netnsLink: nil,
                               status: .ready, createdAt: k.lease.obtainedAt)
            a.lease = k.lease
            return a
        }
        // Without OVSDB the station cannot plug in: every release says so.
        let client = try? environment.vswitch()
        let userspace = Set((try? client?.snapshot())?.bridges.filter(\.isUserspace).map(\.name) ?? [])
        defer { client?.close() }
        let outcomes = ReleaseStation(logger: logger, audit: environment.audit).release(stand, vswitch: client, userspaceBridges: userspace, now: now)
        // The station answers per bridge and VLAN, in its own order.
        let released = due.map { k in
            let o = outcomes.first { $0.attachment.mac == k.mac && $0.attachment.lease?.address == k.lease.address }
            return Release(lease: k, confirmed: o?.confirmed ?? false, error: o == nil ? "the release station did not report it" : o?.error)
        }
        environment.audit.record(released.filter { $0.error == nil }.map { r in
            AuditEvent(kind: .leaseReleased,
                       message: "CNI \(r.lease.network): DHCP lease of \(r.lease.lease.address) (MAC \(r.lease.mac)) released: no ADD took it back by \(r.lease.releaseAt)\(r.confirmed ? "" : ", not confirmed")",
                       reason: "cni-lease-unclaimed", bridge: r.lease.bridge, ip: r.lease.lease.address.description)
        })
        return released
    }
}
