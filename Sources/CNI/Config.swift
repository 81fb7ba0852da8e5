import FoundationEssentials
import NetkeepCore

/// One plugin's network config as the runtime sends it on stdin: the keys
/// of the list (`cniVersion`, `name`) merged with netkeep's own entry.
///
///     {"cniVersion": "1.1.0", "name": "ovs1", "type": "netkeep",
///      "bridge": "br0", "vlan": 10, "mtu": 1500, "mac": "02:00:00:00:00:01",
///      "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}}
public struct CNIConfig: Sendable {
    public var cniVersion: String
    public var name: String
    public var bridge: String
    public var vlan: Int?
    public var mtu: Int
    /// A fixed MAC: the config's `mac`, or `runtimeConfig.mac` / CNI_ARGS `MAC=`.
    public var mac: MACAddress?
    /// The IPAM's `type`: a plugin delegated to, or `netkeep-dhcp`; nil: no addresses.
    public var ipamType: String?
    /// netkeep-dhcp: how long a lease is kept for its client after DEL
    /// (`ipam.releaseAfter`, seconds) before the daemon releases it.
    public var releaseAfter: Int64 = CNIRules.defaultReleaseAfter
    /// Who the client is across container ids: CNI_ARGS `K8S_POD_NAME` and
    /// `K8S_POD_NAMESPACE` (a kubelet sends both, Podman the container's
    /// name as K8S_POD_NAME), nil without a pod name.
    public var podIdentity: String?
    public var prevResult: CNIResult?
    /// GC: `cni.dev/valid-attachments` (or `cni.dev/attachments`); nil when
    /// neither is there or it is null: then nothing is known to be valid.
    public var validAttachments: [(containerID: String, ifname: String)]?

    /// The keys netkeep knows in its own entry. Anything else that is not a
    /// key every plugin gets is refused by name, as a typo would go unseen.
    static let ownKeys: Set<String> = ["bridge", "vlan", "mtu", "mac"]
    static let specKeys: Set<String> = ["cniVersion", "cniVersions", "name", "type", "ipam", "dns", "prevResult", "runtimeConfig",
                                        "capabilities", "args", "disableCheck", "disableGC", "cni.dev/valid-attachments",
                                        "cni.dev/attachments", "plugins"]

    /// The config's fields as JSON types them; `parse` checks their values.
    struct Fields: Decodable {
        struct IPAM: Decodable {
            var type: String?
            var releaseAfter: WholeNumber?
            /// Every key, for netkeep-dhcp's check (a delegated plugin checks its own).
            var keys: [String]
            enum CodingKeys: String, CodingKey { case type, releaseAfter }
            init(from decoder: any Decoder) throws {
                keys = try decoder.container(keyedBy: Keys.Key.self).allKeys.map(\.stringValue)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                type = try c.decodeIfPresent(String.self, forKey: .type)
                releaseAfter = type == CNIRules.builtInDHCP ? try c.decodeIfPresent(WholeNumber.self, forKey: .releaseAfter) : nil
            }
        }
        struct RuntimeConfig: Decodable { var mac: String? }
        struct Entry: Decodable { var containerID: String; var ifname: String }
        var cniVersion: String?
        var name: String?
        var bridge: String?
        var vlan: WholeNumber?
        var mtu: WholeNumber?
        var mac: String?
        var ipam: IPAM?
        var runtimeConfig: RuntimeConfig?
        var prevResult: CNIResult?
        var validAttachments: [Entry]?
        var attachments: [Entry]?
        enum CodingKeys: String, CodingKey {
            case cniVersion, name, bridge, vlan, mtu, mac, ipam, runtimeConfig, prevResult
            case validAttachments = "cni.dev/valid-attachments"
            case attachments = "cni.dev/attachments"
        }
    }

    /// Just the top-level keys, whatever their values.
    struct Keys: Decodable {
        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        var names: [String]
        init(from decoder: any Decoder) throws { names = try decoder.container(keyedBy: Key.self).allKeys.map(\.stringValue) }
    }

    public static func parse(_ bytes: [UInt8], args: String = "") throws(CNIError) -> CNIConfig {
        guard bytes.count <= CNIRules.maxConfigBytes else {
            throw CNIError(CNIError.decodingFailure, "network config on stdin is over \(CNIRules.maxConfigBytes) bytes")
        }
        let data = Data(bytes)
        let keys: [String]
        do { keys = try JSONDecoder().decode(Keys.self, from: data).names } catch {
            throw CNIError(CNIError.decodingFailure, "network config on stdin is not a JSON object", details: Self.describe(error))
        }
        let fields: Fields
        do { fields = try JSONDecoder().decode(Fields.self, from: data) } catch {
            throw Self.refusal(error)
        }
        let version = fields.cniVersion ?? "0.1.0"
        guard CNIVersion.supported.contains(version) else {
            throw CNIError(CNIError.incompatibleVersion, "cniVersion \(quoted(version)) is not supported",
                           details: "netkeep speaks \(CNIVersion.supported.joined(separator: ", "))")
        }
        if let unknown = keys.filter({ !ownKeys.contains($0) && !specKeys.contains($0) }).sorted().first {
            throw CNIError(CNIError.invalidConfig, "config key \(quoted(unknown)) is not one of netkeep's (bridge, vlan, mtu, mac, ipam)")
        }
        guard let nameText = fields.name else { throw CNIError(CNIError.invalidConfig, "config has no \"name\"") }
        let name: String
        do { name = try CNIRules.networkName(nameText) } catch { throw CNIError(CNIError.invalidConfig, "\(error)") }
        guard let bridgeText = fields.bridge else {
            throw CNIError(CNIError.invalidConfig, "network \(quoted(name)): config has no \"bridge\" (the OVS bridge to attach to)")
        }
        var config = CNIConfig(cniVersion: version, name: name, bridge: "", vlan: nil, mtu: 1500, mac: nil, ipamType: nil,
                               prevResult: fields.prevResult, validAttachments: nil)
        do {
            config.bridge = try Names.bridge(bridgeText)
            if let vlan = fields.vlan { config.vlan = try AttachRequest.validateVLAN(vlan.value) }
            if let mtu = fields.mtu { config.mtu = try AttachRequest.validateMTU(mtu.value) }
            // The most specific wins: CNI_ARGS MAC=, then runtimeConfig, then the config's own.
            if let macText = Self.argument("MAC", in: args) ?? fields.runtimeConfig?.mac ?? fields.mac {
                config.mac = try MACAddress(parsing: macText).validatedForInterface()
            }
        } catch {
            throw CNIError(CNIError.invalidConfig, "network \(quoted(name)): \(error)")
        }
        if let ipam = fields.ipam, let type = ipam.type {
            guard Self.isPluginName(type), type.utf8.count <= 255 else {
                throw CNIError(CNIError.invalidConfig, "network \(quoted(name)): ipam type \(quoted(type)) is not a plugin name (letters, digits, '_', '.', '-')")
            }
            config.ipamType = type
            if type == CNIRules.builtInDHCP {
                if let unknown = ipam.keys.filter({ $0 != "type" && $0 != "releaseAfter" }).sorted().first {
                    throw CNIError(CNIError.invalidConfig, "network \(quoted(name)): ipam key \(quoted(unknown)) is not one of \(CNIRules.builtInDHCP)'s (type, releaseAfter)")
                }
                if let seconds = ipam.releaseAfter?.value {
                    guard (0...86_400 * 30).contains(seconds) else {
                        throw CNIError(CNIError.invalidConfig, "network \(quoted(name)): ipam releaseAfter \(seconds) must be 0 to 2592000 seconds")
                    }
                    config.releaseAfter = Int64(seconds)
                }
            }
        }
        // A kubelet sends both; Podman only K8S_POD_NAME, its container's name.
        if let pod = Self.argument("K8S_POD_NAME", in: args), !pod.isEmpty {
            let namespace = Self.argument("K8S_POD_NAMESPACE", in: args) ?? ""
            // Kubernetes' own bounds: a pod's name is a DNS subdomain, its namespace a DNS label.
            guard pod.utf8.count <= 253, namespace.utf8.count <= 63 else {
                throw CNIError(CNIError.invalidEnvironment, "CNI_ARGS K8S_POD_NAME (at most 253 bytes) or K8S_POD_NAMESPACE (at most 63) is too long")
            }
            config.podIdentity = "pod/\(namespace)/\(pod)"
        }
        config.validAttachments = (fields.validAttachments ?? fields.attachments)?.map { ($0.containerID, $0.ifname) }
        return config
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    /// What a value of `type` is called in JSON, for a person.
    static func kind(_ type: Any.Type) -> String {
        if type == Int.self || type == Int64.self || type == UInt32.self { return "a whole number" }
        if type == Double.self { return "a number" }
        if type == String.self { return "a string" }
        if type == Bool.self { return "true or false" }
        let name = String(describing: type)
        if name.hasPrefix("Array") { return "a list" }
        if name.hasPrefix("Dictionary") || name.hasPrefix("KeyedDecodingContainer") { return "an object" }
        return "a JSON object"
    }

    /// A decoding failure of the config, naming the key and what it must be
    /// (never Swift's own notation).
    static func refusal(_ error: any Error) -> CNIError {
        guard let error = error as? DecodingError else {
            return CNIError(CNIError.decodingFailure, "network config on stdin could not be read", details: describe(error))
        }
        switch error {
        case .typeMismatch(let type, let context):
            return CNIError(CNIError.invalidConfig, "config key \(quoted(path(context.codingPath))) must be \(kind(type))")
        case .valueNotFound(let type, let context):
            return CNIError(CNIError.invalidConfig, "config key \(quoted(path(context.codingPath))) is null; it must be \(kind(type))")
        case .keyNotFound(let key, let context):
            return CNIError(CNIError.invalidConfig, "config key \(quoted(path(context.codingPath + [key]))) is missing")
        case .dataCorrupted(let context) where !context.codingPath.isEmpty:
            // A number that is no whole number (`"vlan": 1.5`), or one too large.
            return CNIError(CNIError.invalidConfig, "config key \(quoted(path(context.codingPath))) must be a whole number in range")
        default:
            return CNIError(CNIError.decodingFailure, "network config on stdin is not valid JSON", details: describe(error))
        }
    }

    /// A decoder's error in a person's words, never a dump of its types.
    static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .dataCorrupted?: return "its syntax is not JSON's"
        case .typeMismatch(_, let context)? where context.codingPath.isEmpty: return "it is a JSON value of another kind"
        default: return "it could not be read"
        }
    }

    /// `KEY=value` in CNI_ARGS (`;`-separated).
    static func argument(_ key: String, in args: String) -> String? {
        for pair in args.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == key { return String(parts[1]) }
        }
        return nil
    }

    /// A plugin name that is a file name, nothing that climbs out of CNI_PATH.
    static func isPluginName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.utf8.allSatisfy {
            CNIRules.isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
        }
    }
}

/// A JSON number that must be whole. JSONDecoder, asked for an Int, calls
/// `1.5` "not valid JSON" without naming the key: read as a number, then
/// refused as a type mismatch at its key.
struct WholeNumber: Decodable, Equatable, Sendable {
    let value: Int

    init(from decoder: any Decoder) throws {
        let number: Double
        do { number = try decoder.singleValueContainer().decode(Double.self) } catch {
            throw DecodingError.typeMismatch(Int.self, .init(codingPath: decoder.codingPath, debugDescription: "not a number"))
        }
        guard number.rounded() == number, abs(number) <= 1e15 else {
            throw DecodingError.typeMismatch(Int.self, .init(codingPath: decoder.codingPath, debugDescription: "not a whole number"))
        }
        value = Int(number)
    }
}

/// A result (SPEC.md, "Success"): what ADD prints, and what DEL and CHECK get back as prevResult.
public struct CNIResult: Codable, Equatable, Sendable {
    public struct Interface: Codable, Equatable, Sendable {
        public var name: String
        public var mac: String?
        public var mtu: Int?
        public var sandbox: String?
        public init(name: String, mac: String?, mtu: Int? = nil, sandbox: String?) {
            self.name = name; self.mac = mac; self.mtu = mtu; self.sandbox = sandbox
        }
    }
    public struct IP: Codable, Equatable, Sendable {
        public var address: String
        public var gateway: String?
        public var interface: Int?
        /// "4" or "6" before 1.0.0.
        public var version: String?
        public init(address: String, gateway: String?, interface: Int?) {
            self.address = address; self.gateway = gateway; self.interface = interface
        }
    }
    public struct Route: Codable, Equatable, Sendable {
        public var dst: String
        public var gw: String?
        public init(dst: String, gw: String?) { self.dst = dst; self.gw = gw }
    }
    public struct DNS: Codable, Equatable, Sendable {
        public var nameservers: [String]?
        public var domain: String?
        public var search: [String]?
        public var options: [String]?
        public init(nameservers: [String]?, domain: String? = nil, search: [String]? = nil, options: [String]? = nil) {
            self.nameservers = nameservers; self.domain = domain; self.search = search; self.options = options
        }
    }

    public var cniVersion: String?
    public var interfaces: [Interface]?
    public var ips: [IP]?
    public var routes: [Route]?
    public var dns: DNS?

    public init(cniVersion: String?, interfaces: [Interface]?, ips: [IP]?, routes: [Route]?, dns: DNS?) {
        self.cniVersion = cniVersion; self.interfaces = interfaces; self.ips = ips; self.routes = routes; self.dns = dns
    }

    /// The result as `version` writes it: IPs carry `"version": "4"` before 1.0.0.
    public func encoded(for version: String) -> [UInt8] {
        var copy = self
        copy.cniVersion = version
        copy.ips = ips?.map { ip in
            var ip = ip
            ip.version = CNIVersion.ipsCarryVersion(version) ? "4" : nil
            return ip
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(copy)) ?? Data("{}".utf8)) + [0x0a]
    }

    /// The IPv4 addresses, checked as netkeep checks any it records.
    public func addresses() throws(CNIError) -> [(cidr: IPv4CIDR, gateway: IPv4Address?)] {
        var out: [(IPv4CIDR, IPv4Address?)] = []
        for ip in ips ?? [] {
            if ip.version == "6" || ip.address.contains(":") {
                throw CNIError(CNIError.unsupportedField, "IPv6 address \(ip.address) from IPAM: netkeep attachments are IPv4 only")
            }
            do {
                let cidr = try IPv4CIDR(parsing: ip.address)
                try AddressRules.check(cidr, role: "address")
                out.append((cidr, try ip.gateway.map { text throws(InputError) in try IPv4Address(parsing: text) }))
            } catch {
                throw CNIError(CNIError.invalidConfig, "IPAM gave a bad address", details: "\(error)")
            }
        }
        return out
    }
}
