/// The rows of the Open_vSwitch database that netkeep reads.

public struct BridgeRow: Equatable, Sendable {
    public var uuid: String
    public var name: String
    public var datapathType: String
    public var portUUIDs: [String]

    /// The userspace datapath leaves checksums to the guest: offload must be off.
    public var isUserspace: Bool { datapathType == "netdev" }
}

public struct PortRow: Equatable, Sendable {
    public var uuid: String
    public var name: String
    public var tag: Int?
    public var interfaceUUIDs: [String]
    public var externalIDs: [String: String]
}

public struct InterfaceRow: Equatable, Sendable {
    public var uuid: String
    public var name: String
    public var type: String
    public var ofport: Int?
    public var error: String?
    public var externalIDs: [String: String]
}

/// Bridges, ports and interfaces as read in one transaction.
public struct VSwitchSnapshot: Equatable, Sendable {
    public var bridges: [BridgeRow]
    public var ports: [PortRow]
    public var interfaces: [InterfaceRow]

    public func bridge(named name: String) -> BridgeRow? { bridges.first { $0.name == name } }
    public func port(named name: String) -> PortRow? { ports.first { $0.name == name } }
    public func interface(named name: String) -> InterfaceRow? { interfaces.first { $0.name == name } }

    /// The bridge that holds a port.
    public func bridge(holding port: PortRow) -> BridgeRow? { bridges.first { $0.portUUIDs.contains(port.uuid) } }

    public func interfaces(of port: PortRow) -> [InterfaceRow] {
        interfaces.filter { port.interfaceUUIDs.contains($0.uuid) }
    }
}

/// A port with one interface of the same name, as `ovs-vsctl add-port` makes it.
public struct PortSpec: Equatable, Sendable {
    public var bridge: String
    public var name: String
    public var tag: Int?
    public var interfaceExternalIDs: [String: String]

    public init(bridge: String, name: String, tag: Int?, interfaceExternalIDs: [String: String]) {
        self.bridge = bridge
        self.name = name
        self.tag = tag
        self.interfaceExternalIDs = interfaceExternalIDs
    }
}

/// RFC 7047 datum encodings.
enum Datum {
    static func uuid(_ value: String) -> JSON { ["uuid", .string(value)] }
    static func namedUUID(_ value: String) -> JSON { ["named-uuid", .string(value)] }
    static func set(_ items: [JSON]) -> JSON { items.count == 1 ? items[0] : ["set", .array(items)] }
    static func emptySet() -> JSON { ["set", []] }

    static func map(_ pairs: [String: String]) -> JSON {
        ["map", .array(pairs.keys.sorted().map { [.string($0), .string(pairs[$0]!)] })]
    }

    /// Members of a set column (a bare atom is a set of one).
    static func setMembers(_ value: JSON?) -> [JSON] {
        guard let value else { return [] }
        if case .array(let parts) = value, parts.count == 2, parts[0] == "set", let items = parts[1].arrayValue { return items }
        return [value]
    }

    static func uuids(_ value: JSON?) -> [String] {
        setMembers(value).compactMap { item in
            guard case .array(let parts) = item, parts.count == 2, parts[0] == "uuid" else { return nil }
            return parts[1].stringValue
        }
    }

    static func optionalInt(_ value: JSON?) -> Int? {
        setMembers(value).first?.intValue.map { Int($0) }
    }

    static func optionalString(_ value: JSON?) -> String? {
        setMembers(value).first?.stringValue
    }

    static func stringMap(_ value: JSON?) -> [String: String] {
        guard case .array(let parts)? = value, parts.count == 2, parts[0] == "map", let pairs = parts[1].arrayValue else { return [:] }
        var out: [String: String] = [:]
        for pair in pairs {
            if case .array(let kv) = pair, kv.count == 2, let k = kv[0].stringValue, let v = kv[1].stringValue { out[k] = v }
        }
        return out
    }
}
