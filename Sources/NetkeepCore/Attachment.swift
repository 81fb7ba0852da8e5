/// How an attachment's address is obtained.
public enum AddressMode: String, Codable, Sendable, CaseIterable {
    case `static`
    case dhcp
}

/// Where an attachment is in its life. `pending` is written before the host is
/// changed and `ready` after, so a crash leaves a record of what may be half-made.
/// `down`: the container is stopped; everything is kept for when it starts.
/// `retained`: the container is gone, its port and veth too; its MAC (and
/// DHCP lease) are kept until `retainedUntil` for a new container of the
/// same name on the same bridge and interface (a recreate).
public enum AttachmentStatus: String, Codable, Sendable, CaseIterable {
    case pending
    case ready
    case removing
    case down
    case retained
}

/// Who asked for an attachment other than `netkeep attach` (which records none).
public enum Declarer: String, Codable, Sendable, CaseIterable {
    /// The container's `netkeep.<ifname>.*` labels (see `LabelDeclaration`).
    case labels
}

/// One container interface attached to an OVS bridge: everything needed to
/// create it again, exactly as it was.
public struct Attachment: Codable, Hashable, Sendable {
    public var id: String
    public var containerID: String
    public var containerName: String
    public var ifname: String
    public var bridge: String
    public var hostIfname: String
    public var mac: MACAddress
    public var mtu: Int
    public var vlan: Int?
    public var mode: AddressMode
    public var address: IPv4CIDR?
    public var gateway: IPv4Address?
    /// Name of the symlink under /var/run/netns, when netkeep made one.
    public var netnsLink: String?
    public var status: AttachmentStatus
    public var createdAt: Timestamp
    /// The container's init PID when the attachment was last made; a different
    /// PID means the container restarted since.
    public var containerPID: Int32?
    /// The current DHCP lease (mode dhcp); `address` and `gateway` mirror it.
    public var lease: Lease?
    /// nil: made by `netkeep attach`.
    public var declaredBy: Declarer?
    /// Status `retained`: when the MAC and lease are given up.
    public var retainedUntil: Timestamp?
    /// The container this one took the MAC and lease of (a recreate).
    public var recreatedFrom: String?

    public init(containerID: String, containerName: String, ifname: String, bridge: String,
                mac: MACAddress, mtu: Int, vlan: Int?, mode: AddressMode,
                address: IPv4CIDR?, gateway: IPv4Address?, netnsLink: String?,
                status: AttachmentStatus, createdAt: Timestamp, containerPID: Int32? = nil, hostIfname: String? = nil) {
        self.id = Names.attachmentID(containerID: containerID, ifname: ifname)
        self.containerID = containerID
        self.containerName = containerName
        self.ifname = ifname
        self.bridge = bridge
        self.hostIfname = hostIfname ?? Names.hostInterface(containerID: containerID, ifname: ifname)
        self.mac = mac
        self.mtu = mtu
        self.vlan = vlan
        self.mode = mode
        self.address = address
        self.gateway = gateway
        self.netnsLink = netnsLink
        self.status = status
        self.createdAt = createdAt
        self.containerPID = containerPID
    }

    enum CodingKeys: String, CodingKey {
        case id, ifname, bridge, mac, mtu, vlan, mode, address, gateway, status
        case containerID = "container_id"
        case containerName = "container_name"
        case hostIfname = "host_ifname"
        case netnsLink = "netns_link"
        case createdAt = "created_at"
        case containerPID = "container_pid"
        case lease
        case declaredBy = "declared_by"
        case retainedUntil = "retained_until"
        case recreatedFrom = "recreated_from"
    }

    /// The address that must be on the interface at `now`: the static one,
    /// or the lease's while it is valid.
    public func expectedAddress(at now: Timestamp) -> IPv4CIDR? {
        switch mode {
        case .static: return address
        case .dhcp: return lease.flatMap { $0.isValid(at: now) ? $0.address : nil }
        }
    }

    public func expectedGateway(at now: Timestamp) -> IPv4Address? {
        switch mode {
        case .static: return gateway
        case .dhcp: return lease.flatMap { $0.isValid(at: now) ? $0.router : nil }
        }
    }

    /// What is wrong with this record, each message starting with the field
    /// (`.mac: ...`); empty when it can be written and read back.
    public func problems() -> [String] {
        var problems: [String] = []
        if !Names.isAttachmentID(id, containerID: containerID, ifname: ifname) {
            problems.append(".id: \(quoted(id)) does not match its container_id and ifname")
        }
        // Adopted ovs-docker ports keep their own host name; any other must be a valid name.
        if Names.interfaceFault(hostIfname) != nil {
            problems.append(".host_ifname: \(quoted(hostIfname)) is not a valid interface name")
        }
        if !containerID.isEmpty, !Names.isFullContainerID(containerID) {
            problems.append(".container_id: \(quoted(containerID)) is not a 64-digit hex container id")
        }
        do {
            _ = try Names.interface(ifname)
            _ = try Names.bridge(bridge)
            _ = try Names.containerName(containerName)
            if let link = netnsLink { _ = try Names.containerName(link) }
            _ = try mac.validatedForInterface()
            _ = try AttachRequest.validateMTU(mtu)
            if let vlan { _ = try AttachRequest.loadableVLAN(vlan) }
            if let address { try AddressRules.check(address, role: "address") }
            if let lease { try lease.check() }
        } catch {
            problems.append(": \(error)")
        }
        if let gw = gateway, let address, !address.contains(gw) {
            problems.append(".gateway: \(gw) is outside \(address)")
        }
        if let gw = gateway, gw == address?.address { problems.append(".gateway: \(gw) is the interface's own address") }
        if mode == .static, lease != nil { problems.append(".lease: a static attachment has no DHCP lease") }
        return problems
    }

    /// The short container id people see in `docker ps`.
    public var shortContainerID: String { String(containerID.prefix(12)) }

    /// Whether `reference` (a name, a full id or an id prefix of at least 4
    /// characters, as Docker accepts them) names this attachment's container.
    public func matchesContainer(_ reference: String) -> Bool {
        let ref = reference.hasPrefix("/") ? String(reference.dropFirst()) : reference
        if ref == containerName || ref == containerID { return true }
        return ref.count >= 4 && containerID.hasPrefix(ref)
    }
}

/// The desired state: every attachment netkeep keeps.
public struct State: Codable, Equatable, Sendable {
    public static let currentVersion = 1

    public var version: Int
    /// /proc/sys/kernel/random/boot_id when the state was last written.
    public var bootID: String?
    public var attachments: [Attachment]
    /// Time (ns since the epoch) of the last Docker event the daemon handled:
    /// after a restart it resumes the event stream from there.
    public var lastEventNano: Int64?
    /// The Docker engine the records were made with (DESIGN.md rule 5).
    public var engine: EngineIdentity?
    /// Networks of netkeep's Docker driver, and their endpoints.
    public var networks: [DockerNetwork] = []
    public var endpoints: [Endpoint] = []
    /// Interfaces that CNI runtimes asked for (ADD).
    public var cni: [CNIAttachment] = []
    /// netkeep-dhcp leases a DEL left, until the daemon releases them.
    public var cniLeases: [CNIKeptLease] = []

    public init(bootID: String? = nil, attachments: [Attachment] = []) {
        self.version = Self.currentVersion
        self.bootID = bootID
        self.attachments = attachments
    }

    enum CodingKeys: String, CodingKey {
        case version, attachments, networks, endpoints, cni
        case cniLeases = "cni_leases"
        case bootID = "boot_id"
        case lastEventNano = "last_event_nano"
        case engine = "docker_engine"
    }

    // Files written before the network plugin have neither networks nor
    // endpoints; a file without them leaves both out, so it reads the same.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(Int.self, forKey: .version)
        bootID = try c.decodeIfPresent(String.self, forKey: .bootID)
        attachments = try c.decode([Attachment].self, forKey: .attachments)
        lastEventNano = try c.decodeIfPresent(Int64.self, forKey: .lastEventNano)
        engine = try c.decodeIfPresent(EngineIdentity.self, forKey: .engine)
        networks = try c.decodeIfPresent([DockerNetwork].self, forKey: .networks) ?? []
        endpoints = try c.decodeIfPresent([Endpoint].self, forKey: .endpoints) ?? []
        cni = try c.decodeIfPresent([CNIAttachment].self, forKey: .cni) ?? []
        cniLeases = try c.decodeIfPresent([CNIKeptLease].self, forKey: .cniLeases) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encodeIfPresent(bootID, forKey: .bootID)
        try c.encode(attachments, forKey: .attachments)
        try c.encodeIfPresent(lastEventNano, forKey: .lastEventNano)
        try c.encodeIfPresent(engine, forKey: .engine)
        if !networks.isEmpty { try c.encode(networks, forKey: .networks) }
        if !endpoints.isEmpty { try c.encode(endpoints, forKey: .endpoints) }
        if !cni.isEmpty { try c.encode(cni, forKey: .cni) }
        if !cniLeases.isEmpty { try c.encode(cniLeases, forKey: .cniLeases) }
    }

    public func network(id: String) -> DockerNetwork? { networks.first { $0.id == id } }
    public func endpoint(id: String) -> Endpoint? { endpoints.first { $0.id == id } }

    public mutating func upsert(_ endpoint: Endpoint) {
        if let i = endpoints.firstIndex(where: { $0.id == endpoint.id }) { endpoints[i] = endpoint } else { endpoints.append(endpoint) }
    }

    public func cniAttachment(network: String, containerID: String, ifname: String) -> CNIAttachment? {
        cni.first { $0.matches(network: network, containerID: containerID, ifname: ifname) }
    }

    public mutating func upsert(_ attachment: CNIAttachment) {
        if let i = cni.firstIndex(where: { $0.key == attachment.key }) { cni[i] = attachment } else { cni.append(attachment) }
    }

    /// Keeps a netkeep-dhcp lease for its client, in place of one kept before for the same MAC.
    public mutating func keep(_ lease: CNIKeptLease) {
        cniLeases.removeAll { $0.network == lease.network && $0.mac == lease.mac }
        cniLeases.append(lease)
    }

    public mutating func upsert(_ network: DockerNetwork) {
        if let i = networks.firstIndex(where: { $0.id == network.id }) { networks[i] = network } else { networks.append(network) }
    }

    public func attachment(containerID: String, ifname: String) -> Attachment? {
        attachments.first { $0.containerID == containerID && $0.ifname == ifname }
    }

    public mutating func upsert(_ attachment: Attachment) {
        if let i = attachments.firstIndex(where: { $0.id == attachment.id }) {
            attachments[i] = attachment
        } else {
            attachments.append(attachment)
        }
    }

    public mutating func remove(id: String) {
        attachments.removeAll { $0.id == id }
    }

    /// Rules the JSON schema cannot say. Returns one message per problem.
    /// Loading refuses a file with any; saving refuses to write one (rule 6).
    /// Runs on every load and save: messages are made only for a problem found.
    public func problems() -> [String] {
        var problems: [String] = []
        var seen = [String: Int](minimumCapacity: attachments.count)
        var hostNames = [String: Int](minimumCapacity: attachments.count)
        for (i, a) in attachments.enumerated() {
            if let j = seen.updateValue(i, forKey: a.id) { problems.append("attachments[\(i)]: same container and ifname as attachments[\(j)]") }
            if let j = hostNames.updateValue(i, forKey: a.hostIfname) { problems.append("attachments[\(i)].host_ifname: also used by attachments[\(j)]") }
            for problem in a.problems() { problems.append("attachments[\(i)]\(problem)") }
        }
        if let engine, !engine.isUsable { problems.append("docker_engine: an engine without an ID or data root cannot be recorded") }
        var networkIDs = Set<String>()
        for (i, n) in networks.enumerated() {
            if !networkIDs.insert(n.id).inserted { problems.append("networks[\(i)]: the same id as an earlier network") }
            for problem in n.problems() { problems.append("networks[\(i)]\(problem)") }
        }
        var endpointIDs = Set<String>()
        for (i, e) in endpoints.enumerated() {
            if !endpointIDs.insert(e.id).inserted { problems.append("endpoints[\(i)]: the same id as an earlier endpoint") }
            if !networkIDs.contains(e.networkID) { problems.append("endpoints[\(i)].network_id: no such network in the file") }
            for problem in e.problems() { problems.append("endpoints[\(i)]\(problem)") }
        }
        var cniKeys = Set<String>()
        for (i, a) in cni.enumerated() {
            if !cniKeys.insert(a.key).inserted { problems.append("cni[\(i)]: the same network, container id and ifname as an earlier one") }
            for problem in a.problems() { problems.append("cni[\(i)]\(problem)") }
        }
        var keptClients = Set<String>()
        for (i, k) in cniLeases.enumerated() {
            if !keptClients.insert("\(k.network)/\(k.mac)").inserted { problems.append("cni_leases[\(i)]: the same network and MAC as an earlier one") }
            for problem in k.problems() { problems.append("cni_leases[\(i)]\(problem)") }
        }
        return problems
    }
}
