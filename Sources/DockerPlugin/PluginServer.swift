#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Docker's plugin API over a unix socket: swift-nio's HTTP/1.1 server with
/// the `PluginRouter` behind it. The socket is either bound here or handed
/// over by systemd (socket activation, `LISTEN_FDS`). The same server, on
/// TCP, serves the daemon's metrics (`listen(host:port:...)`).
public final class PluginServer: Sendable {
    /// The socket's path, or `host:port` on TCP (the port as bound).
    public let path: String
    private let channel: any Channel

    /// What answers a request: method, path (with query) and body in, the answer out.
    public typealias Responder = @Sendable (_ method: String, _ path: String, _ body: [UInt8]) -> PluginResponse

    /// A request body larger than this is refused (Docker's are below 2 KiB).
    static let maxBody = 1 << 20
    /// Connections kept at once. A new one beyond that takes the place of
    /// the one idle the longest (one whose answer is being worked out is
    /// never closed); when every one is busy, the new one is closed. A flood
    /// of idle connections cannot take the descriptors the daemon needs for
    /// its own work (the claims lock, DHCP sockets, OVSDB), nor keep Docker out.
    static let maxConnections = 256
    /// A connection with no request under way is closed after this long
    /// without a byte (Docker opens a new one when it needs one).
    /// NETKEEP_PLUGIN_IDLE_SECONDS changes it in a debug build (tests).
    static let idleSeconds: Int64 = {
        #if DEBUG
        if let text = getenv("NETKEEP_PLUGIN_IDLE_SECONDS").map({ String(cString: $0) }), let seconds = Int64(text), seconds > 0 { return seconds }
        #endif
        return 30
    }()
    /// A request must arrive whole within this long of its first line.
    static let requestSeconds: Int64 = 30

    private init(path: String, channel: any Channel) {
        self.path = path
        self.channel = channel
    }

    /// Binds `path`, making its directory. A socket file left by a process that
    /// is gone is replaced; one that still answers is another server's, and refused.
    public static func listen(path: String, router: PluginRouter) async throws(PluginServerError) -> PluginServer {
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !directory.isEmpty { makeDirectories(directory) }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw PluginServerError(path: path, cause: "exists and is not a socket")
            }
            if answers(path) { throw PluginServerError(path: path, cause: "another process is serving it") }
            unlink(path)
        }
        do {
            let channel = try await bootstrap(router.respond).bind(unixDomainSocketPath: path).get()
            return PluginServer(path: path, channel: channel)
        } catch {
            throw PluginServerError(path: path, cause: "\(error)")
        }
    }

    /// Serves a listening socket that systemd opened (`fd` 3 and up).
    public static func adopt(fd: Int32, path: String, router: PluginRouter) async throws(PluginServerError) -> PluginServer {
        do {
            let channel = try await bootstrap(router.respond).withBoundSocket(fd).get()
            return PluginServer(path: path, channel: channel)
        } catch {
            throw PluginServerError(path: path, cause: "socket activation: \(error)")
        }
    }

    /// Serves `respond` over HTTP on TCP (`host` a name or address: 127.0.0.1,
    /// ::1, 0.0.0.0 for every interface).
    /// `path` is `host:port` with the port as bound (the system's choice for port 0).
    public static func listen(host: String, port: Int, respond: @escaping Responder) async throws(PluginServerError) -> PluginServer {
        do {
            let channel = try await bootstrap(respond).serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port).get()
            return PluginServer(path: tcpName(host, channel.localAddress?.port ?? port), channel: channel)
        } catch {
            throw PluginServerError(path: tcpName(host, port), cause: "\(error)")
        }
    }

    /// `host:port`, brackets around an IPv6 address.
    public static func tcpName(_ host: String, _ port: Int) -> String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Stops accepting; requests under way finish on their connections.
    public func close() async {
        try? await channel.close()
    }

    private static func bootstrap(_ respond: @escaping Responder) -> ServerBootstrap {
        let connections = ConnectionRegistry(maximum: Self.maxConnections)
        return ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .childChannelInitializer { channel in
                let state = ConnectionState()
                guard connections.admit(channel, state) else { return channel.close() }
                channel.closeFuture.whenComplete { _ in connections.remove(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(Self.idleSeconds)))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(PluginHTTPHandler(respond: respond, state: state))
                }
            }
    }

    private static func answers(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return rc == 0
    }

    private static func makeDirectories(_ path: String) {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            mkdir(prefix, 0o755)
        }
    }
}

public struct PluginServerError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var cause: String
    public var description: String { path.hasPrefix("/") ? "plugin socket \(path): \(cause)" : "HTTP listener \(path): \(cause)" }
}

/// One connection as the registry sees it: whether an answer is being
/// worked out for it, and when it last did anything. Written by its handler
/// on the connection's event loop, read by the registry from another.
final class ConnectionState: Sendable {
    let answering = Atomic<Bool>(false)
    let lastActive = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)

    func touch() { lastActive.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed) }
}

/// The server's open connections, at most `maximum`.
final class ConnectionRegistry: Sendable {
    let maximum: Int
    private let open = Mutex<[ObjectIdentifier: (channel: any Channel, state: ConnectionState)]>([:])

    init(maximum: Int) { self.maximum = maximum }

    /// Takes a new connection; at the cap, the one idle the longest is
    /// closed to make room. False when every one is answering: the new one
    /// is refused.
    func admit(_ channel: any Channel, _ state: ConnectionState) -> Bool {
        let victim: (any Channel)?? = open.withLock { open in
            var victim: (any Channel)?
            if open.count >= maximum {
                guard let oldest = open.filter({ !$0.value.state.answering.load(ordering: .relaxed) })
                    .min(by: { $0.value.state.lastActive.load(ordering: .relaxed) < $1.value.state.lastActive.load(ordering: .relaxed) }) else {
                    return .none
                }
                open.removeValue(forKey: oldest.key)
                victim = oldest.value.channel
            }
            open[ObjectIdentifier(channel)] = (channel, state)
            return .some(victim)
        }
        guard let victim else { return false }
        victim?.close(promise: nil)
        return true
    }

    func remove(_ channel: any Channel) {
        _ = open.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}

/// One connection: collects a request, lets the responder answer it on a
/// Dispatch thread (a DHCP exchange can take seconds), writes the answer.
/// An idle connection is closed, and so is one whose request does not
/// arrive whole in time; never one whose answer is being worked out.
final class PluginHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let respond: PluginServer.Responder
    private let state: ConnectionState
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false
    private var requestDeadline: Scheduled<Void>?

    init(respond: @escaping PluginServer.Responder, state: ConnectionState = ConnectionState()) {
        self.respond = respond
        self.state = state
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if !state.answering.load(ordering: .relaxed) { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        requestDeadline?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        state.touch()
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
            tooLarge = false
            let channel = context.channel
            requestDeadline = context.eventLoop.scheduleTask(in: .seconds(PluginServer.requestSeconds)) { channel.close(promise: nil) }
        case .body(var buffer):
            if body.count + buffer.readableBytes > PluginServer.maxBody { tooLarge = true; return }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            requestDeadline?.cancel()
            requestDeadline = nil
            guard let head else { return }
            self.head = nil
            state.answering.store(true, ordering: .relaxed)
            let respond = self.respond, body = self.body, tooLarge = self.tooLarge
            self.body = []
            let keepAlive = head.isKeepAlive
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            DispatchQueue.global().async {
                let response = tooLarge
                    ? PluginResponse.refusal(413, PluginError("\(head.uri): a body of more than \(PluginServer.maxBody) bytes"))
                    : respond(head.method.rawValue, head.uri, body)
                loop.execute {
                    let (handler, context) = bound.value
                    handler.state.touch()
                    handler.state.answering.store(false, ordering: .relaxed)
                    Self.write(response, keepAlive: keepAlive, version: head.version, context: context)
                }
            }
        }
    }

    private static func write(_ response: PluginResponse, keepAlive: Bool, version: HTTPVersion, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: response.body.count)
        buffer.writeBytes(response.body)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))), promise: nil)
        let done = context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
