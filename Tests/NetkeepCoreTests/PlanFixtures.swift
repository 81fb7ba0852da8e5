import NetkeepCore

/// A small world in which attachments are healthy, for tests to break one thing at a time.
struct World {
    static let engine = EngineIdentity(id: "HTTS:VYTX:E44Q", rootDir: "/var/lib/docker")
    var state: State = { var s = State(bootID: "boot-1"); s.engine = World.engine; return s }()
    /// Who answers on the Docker socket (GET /info).
    var engine: EngineIdentity? = World.engine
    var containers: [String: ObservedContainer] = [:]
    var removed: Set<String> = []
    var dockerReachable = true
    var ovs: OVSView? = OVSView(bridges: ["br0": "netdev"], ports: [:])
    var hostLinks: [String: ObservedLink]? = [:]
    var networks: [String: ContainerNetwork] = [:]
    var netns: [String: NetnsEntry]? = [:]
    var bootID = "boot-1"
    var now = Timestamp(secondsSinceEpoch: 1_800_000_000)
    var nextIndex: Int32 = 100
    /// Seconds a removed container's identity is kept (0: released at once).
    var retention: Int64 = 0

    static func containerID(_ n: Int) -> String { String(repeating: String(n % 10), count: 64) }

    /// A running container with one healthy attachment.
    @discardableResult
    mutating func addHealthy(_ n: Int, ifname: String = "eth1", vlan: Int? = nil, gateway: Bool = true, dhcp: Bool = false) -> NetkeepCore.Attachment {
        let id = Self.containerID(n)
        let pid = Int32(1000 + n)
        containers[id] = ObservedContainer(id: id, name: "c\(n)", running: true, pid: pid)
        removed.remove(id)
        var a = NetkeepCore.Attachment(
            containerID: id, containerName: "c\(n)", ifname: ifname, bridge: "br0",
            mac: MACAddress(bytes: [2, 0, 0, 0, UInt8(n), UInt8(ifname.count)])!, mtu: 1500, vlan: vlan, mode: dhcp ? .dhcp : .static,
            address: try! IPv4CIDR(parsing: "10.0.0.\(n + 1)/24"), gateway: gateway ? try! IPv4Address(parsing: "10.0.0.254") : nil,
            netnsLink: "c\(n)", status: .ready, createdAt: Timestamp(secondsSinceEpoch: 0), containerPID: pid)
        if dhcp { a.lease = freshLease(a.address!, router: a.gateway) }
        state.upsert(a)
        makeHealthy(a, pid: pid)
        return a
    }

    func freshLease(_ address: IPv4CIDR, router: IPv4Address?) -> Lease {
        Lease(address: address, router: router, serverID: IPv4Address(10, 0, 0, 254), leaseSeconds: 3600, renewSeconds: 1800,
              rebindSeconds: 3150, obtainedAt: now, renewAt: now.adding(seconds: 1800), rebindAt: now.adding(seconds: 3150))
    }

    mutating func makeHealthy(_ a: NetkeepCore.Attachment, pid: Int32) {
        nextIndex += 2
        hostLinks?[a.hostIfname] = ObservedLink(name: a.hostIfname, index: nextIndex, kind: "veth", mac: nil, mtu: a.mtu, isUp: true)
        var network = networks[a.containerID] ?? ContainerNetwork(links: [:], addresses: [:], defaultRoutes: [])
        network.links[a.ifname] = ObservedLink(name: a.ifname, index: nextIndex + 1, kind: "veth", mac: a.mac, mtu: a.mtu, isUp: true)
        network.addresses[a.ifname] = a.expectedAddress(at: now).map { [$0] } ?? []
        if let gw = a.expectedGateway(at: now) { network.defaultRoutes.append(.init(gateway: gw, ifname: a.ifname)) }
        networks[a.containerID] = network
        ovs?.ports[a.hostIfname] = ObservedPort(name: a.hostIfname, bridge: a.bridge, tag: a.vlan, ofport: 5, error: nil, type: "",
                                               externalIDs: ["netkeep-attachment": a.id, "container_id": a.containerID, "container_iface": a.ifname])
        if let link = a.netnsLink { netns?[link] = NetnsEntry(name: link, kind: .procLink(pid: pid, alive: true)) }
    }

    var observed: ObservedHost {
        ObservedHost(docker: dockerReachable ? .answered(containers: containers, removed: removed) : .unreachable("connection refused"),
                     ovs: ovs, ovsError: ovs == nil ? "connection refused" : nil, hostLinks: hostLinks,
                     containerNetworks: networks, netns: netns, bootID: bootID, now: now, engine: engine)
    }

    var plan: Plan { NetkeepCore.plan(desired: state, observed: observed, retention: retention) }

    /// Docker forgot the container and its namespace is gone, veth and all.
    mutating func remove(_ a: NetkeepCore.Attachment) {
        containers[a.containerID] = nil
        removed.insert(a.containerID)
        hostLinks?[a.hostIfname] = nil
        networks[a.containerID] = nil
    }
}
