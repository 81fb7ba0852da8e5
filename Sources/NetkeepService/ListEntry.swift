import DockerEngine
import NetkeepCore

/// One row of `netkeep list`, for people (a table) and machines (JSON): a
/// recorded attachment, or what a running container's labels declare that
/// has no record: `declared` (not made yet: the daemon or `netkeep
/// reconcile` makes it) or `refused` (a bad label; nothing is attached).
public struct ListEntry: Encodable, Sendable {
    public var attachment: Attachment?
    /// For a declaration without a record.
    public var declaration: Declaration?
    /// An endpoint of a netkeep Docker network (`docker network create -d netkeep`).
    public var endpoint: Endpoint?
    /// An interface a CNI runtime asked for (ADD).
    public var cni: CNIAttachment?

    public struct Declaration: Sendable {
        public var containerID: String
        public var containerName: String
        /// nil for a refused container (it is refused as a whole).
        public var request: AttachRequest?
        public var problems: [LabelProblem]
    }

    public init(_ attachment: Attachment) { self.attachment = attachment }
    public init(_ declaration: Declaration) { self.declaration = declaration }
    public init(_ endpoint: Endpoint) { self.endpoint = endpoint }
    public init(_ cni: CNIAttachment) { self.cni = cni }

    /// The rows for what the engine's running containers declare and the
    /// records lack (a short timeout: `list` must answer without Docker too).
    public static func declarations(environment: HostEnvironment, in state: State) throws(DockerError) -> [ListEntry] {
        declarations(of: try DockerClient(socketPath: environment.dockerSocket, timeout: 2).list(), for: environment.instance, in: state)
    }

    /// The rows for what running containers declare to `instance` and the records lack.
    public static func declarations(of containers: [Container], for instance: Instance, in state: State) -> [ListEntry] {
        containers.filter(\.running).sorted { $0.name < $1.name }.flatMap { c -> [ListEntry] in
            switch c.declaration(for: instance) {
            case .nothing: return []
            case .refused(let problems):
                return [ListEntry(Declaration(containerID: c.id, containerName: c.name, request: nil, problems: problems))]
            case .interfaces(let requests):
                return requests.filter { state.attachment(containerID: c.id, ifname: $0.ifname) == nil }.map {
                    ListEntry(Declaration(containerID: c.id, containerName: c.name, request: $0, problems: []))
                }
            }
        }
    }

    enum Key: String, CodingKey {
        case id, ifname, bridge, mac, mtu, vlan, mode, address, gateway, status, problems
        case containerID = "container_id", containerName = "container_name", hostIfname = "host_ifname"
        case netnsLink = "netns_link"
        case leaseExpiresAt = "lease_expires_at"
        case lease
        case declaredBy = "declared_by"
        case retainedUntil = "retained_until"
        case recreatedFrom = "recreated_from"
        case networkID = "network_id"
        case sandboxKey = "sandbox_key"
    }

    /// Every key is always present (null when unset), so consumers need not guess.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        if let a = attachment {
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
            try c.encode(a.declaredBy, forKey: .declaredBy)
            try c.encode(a.retainedUntil, forKey: .retainedUntil)
            try c.encode(a.recreatedFrom, forKey: .recreatedFrom)
            try c.encodeNil(forKey: .problems)
            try c.encodeNil(forKey: .networkID)
            try c.encodeNil(forKey: .sandboxKey)
        } else if let d = declaration {
            let r = d.request
            try c.encode(r.map { Names.attachmentID(containerID: d.containerID, ifname: $0.ifname) }, forKey: .id)
            try c.encode(d.containerID, forKey: .containerID)
            try c.encode(d.containerName, forKey: .containerName)
            try c.encode(r?.ifname, forKey: .ifname)
            try c.encode(r?.bridge, forKey: .bridge)
            try c.encodeNil(forKey: .hostIfname)
            try c.encode(r?.mac, forKey: .mac)
            try c.encode(r?.mtu, forKey: .mtu)
            try c.encode(r?.vlan, forKey: .vlan)
            try c.encode(r.map { $0.dhcp ? AddressMode.dhcp : .static }, forKey: .mode)
            try c.encode(r?.address, forKey: .address)
            try c.encode(r?.gateway, forKey: .gateway)
            try c.encodeNil(forKey: .netnsLink)
            try c.encode(r == nil ? "refused" : "declared", forKey: .status)
            try c.encodeNil(forKey: .leaseExpiresAt)
            try c.encodeNil(forKey: .lease)
            try c.encode(Declarer.labels, forKey: .declaredBy)
            try c.encodeNil(forKey: .retainedUntil)
            try c.encodeNil(forKey: .recreatedFrom)
            try c.encode(d.problems.map(\.description), forKey: .problems)
            try c.encodeNil(forKey: .networkID)
            try c.encodeNil(forKey: .sandboxKey)
        } else if let e = endpoint {
            // No plugin request names the container: known once the daemon has asked Docker.
            try c.encode(e.id, forKey: .id)
            try c.encode(e.containerID, forKey: .containerID)
            try c.encode(e.containerName, forKey: .containerName)
            try c.encodeNil(forKey: .ifname)
            try c.encode(e.bridge, forKey: .bridge)
            try c.encode(e.hostIfname, forKey: .hostIfname)
            try c.encode(e.mac, forKey: .mac)
            try c.encode(e.mtu, forKey: .mtu)
            try c.encode(e.vlan, forKey: .vlan)
            try c.encode(e.mode, forKey: .mode)
            try c.encode(e.address, forKey: .address)
            try c.encode(e.gateway, forKey: .gateway)
            try c.encodeNil(forKey: .netnsLink)
            try c.encode(e.status.rawValue, forKey: .status)
            try c.encode(e.lease?.expiresAt, forKey: .leaseExpiresAt)
            try c.encode(e.lease, forKey: .lease)
            try c.encode("docker-network", forKey: .declaredBy)
            try c.encodeNil(forKey: .retainedUntil)
            try c.encodeNil(forKey: .recreatedFrom)
            try c.encodeNil(forKey: .problems)
            try c.encode(e.networkID, forKey: .networkID)
            try c.encode(e.sandboxKey, forKey: .sandboxKey)
        } else if let a = cni {
            // The runtime's names: its network (network_id) and namespace path (sandbox_key).
            try c.encode(a.key, forKey: .id)
            try c.encode(a.containerID, forKey: .containerID)
            try c.encodeNil(forKey: .containerName)
            try c.encode(a.ifname, forKey: .ifname)
            try c.encode(a.bridge, forKey: .bridge)
            try c.encode(a.hostIfname, forKey: .hostIfname)
            try c.encode(a.mac, forKey: .mac)
            try c.encode(a.mtu, forKey: .mtu)
            try c.encode(a.vlan, forKey: .vlan)
            try c.encode(AddressMode.static, forKey: .mode)
            try c.encode(a.addresses.first, forKey: .address)
            try c.encode(a.gateway, forKey: .gateway)
            try c.encodeNil(forKey: .netnsLink)
            try c.encode(a.status.rawValue, forKey: .status)
            try c.encodeNil(forKey: .leaseExpiresAt)
            try c.encodeNil(forKey: .lease)
            try c.encode("cni", forKey: .declaredBy)
            try c.encodeNil(forKey: .retainedUntil)
            try c.encodeNil(forKey: .recreatedFrom)
            try c.encodeNil(forKey: .problems)
            try c.encode(a.network, forKey: .networkID)
            try c.encode(a.netns, forKey: .sandboxKey)
        }
    }

    static let columns = ["CONTAINER", "IFNAME", "BRIDGE", "HOST-IF", "MAC", "MTU", "VLAN", "MODE", "ADDRESS", "GATEWAY", "LEASE-EXPIRES", "BY", "STATUS"]

    var cells: [String] {
        if let a = attachment {
            return [a.containerName, a.ifname, a.bridge, a.hostIfname, a.mac.description, String(a.mtu),
                    a.vlan.map(String.init) ?? "-", a.mode.rawValue, a.address?.description ?? "-",
                    a.gateway?.description ?? "-", a.lease.map { $0.expiresAt.description } ?? "-",
                    a.declaredBy?.rawValue ?? "attach",
                    a.retainedUntil.map { "retained until \($0) (container removed; MAC and lease kept for a recreate)" } ?? a.status.rawValue]
        }
        if let e = endpoint {
            return [e.containerName.map { "\($0) (endpoint \(e.shortID))" } ?? "endpoint " + e.shortID, "-", e.bridge, e.hostIfname, e.mac.description, String(e.mtu), e.vlan.map(String.init) ?? "-",
                    e.mode.rawValue, e.address?.description ?? "-", e.gateway?.description ?? "-",
                    e.lease.map { $0.expiresAt.description } ?? "-", "network " + String(e.networkID.prefix(12)), e.status.rawValue]
        }
        if let a = cni {
            let id = Names.isDockerID(a.containerID) ? String(a.containerID.prefix(12)) : a.containerID
            return ["cni " + id, a.ifname, a.bridge, a.hostIfname, a.mac.description, String(a.mtu), a.vlan.map(String.init) ?? "-",
                    a.ipam ?? "-", a.addresses.first?.description ?? "-", a.gateway?.description ?? "-", "-",
                    "cni " + a.network, a.status.rawValue]
        }
        guard let d = declaration else { return Self.columns.map { _ in "-" } }
        guard let r = d.request else {
            return [d.containerName] + Array(repeating: "-", count: 10) + ["labels", "refused: " + d.problems.map(\.description).joined(separator: "; ")]
        }
        return [d.containerName, r.ifname, r.bridge, "-", r.mac?.description ?? "-", String(r.mtu), r.vlan.map(String.init) ?? "-",
                r.dhcp ? "dhcp" : "static", r.address?.description ?? "-", r.gateway?.description ?? "-", "-", "labels",
                "declared (not made yet)"]
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
