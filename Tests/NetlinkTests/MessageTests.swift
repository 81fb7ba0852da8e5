import CLinux
import NetkeepCore
@testable import Netlink
import Testing

@Suite struct ConstantsTests {
    @Test func matchTheKernelHeaders() {
        #expect(RTNL.RTM_NEWLINK == UInt16(RTM_NEWLINK))
        #expect(RTNL.RTM_GETROUTE == UInt16(RTM_GETROUTE))
        #expect(RTNL.RTM_NEWADDR == UInt16(RTM_NEWADDR))
        #expect(RTNL.IFLA_IFNAME == UInt16(IFLA_IFNAME))
        #expect(RTNL.IFLA_LINKINFO == UInt16(IFLA_LINKINFO))
        #expect(RTNL.IFLA_NET_NS_FD == UInt16(IFLA_NET_NS_FD))
        #expect(RTNL.IFLA_LINK_NETNSID == UInt16(IFLA_LINK_NETNSID))
        #expect(RTNL.IFLA_INFO_DATA == UInt16(IFLA_INFO_DATA))
        #expect(RTNL.VETH_INFO_PEER == UInt16(VETH_INFO_PEER))
        #expect(RTNL.IFA_LOCAL == UInt16(IFA_LOCAL))
        #expect(RTNL.RTA_GATEWAY == UInt16(RTA_GATEWAY.rawValue))
        #expect(RTNL.RTA_TABLE == UInt16(RTA_TABLE.rawValue))
        #expect(RTNL.NLM_F_DUMP == UInt16(NLM_F_DUMP))
        #expect(RTNL.NLM_F_ACK_TLVS == UInt16(NLM_F_ACK_TLVS))
        #expect(RTNL.NETLINK_EXT_ACK == NETLINK_EXT_ACK)
        #expect(RTNL.ifinfomsgSize == MemoryLayout<ifinfomsg>.size)
        #expect(RTNL.ifaddrmsgSize == MemoryLayout<ifaddrmsg>.size)
        #expect(RTNL.rtmsgSize == MemoryLayout<rtmsg>.size)
    }
}

@Suite struct MessageTests {
    @Test func builderWritesHeaderAttributesAndPadding() {
        var b = NetlinkMessageBuilder(type: RTNL.RTM_GETLINK, flags: RTNL.NLM_F_REQUEST, familyHeader: FamilyHeader.link(index: 7))
        b.append(RTNL.IFLA_IFNAME, string: "eth1")
        let bytes = b.finished(sequence: 0x01020304)
        #expect(bytes.count == 16 + 16 + 12)
        #expect(Array(bytes[0..<4]) == [44, 0, 0, 0])
        #expect(Array(bytes[4..<8]) == [18, 0, 1, 0])
        #expect(Array(bytes[8..<12]) == [4, 3, 2, 1])
        #expect(Array(bytes[20..<24]) == [7, 0, 0, 0])
        // rtattr: len 9 ("eth1\0" + 4), type 3, then padding to 12.
        #expect(Array(bytes[32...]) == [9, 0, 3, 0, 0x65, 0x74, 0x68, 0x31, 0, 0, 0, 0])
    }

    @Test func nestsCarryTheirTotalLength() throws {
        var b = NetlinkMessageBuilder(type: RTNL.RTM_NEWLINK, flags: 0, familyHeader: FamilyHeader.link())
        b.nest(RTNL.IFLA_LINKINFO) { info in
            info.append(RTNL.IFLA_INFO_KIND, string: "veth")
            info.nest(RTNL.IFLA_INFO_DATA) { data in
                data.nest(RTNL.VETH_INFO_PEER) { peer in
                    peer.appendRaw(FamilyHeader.link())
                    peer.append(RTNL.IFLA_IFNAME, string: "eth1")
                }
            }
        }
        let bytes = b.finished(sequence: 1)
        let attributes = try Attributes(bytes[32...])
        let info = try #require(try attributes.nested(RTNL.IFLA_LINKINFO))
        #expect(info.string(RTNL.IFLA_INFO_KIND) == "veth")
        let data = try #require(try info.nested(RTNL.IFLA_INFO_DATA))
        let peer = try #require(data[RTNL.VETH_INFO_PEER])
        #expect(peer.count == 16 + 12)
        #expect(try Attributes(peer[16...]).string(RTNL.IFLA_IFNAME) == "eth1")
    }

    @Test func parsesMultipleMessagesAndRejectsOverruns() throws {
        let a = NetlinkMessageBuilder(type: RTNL.NLMSG_DONE, flags: RTNL.NLM_F_MULTI, familyHeader: [0, 0, 0, 0]).finished(sequence: 5)
        let b = NetlinkMessageBuilder(type: RTNL.NLMSG_NOOP, flags: 0, familyHeader: []).finished(sequence: 6)
        let messages = try NetlinkMessage.parseAll(a + b)
        #expect(messages.map(\.type) == [RTNL.NLMSG_DONE, RTNL.NLMSG_NOOP])
        #expect(messages.map(\.sequence) == [5, 6])
        var broken = a
        broken[0] = 200
        #expect(throws: NetlinkParseError.self) { try NetlinkMessage.parseAll(broken) }
        #expect(throws: NetlinkParseError.self) { try Attributes([40, 0, 3, 0, 1, 2][...]) }
        #expect(throws: NetlinkParseError.self) { try Attributes([2, 0, 3, 0][...]) }
    }
}

/// Canned replies, as the kernel would send them.
final class CannedSocket: NetlinkSocket {
    var sent: [[UInt8]] = []
    var replies: [([UInt8]) -> [UInt8]]

    init(_ replies: [([UInt8]) -> [UInt8]]) { self.replies = replies }

    func send(_ message: [UInt8]) throws(NetlinkError) { sent.append(message) }

    func receive() throws(NetlinkError) -> [UInt8] {
        guard !replies.isEmpty else { throw NetlinkError(operation: "receive", errno: 11) }
        return replies.removeFirst()(sent.last!)
    }
}

func sequence(of request: [UInt8]) -> UInt32 { Bytes.u32(request[...], 8) }

func errorReply(_ request: [UInt8], errno: Int32, message: String? = nil, sequenceOffset: UInt32 = 0) -> [UInt8] {
    var flags: UInt16 = RTNL.NLM_F_CAPPED
    if message != nil { flags |= RTNL.NLM_F_ACK_TLVS }
    var b = NetlinkMessageBuilder(type: RTNL.NLMSG_ERROR, flags: flags,
                                  familyHeader: le(UInt32(bitPattern: -errno)) + Array(request[0..<16]))
    if let message { b.append(RTNL.NLMSGERR_ATTR_MSG, string: message) }
    return b.finished(sequence: sequence(of: request) &+ sequenceOffset)
}

@Suite struct SessionTests {
    @Test func ackEndsARequest() throws {
        let socket = CannedSocket([{ errorReply($0, errno: 0) }])
        try NetlinkSession(socket: socket).setUp(index: 3, name: "eth1")
        let sent = try NetlinkMessage.parseAll(socket.sent[0])[0]
        #expect(sent.type == RTNL.RTM_NEWLINK)
        #expect(sent.flags == RTNL.NLM_F_REQUEST | RTNL.NLM_F_ACK)
        #expect(Bytes.u32(sent.payload[...], 8) == RTNL.IFF_UP)
        #expect(Bytes.u32(sent.payload[...], 12) == RTNL.IFF_UP)
    }

    @Test func errorsCarryTheKernelsExtendedAck() {
        let socket = CannedSocket([{ errorReply($0, errno: 17, message: "File exists, says the kernel") }])
        let peer = try! MACAddress(parsing: "02:00:00:00:00:01")
        #expect(throws: NetlinkError(operation: "ip link add nkx type veth peer name eth1", errno: 17, kernelMessage: "File exists, says the kernel")) {
            try NetlinkSession(socket: socket).createVeth(name: "nkx", mtu: 1500, peerName: "eth1", peerMAC: peer, peerMTU: 1500, peerNamespace: nil)
        }
    }

    @Test func repliesToOtherSequencesAreSkipped() throws {
        let socket = CannedSocket([{ errorReply($0, errno: 1, sequenceOffset: 99) + errorReply($0, errno: 0) }])
        try NetlinkSession(socket: socket).setUp(index: 3, name: "eth1")
    }

    @Test func missingLinkIsNil() throws {
        let socket = CannedSocket([{ errorReply($0, errno: 19) }])
        #expect(try NetlinkSession(socket: socket).link(named: "nope") == nil)
    }

    @Test func decodesALinkReply() throws {
        let socket = CannedSocket([{ request in
            var b = NetlinkMessageBuilder(type: RTNL.RTM_NEWLINK, flags: 0, familyHeader: FamilyHeader.link(index: 42, flags: RTNL.IFF_UP))
            b.append(RTNL.IFLA_IFNAME, string: "eth1")
            b.append(RTNL.IFLA_ADDRESS, [2, 0, 0, 0, 0, 9])
            b.append(RTNL.IFLA_MTU, u32: 1400)
            b.nest(RTNL.IFLA_LINKINFO) { $0.append(RTNL.IFLA_INFO_KIND, string: "veth") }
            return b.finished(sequence: sequence(of: request))
        }])
        let link = try #require(try NetlinkSession(socket: socket).link(named: "eth1"))
        #expect(link.index == 42)
        #expect(link.isUp)
        #expect(link.mac?.description == "02:00:00:00:00:09")
        #expect(link.mtu == 1400)
        #expect(link.kind == "veth")
    }

    @Test func interruptedDumpsAreRetried() throws {
        var calls = 0
        let socket = CannedSocket([
            { calls += 1; return NetlinkMessageBuilder(type: RTNL.NLMSG_DONE, flags: RTNL.NLM_F_MULTI | RTNL.NLM_F_DUMP_INTR, familyHeader: [0, 0, 0, 0]).finished(sequence: sequence(of: $0)) },
            { calls += 1; return NetlinkMessageBuilder(type: RTNL.NLMSG_DONE, flags: RTNL.NLM_F_MULTI, familyHeader: [0, 0, 0, 0]).finished(sequence: sequence(of: $0)) },
        ])
        // The DONE of an interrupted dump carries the flag; the retry succeeds.
        _ = try NetlinkSession(socket: socket).links()
        #expect(calls == 2)
    }

    @Test func addressAndRouteRequestsCarryTheirAttributes() throws {
        let socket = CannedSocket([{ errorReply($0, errno: 0) }, { errorReply($0, errno: 0) }])
        let session = NetlinkSession(socket: socket)
        try session.addAddress(try IPv4CIDR(parsing: "10.1.2.5/24"), index: 4, name: "eth1")
        try session.addDefaultRoute(via: try IPv4Address(parsing: "10.1.2.1"), index: 4, name: "eth1")
        let addr = try NetlinkMessage.parseAll(socket.sent[0])[0]
        #expect(Array(addr.payload[0..<8]) == [2, 24, 0, 0, 4, 0, 0, 0])
        let addrAttributes = try Attributes(addr.payload[8...])
        #expect(addrAttributes[RTNL.IFA_LOCAL] == [10, 1, 2, 5])
        #expect(addrAttributes[RTNL.IFA_BROADCAST] == [10, 1, 2, 255])
        let route = try NetlinkMessage.parseAll(socket.sent[1])[0]
        #expect(Array(route.payload[0..<8]) == [2, 0, 0, 0, 254, 4, 0, 1])
        #expect(try Attributes(route.payload[12...])[RTNL.RTA_GATEWAY] == [10, 1, 2, 1])
    }
}
