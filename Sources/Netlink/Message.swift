/// Builds one netlink message: header, a fixed family header, then attributes
/// (4-byte aligned), with nests closed by `nest`. Host byte order, as netlink uses.
public struct NetlinkMessageBuilder: Sendable {
    public private(set) var bytes: [UInt8]

    public init(type: UInt16, flags: UInt16, familyHeader: [UInt8]) {
        bytes = [UInt8](repeating: 0, count: RTNL.headerSize)
        bytes.replaceSubrange(4..<6, with: le(type))
        bytes.replaceSubrange(6..<8, with: le(flags))
        bytes += familyHeader
        pad()
    }

    /// The finished message with its length and sequence number filled in.
    public func finished(sequence: UInt32) -> [UInt8] {
        var out = bytes
        out.replaceSubrange(0..<4, with: le(UInt32(out.count)))
        out.replaceSubrange(8..<12, with: le(sequence))
        return out
    }

    public mutating func append(_ type: UInt16, _ payload: [UInt8]) {
        bytes += le(UInt16(4 + payload.count)) + le(type) + payload
        pad()
    }

    /// A NUL-terminated string attribute (interface names, kinds).
    public mutating func append(_ type: UInt16, string: String) { append(type, Array(string.utf8) + [0]) }
    public mutating func append(_ type: UInt16, u32: UInt32) { append(type, le(u32)) }
    public mutating func append(_ type: UInt16, s32: Int32) { append(type, le(UInt32(bitPattern: s32))) }

    /// Appends raw bytes inside the current attribute (a nested family header).
    public mutating func appendRaw(_ raw: [UInt8]) {
        bytes += raw
        pad()
    }

    public mutating func nest(_ type: UInt16, _ body: (inout NetlinkMessageBuilder) -> Void) {
        let start = bytes.count
        bytes += [0, 0] + le(type)
        body(&self)
        bytes.replaceSubrange(start..<start + 2, with: le(UInt16(bytes.count - start)))
    }

    private mutating func pad() {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }
}

func le(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xff), UInt8(value >> 8)] }
func le(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * UInt32($0))) & 0xff) } }

/// Family headers.
enum FamilyHeader {
    /// struct ifinfomsg.
    static func link(index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0) -> [UInt8] {
        [RTNL.AF_UNSPEC, 0, 0, 0] + le(UInt32(bitPattern: index)) + le(flags) + le(change)
    }

    /// struct ifaddrmsg.
    static func address(prefixLength: UInt8, index: Int32, scope: UInt8 = RTNL.RT_SCOPE_UNIVERSE) -> [UInt8] {
        [RTNL.AF_INET, prefixLength, 0, scope] + le(UInt32(bitPattern: index))
    }

    /// struct rtmsg.
    static func route(dstLength: UInt8, table: UInt8 = RTNL.RT_TABLE_MAIN, protocol proto: UInt8 = RTNL.RTPROT_STATIC,
                      scope: UInt8 = RTNL.RT_SCOPE_UNIVERSE, type: UInt8 = RTNL.RTN_UNICAST) -> [UInt8] {
        [RTNL.AF_INET, dstLength, 0, 0, table, proto, scope, type] + le(UInt32(0))
    }
}

/// One received netlink message.
public struct NetlinkMessage: Sendable, Equatable {
    public var type: UInt16
    public var flags: UInt16
    public var sequence: UInt32
    public var portID: UInt32
    /// Everything after the 16-byte header.
    public var payload: [UInt8]
}

public struct NetlinkParseError: Error, Equatable, Sendable, CustomStringConvertible {
    public let reason: String
    public var description: String { "malformed netlink message: \(reason)" }
}

enum Bytes {
    static func u16(_ b: ArraySlice<UInt8>, _ at: Int) -> UInt16 {
        UInt16(b[b.startIndex + at]) | UInt16(b[b.startIndex + at + 1]) << 8
    }

    static func u32(_ b: ArraySlice<UInt8>, _ at: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[b.startIndex + at + $1]) << (8 * UInt32($1)) }
    }

    static func s32(_ b: ArraySlice<UInt8>, _ at: Int) -> Int32 { Int32(bitPattern: u32(b, at)) }
}

extension NetlinkMessage {
    /// Splits a datagram into messages; a length that runs past the end is an error.
    public static func parseAll(_ datagram: [UInt8]) throws(NetlinkParseError) -> [NetlinkMessage] {
        var messages: [NetlinkMessage] = []
        var offset = 0
        while offset + RTNL.headerSize <= datagram.count {
            let slice = datagram[offset...]
            let length = Int(Bytes.u32(slice, 0))
            guard length >= RTNL.headerSize, offset + length <= datagram.count else {
                throw NetlinkParseError(reason: "message length \(length) at offset \(offset) exceeds the \(datagram.count)-byte datagram")
            }
            messages.append(NetlinkMessage(
                type: Bytes.u16(slice, 4), flags: Bytes.u16(slice, 6),
                sequence: Bytes.u32(slice, 8), portID: Bytes.u32(slice, 12),
                payload: Array(datagram[(offset + RTNL.headerSize)..<(offset + length)])))
            offset += (length + 3) & ~3
        }
        return messages
    }
}

/// Attributes of a message after its family header, keyed by type (the nested
/// and byte-order flags masked off). Later duplicates win.
public struct Attributes: Sendable {
    public private(set) var values: [UInt16: [UInt8]] = [:]

    public init(_ bytes: ArraySlice<UInt8>) throws(NetlinkParseError) {
        var offset = 0
        while offset + 4 <= bytes.count {
            let length = Int(Bytes.u16(bytes, offset))
            let type = Bytes.u16(bytes, offset + 2) & RTNL.attributeTypeMask
            guard length >= 4, offset + length <= bytes.count else {
                throw NetlinkParseError(reason: "attribute \(type) of length \(length) runs past the end")
            }
            let start = bytes.startIndex + offset
            values[type] = Array(bytes[(start + 4)..<(start + length)])
            offset += (length + 3) & ~3
        }
    }

    public subscript(type: UInt16) -> [UInt8]? { values[type] }

    public func string(_ type: UInt16) -> String? {
        guard let raw = values[type] else { return nil }
        return String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }

    public func u32(_ type: UInt16) -> UInt32? {
        guard let raw = values[type], raw.count >= 4 else { return nil }
        return Bytes.u32(raw[...], 0)
    }

    public func s32(_ type: UInt16) -> Int32? { u32(type).map { Int32(bitPattern: $0) } }

    public func nested(_ type: UInt16) throws(NetlinkParseError) -> Attributes? {
        guard let raw = values[type] else { return nil }
        return try Attributes(raw[...])
    }
}
