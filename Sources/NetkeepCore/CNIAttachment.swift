/// Where a CNI attachment is in its life: `pending` is written before ADD
/// changes the host, `ready` once the interface and port exist, `removing`
/// before DEL (or GC) takes them down.
public enum CNIAttachmentStatus: String, Codable, Sendable, CaseIterable {
    case pending, ready, removing
}

/// One interface that a CNI runtime (containerd, Podman, a kubelet) asked for
/// with ADD: keyed as the spec keys it, on network name, container id and
/// interface name.
public struct CNIAttachment: Codable, Hashable, Sendable {
    /// The network config's `name`.
    public var network: String
    /// CNI_CONTAINERID as the runtime sent it.
    public var containerID: String
    /// CNI_IFNAME: the interface inside the container.
    public var ifname: String
    /// CNI_NETNS: the namespace path the runtime made.
    public var netns: String
    public var bridge: String
    /// The port on the bridge: `nkc` + 12 hex digits of the key's hash.
    public var hostIfname: String
    public var mac: MACAddress
    public var mtu: Int
    public var vlan: Int?
    /// The IPAM plugin the addresses came from (its `type`), nil for none.
    public var ipam: String?
    public var addresses: [IPv4CIDR]
    public var gateway: IPv4Address?
    /// netkeep-dhcp: the lease the address came from, renewed by the daemon.
    public var lease: Lease?
    public var status: CNIAttachmentStatus
    public var createdAt: Timestamp

    public init(network: String, containerID: String, ifname: String, netns: String, bridge: String,
                mac: MACAddress, mtu: Int, vlan: Int?, ipam: String?, createdAt: Timestamp) {
        self.network = network
        self.containerID = containerID
        self.ifname = ifname
        self.netns = netns
        self.bridge = bridge
        self.hostIfname = Names.cniInterface(network: network, containerID: containerID, ifname: ifname)
        self.mac = mac
        self.mtu = mtu
        self.vlan = vlan
        self.ipam = ipam
        self.addresses = []
        self.status = .pending
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case network, ifname, netns, bridge, mac, mtu, vlan, ipam, addresses, gateway, lease, status
        case containerID = "container_id"
        case hostIfname = "host_ifname"
        case createdAt = "created_at"
    }

    /// The spec's key of an attachment, one string: `network/container/ifname`.
    public var key: String { "\(network)/\(containerID)/\(ifname)" }

    public func matches(network: String, containerID: String, ifname: String) -> Bool {
        self.network == network && self.containerID == containerID && self.ifname == ifname
    }

    public func problems() -> [String] {
        var problems: [String] = []
        do {
            _ = try CNIRules.networkName(network)
            _ = try CNIRules.containerID(containerID)
            _ = try Names.interface(ifname)
            _ = try CNIRules.netnsPath(netns)
            _ = try Names.bridge(bridge)
            _ = try mac.validatedForInterface()
            _ = try AttachRequest.validateMTU(mtu)
            if let vlan { _ = try AttachRequest.loadableVLAN(vlan) }
            for address in addresses { try AddressRules.check(address, role: "address") }
            if let lease { try AddressRules.check(lease.address, role: "lease address") }
        } catch {
            problems.append(": \(error)")
        }
        if lease != nil, ipam != CNIRules.builtInDHCP { problems.append(".lease: only an attachment of IPAM \(CNIRules.builtInDHCP) has a lease, not of \(ipam ?? "none")") }
        // No addresses with a lease: it was refused or ran out, and is kept only to ask for its address again.
        if let lease, !addresses.isEmpty, !addresses.contains(lease.address) {
            problems.append(".lease: its address \(lease.address) is not among the addresses")
        }
        if hostIfname != Names.cniInterface(network: network, containerID: containerID, ifname: ifname) {
            problems.append(".host_ifname: \(quoted(hostIfname)) is not derived from the network, container id and ifname")
        }
        return problems
    }
}

/// A lease of netkeep-dhcp whose interface a DEL (or GC) took away: kept,
/// not released, so that an ADD of the same client (the same MAC on the same
/// network: a restarted or recreated container) gets its address back in one
/// round trip. The daemon releases it at `releaseAt`; an ADD takes it before.
public struct CNIKeptLease: Codable, Hashable, Sendable {
    public var network: String
    public var bridge: String
    public var vlan: Int?
    public var mac: MACAddress
    public var lease: Lease
    public var releaseAt: Timestamp

    public init(network: String, bridge: String, vlan: Int?, mac: MACAddress, lease: Lease, releaseAt: Timestamp) {
        self.network = network
        self.bridge = bridge
        self.vlan = vlan
        self.mac = mac
        self.lease = lease
        self.releaseAt = releaseAt
    }

    enum CodingKeys: String, CodingKey {
        case network, bridge, vlan, mac, lease
        case releaseAt = "release_at"
    }

    public func problems() -> [String] {
        do {
            _ = try CNIRules.networkName(network)
            _ = try Names.bridge(bridge)
            _ = try mac.validatedForInterface()
            if let vlan { _ = try AttachRequest.loadableVLAN(vlan) }
            try AddressRules.check(lease.address, role: "lease address")
        } catch {
            return [": \(error)"]
        }
        return []
    }
}

/// The spec's rules for the values a runtime sends (CNI SPEC.md, "Parameters").
public enum CNIRules {
    /// The `ipam.type` of netkeep's own DHCP client: leases in netkeep's
    /// state, renewed and released by the daemon.
    public static let builtInDHCP = "netkeep-dhcp"
    /// How long a kept lease waits for its client after DEL, unless the config says (`releaseAfter`).
    public static let defaultReleaseAfter: Int64 = 600

    /// What a DEL or GC keeps of a record's lease: nil when it has none or it ran out.
    public static func keep(_ record: CNIAttachment, releaseAfter: Int64, now: Timestamp) -> CNIKeptLease? {
        guard let lease = record.lease, lease.isValid(at: now) else { return nil }
        let releaseAt = min(lease.expiresAt, now.adding(seconds: releaseAfter))
        return CNIKeptLease(network: record.network, bridge: record.bridge, vlan: record.vlan, mac: record.mac, lease: lease, releaseAt: releaseAt)
    }

    /// The kept lease an ADD of `mac` on `network` takes, if it is still valid.
    public static func keptLease(in kept: [CNIKeptLease], network: String, mac: MACAddress, now: Timestamp) -> CNIKeptLease? {
        kept.first { $0.network == network && $0.mac == mac && $0.lease.isValid(at: now) }
    }

    /// The daemon's part: kept leases whose time is up and are still valid
    /// are released; ones that ran out are only forgotten (the server did).
    public static func releases(in kept: [CNIKeptLease], now: Timestamp) -> (release: [CNIKeptLease], forget: [CNIKeptLease]) {
        let due = kept.filter { $0.releaseAt <= now || !$0.lease.isValid(at: now) }
        return (due.filter { $0.lease.isValid(at: now) }, due.filter { !$0.lease.isValid(at: now) })
    }

    /// A MAC for a DHCP client that was given none, the same for the same
    /// network, identity (a pod's namespace and name, else the container id)
    /// and ifname: a restarted container asks as a client the server knows.
    public static func derivedMAC(network: String, identity: String, ifname: String) -> MACAddress {
        let hash = Names.attachmentHash(containerID: identity, ifname: "mac/\(network)/\(ifname)")
        var bytes = (0..<6).map { UInt8(truncatingIfNeeded: hash >> UInt64(8 * (7 - $0))) }
        bytes[0] = (bytes[0] & 0xfc) | 0x02  // locally administered, unicast
        return MACAddress(bytes: bytes)!
    }
    /// A network name: a letter or digit, then letters, digits, `_`, `.`, `-`.
    public static func networkName(_ name: String) throws(InputError) -> String {
        guard isSpecIdentifier(name) else {
            throw InputError(object: "network name \(quoted(name))", cause: "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'")
        }
        guard name.utf8.count <= maxNetworkName else {
            throw InputError(object: "network name \(quoted(name))", cause: "is \(name.utf8.count) bytes long; at most \(maxNetworkName)")
        }
        return name
    }

    // Bounds on what a runtime sends, checked where it enters (DESIGN.md
    // rule 6): every value is recorded in state.json and some in OVSDB.

    /// The network config on stdin.
    public static let maxConfigBytes = 1 << 20
    /// A network name: a DNS subdomain's length (a kubelet's names fit).
    public static let maxNetworkName = 253
    /// CNI_CONTAINERID.
    public static let maxContainerID = 256
    /// CNI_NETNS: PATH_MAX less its NUL.
    public static let maxNetnsPath = 4095
    /// CNI_ARGS and CNI_PATH, each as a whole.
    public static let maxEnvironmentValue = 65536

    /// CNI_CONTAINERID: the same character rules as a network name.
    public static func containerID(_ id: String) throws(InputError) -> String {
        guard isSpecIdentifier(id), id.utf8.count <= maxContainerID else {
            throw InputError(object: "CNI_CONTAINERID \(quoted(id))", cause: "must start with a letter or digit and contain only letters, digits, '_', '.' and '-' (at most \(maxContainerID))")
        }
        return id
    }

    /// CNI_NETNS: an absolute path without `..`.
    public static func netnsPath(_ path: String) throws(InputError) -> String {
        // No control character either: the path is named in messages and logs as it is.
        guard path.hasPrefix("/"), !path.split(separator: "/").contains(".."), !path.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) else {
            throw InputError(object: "CNI_NETNS \(quoted(path))", cause: "is not an absolute path to a network namespace")
        }
        guard path.utf8.count <= maxNetnsPath else {
            throw InputError(object: "CNI_NETNS \(quoted(path))", cause: "is \(path.utf8.count) bytes long; at most \(maxNetnsPath)")
        }
        return path
    }

    static func isSpecIdentifier(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, isAlphanumeric(first) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    public static func isAlphanumeric(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
    }

    /// GC's selection (SPEC.md, "GC"): the records of `network` whose container
    /// id and ifname are not among `valid`. Never a record of another network.
    public static func garbage(in records: [CNIAttachment], network: String,
                               valid: [(containerID: String, ifname: String)]) -> [CNIAttachment] {
        let keep = Set(valid.map { "\($0.containerID)/\($0.ifname)" })
        return records.filter { $0.network == network && !keep.contains("\($0.containerID)/\($0.ifname)") }
    }
}

extension Names {
    /// A CNI attachment's host end: `nkc` + 12 hex digits of the hash of its key,
    /// apart from attachments' `nk` and endpoints' `nke`/`nkp`.
    public static func cniInterface(network: String, containerID: String, ifname: String) -> String {
        hex(attachmentHash(containerID: containerID, ifname: "cni/\(network)/\(ifname)"), digits: 12, after: "nkc")
    }
}

/// What the daemon's sweep does for CNI attachments. The runtime owns their
/// life (ADD, DEL, GC); netkeep mends only the port of one that lives.
public enum CNISweepAction: Equatable, Sendable {
    /// The veth is there, OVSDB lost its port (a database cleared, a port deleted by hand).
    case addPort(CNIAttachment, reason: String)
    /// The veth is gone (a reboot, the namespace deleted): the port row is dead.
    /// The record stays for the runtime's DEL or GC, which give back its addresses.
    case removeDeadPort(CNIAttachment, reason: String)
}

extension CNIRules {
    /// Only `ready` records, and only on what was seen: nothing when the
    /// links or the ports could not be read (DESIGN.md rule 1).
    public static func sweep(_ records: [CNIAttachment], hostLinks: Set<String>?, ports: Set<String>?) -> [CNISweepAction] {
        guard let hostLinks, let ports else { return [] }
        return records.compactMap { record in
            guard record.status == .ready else { return nil }
            switch (hostLinks.contains(record.hostIfname), ports.contains(record.hostIfname)) {
            case (true, false): return .addPort(record, reason: "cni-port-missing")
            case (false, true): return .removeDeadPort(record, reason: "cni-veth-gone")
            default: return nil
            }
        }
    }
}
