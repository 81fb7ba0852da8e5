import NetkeepCore

/// A DHCPv4 message (RFC 2131 section 2, options of RFC 2132). Pure: encode
/// and decode only; a malformed packet is an error value, never a crash.
public struct DHCPMessage: Equatable, Sendable {
    public enum MessageType: UInt8, Sendable {
        case discover = 1, offer, request, decline, ack, nak, release, inform
    }

    public static let bootRequest: UInt8 = 1
    public static let bootReply: UInt8 = 2
    public static let broadcastFlag: UInt16 = 0x8000
    static let magicCookie: [UInt8] = [99, 130, 83, 99]
    /// op..file (236 bytes) plus the magic cookie.
    static let fixedSize = 240
    /// RFC 2131: a client must accept messages up to 576 bytes; servers send
    /// more when asked. Bound what we decode.
    public static let maxSize = 4096

    public var op: UInt8
    public var xid: UInt32
    public var secs: UInt16 = 0
    public var flags: UInt16 = 0
    public var ciaddr = IPv4Address(0)
    public var yiaddr = IPv4Address(0)
    public var siaddr = IPv4Address(0)
    public var giaddr = IPv4Address(0)
    public var chaddr: MACAddress
    public var options: DHCPOptions

    public init(op: UInt8, xid: UInt32, chaddr: MACAddress, options: DHCPOptions) {
        self.op = op
        self.xid = xid
        self.chaddr = chaddr
        self.options = options
    }

    /// Bytes on the wire: the fixed header, the cookie, options, end, padded to
    /// the 300-byte BOOTP minimum that some relays expect.
    public func encode() -> [UInt8] {
        var out: [UInt8] = [op, 1, 6, 0]
        out += be32(xid) + be16(secs) + be16(flags)
        out += ciaddr.bytes + yiaddr.bytes + siaddr.bytes + giaddr.bytes
        out += chaddr.bytes + [UInt8](repeating: 0, count: 10)
        out += [UInt8](repeating: 0, count: 64 + 128)
        out += Self.magicCookie
        out += options.encode()
        out.append(DHCPOptions.Code.end)
        if out.count < 300 { out += [UInt8](repeating: 0, count: 300 - out.count) }
        return out
    }

    public static func decode(_ bytes: [UInt8]) throws(DHCPDecodeError) -> DHCPMessage {
        guard bytes.count >= fixedSize else { throw .truncated(bytes.count) }
        guard bytes.count <= maxSize else { throw .tooLarge(bytes.count) }
        guard bytes[0] == bootRequest || bytes[0] == bootReply else { throw .badOp(bytes[0]) }
        guard bytes[1] == 1, bytes[2] == 6 else { throw .badHardware(type: bytes[1], length: bytes[2]) }
        guard Array(bytes[236..<240]) == magicCookie else { throw .badMagicCookie }
        var message = DHCPMessage(op: bytes[0], xid: u32(bytes, 4), chaddr: MACAddress(bytes: Array(bytes[28..<34]))!,
                                  options: try DHCPOptions.decode(bytes[240...]))
        message.secs = u16(bytes, 8)
        message.flags = u16(bytes, 10)
        message.ciaddr = IPv4Address(u32(bytes, 12))
        message.yiaddr = IPv4Address(u32(bytes, 16))
        message.siaddr = IPv4Address(u32(bytes, 20))
        message.giaddr = IPv4Address(u32(bytes, 24))
        return message
    }

    public var messageType: MessageType? { options.messageType }
}

public enum DHCPDecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(Int)
    case tooLarge(Int)
    case badOp(UInt8)
    case badHardware(type: UInt8, length: UInt8)
    case badMagicCookie
    case optionOverrun(code: UInt8, offset: Int)
    case badOptionLength(code: UInt8, length: Int)
    case missingEnd

    public var description: String {
        switch self {
        case .truncated(let n): return "DHCP message of \(n) bytes is shorter than the 240-byte header"
        case .tooLarge(let n): return "DHCP message of \(n) bytes is larger than \(DHCPMessage.maxSize)"
        case .badOp(let op): return "DHCP op \(op) is neither BOOTREQUEST nor BOOTREPLY"
        case .badHardware(let type, let length): return "hardware type \(type) length \(length) is not Ethernet (1, 6)"
        case .badMagicCookie: return "missing DHCP magic cookie"
        case .optionOverrun(let code, let offset): return "option \(code) at offset \(offset) runs past the end"
        case .badOptionLength(let code, let length): return "option \(code) has invalid length \(length)"
        case .missingEnd: return "options do not end with option 255"
        }
    }
}

func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
func u16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
func u32(_ b: [UInt8], _ i: Int) -> UInt32 { UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3]) }
