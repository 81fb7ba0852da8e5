/// The records as the status view, STATUS= and the metrics count them.
extension State {
    /// Containers' attachments, the plugin's endpoints and CNI's interfaces.
    public var recordCount: Int { attachments.count + endpoints.count + cni.count }

    /// Every record by status, all kinds together; a joined endpoint is in
    /// its container and working, so it counts as ready (Docker's own view).
    public var countsByStatus: [String: Int] {
        var counts: [String: Int] = [:]
        for a in attachments { counts[a.status.rawValue, default: 0] += 1 }
        for e in endpoints { counts[e.status == .joined ? "ready" : e.status.rawValue, default: 0] += 1 }
        for c in cni { counts[c.status.rawValue, default: 0] += 1 }
        return counts
    }

    /// A recorded DHCP lease and whose it is: `owner` is the container's
    /// name, the endpoint's short id, or `network/container` for CNI.
    public struct OwnedLease: Sendable {
        public var kind: String
        public var owner: String
        public var ifname: String
        public var lease: Lease
    }

    /// Every recorded lease, in record order.
    public var ownedLeases: [OwnedLease] {
        attachments.compactMap { a in a.lease.map { OwnedLease(kind: "container", owner: a.containerName, ifname: a.ifname, lease: $0) } }
            + endpoints.compactMap { e in e.lease.map { OwnedLease(kind: "endpoint", owner: e.shortID, ifname: e.peerIfname, lease: $0) } }
            + cni.compactMap { c in c.lease.map { OwnedLease(kind: "cni", owner: "\(c.network)/\(c.containerID.prefix(12))", ifname: c.ifname, lease: $0) } }
    }
}
