import FoundationEssentials
import NetkeepCore

// The bodies of Docker's remote network driver protocol (libnetwork
// docs/remote.md), as dockerd 20.10 sends them: see
// Tests/DockerPluginTests/Fixtures, captured by scripts/capture-plugin-fixtures.
// Field names are Docker's; Swift names follow them so a reader can match the two.

/// A JSON value whose shape Docker does not fix (driver options).
public enum OptionValue: Decodable, Equatable, Sendable {
    case string(String)
    case bool(Bool)
    case number(Double)
    case object([String: OptionValue])
    case array([OptionValue])
    case null

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([OptionValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: OptionValue].self)) }
    }

    /// What a person would call this value's type, for error messages.
    public var kind: String {
        switch self {
        case .string: "a string"
        case .bool: "a boolean"
        case .number: "a number"
        case .object: "an object"
        case .array: "a list"
        case .null: "null"
        }
    }
}

public struct IPAMData: Decodable, Equatable, Sendable {
    public var AddressSpace: String?
    public var Pool: String?
    /// CIDR notation: the gateway's address with the pool's prefix.
    public var Gateway: String?
    public var AuxAddresses: [String: String]?

    public init(AddressSpace: String? = nil, Pool: String? = nil, Gateway: String? = nil) {
        self.AddressSpace = AddressSpace
        self.Pool = Pool
        self.Gateway = Gateway
    }
}

public struct CreateNetworkRequest: Decodable, Equatable, Sendable {
    public var NetworkID: String
    /// `-o k=v` arrive under `com.docker.network.generic`.
    public var Options: [String: OptionValue]?
    public var IPv4Data: [IPAMData]?
    public var IPv6Data: [IPAMData]?

    public static let genericKey = "com.docker.network.generic"

    /// The user's `-o` options; nil when one of them is not a string.
    public var generic: Result<[String: String], PluginError> {
        guard let value = Options?[Self.genericKey] else { return .success([:]) }
        guard case .object(let fields) = value else { return .failure(PluginError("options: \(Self.genericKey) is \(value.kind), not an object")) }
        var out: [String: String] = [:]
        for (key, v) in fields {
            guard case .string(let s) = v else { return .failure(PluginError("option \(quoted(key)): \(v.kind), not a string")) }
            out[key] = s
        }
        return .success(out)
    }
}

public struct NetworkRequest: Decodable, Equatable, Sendable {
    public var NetworkID: String
}

public struct EndpointInterface: Codable, Equatable, Sendable {
    public var Address: String?
    public var AddressIPv6: String?
    public var MacAddress: String?

    public init(Address: String? = nil, AddressIPv6: String? = nil, MacAddress: String? = nil) {
        self.Address = Address
        self.AddressIPv6 = AddressIPv6
        self.MacAddress = MacAddress
    }

    /// Empty strings are left out, as Docker reads them as "not set".
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let Address, !Address.isEmpty { try c.encode(Address, forKey: .Address) }
        if let AddressIPv6, !AddressIPv6.isEmpty { try c.encode(AddressIPv6, forKey: .AddressIPv6) }
        if let MacAddress, !MacAddress.isEmpty { try c.encode(MacAddress, forKey: .MacAddress) }
    }
}

public struct CreateEndpointRequest: Decodable, Equatable, Sendable {
    public var NetworkID: String
    public var EndpointID: String
    /// What Docker's IPAM (or `--mac-address`) already decided; empty strings for the rest.
    public var Interface: EndpointInterface?
    public var Options: [String: OptionValue]?
}

/// The driver fills only what Docker left empty: Docker refuses a reply that
/// changes an address or MAC it sent.
public struct CreateEndpointReply: Encodable, Equatable, Sendable {
    public var Interface: EndpointInterface?
    public init(Interface: EndpointInterface? = nil) { self.Interface = Interface }
}

public struct EndpointRequest: Decodable, Equatable, Sendable {
    public var NetworkID: String
    public var EndpointID: String
}

public struct JoinRequest: Decodable, Equatable, Sendable {
    public var NetworkID: String
    public var EndpointID: String
    /// The sandbox's network namespace, `/var/run/docker/netns/<12 hex>`.
    public var SandboxKey: String
    public var Options: [String: OptionValue]?
}

public struct StaticRoute: Encodable, Equatable, Sendable {
    public enum RouteType: Int, Encodable, Sendable { case nextHop = 0, connected = 1 }
    public var Destination: String
    public var RouteType: RouteType
    public var NextHop: String?
    public init(Destination: String, RouteType: RouteType, NextHop: String? = nil) {
        self.Destination = Destination
        self.RouteType = RouteType
        self.NextHop = NextHop
    }
}

public struct JoinReply: Encodable, Equatable, Sendable {
    /// The interface Docker moves into the sandbox and renames DstPrefix + index.
    public var SrcName: String
    public var DstPrefix: String
    public var Gateway: String?
    public var StaticRoutes: [StaticRoute]
    /// No gateway: without this Docker would add a docker_gwbridge interface.
    public var DisableGatewayService: Bool

    public init(SrcName: String, DstPrefix: String, Gateway: String?, StaticRoutes: [StaticRoute] = [], DisableGatewayService: Bool) {
        self.SrcName = SrcName
        self.DstPrefix = DstPrefix
        self.Gateway = Gateway
        self.StaticRoutes = StaticRoutes
        self.DisableGatewayService = DisableGatewayService
    }

    private struct InterfaceName: Encodable { var SrcName: String; var DstPrefix: String }
    private enum Keys: String, CodingKey { case InterfaceName, Gateway, StaticRoutes, DisableGatewayService }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(InterfaceName(SrcName: SrcName, DstPrefix: DstPrefix), forKey: .InterfaceName)
        if let Gateway { try c.encode(Gateway, forKey: .Gateway) }
        if !StaticRoutes.isEmpty { try c.encode(StaticRoutes, forKey: .StaticRoutes) }
        if DisableGatewayService { try c.encode(true, forKey: .DisableGatewayService) }
    }
}

/// A refusal Docker shows the user (`{"Err": "..."}`).
public struct PluginError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
