/// What the host looks like, as one observation pass saw it. Plain values:
/// the observer fills them from Docker, OVSDB, netlink and /var/run/netns, and
/// tests build them by hand. A nil part means "could not be observed".
public struct ObservedHost: Equatable, Sendable {
    public var docker: DockerView
    public var ovs: OVSView?
    /// Why OVSDB could not be read, when `ovs` is nil.
    public var ovsError: String?
    /// Links of the host namespace by name; nil when netlink failed.
    public var hostLinks: [String: ObservedLink]?
    /// Network of each running container that was looked into, by full id.
    public var containerNetworks: [String: ContainerNetwork]
    /// Entries of /var/run/netns by name; nil when it could not be read.
    public var netns: [String: NetnsEntry]?
    public var bootID: String?
    /// The wall clock when observed (DHCP leases expire).
    public var now: Timestamp
    /// Who answered on the Docker socket (`GET /info`); nil when it was not
    /// asked or gave no usable answer: then no 404 counts as evidence.
    public var engine: EngineIdentity?
    /// Why `engine` is nil, when it was asked.
    public var engineError: String?
    /// Running containers whose namespace was not looked into, with the reason
    /// (not the container's namespace any more, netlink refused, ...).
    public var unreadableNetworks: [String: String]
    /// Containers another pass is changing right now (it holds their
    /// claims): their records are left to it, their ports and links kept.
    public var busyContainers: Set<String> = []

    public init(docker: DockerView, ovs: OVSView?, ovsError: String? = nil, hostLinks: [String: ObservedLink]?,
                containerNetworks: [String: ContainerNetwork], netns: [String: NetnsEntry]?, bootID: String?,
                now: Timestamp = Timestamp(secondsSinceEpoch: 0), engine: EngineIdentity? = nil, engineError: String? = nil,
                unreadableNetworks: [String: String] = [:]) {
        self.unreadableNetworks = unreadableNetworks
        self.engine = engine
        self.engineError = engineError
        self.docker = docker
        self.ovs = ovs
        self.ovsError = ovsError
        self.hostLinks = hostLinks
        self.containerNetworks = containerNetworks
        self.netns = netns
        self.bootID = bootID
        self.now = now
    }

    /// Garbage may be collected only when every source answered.
    public var isComplete: Bool {
        if case .unreachable = docker { return false }
        return ovs != nil && hostLinks != nil && netns != nil
    }
}

public struct ObservedContainer: Equatable, Sendable {
    public var id: String
    public var name: String
    public var running: Bool
    public var pid: Int32
    /// Set when the container has no network namespace of its own
    /// (`--network host`, `--network container:X`): netkeep never enters it.
    public var sharedNamespace: String?

    public init(id: String, name: String, running: Bool, pid: Int32, sharedNamespace: String? = nil) {
        self.id = id
        self.name = name
        self.running = running
        self.pid = pid
        self.sharedNamespace = sharedNamespace
    }
}

public enum DockerView: Equatable, Sendable {
    case unreachable(String)
    /// `containers` by full id; `removed` holds every reference (id or name)
    /// for which the engine answered 404: the only evidence garbage collection accepts.
    case answered(containers: [String: ObservedContainer], removed: Set<String>)

    public func container(_ id: String) -> ObservedContainer? {
        if case .answered(let containers, _) = self { return containers[id] }
        return nil
    }

    public func isRemoved(_ reference: String) -> Bool {
        if case .answered(_, let removed) = self { return removed.contains(reference) }
        return false
    }
}

public struct ObservedLink: Equatable, Sendable {
    public var name: String
    public var index: Int32
    public var kind: String?
    public var mac: MACAddress?
    public var mtu: Int
    public var isUp: Bool

    public init(name: String, index: Int32, kind: String?, mac: MACAddress?, mtu: Int, isUp: Bool) {
        self.name = name
        self.index = index
        self.kind = kind
        self.mac = mac
        self.mtu = mtu
        self.isUp = isUp
    }
}

/// Links, IPv4 addresses and default routes inside one container.
public struct ContainerNetwork: Equatable, Sendable {
    public var links: [String: ObservedLink]
    /// Addresses by interface name.
    public var addresses: [String: [IPv4CIDR]]
    /// Default routes as (gateway, interface name).
    public var defaultRoutes: [DefaultRoute]
    /// The namespace that was looked into: every later step checks it enters the same one.
    public var namespace: NamespaceID?

    public struct DefaultRoute: Hashable, Sendable {
        public var gateway: IPv4Address?
        public var ifname: String
        public init(gateway: IPv4Address?, ifname: String) {
            self.gateway = gateway
            self.ifname = ifname
        }
    }

    public init(links: [String: ObservedLink], addresses: [String: [IPv4CIDR]], defaultRoutes: [DefaultRoute], namespace: NamespaceID? = nil) {
        self.namespace = namespace
        self.links = links
        self.addresses = addresses
        self.defaultRoutes = defaultRoutes
    }
}

/// Open vSwitch's bridges and ports.
public struct OVSView: Equatable, Sendable {
    /// datapath_type by bridge name.
    public var bridges: [String: String]
    public var ports: [String: ObservedPort]

    public init(bridges: [String: String], ports: [String: ObservedPort]) {
        self.bridges = bridges
        self.ports = ports
    }
}

public struct ObservedPort: Equatable, Sendable {
    public var name: String
    public var bridge: String
    public var tag: Int?
    /// The port's interface of the same name (ports netkeep cares about have one).
    public var ofport: Int?
    public var error: String?
    public var type: String
    public var externalIDs: [String: String]

    public init(name: String, bridge: String, tag: Int?, ofport: Int?, error: String?, type: String, externalIDs: [String: String]) {
        self.name = name
        self.bridge = bridge
        self.tag = tag
        self.ofport = ofport
        self.error = error
        self.type = type
        self.externalIDs = externalIDs
    }

    public enum Owner: String, Sendable { case netkeep, ovsDocker = "ovs-docker" }

    /// Who made the port, by its Interface external_ids; nil: neither (never collected).
    public var owner: Owner? {
        guard type.isEmpty || type == "system" else { return nil }
        if externalIDs["netkeep-attachment"] != nil, externalIDs["container_id"] != nil { return .netkeep }
        if externalIDs["container_id"] != nil, externalIDs["container_iface"] != nil { return .ovsDocker }
        return nil
    }

    /// The port of netkeep's DHCP release station (external_ids `netkeep-release`).
    public var isReleaseStation: Bool {
        (type.isEmpty || type == "system") && externalIDs["netkeep-release"] != nil && externalIDs["container_id"] == nil
    }

    /// OVS says the device cannot be opened: a reboot (or a deleted veth) left the row behind.
    public var isInError: Bool { (error.map { !$0.isEmpty } ?? false) || ofport == -1 }
}

public struct NetnsEntry: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// A symlink to /proc/PID/ns/net; `alive` tells whether PID still runs.
        case procLink(pid: Int32, alive: Bool)
        /// A symlink elsewhere, or a bind mount (`ip netns add`), or anything else: never touched.
        case other
    }

    public var name: String
    public var kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }
}
