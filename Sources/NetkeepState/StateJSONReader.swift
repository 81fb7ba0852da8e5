import NetkeepCore

// JSONEncoder and JSONDecoder took most of a load or save of a large state
// file; these write and read the same bytes by hand. Key names and their
// order repeat the CodingKeys of NetkeepCore: StateJSONTests hold both to
// the Foundation path.

private let quote: UInt8 = 0x22, backslash: UInt8 = 0x5c, comma: UInt8 = 0x2c, colon: UInt8 = 0x3a
private let openBrace: UInt8 = 0x7b, closeBrace: UInt8 = 0x7d, openBracket: UInt8 = 0x5b, closeBracket: UInt8 = 0x5d
private let newline: UInt8 = 0x0a, space: UInt8 = 0x20, minus: UInt8 = 0x2d, zero: UInt8 = 0x30

/// Reads the state file as netkeep writes it, straight into a `State`.
/// Whatever it does not expect (an unknown or repeated key, another type, a
/// null, a number that is not a plain integer, another version, text that is
/// not UTF-8 ...) makes it decline with nil: JSONDecoder then decides, so
/// every refusal and its message stay Foundation's. Field values go through
/// the same parsers as the Codable conformances.
struct StateJSONReader {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    static func read(_ bytes: [UInt8]) -> State? {
        bytes.withUnsafeBufferPointer { buffer in
            var reader = StateJSONReader(bytes: buffer)
            reader.skipWhitespace()
            guard let state = reader.state() else { return nil }
            reader.skipWhitespace()
            return reader.index == buffer.count ? state : nil
        }
    }

    private init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    private mutating func state() -> State? {
        var version: Int?, bootID: String?, attachments: [Attachment]?, lastEventNano: Int64?, engine: EngineIdentity?
        let complete = object { r, key in
            switch key {
            case "version": return r.once(&version) { $0.integer() }
            case "boot_id": return r.once(&bootID) { $0.string() }
            case "attachments": return r.once(&attachments) { $0.array { $0.attachment() } }
            case "last_event_nano": return r.once(&lastEventNano) { $0.integer() }
            case "docker_engine": return r.once(&engine) { $0.engine() }
            default: return false
            }
        }
        guard complete, version == State.currentVersion, let attachments else { return nil }
        var state = State(bootID: bootID, attachments: attachments)
        state.lastEventNano = lastEventNano
        state.engine = engine
        return state
    }

    private mutating func engine() -> EngineIdentity? {
        var id: String?, rootDir: String?
        let complete = object { r, key in
            switch key {
            case "id": return r.once(&id) { $0.string() }
            case "root_dir": return r.once(&rootDir) { $0.string() }
            default: return false
            }
        }
        guard complete, let id, let rootDir else { return nil }
        return EngineIdentity(id: id, rootDir: rootDir)
    }

    private mutating func attachment() -> Attachment? {
        var id: String?, containerID: String?, containerName: String?, ifname: String?, bridge: String?
        var hostIfname: String?, netnsLink: String?, mac: MACAddress?, mtu: Int?, vlan: Int?
        var mode: AddressMode?, address: IPv4CIDR?, gateway: IPv4Address?, status: AttachmentStatus?
        var createdAt: Timestamp?, containerPID: Int32?, lease: Lease?, declaredBy: Declarer?
        var retainedUntil: Timestamp?, recreatedFrom: String?
        let complete = object { r, key in
            switch key {
            case "id": return r.once(&id) { $0.string() }
            case "container_id": return r.once(&containerID) { $0.string() }
            case "container_name": return r.once(&containerName) { $0.string() }
            case "ifname": return r.once(&ifname) { $0.string() }
            case "bridge": return r.once(&bridge) { $0.string() }
            case "host_ifname": return r.once(&hostIfname) { $0.string() }
            case "netns_link": return r.once(&netnsLink) { $0.string() }
            case "mac": return r.once(&mac) { $0.mac() }
            case "mtu": return r.once(&mtu) { $0.integer() }
            case "vlan": return r.once(&vlan) { $0.integer() }
            case "mode": return r.once(&mode) { $0.string(AddressMode.init(rawValue:)) }
            case "address": return r.once(&address) { $0.cidr() }
            case "gateway": return r.once(&gateway) { $0.ipv4() }
            case "status": return r.once(&status) { $0.string(AttachmentStatus.init(rawValue:)) }
            case "created_at": return r.once(&createdAt) { $0.string(Timestamp.init(rfc3339:)) }
            case "container_pid": return r.once(&containerPID) { $0.integer() }
            case "lease": return r.once(&lease) { $0.lease() }
            case "declared_by": return r.once(&declaredBy) { $0.string(Declarer.init(rawValue:)) }
            case "retained_until": return r.once(&retainedUntil) { $0.string(Timestamp.init(rfc3339:)) }
            case "recreated_from": return r.once(&recreatedFrom) { $0.string() }
            default: return false
            }
        }
        guard complete, let id, let containerID, let containerName, let ifname, let bridge, let hostIfname,
              let mac, let mtu, let mode, let status, let createdAt else { return nil }
        // Every field set from the file, the id too (a mismatch is for `problems()`
        // to report); copying a template skips the id derivation in `init`.
        var attachment = Self.template
        attachment.id = id
        attachment.containerID = containerID
        attachment.containerName = containerName
        attachment.ifname = ifname
        attachment.bridge = bridge
        attachment.hostIfname = hostIfname
        attachment.mac = mac
        attachment.mtu = mtu
        attachment.vlan = vlan
        attachment.mode = mode
        attachment.address = address
        attachment.gateway = gateway
        attachment.netnsLink = netnsLink
        attachment.status = status
        attachment.createdAt = createdAt
        attachment.containerPID = containerPID
        attachment.lease = lease
        attachment.declaredBy = declaredBy
        attachment.retainedUntil = retainedUntil
        attachment.recreatedFrom = recreatedFrom
        return attachment
    }

    private static let template = Attachment(
        containerID: "", containerName: "", ifname: "", bridge: "", mac: MACAddress(bytes: [0, 0, 0, 0, 0, 0])!,
        mtu: 0, vlan: nil, mode: .static, address: nil, gateway: nil, netnsLink: nil, status: .pending,
        createdAt: Timestamp(secondsSinceEpoch: 0), hostIfname: "")

    private mutating func lease() -> Lease? {
        var address: IPv4CIDR?, router: IPv4Address?, serverID: IPv4Address?, leaseSeconds: Int64?
        var renewSeconds: Int64?, rebindSeconds: Int64?, obtainedAt: Timestamp?, renewAt: Timestamp?
        var rebindAt: Timestamp?, retryAt: Timestamp?, dnsServers: [IPv4Address]?, confirmed: Bool?
        let complete = object { r, key in
            switch key {
            case "address": return r.once(&address) { $0.cidr() }
            case "router": return r.once(&router) { $0.ipv4() }
            case "server_id": return r.once(&serverID) { $0.ipv4() }
            case "lease_time": return r.once(&leaseSeconds) { $0.integer() }
            case "t1": return r.once(&renewSeconds) { $0.integer() }
            case "t2": return r.once(&rebindSeconds) { $0.integer() }
            case "obtained_at": return r.once(&obtainedAt) { $0.string(Timestamp.init(rfc3339:)) }
            case "renew_at": return r.once(&renewAt) { $0.string(Timestamp.init(rfc3339:)) }
            case "rebind_at": return r.once(&rebindAt) { $0.string(Timestamp.init(rfc3339:)) }
            case "retry_at": return r.once(&retryAt) { $0.string(Timestamp.init(rfc3339:)) }
            case "dns": return r.once(&dnsServers) { $0.array { $0.ipv4() } }
            case "confirmed": return r.once(&confirmed) { $0.boolean() }
            default: return false
            }
        }
        guard complete, let address, let serverID, let leaseSeconds, let renewSeconds, let rebindSeconds,
              let obtainedAt, let renewAt, let rebindAt, let dnsServers, let confirmed else { return nil }
        var lease = Lease(address: address, router: router, serverID: serverID, leaseSeconds: leaseSeconds,
                          renewSeconds: renewSeconds, rebindSeconds: rebindSeconds, obtainedAt: obtainedAt,
                          renewAt: renewAt, rebindAt: rebindAt, dnsServers: dnsServers, confirmed: confirmed)
        lease.retryAt = retryAt
        return lease
    }

    // MARK: Structure

    /// Parses a member's value into `slot`; a key seen twice declines, since
    /// which of the two Foundation keeps is its business.
    private mutating func once<T>(_ slot: inout T?, _ parse: (inout Self) -> T?) -> Bool {
        guard slot == nil, let value = parse(&self) else { return false }
        slot = value
        return true
    }

    /// An object whose members `member` reads, given each key; false declines.
    private mutating func object(_ member: (inout Self, String) -> Bool) -> Bool {
        guard take(openBrace) else { return false }
        skipWhitespace()
        if take(closeBrace) { return true }
        while true {
            skipWhitespace()
            guard let key = key() else { return false }
            skipWhitespace()
            guard take(colon) else { return false }
            skipWhitespace()
            guard member(&self, key) else { return false }
            skipWhitespace()
            if take(comma) { continue }
            return take(closeBrace)
        }
    }

    private mutating func array<T>(_ element: (inout Self) -> T?) -> [T]? {
        guard take(openBracket) else { return nil }
        var elements: [T] = []
        skipWhitespace()
        if take(closeBracket) { return elements }
        while true {
            skipWhitespace()
            guard let value = element(&self) else { return nil }
            elements.append(value)
            skipWhitespace()
            if take(comma) { continue }
            return take(closeBracket) ? elements : nil
        }
    }

    /// Keys are plain ASCII; an escaped one is left to Foundation.
    private mutating func key() -> String? {
        guard take(quote) else { return nil }
        let start = index
        while index < bytes.count, bytes[index] != quote {
            guard bytes[index] >= 0x20, bytes[index] < 0x80, bytes[index] != backslash else { return nil }
            index += 1
        }
        guard index < bytes.count else { return nil }
        defer { index += 1 }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    }

    // MARK: Addresses
    // The spelling netkeep writes is read from the bytes; any other goes
    // through the model's parser, which has the last word.

    private mutating func ipv4() -> IPv4Address? {
        plain { raw in
            var at = raw.startIndex
            guard let value = Self.dottedQuad(raw, &at), at == raw.endIndex else { return nil }
            return IPv4Address(value)
        } ?? string { try? IPv4Address(parsing: $0) }
    }

    /// Takes no more than `IPv4CIDR(parsing:)` does: its one rule beyond the
    /// syntax (no network or broadcast address up to /30) is repeated here.
    private mutating func cidr() -> IPv4CIDR? {
        plain { raw in
            var at = raw.startIndex
            guard let value = Self.dottedQuad(raw, &at), Self.skip(0x2f, raw, &at),
                  let prefix = Self.octet(raw, &at), at == raw.endIndex,
                  let cidr = try? IPv4CIDR(address: IPv4Address(value), prefixLength: Int(prefix)) else { return nil }
            return cidr.prefixLength > 30 || (cidr.address != cidr.network && cidr.address != cidr.broadcast) ? cidr : nil
        } ?? string { try? IPv4CIDR(parsing: $0) }
    }

    private mutating func mac() -> MACAddress? {
        plain { raw in
            guard raw.count == 17 else { return nil }
            var bytes: [UInt8] = []
            for group in 0..<6 {
                let at = raw.startIndex + 3 * group
                guard group == 0 || raw[at - 1] == colon, let high = Self.hexValue(raw[at]), let low = Self.hexValue(raw[at + 1]) else { return nil }
                bytes.append(high << 4 | low)
            }
            return MACAddress(bytes: bytes)
        } ?? string { try? MACAddress(parsing: $0) }
    }

    /// Four octets `0`-`255` without leading zeros, joined by dots, from `at`.
    private static func dottedQuad(_ raw: UnsafeBufferPointer<UInt8>, _ at: inout Int) -> UInt32? {
        var value: UInt32 = 0
        for part in 0..<4 {
            guard part == 0 || skip(0x2e, raw, &at), let octet = octet(raw, &at), octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    private static func skip(_ separator: UInt8, _ raw: UnsafeBufferPointer<UInt8>, _ at: inout Int) -> Bool {
        guard at < raw.endIndex, raw[at] == separator else { return false }
        at += 1
        return true
    }

    /// One to three digits, no leading zero, from `at`, which ends after them.
    private static func octet(_ raw: UnsafeBufferPointer<UInt8>, _ at: inout Int) -> UInt32? {
        let start = at
        var end = start
        var value: UInt32 = 0
        while end < raw.endIndex, end - start < 3, (0x30...0x39).contains(raw[end]) {
            value = value * 10 + UInt32(raw[end] - zero)
            end += 1
        }
        guard end > start, end == start + 1 || raw[start] != zero else { return nil }
        at = end
        return value
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }

    /// A string without escapes, as bytes, if `parse` takes it; else nothing is consumed.
    private mutating func plain<T>(_ parse: (UnsafeBufferPointer<UInt8>) -> T?) -> T? {
        guard index < bytes.count, bytes[index] == quote else { return nil }
        var end = index + 1
        while end < bytes.count, bytes[end] != quote, bytes[end] != backslash { end += 1 }
        guard end < bytes.count, bytes[end] == quote,
              let value = parse(UnsafeBufferPointer(rebasing: bytes[(index + 1)..<end])) else { return nil }
        index = end + 1
        return value
    }

    // MARK: Values

    private mutating func string<T>(_ parse: (String) -> T?) -> T? { string().flatMap(parse) }

    private mutating func string() -> String? {
        guard take(quote) else { return nil }
        let start = index
        var ascii = true
        while index < bytes.count {
            switch bytes[index] {
            case quote:
                let text = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                return ascii ? String(decoding: text, as: UTF8.self) : String(validating: text, as: UTF8.self)
            case backslash:
                return escapedString(Array(bytes[start..<index]))
            case 0..<0x20:
                return nil
            case 0x80...:
                ascii = false
                index += 1
            default:
                index += 1
            }
        }
        return nil
    }

    /// The rest of a string from its first backslash, `prefix` being what came before.
    private mutating func escapedString(_ prefix: [UInt8]) -> String? {
        var utf8 = prefix
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case quote:
                return String(validating: utf8, as: UTF8.self)
            case backslash:
                guard index < bytes.count else { return nil }
                let escape = bytes[index]
                index += 1
                switch escape {
                case quote, backslash, 0x2f: utf8.append(escape)
                case 0x62: utf8.append(0x08)
                case 0x66: utf8.append(0x0c)
                case 0x6e: utf8.append(0x0a)
                case 0x72: utf8.append(0x0d)
                case 0x74: utf8.append(0x09)
                case 0x75:
                    guard let scalar = escapedScalar() else { return nil }
                    UTF8.encode(scalar) { utf8.append($0) }
                default: return nil
                }
            case 0..<0x20:
                return nil
            default:
                utf8.append(byte)
            }
        }
        return nil
    }

    /// After `\u`: four hex digits, or a surrogate pair written as two escapes.
    private mutating func escapedScalar() -> Unicode.Scalar? {
        guard let unit = hex4() else { return nil }
        switch unit {
        case 0xd800..<0xdc00:
            guard take(backslash), take(0x75), let low = hex4(), (0xdc00..<0xe000).contains(low) else { return nil }
            return Unicode.Scalar(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))
        case 0xdc00..<0xe000:
            return nil
        default:
            return Unicode.Scalar(unit)
        }
    }

    private mutating func hex4() -> UInt32? {
        guard index + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = Self.hexValue(bytes[index]) else { return nil }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    /// A plain integer, `-?(0|[1-9][0-9]*)`, that fits `T`. A fraction or an
    /// exponent stops it short, and the caller then finds no `,` and declines.
    private mutating func integer<T: FixedWidthInteger>() -> T? {
        let negative = take(minus)
        let start = index
        var magnitude: UInt64 = 0
        while index < bytes.count, (0x30...0x39).contains(bytes[index]) {
            let (times10, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times10.addingReportingOverflow(UInt64(bytes[index] - zero))
            guard !overflow, !carry else { return nil }
            magnitude = sum
            index += 1
        }
        guard index > start, index - start == 1 || bytes[start] != zero else { return nil }
        guard negative else { return T(exactly: magnitude) }
        // "-0" is left to Foundation.
        guard magnitude > 0, magnitude <= UInt64(Int64.max) + 1 else { return nil }
        return T(exactly: Int64(truncatingIfNeeded: 0 &- magnitude))
    }

    private mutating func boolean() -> Bool? {
        if literal("true") { return true }
        if literal("false") { return false }
        return nil
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        let matches = word.withUTF8Buffer { $0.elementsEqual(bytes[index..<index + count]) }
        if matches { index += count }
        return matches
    }

    // MARK: Bytes

    private mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0a, 0x0d: index += 1
            default: return
            }
        }
    }
}
