/// A DHCP lease as netkeep keeps it, so that a restart or a reboot asks for
/// the same address (INIT-REBOOT) and renewals happen on time.
public struct Lease: Codable, Hashable, Sendable {
    public var address: IPv4CIDR
    public var router: IPv4Address?
    public var serverID: IPv4Address
    public var leaseSeconds: Int64
    /// T1 and T2 as the server gave them (or their RFC 2131 defaults).
    public var renewSeconds: Int64
    public var rebindSeconds: Int64
    public var obtainedAt: Timestamp
    /// T1 and T2 with jitter, fixed when the lease was obtained, so that many
    /// leases obtained together do not renew together.
    public var renewAt: Timestamp
    public var rebindAt: Timestamp
    public var dnsServers: [IPv4Address]
    /// False when the address was applied without an answer from a server
    /// (it was still valid); it is confirmed at the next renewal.
    public var confirmed: Bool
    /// A due attempt that changed nothing (no container, no socket, no
    /// answer) is not repeated before this: never a once-a-second loop.
    public var retryAt: Timestamp?

    public init(address: IPv4CIDR, router: IPv4Address?, serverID: IPv4Address, leaseSeconds: Int64, renewSeconds: Int64,
                rebindSeconds: Int64, obtainedAt: Timestamp, renewAt: Timestamp, rebindAt: Timestamp,
                dnsServers: [IPv4Address] = [], confirmed: Bool = true) {
        self.address = address
        self.router = router
        self.serverID = serverID
        self.leaseSeconds = leaseSeconds
        self.renewSeconds = renewSeconds
        self.rebindSeconds = rebindSeconds
        self.obtainedAt = obtainedAt
        self.renewAt = renewAt
        self.rebindAt = rebindAt
        self.dnsServers = dnsServers
        self.confirmed = confirmed
    }

    public var expiresAt: Timestamp { obtainedAt.adding(seconds: leaseSeconds) }

    public func isValid(at now: Timestamp) -> Bool { now < expiresAt }

    enum CodingKeys: String, CodingKey {
        case address, router, confirmed
        case serverID = "server_id"
        case leaseSeconds = "lease_time"
        case renewSeconds = "t1"
        case rebindSeconds = "t2"
        case obtainedAt = "obtained_at"
        case renewAt = "renew_at"
        case rebindAt = "rebind_at"
        case retryAt = "retry_at"
        case dnsServers = "dns"
    }
}

/// When each DHCP lease needs attention: the timer logic the daemon drives
/// and `netkeep dhcp-renew` runs once. Pure.
public enum LeaseSchedule {
    public enum Due: Equatable, Sendable {
        /// INIT-REBOOT: the address was applied without a server's answer.
        case confirm
        /// RENEWING: unicast REQUEST to the server.
        case renew
        /// REBINDING: broadcast REQUEST.
        case rebind
        /// The lease ran out: the address must go; DISCOVER again.
        case expired
    }

    public static func due(_ lease: Lease, at now: Timestamp) -> Due? {
        if let retry = lease.retryAt, now < retry { return nil }
        if now >= lease.expiresAt { return .expired }
        if !lease.confirmed && now >= lease.renewAt { return .confirm }
        if now >= lease.rebindAt { return .rebind }
        if now >= lease.renewAt { return .renew }
        return nil
    }

    /// Every DHCP attachment that needs attention now.
    public static func due(in state: State, at now: Timestamp) -> [(Attachment, Due)] {
        state.attachments.compactMap { a in
            guard a.mode == .dhcp, a.status == .ready, let lease = a.lease, let due = due(lease, at: now) else { return nil }
            return (a, due)
        }
    }

    /// The earliest moment a lease needs attention, for the daemon's timer.
    public static func nextWake(in state: State) -> Timestamp? {
        state.attachments.compactMap { a -> Timestamp? in
            guard a.mode == .dhcp, a.status == .ready, let lease = a.lease else { return nil }
            let next = min(lease.renewAt, lease.expiresAt)
            return lease.retryAt.map { max($0, next) } ?? next
        }.min()
    }

    /// How long a due lease whose attempt changed nothing waits before the next.
    public static let retrySeconds: Int64 = 30

    /// The lease after a pass: an attempt that left it due is retried later;
    /// one that moved it on clears the retry.
    public static func afterAttempt(_ lease: Lease, at now: Timestamp) -> Lease {
        var lease = lease
        lease.retryAt = nil
        if due(lease, at: now) != nil { lease.retryAt = now.adding(seconds: retrySeconds) }
        return lease
    }
}
