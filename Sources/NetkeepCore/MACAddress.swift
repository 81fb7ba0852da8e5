/// A 48-bit Ethernet address, written `aa:bb:cc:dd:ee:ff` (lower case).
public struct MACAddress: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 6 else { return nil }
        self.bytes = bytes
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), six groups of two hex digits.
    public init(parsing text: String) throws(InputError) {
        let groups = text.split(separator: ":", omittingEmptySubsequences: false)
            .flatMap { $0.split(separator: "-", omittingEmptySubsequences: false) }
        guard groups.count == 6,
              groups.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isHexDigit) }),
              text.allSatisfy({ $0.isASCII }) else {
            throw InputError(object: "MAC \(quoted(text))", cause: "not six hex pairs like 02:42:ac:11:00:02")
        }
        self.bytes = groups.map { UInt8($0, radix: 16)! }
    }

    public var isMulticast: Bool { bytes[0] & 0x01 != 0 }
    public var isLocallyAdministered: Bool { bytes[0] & 0x02 != 0 }
    public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }

    /// An address usable for an interface: unicast and not all zeros.
    public func validatedForInterface() throws(InputError) -> MACAddress {
        if isMulticast { throw InputError(object: "MAC \(self)", cause: "is a multicast address (lowest bit of the first byte is set)") }
        if isZero { throw InputError(object: "MAC \(self)", cause: "is all zeros") }
        return self
    }

    /// A random locally administered unicast address.
    public static func randomLocal(using rng: inout some RandomNumberGenerator) -> MACAddress {
        var bytes = (0..<6).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes[0] = (bytes[0] & 0xfc) | 0x02
        return MACAddress(bytes: bytes)!
    }

    public var description: String {
        bytes.map { hexByte($0) }.joined(separator: ":")
    }

    public static func < (a: MACAddress, b: MACAddress) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

extension MACAddress: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { self = try MACAddress(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

func hexByte(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]])
}
