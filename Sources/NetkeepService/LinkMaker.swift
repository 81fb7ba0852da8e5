#if canImport(Glibc)
import Glibc
#endif
import DockerEngine
import NetkeepCore
import Netlink

/// Makes and mends the veth pair of an attachment: the same code for
/// `attach` and for reconcile's repairs, so a repaired interface is exactly
/// what attach made.
final class LinkMaker {
    let host: NetlinkSession
    let inside: NetlinkSession
    let namespace: NetworkNamespace
    /// An AF_INET socket inside the container for ethtool, opened on the same
    /// namespace thread as the netlink socket.
    private let insideControl: Int32

    /// Opens the sessions: host (this thread's namespace) and the container's,
    /// which must be `expected` when given (see NetworkNamespace(pid:expecting:)).
    /// The namespace Docker holds for `container` (its SandboxKey) is the one entered.
    convenience init(container: Container) throws {
        try self.init(pid: container.pid, expecting: NetworkNamespace.id(ofPath: container.sandboxKey))
    }

    convenience init(pid: Int32, expecting expected: NamespaceID?) throws {
        try self.init(namespace: NetworkNamespace(pid: pid, expecting: expected))
    }

    /// Any namespace handle (a container's, or netkeep's own release station).
    init(namespace: NetworkNamespace) throws {
        self.namespace = namespace
        let (socket, control) = try NamespaceThread.run(in: namespace) { () throws -> (RouteSocket, Int32) in
            let route = try RouteSocket()
            return (route, try Ethtool.controlSocket())
        }
        inside = NetlinkSession(socket: socket)
        insideControl = control
        host = try NetlinkSession.open()
    }

    deinit { close(insideControl) }

    /// `ip link add` with the peer created inside the container under its
    /// final name, MAC and MTU; offload off on a userspace bridge; the inside
    /// end up with its address and default route; the host end up unless
    /// `hostUp` is false (the caller brings it up later).
    func create(_ a: Attachment, userspaceBridge: Bool, hostUp: Bool = true) throws {
        try host.createVeth(name: a.hostIfname, mtu: a.mtu, peerName: a.ifname, peerMAC: a.mac, peerMTU: a.mtu, peerNamespace: namespace)
        if userspaceBridge {
            try Ethtool.setTxChecksum(false, interface: a.hostIfname, in: nil)
            try Ethtool.setTxChecksum(false, interface: a.ifname, socket: insideControl)
        }
        try configureInside(a, fixes: nil)
        if hostUp { try setHostUp(a) }
    }

    func setHostUp(_ a: Attachment) throws {
        let hostLink = try requireLink(host, a.hostIfname)
        try host.setUp(index: hostLink.index, name: a.hostIfname)
    }

    /// Deletes the host end (which takes its peer along) and a leftover inside
    /// end carrying the attachment's MAC.
    func delete(_ a: Attachment) throws {
        try host.deleteLink(named: a.hostIfname)
        if let link = try inside.link(named: a.ifname), link.mac == a.mac {
            try inside.deleteLink(named: a.ifname)
        }
    }

    /// Applies `fixes`, or everything a new link needs when nil (for DHCP only
    /// "up": the address comes with the lease).
    func configureInside(_ a: Attachment, fixes: [InterfaceFix]?) throws {
        let link = try requireLink(inside, a.ifname)
        var all = fixes ?? [.containerUp]
        if fixes == nil, a.mode == .static {
            all += (a.address.map { [.address($0)] } ?? []) + (a.gateway.map { [.defaultRoute($0)] } ?? [])
        }
        for fix in all {
            switch fix {
            case .containerMTU: try inside.configure(index: link.index, name: a.ifname, mtu: a.mtu)
            case .containerUp: try inside.setUp(index: link.index, name: a.ifname)
            case .address(let cidr): try inside.addAddress(cidr, index: link.index, name: a.ifname)
            case .defaultRoute(let gateway): try inside.addDefaultRoute(via: gateway, index: link.index, name: a.ifname)
            case .hostMTU:
                let hostLink = try requireLink(host, a.hostIfname)
                try host.configure(index: hostLink.index, name: a.hostIfname, mtu: a.mtu)
            case .hostUp:
                let hostLink = try requireLink(host, a.hostIfname)
                try host.setUp(index: hostLink.index, name: a.hostIfname)
            }
        }
    }

    private func requireLink(_ session: NetlinkSession, _ name: String) throws(NetlinkError) -> Link {
        guard let link = try session.link(named: name) else { throw NetlinkError(operation: "ip link show \(name)", errno: ENODEV) }
        return link
    }
}
