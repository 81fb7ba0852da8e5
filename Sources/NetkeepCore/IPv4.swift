/// An IPv4 address.
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let value: UInt32

    public init(_ value: UInt32) { self.value = value }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// The four bytes in network order.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 4 else { return nil }
        value = bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Parses dotted-quad notation, four decimal octets 0-255 without leading zeros.
    public init(parsing text: String) throws(InputError) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else {
            throw InputError(object: "address \(quoted(text))", cause: "not a dotted-quad IPv4 address")
        }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw InputError(object: "address \(quoted(text))", cause: "octet \(quoted(String(part))) is not a number")
            }
            guard part.count == 1 || part.first != "0" else {
                throw InputError(object: "address \(quoted(text))", cause: "octet \(quoted(String(part))) has a leading zero")
            }
            guard let octet = UInt32(part), octet <= 255 else {
                throw InputError(object: "address \(quoted(text))", cause: "octet \(part) is out of range 0-255")
            }
            value = value << 8 | octet
        }
        self.value = value
    }

    public var bytes: [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    public var description: String { bytes.map(String.init).joined(separator: ".") }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }
}

extension IPv4Address: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { self = try IPv4Address(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// An interface address with its prefix length, `10.1.2.5/24`.
public struct IPv4CIDR: Hashable, Sendable, CustomStringConvertible {
    public let address: IPv4Address
    public let prefixLength: Int

    public init(address: IPv4Address, prefixLength: Int) throws(InputError) {
        guard (1...32).contains(prefixLength) else {
            throw InputError(object: "CIDR \(address)/\(prefixLength)", cause: "prefix length must be 1-32")
        }
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `A.B.C.D/N` with 1 <= N <= 32. An interface address must not be
    /// the network or broadcast address of its subnet (for N <= 30).
    public init(parsing text: String) throws(InputError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw InputError(object: "CIDR \(quoted(text))", cause: "expected ADDRESS/PREFIX, like 10.1.2.5/24")
        }
        let address: IPv4Address
        do { address = try IPv4Address(parsing: String(parts[0])) } catch {
            throw InputError(object: "CIDR \(quoted(text))", cause: error.cause)
        }
        guard let prefix = Int(parts[1]), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), (1...32).contains(prefix) else {
            throw InputError(object: "CIDR \(quoted(text))", cause: "prefix length \(quoted(String(parts[1]))) must be a number 1-32")
        }
        try self.init(address: address, prefixLength: prefix)
        if prefix <= 30 {
            if address == network {
                throw InputError(object: "CIDR \(quoted(text))", cause: "\(address) is the network address of \(network)/\(prefix)")
            }
            if address == broadcast {
                throw InputError(object: "CIDR \(quoted(text))", cause: "\(address) is the broadcast address of \(network)/\(prefix)")
            }
        }
    }

    public var netmask: UInt32 { prefixLength == 0 ? 0 : UInt32.max << (32 - prefixLength) }
    public var network: IPv4Address { IPv4Address(address.value & netmask) }
    public var broadcast: IPv4Address { IPv4Address(address.value | ~netmask) }

    public func contains(_ other: IPv4Address) -> Bool { other.value & netmask == address.value & netmask }

    public var description: String { "\(address)/\(prefixLength)" }
}

extension IPv4CIDR: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { self = try IPv4CIDR(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
