#if canImport(Glibc)
import Glibc
#endif
import NetkeepCore

/// An IPv4 address on an interface.
public struct InterfaceAddress: Equatable, Sendable {
    public var index: Int32
    public var cidr: IPv4CIDR

    public init(index: Int32, cidr: IPv4CIDR) {
        self.index = index
        self.cidr = cidr
    }
}

/// An IPv4 route of the main table.
public struct Route: Equatable, Sendable {
    public var destination: IPv4Address?
    public var prefixLength: Int
    public var gateway: IPv4Address?
    public var outputIndex: Int32?

    public var isDefault: Bool { prefixLength == 0 }
}

extension NetlinkSession {
    /// `ip -4 addr show`.
    public func addresses() throws(NetlinkError) -> [InterfaceAddress] {
        let builder = NetlinkMessageBuilder(type: RTNL.RTM_GETADDR, flags: RTNL.NLM_F_REQUEST | RTNL.NLM_F_DUMP,
                                            familyHeader: FamilyHeader.address(prefixLength: 0, index: 0))
        var out: [InterfaceAddress] = []
        for message in try dump(builder, operation: "ip -4 addr show") where message.type == RTNL.RTM_NEWADDR {
            let payload = message.payload[...]
            guard payload.count >= RTNL.ifaddrmsgSize, payload[payload.startIndex] == RTNL.AF_INET else { continue }
            guard let attributes = try? Attributes(payload.dropFirst(RTNL.ifaddrmsgSize)),
                  let raw = attributes[RTNL.IFA_LOCAL] ?? attributes[RTNL.IFA_ADDRESS],
                  let address = IPv4Address(bytes: raw),
                  let cidr = try? IPv4CIDR(address: address, prefixLength: Int(payload[payload.startIndex + 1])) else { continue }
            out.append(InterfaceAddress(index: Bytes.s32(payload, 4), cidr: cidr))
        }
        return out
    }

    /// `ip addr add CIDR broadcast BRD dev NAME`.
    public func addAddress(_ cidr: IPv4CIDR, index: Int32, name: String) throws(NetlinkError) {
        var builder = NetlinkMessageBuilder(type: RTNL.RTM_NEWADDR,
                                            flags: RTNL.NLM_F_REQUEST | RTNL.NLM_F_ACK | RTNL.NLM_F_CREATE | RTNL.NLM_F_EXCL,
                                            familyHeader: FamilyHeader.address(prefixLength: UInt8(cidr.prefixLength), index: index))
        builder.append(RTNL.IFA_LOCAL, cidr.address.bytes)
        builder.append(RTNL.IFA_ADDRESS, cidr.address.bytes)
        if cidr.prefixLength < 31 { builder.append(RTNL.IFA_BROADCAST, cidr.broadcast.bytes) }
        try execute(builder, operation: "ip addr add \(cidr) dev \(name)")
    }

    /// `ip addr del CIDR dev NAME`.
    public func deleteAddress(_ cidr: IPv4CIDR, index: Int32, name: String) throws(NetlinkError) {
        var builder = NetlinkMessageBuilder(type: RTNL.RTM_DELADDR, flags: RTNL.NLM_F_REQUEST | RTNL.NLM_F_ACK,
                                            familyHeader: FamilyHeader.address(prefixLength: UInt8(cidr.prefixLength), index: index))
        builder.append(RTNL.IFA_LOCAL, cidr.address.bytes)
        try execute(builder, operation: "ip addr del \(cidr) dev \(name)")
    }

    /// `ip -4 route show table main`.
    public func routes() throws(NetlinkError) -> [Route] {
        let builder = NetlinkMessageBuilder(type: RTNL.RTM_GETROUTE, flags: RTNL.NLM_F_REQUEST | RTNL.NLM_F_DUMP,
                                            familyHeader: FamilyHeader.route(dstLength: 0, table: 0, protocol: 0, type: 0))
        var out: [Route] = []
        for message in try dump(builder, operation: "ip -4 route show") where message.type == RTNL.RTM_NEWROUTE {
            let payload = message.payload[...]
            guard payload.count >= RTNL.rtmsgSize, payload[payload.startIndex] == RTNL.AF_INET else { continue }
            guard let attributes = try? Attributes(payload.dropFirst(RTNL.rtmsgSize)) else { continue }
            let table = attributes.u32(RTNL.RTA_TABLE) ?? UInt32(payload[payload.startIndex + 4])
            guard table == UInt32(RTNL.RT_TABLE_MAIN) else { continue }
            out.append(Route(
                destination: attributes[RTNL.RTA_DST].flatMap { IPv4Address(bytes: $0) },
                prefixLength: Int(payload[payload.startIndex + 1]),
                gateway: attributes[RTNL.RTA_GATEWAY].flatMap { IPv4Address(bytes: $0) },
                outputIndex: attributes.s32(RTNL.RTA_OIF)))
        }
        return out
    }

    /// `ip route del default via GATEWAY dev NAME` (whoever added it: any
    /// protocol, scope and type match).
    public func deleteDefaultRoute(via gateway: IPv4Address, index: Int32, name: String) throws(NetlinkError) {
        var builder = NetlinkMessageBuilder(type: RTNL.RTM_DELROUTE, flags: RTNL.NLM_F_REQUEST | RTNL.NLM_F_ACK,
                                            familyHeader: FamilyHeader.route(dstLength: 0, protocol: 0, scope: 255, type: 0))
        builder.append(RTNL.RTA_GATEWAY, gateway.bytes)
        builder.append(RTNL.RTA_OIF, s32: index)
        try execute(builder, operation: "ip route del default via \(gateway) dev \(name)")
    }

    /// `ip route add default via GATEWAY dev NAME`.
    public func addDefaultRoute(via gateway: IPv4Address, index: Int32, name: String) throws(NetlinkError) {
        var builder = NetlinkMessageBuilder(type: RTNL.RTM_NEWROUTE,
                                            flags: RTNL.NLM_F_REQUEST | RTNL.NLM_F_ACK | RTNL.NLM_F_CREATE | RTNL.NLM_F_EXCL,
                                            familyHeader: FamilyHeader.route(dstLength: 0))
        builder.append(RTNL.RTA_GATEWAY, gateway.bytes)
        builder.append(RTNL.RTA_OIF, s32: index)
        try execute(builder, operation: "ip route add default via \(gateway) dev \(name)")
    }
}
