/// A Docker network of netkeep's driver (`docker network create -d netkeep`):
/// its options, recorded at CreateNetwork so that no later request needs the
/// Docker API (which does not answer while dockerd restores containers).
public struct DockerNetwork: Codable, Hashable, Sendable {
    /// Docker's network ID, 64 hex digits.
    public var id: String
    public var bridge: String
    public var vlan: Int?
    public var mtu: Int
    public var mode: AddressMode
    /// Docker's IPAM pool (mode static).
    public var subnet: IPv4CIDR?
    public var gateway: IPv4Address?
    public var createdAt: Timestamp

    public init(id: String, bridge: String, vlan: Int?, mtu: Int, mode: AddressMode,
                subnet: IPv4CIDR?, gateway: IPv4Address?, createdAt: Timestamp) {
        self.id = id
        self.bridge = bridge
        self.vlan = vlan
        self.mtu = mtu
        self.mode = mode
        self.subnet = subnet
        self.gateway = gateway
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, bridge, vlan, mtu, mode, subnet, gateway
        case createdAt = "created_at"
    }

    // The subnet is a network address ("10.9.9.0/24"), which an interface's CIDR may not be.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        bridge = try c.decode(String.self, forKey: .bridge)
        vlan = try c.decodeIfPresent(Int.self, forKey: .vlan)
        mtu = try c.decode(Int.self, forKey: .mtu)
        mode = try c.decode(AddressMode.self, forKey: .mode)
        if let text = try c.decodeIfPresent(String.self, forKey: .subnet) {
            do { subnet = try Self.parseSubnet(text) } catch {
                throw DecodingError.dataCorruptedError(forKey: .subnet, in: c, debugDescription: error.description)
            }
        }
        gateway = try c.decodeIfPresent(IPv4Address.self, forKey: .gateway)
        createdAt = try c.decode(Timestamp.self, forKey: .createdAt)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(bridge, forKey: .bridge)
        try c.encodeIfPresent(vlan, forKey: .vlan)
        try c.encode(mtu, forKey: .mtu)
        try c.encode(mode, forKey: .mode)
        try c.encodeIfPresent(subnet?.description, forKey: .subnet)
        try c.encodeIfPresent(gateway, forKey: .gateway)
        try c.encode(createdAt, forKey: .createdAt)
    }

    /// `A.B.C.D/N`, the network address of a /8 to /30.
    public static func parseSubnet(_ text: String) throws(InputError) -> IPv4CIDR {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let prefix = Int(parts[1]), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw InputError(object: "subnet \(quoted(text))", cause: "expected NETWORK/PREFIX, like 10.9.9.0/24")
        }
        let address = try IPv4Address(parsing: String(parts[0]))
        guard (8...30).contains(prefix) else { throw InputError(object: "subnet \(quoted(text))", cause: "must have a prefix of /8 to /30") }
        let cidr = try IPv4CIDR(address: address, prefixLength: prefix)
        guard cidr.network == address else { throw InputError(object: "subnet \(quoted(text))", cause: "is not a network address (\(cidr.network)/\(prefix) is)") }
        // No interface may take an address of 0/8, 127/8 or 224/3 (AddressRules).
        let first = address.value >> 24
        if first == 0 || first == 127 || first >= 224 {
            throw InputError(object: "subnet \(quoted(text))", cause: "is not a unicast range (0.0.0.0/8, 127.0.0.0/8 and 224.0.0.0/3 are refused)")
        }
        return cidr
    }

    /// An address Docker's IPAM gave an endpoint: in the network's subnet,
    /// with its prefix, and not the gateway's.
    public func checkEndpointAddress(_ cidr: IPv4CIDR) throws(InputError) {
        guard let subnet else { return }
        guard subnet.contains(cidr.address), cidr.prefixLength == subnet.prefixLength else {
            throw InputError(object: "address \(cidr)", cause: "is not an address of the network's subnet \(subnet)")
        }
        if let gateway, cidr.address == gateway { throw InputError(object: "address \(cidr)", cause: "is the network's gateway") }
    }

    /// The `-o` options netkeep takes, with what each means (for errors and `--help`).
    public static let options: [(name: String, meaning: String)] = [
        ("bridge", "the OVS bridge (required)"),
        ("vlan", "the access VLAN tag of every port, 0-4094"),
        ("mtu", "the MTU of both veth ends, 68-65535 (default 1500)"),
        ("dhcp", "true: addresses from a DHCP server on the bridge; needs --ipam-driver null"),
    ]

    /// Reads CreateNetwork: the user's `-o` options and Docker's IPv4 IPAM data
    /// (`pool` nil or "0.0.0.0/0" with the null IPAM driver). Refuses an unknown
    /// option by name, and a DHCP network with addresses from Docker's IPAM or a
    /// static one without them.
    public static func parse(id: String, options: [String: String], pool: String?, gateway: String?,
                             now: Timestamp) throws(InputError) -> DockerNetwork {
        guard Names.isDockerID(id) else {
            throw InputError(object: "network id \(quoted(id))", cause: "is not 64 hex digits")
        }
        let known = Set(Self.options.map(\.name))
        if let unknown = options.keys.sorted().first(where: { !known.contains($0) }) {
            throw InputError(object: "option \(quoted(unknown))",
                             cause: "is not a netkeep option (it takes \(Self.options.map(\.name).joined(separator: ", ")))")
        }
        guard let bridgeText = options["bridge"] else {
            throw InputError(object: "network", cause: "needs -o bridge=BRIDGE (the OVS bridge its ports go on)")
        }
        let bridge = try Names.bridge(bridgeText)
        let vlan = try options["vlan"].map { text throws(InputError) in try AttachRequest.parseVLAN(text) }
        let mtu = try options["mtu"].map { text throws(InputError) in try AttachRequest.parseMTU(text) } ?? 1500
        let dhcp: Bool
        switch options["dhcp"] {
        case nil, "false": dhcp = false
        case "true": dhcp = true
        case let other?: throw InputError(object: "option dhcp=\(quoted(other))", cause: "must be true or false")
        }
        let fromIPAM = pool.map { $0 != "0.0.0.0/0" } ?? false
        if dhcp {
            guard !fromIPAM else {
                throw InputError(object: "option dhcp=true", cause: "addresses come from DHCP: create the network with --ipam-driver null")
            }
            return DockerNetwork(id: id, bridge: bridge, vlan: vlan, mtu: mtu, mode: .dhcp, subnet: nil, gateway: nil, createdAt: now)
        }
        guard fromIPAM, let pool else {
            throw InputError(object: "network", cause: "has no IPv4 subnet: give --subnet (static addresses) or -o dhcp=true --ipam-driver null")
        }
        let subnet = try parseSubnet(pool)
        var gatewayAddress: IPv4Address?
        if let gateway, !gateway.isEmpty {
            // Docker sends the gateway with the pool's prefix: "10.9.9.1/24".
            let address = try IPv4Address(parsing: String(gateway.split(separator: "/").first ?? ""))
            guard subnet.contains(address) else { throw InputError(object: "gateway \(address)", cause: "is outside the subnet \(subnet)") }
            gatewayAddress = address
        }
        return DockerNetwork(id: id, bridge: bridge, vlan: vlan, mtu: mtu, mode: .static, subnet: subnet,
                             gateway: gatewayAddress, createdAt: now)
    }

    public func problems() -> [String] {
        var problems: [String] = []
        if !Names.isDockerID(id) { problems.append(".id: \(quoted(id)) is not 64 hex digits") }
        do {
            _ = try Names.bridge(bridge)
            _ = try AttachRequest.validateMTU(mtu)
            if let vlan { _ = try AttachRequest.loadableVLAN(vlan) }
        } catch {
            problems.append(": \(error)")
        }
        if mode == .static, subnet == nil { problems.append(".subnet: a static network needs one") }
        if let gateway, let subnet, !subnet.contains(gateway) { problems.append(".gateway: \(gateway) is outside \(subnet)") }
        return problems
    }
}

/// Where an endpoint is in its life. `pending` is written before the host is
/// changed (CreateEndpoint), `ready` once its veth and port exist, `joined`
/// once Docker has the container end (Join), `removing` before DeleteEndpoint
/// takes it down.
public enum EndpointStatus: String, Codable, Sendable, CaseIterable {
    case pending, ready, joined, removing
}

/// One endpoint of a netkeep network: an OVS port and the veth whose other
/// end Docker moves into the container at Join.
public struct Endpoint: Codable, Hashable, Sendable {
    /// Docker's endpoint ID, 64 hex digits.
    public var id: String
    public var networkID: String
    public var bridge: String
    /// The port on the bridge: `nke` + 12 hex digits of the endpoint ID's hash.
    public var hostIfname: String
    /// The container end until Docker moves it (and renames it `eth<N>`).
    public var peerIfname: String
    public var mac: MACAddress
    /// Docker sent the MAC (`--mac-address`): it is the user's, not netkeep's.
    public var macFromDocker: Bool
    public var mtu: Int
    public var vlan: Int?
    public var mode: AddressMode
    public var address: IPv4CIDR?
    public var gateway: IPv4Address?
    public var lease: Lease?
    public var status: EndpointStatus
    /// Docker's sandbox namespace, from Join.
    public var sandboxKey: String?
    public var createdAt: Timestamp
    /// The container, for people: no plugin request names it, so the daemon
    /// fills it in from `GET /networks/ID` after its passes.
    public var containerID: String?
    public var containerName: String?

    public init(id: String, network: DockerNetwork, mac: MACAddress, macFromDocker: Bool,
                address: IPv4CIDR?, createdAt: Timestamp) {
        self.id = id
        self.networkID = network.id
        self.bridge = network.bridge
        self.hostIfname = Names.endpointInterface(endpointID: id, host: true)
        self.peerIfname = Names.endpointInterface(endpointID: id, host: false)
        self.mac = mac
        self.macFromDocker = macFromDocker
        self.mtu = network.mtu
        self.vlan = network.vlan
        self.mode = network.mode
        self.address = address
        self.gateway = network.gateway
        self.status = .pending
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, bridge, mac, mtu, vlan, mode, address, gateway, lease, status
        case networkID = "network_id"
        case hostIfname = "host_ifname"
        case peerIfname = "peer_ifname"
        case macFromDocker = "mac_from_docker"
        case sandboxKey = "sandbox_key"
        case createdAt = "created_at"
        case containerID = "container_id"
        case containerName = "container_name"
    }

    public var shortID: String { String(id.prefix(12)) }

    /// The MAC of a static endpoint that Docker gave none: `02:6e` and the four
    /// bytes of its address (Docker's bridge driver uses `02:42`).
    public static func mac(for address: IPv4Address) -> MACAddress {
        MACAddress(bytes: [0x02, 0x6e] + address.bytes)!
    }

    public func problems() -> [String] {
        var problems: [String] = []
        if !Names.isDockerID(id) { problems.append(".id: \(quoted(id)) is not 64 hex digits") }
        if !Names.isDockerID(networkID) { problems.append(".network_id: \(quoted(networkID)) is not 64 hex digits") }
        if hostIfname != Names.endpointInterface(endpointID: id, host: true) {
            problems.append(".host_ifname: \(quoted(hostIfname)) is not derived from the endpoint id")
        }
        if peerIfname != Names.endpointInterface(endpointID: id, host: false) {
            problems.append(".peer_ifname: \(quoted(peerIfname)) is not derived from the endpoint id")
        }
        do {
            _ = try Names.bridge(bridge)
            _ = try mac.validatedForInterface()
            _ = try AttachRequest.validateMTU(mtu)
            if let vlan { _ = try AttachRequest.loadableVLAN(vlan) }
            if let address { try AddressRules.check(address, role: "address") }
            if let lease { try lease.check() }
        } catch {
            problems.append(": \(error)")
        }
        if let id = containerID, !Names.isDockerID(id) { problems.append(".container_id: \(quoted(id)) is not 64 hex digits") }
        if let name = containerName {
            do { _ = try Names.containerName(name) } catch { problems.append(".container_name: \(error)") }
        }
        if let key = sandboxKey, !Endpoint.isSandboxKey(key) { problems.append(".sandbox_key: \(quoted(key)) is not under /var/run/docker/netns") }
        if mode == .static, lease != nil { problems.append(".lease: a static endpoint has no DHCP lease") }
        return problems
    }

    /// Docker's sandbox paths: `/var/run/docker/netns/` (or `/run/docker/netns/`)
    /// and one name, nothing that climbs out of it.
    public static func isSandboxKey(_ path: String) -> Bool {
        for prefix in ["/var/run/docker/netns/", "/run/docker/netns/"] where path.hasPrefix(prefix) {
            let name = String(path.dropFirst(prefix.count))
            return Names.interfaceFault(name) == nil && !name.hasPrefix(".")
        }
        return false
    }
}

extension Names {
    /// A Docker object id (network, endpoint) as dockerd makes them: 64 hex digits.
    public static func isDockerID(_ id: String) -> Bool {
        id.utf8.count == 64 && withBytes(id) { $0.allSatisfy(isHexByte) }
    }

    /// An endpoint's veth ends: `nke`/`nkp` + 12 hex digits of the endpoint
    /// ID's hash, so both are the same every time and fit IFNAMSIZ, and neither
    /// meets an attachment's `nk` + 12 hex digits.
    public static func endpointInterface(endpointID: String, host: Bool) -> String {
        hex(attachmentHash(containerID: endpointID, ifname: "endpoint"), digits: 12, after: host ? "nke" : "nkp")
    }
}
