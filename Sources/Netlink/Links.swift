#if canImport(Glibc)
import Glibc
#endif
import NetkeepCore

/// A network interface as the kernel reports it.
public struct Link: Equatable, Sendable {
    public var index: Int32
    public var name: String
    public var mac: MACAddress?
    public var mtu: Int
    public var flags: UInt32
    /// "veth", "vxlan", ... (IFLA_INFO_KIND); nil for physical devices.
    public var kind: String?
    /// For a veth: the peer's index, in the namespace `linkNetnsID` names when set.
    public var peerIndex: Int32?
    public var linkNetnsID: Int32?

    public var isUp: Bool { flags & RTNL.IFF_UP != 0 }
}

extension NetlinkSession {
    /// `ip -d link show` (all links of the session's namespace).
    public func links() throws(NetlinkError) -> [Link] {
        let builder = NetlinkMessageBuilder(type: RTNL.RTM_GETLINK, flags: RTNL.NLM_F_REQUEST | RTNL.NLM_F_DUMP,
                                            familyHeader: FamilyHeader.link())
        var links: [Link] = []
        for message in try dump(builder, operation: "ip link show") {
            if let link = try Self.decodeLink(message, operation: "ip link show") { links.append(link) }
        }
        return links
    }

    /// `ip link show NAME`; nil when there is no such link.
    public func link(named name: String) throws(NetlinkError) -> Link? {
        var builder = NetlinkMessageBuilder(type: RTNL.RTM_GETLINK, flags: RTNL.NLM_F_REQUEST, familyHeader: FamilyHeader.link())
        builder.append(RTNL.IFLA_IFNAME, string: name)
        do {
            guard let message = try fetch(builder, operation: "ip link show \(name)") else { return nil }
            return try Self.decodeLink(message, operation: "ip link show \(name)")
        } catch where error.errno == ENODEV {
            return nil
        }
    }

    /// `ip link add NAME mtu MTU type veth peer name PEER address MAC mtu MTU netns FD`:
    /// the peer is created directly in its namespace, with its final name and MAC,
    /// which saves a move (and a rename) per attachment.
    public func createVeth(name: String, mtu: Int, peerName: String, peerMAC: MACAddress, peerMTU: Int,
                           peerNamespace: NetworkNamespace?) throws(NetlinkError) {
        var builder = NetlinkMessageBuilder(type: RTNL.RTM_NEWLINK,
                                            flags: RTNL.NLM_F_REQUEST | RTNL.NLM_F_ACK | RTNL.NLM_F_CREATE | RTNL.NLM_F_EXCL,
                                            familyHeader: FamilyHeader.link())
        builder.append(RTNL.IFLA_IFNAME, string: name)
        builder.append(RTNL.IFLA_MTU, u32: UInt32(mtu))
        builder.nest(RTNL.IFLA_LINKINFO) { info in
            info.append(RTNL.IFLA_INFO_KIND, string: "veth")
            info.nest(RTNL.IFLA_INFO_DATA) { data in
                data.nest(RTNL.VETH_INFO_PEER) { peer in
                    peer.appendRaw(FamilyHeader.link())
                    peer.append(RTNL.IFLA_IFNAME, string: peerName)
                    peer.append(RTNL.IFLA_ADDRESS, peerMAC.bytes)
                    peer.append(RTNL.IFLA_MTU, u32: UInt32(peerMTU))
                    if let peerNamespace { peer.append(RTNL.IFLA_NET_NS_FD, u32: UInt32(bitPattern: peerNamespace.fd)) }
                }
            }
        }
        try execute(builder, operation: "ip link add \(name) type veth peer name \(peerName)")
    }

    /// `ip link set INDEX up` / `down`.
    public func setUp(index: Int32, _ up: Bool = true, name: String) throws(NetlinkError) {
        let builder = NetlinkMessageBuilder(type: RTNL.RTM_NEWLINK, flags: RTNL.NLM_F_REQUEST | RTNL.NLM_F_ACK,
                                            familyHeader: FamilyHeader.link(index: index, flags: up ? RTNL.IFF_UP : 0, change: RTNL.IFF_UP))
        try execute(builder, operation: "ip link set \(name) \(up ? "up" : "down")")
    }

    /// `ip link set INDEX address MAC mtu MTU` (each only when given).
    public func configure(index: Int32, name: String, mac: MACAddress? = nil, mtu: Int? = nil, newName: String? = nil) throws(NetlinkError) {
        var builder = NetlinkMessageBuilder(type: RTNL.RTM_NEWLINK, flags: RTNL.NLM_F_REQUEST | RTNL.NLM_F_ACK,
                                            familyHeader: FamilyHeader.link(index: index))
        var words = ["ip link set \(name)"]
        if let mac { builder.append(RTNL.IFLA_ADDRESS, mac.bytes); words.append("address \(mac)") }
        if let mtu { builder.append(RTNL.IFLA_MTU, u32: UInt32(mtu)); words.append("mtu \(mtu)") }
        if let newName { builder.append(RTNL.IFLA_IFNAME, string: newName); words.append("name \(newName)") }
        try execute(builder, operation: words.joined(separator: " "))
    }

    /// `ip link del NAME`; returns false when it did not exist.
    @discardableResult
    public func deleteLink(named name: String) throws(NetlinkError) -> Bool {
        var builder = NetlinkMessageBuilder(type: RTNL.RTM_DELLINK, flags: RTNL.NLM_F_REQUEST | RTNL.NLM_F_ACK, familyHeader: FamilyHeader.link())
        builder.append(RTNL.IFLA_IFNAME, string: name)
        do {
            try execute(builder, operation: "ip link del \(name)")
            return true
        } catch where error.errno == ENODEV {
            return false
        }
    }

    static func decodeLink(_ message: NetlinkMessage, operation: String) throws(NetlinkError) -> Link? {
        guard message.type == RTNL.RTM_NEWLINK else { return nil }
        let payload = message.payload[...]
        guard payload.count >= RTNL.ifinfomsgSize else {
            throw NetlinkError(operation: operation, errno: EBADMSG, kernelMessage: "short ifinfomsg")
        }
        do {
            let attributes = try Attributes(payload.dropFirst(RTNL.ifinfomsgSize))
            let info = try attributes.nested(RTNL.IFLA_LINKINFO)
            return Link(
                index: Bytes.s32(payload, 4),
                name: attributes.string(RTNL.IFLA_IFNAME) ?? "",
                mac: attributes[RTNL.IFLA_ADDRESS].flatMap { MACAddress(bytes: $0) },
                mtu: Int(attributes.u32(RTNL.IFLA_MTU) ?? 0),
                flags: Bytes.u32(payload, 8),
                kind: info?.string(RTNL.IFLA_INFO_KIND),
                peerIndex: attributes.s32(RTNL.IFLA_LINK),
                linkNetnsID: attributes.s32(RTNL.IFLA_LINK_NETNSID))
        } catch {
            throw NetlinkError(operation: operation, errno: EBADMSG, kernelMessage: error.reason)
        }
    }
}
