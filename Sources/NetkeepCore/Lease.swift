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
    /// (it was still valid); INIT-REBOOT confirms it as soon as `retryAt` allows.
    public var confirmed: Bool
    /// A due attempt that changed nothing (no container, no socket, no
    /// answer) is not repeated before this: never a once-a-second loop.
    /// Also the RFC 2131 4.4.5 wait between unanswered renewals and rebinds:
    /// T1 and T2 themselves never move, so the phase stays what it is.
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
