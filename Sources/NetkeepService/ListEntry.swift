import NetkeepCore

/// One row of `netkeep list`, for people (a table) and machines (JSON).
public struct ListEntry: Encodable, Sendable {
    public var attachment: Attachment

    public init(_ attachment: Attachment) { self.attachment = attachment }

    enum Key: String, CodingKey {
        case id, ifname, bridge, mac, mtu, vlan, mode, address, gateway, status
        case containerID = "container_id", containerName = "container_name", hostIfname = "host_ifname"
        case netnsLink = "netns_link"
        case leaseExpiresAt = "lease_expires_at"
        case lease
    }

    /// Every key is always present (null when unset), so consumers need not guess.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        let a = attachment
        try c.encode(a.id, forKey: .id)
        try c.encode(a.containerID, forKey: .containerID)
        try c.encode(a.containerName, forKey: .containerName)
        try c.encode(a.ifname, forKey: .ifname)
        try c.encode(a.bridge, forKey: .bridge)
        try c.encode(a.hostIfname, forKey: .hostIfname)
        try c.encode(a.mac, forKey: .mac)
        try c.encode(a.mtu, forKey: .mtu)
        try c.encode(a.vlan, forKey: .vlan)
        try c.encode(a.mode, forKey: .mode)
        try c.encode(a.address, forKey: .address)
        try c.encode(a.gateway, forKey: .gateway)
        try c.encode(a.netnsLink, forKey: .netnsLink)
        try c.encode(a.status, forKey: .status)
        try c.encode(a.lease?.expiresAt, forKey: .leaseExpiresAt)
        try c.encode(a.lease, forKey: .lease)
    }

    static let columns = ["CONTAINER", "IFNAME", "BRIDGE", "HOST-IF", "MAC", "MTU", "VLAN", "MODE", "ADDRESS", "GATEWAY", "LEASE-EXPIRES", "STATUS"]

    var cells: [String] {
        let a = attachment
        return [a.containerName, a.ifname, a.bridge, a.hostIfname, a.mac.description, String(a.mtu),
                a.vlan.map(String.init) ?? "-", a.mode.rawValue, a.address?.description ?? "-",
                a.gateway?.description ?? "-", a.lease.map { $0.expiresAt.description } ?? "-", a.status.rawValue]
    }

    /// An aligned table with a header line.
    public static func table(_ entries: [ListEntry]) -> String {
        let rows = [columns] + entries.map(\.cells)
        let widths = columns.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
