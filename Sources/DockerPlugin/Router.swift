import FoundationEssentials
import NetkeepCore

/// What netkeep does for each driver call. Every method answers from
/// netkeep's own records and the host: none may call the Docker API, which
/// does not answer while dockerd restores containers at boot. The methods
/// block (netlink, OVSDB, the state lock, a DHCP exchange); the server calls
/// them on threads of their own, never on the event loop or Swift's
/// cooperative pool, so a busy pool cannot delay dockerd.
public protocol NetworkDriver: Sendable {
    func createNetwork(_ request: CreateNetworkRequest) throws(PluginError)
    func deleteNetwork(_ request: NetworkRequest) throws(PluginError)
    func createEndpoint(_ request: CreateEndpointRequest) throws(PluginError) -> CreateEndpointReply
    func deleteEndpoint(_ request: EndpointRequest) throws(PluginError)
    func join(_ request: JoinRequest) throws(PluginError) -> JoinReply
    func leave(_ request: EndpointRequest) throws(PluginError)
}

/// An HTTP answer: status and JSON body.
public struct PluginResponse: Equatable, Sendable {
    public var status: Int
    public var body: [UInt8]
    /// Docker's plugin content type unless the answer is something else (metrics).
    public var contentType: String = PluginResponse.contentType

    public init(status: Int, body: [UInt8], contentType: String = PluginResponse.contentType) {
        self.status = status
        self.body = body
        self.contentType = contentType
    }

    public static let contentType = "application/vnd.docker.plugins.v1+json"

    static func ok(_ json: String) -> PluginResponse { PluginResponse(status: 200, body: Array(json.utf8)) }

    static func ok(_ value: some Encodable) -> PluginResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // The reply types hold only strings, numbers and booleans: encoding cannot fail.
        return PluginResponse(status: 200, body: Array((try? encoder.encode(value)) ?? Data("{}".utf8)))
    }

    /// Docker shows `Err` to the user; any status but 200 makes it an error.
    static func refusal(_ status: Int, _ error: PluginError) -> PluginResponse {
        struct Body: Encodable { var Err: String }
        var r = ok(Body(Err: error.message))
        r.status = status
        return r
    }
}

/// Maps a request path and body to a driver call and its answer; pure apart
/// from the driver, so every message is tested without a socket.
public struct PluginRouter: Sendable {
    public let driver: any NetworkDriver

    public init(driver: any NetworkDriver) { self.driver = driver }

    /// The methods answered; any other path gets 404, which Docker takes as
    /// "not implemented".
    public static let methods = [
        "/Plugin.Activate", "/NetworkDriver.GetCapabilities",
        "/NetworkDriver.CreateNetwork", "/NetworkDriver.DeleteNetwork",
        "/NetworkDriver.CreateEndpoint", "/NetworkDriver.DeleteEndpoint",
        "/NetworkDriver.Join", "/NetworkDriver.Leave", "/NetworkDriver.EndpointOperInfo",
        "/NetworkDriver.DiscoverNew", "/NetworkDriver.DiscoverDelete",
        "/NetworkDriver.ProgramExternalConnectivity", "/NetworkDriver.RevokeExternalConnectivity",
    ]

    public func respond(method: String, path: String, body: [UInt8]) -> PluginResponse {
        guard Self.methods.contains(path) else {
            return .refusal(404, PluginError("\(path): not implemented by netkeep"))
        }
        guard method == "POST" else { return .refusal(405, PluginError("\(path): \(method) is not allowed, only POST")) }
        do throws(PluginError) {
            switch path {
            case "/Plugin.Activate": return .ok(#"{"Implements":["NetworkDriver"]}"#)
            case "/NetworkDriver.GetCapabilities": return .ok(#"{"Scope":"local","ConnectivityScope":"local"}"#)
            case "/NetworkDriver.CreateNetwork": try driver.createNetwork(decode(path, body))
            case "/NetworkDriver.DeleteNetwork": try driver.deleteNetwork(decode(path, body))
            case "/NetworkDriver.CreateEndpoint": return .ok(try driver.createEndpoint(decode(path, body)))
            case "/NetworkDriver.DeleteEndpoint": try driver.deleteEndpoint(decode(path, body))
            case "/NetworkDriver.Join": return .ok(try driver.join(decode(path, body)))
            case "/NetworkDriver.Leave": try driver.leave(decode(path, body))
            case "/NetworkDriver.EndpointOperInfo":
                let _: EndpointRequest = try decode(path, body)
                return .ok(#"{"Value":{}}"#)
            default: break  // discovery and external connectivity: nothing to do for OVS ports
            }
            return .ok("{}")
        } catch {
            return .refusal(error.message.hasPrefix("malformed ") ? 400 : 500, error)
        }
    }

    /// A field's path as Docker names it (`Interface.Address`), quoted when it is not a plain name.
    static func field(_ path: [any CodingKey]) -> String {
        let text = path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        return text.utf8.allSatisfy { $0 < 0x80 && ($0 == 0x2e || $0 == 0x5b || $0 == 0x5d || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a)) }
            ? text : quoted(text)
    }

    func decode<T: Decodable>(_ path: String, _ body: [UInt8]) throws(PluginError) -> T {
        let name = path.split(separator: ".").last.map(String.init) ?? path
        do {
            return try JSONDecoder().decode(T.self, from: Data(body))
        } catch let DecodingError.keyNotFound(key, context) {
            throw PluginError("malformed \(name) request: \(Self.field(context.codingPath + [key])) is missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let field = Self.field(context.codingPath)
            throw PluginError("malformed \(name) request: \(field.isEmpty ? "the body" : field) has the wrong type")
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            throw PluginError("malformed \(name) request: \(Self.field(context.codingPath)) has a value out of range")
        } catch {
            throw PluginError("malformed \(name) request: not JSON")
        }
    }
}
