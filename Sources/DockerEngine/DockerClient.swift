import FoundationEssentials
import HostIO
import NetkeepCore

/// A container as netkeep needs it.
public struct Container: Equatable, Sendable {
    /// The full 64-digit id.
    public var id: String
    /// The name without Docker's leading '/'.
    public var name: String
    public var running: Bool
    /// The init process; 0 when not running.
    public var pid: Int32
    public var status: String
    /// `HostConfig.NetworkMode`: `none`, `bridge`, a network name, `host` or `container:ID`.
    public var networkMode: String
    /// `NetworkSettings.SandboxKey`: Docker's bind mount of the container's
    /// namespace (empty when it has none of its own).
    public var sandboxKey: String
    /// `Config.Labels` (fixed when the container was created).
    public var labels: [String: String]

    public init(id: String, name: String, running: Bool, pid: Int32, status: String, networkMode: String = "", sandboxKey: String = "",
                labels: [String: String] = [:]) {
        self.id = id
        self.name = name
        self.running = running
        self.pid = pid
        self.status = status
        self.networkMode = networkMode
        self.sandboxKey = sandboxKey
        self.labels = labels
    }

    /// What the container's labels ask of netkeep `instance`.
    public func declaration(for instance: Instance) -> LabelDeclaration {
        do { return try LabelDeclaration.parse(labels: labels, container: id, instance: instance) } catch {
            // Only an engine that is not Docker gives an id that is none.
            return .refused([LabelProblem(key: labels.keys.min() ?? "", cause: "the container's id: \(error)")])
        }
    }

    /// Why the container has no network namespace of its own; nil when it has.
    public var sharedNamespace: String? {
        if networkMode == "host" { return "the host's network namespace (--network host)" }
        if networkMode.hasPrefix("container:") {
            return "the network namespace of container \(quoted(String(networkMode.dropFirst(10).prefix(12)))) (--network \(quoted(String(networkMode.prefix(22)))))"
        }
        return nil
    }
}

public enum DockerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The engine's socket could not be reached or did not answer in time.
    case unreachable(SystemError)
    /// Positive evidence: the engine answered 404 saying there is no such container.
    case noSuchContainer(String)
    /// A reference that is no Docker name or id: never sent, never evidence.
    case invalidReference(String)
    case api(status: Int, message: String)
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .unreachable(let error): return "Docker engine unreachable: \(error)"
        case .noSuchContainer(let ref): return "container \(quoted(ref)) does not exist (Docker answered 404)"
        case .invalidReference(let ref): return "container \(quoted(ref)) is not a Docker name or id; not asked"
        case .api(let status, let message): return "Docker engine answered \(status): \(message)"
        case .protocolViolation(let detail): return "Docker engine: \(detail)"
        }
    }
}

/// The Docker Engine API over its unix socket. Unversioned paths, so that any
/// engine from API 1.24 on answers (dockerd 20.10 speaks up to 1.41).
public struct DockerClient: Sendable {
    public static let defaultSocket = "/var/run/docker.sock"
    public let socketPath: String
    public let timeout: Double

    public init(socketPath: String = DockerClient.defaultSocket, timeout: Double = 10) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

    /// `docker inspect REF`: the container, or `.noSuchContainer` when the
    /// engine's 404 says so (a 404 for an unknown route is no evidence). A
    /// reference that is no Docker name or id is refused before any request.
    public func inspect(_ reference: String) throws(DockerError) -> Container {
        guard Names.isContainerReference(reference) else { throw .invalidReference(reference) }
        let response = try get("/containers/\(Self.pathSegment(reference))/json")
        if response.status == 404, Self.saysNoSuchContainer(response.body) { throw .noSuchContainer(reference) }
        try Self.expectOK(response)
        return try Self.decodeInspect(response.body)
    }

    /// `docker info`: who this engine is (`ID`, `DockerRootDir`).
    public func engine() throws(DockerError) -> EngineIdentity {
        let response = try get("/info")
        try Self.expectOK(response)
        struct Info: Decodable {
            var ID: String?
            var DockerRootDir: String?
        }
        guard let info = try? JSONDecoder().decode(Info.self, from: Data(response.body)) else {
            throw .protocolViolation("unexpected info answer")
        }
        return EngineIdentity(id: info.ID ?? "", rootDir: info.DockerRootDir ?? "")
    }

    /// `docker network inspect ID`: the endpoints attached to containers, or
    /// `.missing` when the engine's 404 says the network does not exist.
    public func network(id: String) throws(DockerError) -> DockerNetworkView {
        try networkMembers(id: id).view
    }

    /// As `network(id:)`, with each endpoint's container (id and name).
    public func networkMembers(id: String) throws(DockerError) -> (view: DockerNetworkView, containers: [String: (id: String, name: String)]) {
        guard Names.isDockerID(id) else { throw .invalidReference(id) }
        let response = try get("/networks/\(id)")
        // "network ID not found"; a route Docker does not know says "page not found", no evidence.
        if response.status == 404, Self.errorMessage(response.body) == "network \(id) not found" { return (.missing, [:]) }
        try Self.expectOK(response)
        struct Network: Decodable {
            struct Member: Decodable { var EndpointID: String?; var Name: String? }
            var Id: String?
            var Containers: [String: Member]?
        }
        guard let network = try? JSONDecoder().decode(Network.self, from: Data(response.body)), network.Id == id else {
            throw .protocolViolation("unexpected answer for network \(id.prefix(12))")
        }
        var containers: [String: (id: String, name: String)] = [:]
        for (container, member) in network.Containers ?? [:] {
            if let endpoint = member.EndpointID { containers[endpoint] = (container, member.Name ?? "") }
        }
        return (.endpoints(Set(containers.keys)), containers)
    }

    /// Docker's own words for a missing container (`No such container: REF`).
    static func saysNoSuchContainer(_ body: [UInt8]) -> Bool {
        errorMessage(body).lowercased().hasPrefix("no such container")
    }

    /// Percent-encodes every byte but RFC 3986's unreserved ones, so that no
    /// byte of a reference can end the path or start a query, header or request.
    static func pathSegment(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = Array("0123456789ABCDEF")
                out += "%\(digits[Int(byte >> 4)])\(digits[Int(byte & 15)])"
            }
        }
        return out
    }

    /// `docker ps -a`: every container, running or not.
    public func list() throws(DockerError) -> [Container] {
        let response = try get("/containers/json?all=1")
        try Self.expectOK(response)
        return try Self.decodeList(response.body)
    }

    /// `GET /_ping`.
    public func ping() throws(DockerError) {
        try Self.expectOK(get("/_ping"))
    }

    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
    }

    /// One request on its own connection (`Connection: close`), read to the end.
    public func get(_ path: String) throws(DockerError) -> Response {
        // The path is built here from encoded parts; anything else is a bug, not input.
        precondition(path.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }, "request path must be encoded")
        let deadline = Deadline.after(seconds: timeout)
        let socket: UnixStreamSocket
        do { socket = try UnixStreamSocket(path: socketPath) } catch { throw .unreachable(error) }
        defer { socket.close() }
        let request = "GET \(path) HTTP/1.1\r\nHost: docker\r\nUser-Agent: netkeep\r\nConnection: close\r\n\r\n"
        var parser = HTTPResponseParser()
        var body: [UInt8] = []
        do {
            try socket.send(Array(request.utf8), deadline: deadline)
            while true {
                let chunk = try socket.receive(deadline: deadline)
                if !chunk.isEmpty { parser.append(chunk) }
                if try parser.parseHead() != nil { body += try parser.takeBody() }
                if parser.isComplete { break }
                if chunk.isEmpty {
                    guard parser.head != nil else { throw DockerError.protocolViolation("connection closed before a response") }
                    break
                }
            }
        } catch let error as SystemError {
            throw .unreachable(error)
        } catch let error as HTTPResponseParser.ParseError {
            throw .protocolViolation(error.description)
        } catch let error as DockerError {
            throw error
        } catch {
            throw .protocolViolation("\(error)")
        }
        return Response(status: parser.head!.status, body: body)
    }

    static func expectOK(_ response: Response) throws(DockerError) {
        guard (200..<300).contains(response.status) else {
            throw .api(status: response.status, message: errorMessage(response.body))
        }
    }

    static func errorMessage(_ body: [UInt8]) -> String {
        struct Message: Decodable { var message: String }
        if let decoded = try? JSONDecoder().decode(Message.self, from: Data(body)) { return decoded.message }
        return String(decoding: body.prefix(200), as: UTF8.self)
    }

    struct InspectBody: Decodable {
        struct StateBody: Decodable {
            var Running: Bool
            var Pid: Int32
            var Status: String
        }
        struct HostConfigBody: Decodable { var NetworkMode: String? }
        struct NetworkSettingsBody: Decodable { var SandboxKey: String? }
        struct ConfigBody: Decodable { var Labels: [String: String]? }
        var Id: String
        var Name: String
        var State: StateBody
        var HostConfig: HostConfigBody?
        var NetworkSettings: NetworkSettingsBody?
        var Config: ConfigBody?
    }

    struct ListItem: Decodable {
        var Id: String
        var Names: [String]?
        var State: String
        var Labels: [String: String]?
    }

    public static func decodeInspect(_ body: [UInt8]) throws(DockerError) -> Container {
        do {
            let item = try JSONDecoder().decode(InspectBody.self, from: Data(body))
            return Container(id: item.Id, name: String(item.Name.drop { $0 == "/" }), running: item.State.Running,
                             pid: item.State.Running ? item.State.Pid : 0, status: item.State.Status,
                             networkMode: item.HostConfig?.NetworkMode ?? "", sandboxKey: item.NetworkSettings?.SandboxKey ?? "",
                             labels: item.Config?.Labels ?? [:])
        } catch {
            throw .protocolViolation("unexpected inspect answer: \(error)")
        }
    }

    /// The list endpoint has no PID; callers inspect the containers they need.
    public static func decodeList(_ body: [UInt8]) throws(DockerError) -> [Container] {
        do {
            return try JSONDecoder().decode([ListItem].self, from: Data(body)).map { item in
                Container(id: item.Id, name: String((item.Names?.first ?? "").drop { $0 == "/" }),
                          running: item.State == "running", pid: 0, status: item.State, labels: item.Labels ?? [:])
            }
        } catch {
            throw .protocolViolation("unexpected list answer: \(error)")
        }
    }
}
