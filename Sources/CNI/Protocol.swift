import FoundationEssentials
import NetkeepCore

/// The versions of the CNI spec netkeep answers: ADD, DEL and CHECK for all,
/// GC and STATUS from 1.1.0 (and from any runtime that sends them).
public enum CNIVersion {
    public static let current = "1.1.0"
    public static let supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

    /// Results before 1.0.0 carry `"version": "4"` in each IP.
    static func ipsCarryVersion(_ version: String) -> Bool { version.hasPrefix("0.") }
}

/// An error as the spec has it: JSON on stdout, a non-zero exit.
public struct CNIError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: Int
    public var msg: String
    public var details: String?

    public init(_ code: Int, _ msg: String, details: String? = nil) {
        self.code = code
        self.msg = msg
        self.details = details
    }

    // The spec's well-known codes; 100 and above are the plugin's own.
    public static let incompatibleVersion = 1
    public static let unsupportedField = 2
    public static let unknownContainer = 3
    public static let invalidEnvironment = 4
    public static let ioFailure = 5
    public static let decodingFailure = 6
    public static let invalidConfig = 7
    public static let tryAgainLater = 11
    public static let notAvailable = 50
    /// netkeep's: the interface of ADD exists already.
    public static let interfaceExists = 100
    /// netkeep's: Open vSwitch refused or failed a change.
    public static let vswitchFailure = 101
    /// netkeep's: the kernel refused a link, address or route.
    public static let linkFailure = 102

    public var description: String { "\(msg)\(details.map { ": \($0)" } ?? "")" }

    public func json(version: String) -> [UInt8] {
        // Written by hand so the keys keep the spec's order.
        var out = "{\"cniVersion\":\(jsonString(version)),\"code\":\(code),\"msg\":\(jsonString(msg))"
        if let details { out += ",\"details\":\(jsonString(details))" }
        return Array((out + "}\n").utf8)
    }
}

func jsonString(_ text: String) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    let data = (try? encoder.encode(text)) ?? Data("\"\"".utf8)
    return String(decoding: data, as: UTF8.self)
}

/// CNI_COMMAND.
public enum CNICommand: String, Sendable, CaseIterable {
    case add = "ADD", del = "DEL", check = "CHECK", gc = "GC", status = "STATUS", version = "VERSION"
}

/// The environment a runtime sets for one call (SPEC.md, "Parameters").
public struct CNIParameters: Equatable, Sendable {
    public var command: CNICommand
    public var containerID: String
    public var netns: String
    public var ifname: String
    public var args: String
    /// CNI_PATH: where delegated plugins (IPAM) are looked for.
    public var path: [String]

    /// Reads and checks the variables `command` needs; names the one missing or bad.
    public static func parse(_ env: [String: String]) throws(CNIError) -> CNIParameters {
        guard let text = env["CNI_COMMAND"], !text.isEmpty else {
            throw CNIError(CNIError.invalidEnvironment, "CNI_COMMAND is not set (netkeep runs as a CNI plugin only when a runtime calls it)")
        }
        guard let command = CNICommand(rawValue: text) else {
            throw CNIError(CNIError.invalidEnvironment, "CNI_COMMAND \(quoted(text)) is not one of \(CNICommand.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for name in ["CNI_ARGS", "CNI_PATH"] {
            if let value = env[name], value.utf8.count > CNIRules.maxEnvironmentValue {
                throw CNIError(CNIError.invalidEnvironment, "\(name) is \(value.utf8.count) bytes long; at most \(CNIRules.maxEnvironmentValue)")
            }
        }
        var p = CNIParameters(command: command, containerID: env["CNI_CONTAINERID"] ?? "", netns: env["CNI_NETNS"] ?? "",
                              ifname: env["CNI_IFNAME"] ?? "", args: env["CNI_ARGS"] ?? "",
                              path: (env["CNI_PATH"] ?? "").split(separator: ":").map(String.init))
        if let long = p.path.first(where: { $0.utf8.count > CNIRules.maxNetnsPath }) {
            throw CNIError(CNIError.invalidEnvironment, "CNI_PATH entry \(quoted(long)) is \(long.utf8.count) bytes long; at most \(CNIRules.maxNetnsPath)")
        }
        switch command {
        case .add, .del, .check:
            do {
                p.containerID = try CNIRules.containerID(p.containerID)
                p.ifname = try Names.interface(p.ifname, role: "CNI_IFNAME")
                // DEL may come without a namespace (it is gone); ADD and CHECK need one.
                if command != .del || !p.netns.isEmpty { p.netns = try CNIRules.netnsPath(p.netns) }
            } catch {
                throw CNIError(CNIError.invalidEnvironment, "\(error)")
            }
        case .gc, .status, .version:
            break
        }
        return p
    }
}

extension CNIError {
    /// Another plugin's error as it printed it (a delegated IPAM's).
    public static func decode(_ bytes: [UInt8]) -> CNIError? {
        struct Wire: Decodable { var code: Int; var msg: String; var details: String? }
        guard let wire = try? JSONDecoder().decode(Wire.self, from: Data(bytes)) else { return nil }
        return CNIError(wire.code, wire.msg, details: wire.details?.isEmpty == true ? nil : wire.details)
    }
}

extension CNIResult {
    /// A delegated plugin's result; nil when it printed none that reads as one.
    public static func decode(_ bytes: [UInt8]) -> CNIResult? {
        try? JSONDecoder().decode(CNIResult.self, from: Data(bytes))
    }
}

extension CNIConfig {
    /// VERSION's input: just `{"cniVersion": ...}`.
    public static func requestedVersion(_ bytes: [UInt8]) -> String? {
        struct Wire: Decodable { var cniVersion: String? }
        return (try? JSONDecoder().decode(Wire.self, from: Data(bytes)))?.cniVersion
    }
}
