import NetkeepCore

/// The options netkeep speaks (RFC 2132): 1, 3, 6, 12, 50, 51, 53, 54, 55, 58,
/// 59, 61, with 0 (pad) and 255 (end). Others are kept as raw bytes.
public struct DHCPOptions: Equatable, Sendable {
    public enum Code {
        public static let pad: UInt8 = 0
        public static let subnetMask: UInt8 = 1
        public static let router: UInt8 = 3
        public static let dns: UInt8 = 6
        public static let hostname: UInt8 = 12
        public static let requestedAddress: UInt8 = 50
        public static let leaseTime: UInt8 = 51
        public static let messageType: UInt8 = 53
        public static let serverID: UInt8 = 54
        public static let parameterRequestList: UInt8 = 55
        public static let renewalTime: UInt8 = 58
        public static let rebindingTime: UInt8 = 59
        public static let clientID: UInt8 = 61
        public static let end: UInt8 = 255
    }

    public var messageType: DHCPMessage.MessageType?
    public var subnetMask: IPv4Address?
    public var routers: [IPv4Address] = []
    public var dnsServers: [IPv4Address] = []
    public var hostname: String?
    public var requestedAddress: IPv4Address?
    public var leaseTime: UInt32?
    public var serverID: IPv4Address?
    public var parameterRequestList: [UInt8] = []
    public var renewalTime: UInt32?
    public var rebindingTime: UInt32?
    public var clientID: [UInt8]?
    /// Other options, in order, as (code, data).
    public var other: [(UInt8, [UInt8])] = []

    public init() {}

    public static func == (a: DHCPOptions, b: DHCPOptions) -> Bool {
        a.messageType == b.messageType && a.subnetMask == b.subnetMask && a.routers == b.routers && a.dnsServers == b.dnsServers
            && a.hostname == b.hostname && a.requestedAddress == b.requestedAddress && a.leaseTime == b.leaseTime
            && a.serverID == b.serverID && a.parameterRequestList == b.parameterRequestList && a.renewalTime == b.renewalTime
            && a.rebindingTime == b.rebindingTime && a.clientID == b.clientID
            && a.other.map(\.0) == b.other.map(\.0) && a.other.map(\.1) == b.other.map(\.1)
    }

    /// Options in a fixed order, message type first (RFC 2131 does not require
    /// it; servers and captures read better).
    func encode() -> [UInt8] {
        var out: [UInt8] = []
        func put(_ code: UInt8, _ data: [UInt8]) {
            var rest = data[...]
            repeat {
                let chunk = rest.prefix(255)
                out += [code, UInt8(chunk.count)] + chunk
                rest = rest.dropFirst(chunk.count)
            } while !rest.isEmpty
        }
        if let t = messageType { put(Code.messageType, [t.rawValue]) }
        if let id = clientID { put(Code.clientID, id) }
        if let a = requestedAddress { put(Code.requestedAddress, a.bytes) }
        if let s = serverID { put(Code.serverID, s.bytes) }
        if let m = subnetMask { put(Code.subnetMask, m.bytes) }
        if !routers.isEmpty { put(Code.router, routers.flatMap(\.bytes)) }
        if !dnsServers.isEmpty { put(Code.dns, dnsServers.flatMap(\.bytes)) }
        if let h = hostname { put(Code.hostname, Array(h.utf8)) }
        if let l = leaseTime { put(Code.leaseTime, be32(l)) }
        if let r = renewalTime { put(Code.renewalTime, be32(r)) }
        if let r = rebindingTime { put(Code.rebindingTime, be32(r)) }
        if !parameterRequestList.isEmpty { put(Code.parameterRequestList, parameterRequestList) }
        for (code, data) in other { put(code, data) }
        return out
    }

    /// Parses the options area up to option 255. Repeated options are
    /// concatenated (RFC 3396) before they are interpreted.
    static func decode(_ bytes: ArraySlice<UInt8>) throws(DHCPDecodeError) -> DHCPOptions {
        var raw: [(UInt8, [UInt8])] = []
        var i = bytes.startIndex
        var ended = false
        while i < bytes.endIndex {
            let code = bytes[i]
            if code == Code.pad { i += 1; continue }
            if code == Code.end { ended = true; break }
            guard i + 1 < bytes.endIndex else { throw .optionOverrun(code: code, offset: i) }
            let length = Int(bytes[i + 1])
            guard i + 2 + length <= bytes.endIndex else { throw .optionOverrun(code: code, offset: i) }
            let data = Array(bytes[(i + 2)..<(i + 2 + length)])
            if let j = raw.firstIndex(where: { $0.0 == code }) { raw[j].1 += data } else { raw.append((code, data)) }
            i += 2 + length
        }
        guard ended else { throw .missingEnd }
        var o = DHCPOptions()
        for (code, data) in raw {
            func address() throws(DHCPDecodeError) -> IPv4Address {
                guard data.count == 4 else { throw .badOptionLength(code: code, length: data.count) }
                return IPv4Address(bytes: data)!
            }
            func addresses() throws(DHCPDecodeError) -> [IPv4Address] {
                guard !data.isEmpty, data.count % 4 == 0 else { throw .badOptionLength(code: code, length: data.count) }
                return stride(from: 0, to: data.count, by: 4).map { IPv4Address(bytes: data[$0..<($0 + 4)])! }
            }
            func seconds() throws(DHCPDecodeError) -> UInt32 {
                guard data.count == 4 else { throw .badOptionLength(code: code, length: data.count) }
                return u32(data, 0)
            }
            switch code {
            case Code.messageType:
                guard data.count == 1 else { throw .badOptionLength(code: code, length: data.count) }
                o.messageType = DHCPMessage.MessageType(rawValue: data[0])
            case Code.subnetMask: o.subnetMask = try address()
            case Code.router: o.routers = try addresses()
            case Code.dns: o.dnsServers = try addresses()
            case Code.hostname: o.hostname = String(decoding: data, as: UTF8.self)
            case Code.requestedAddress: o.requestedAddress = try address()
            case Code.leaseTime: o.leaseTime = try seconds()
            case Code.serverID: o.serverID = try address()
            case Code.parameterRequestList: o.parameterRequestList = data
            case Code.renewalTime: o.renewalTime = try seconds()
            case Code.rebindingTime: o.rebindingTime = try seconds()
            case Code.clientID:
                guard data.count >= 2 else { throw .badOptionLength(code: code, length: data.count) }
                o.clientID = data
            default: o.other.append((code, data))
            }
        }
        return o
    }
}
