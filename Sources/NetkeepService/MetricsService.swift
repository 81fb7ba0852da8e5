import DockerPlugin
import Logging
import ServiceLifecycle

/// `--metrics-listen`: the metrics over HTTP (`GET /metrics`), on the
/// server that serves Docker's plugin API. Bound before the service group
/// starts, so a taken port fails the start with a clear error.
public final class MetricsService: Service {
    let server: PluginServer

    public static func start(listen: String, metrics: DaemonMetrics, logger: Logger) async throws(Failure) -> MetricsService {
        let (host, port) = try parse(listen)
        do {
            let server = try await PluginServer.listen(host: host, port: port) { method, path, _ in respond(method: method, path: path, metrics: metrics) }
            logger.notice("serving metrics on http://\(server.path)/metrics")
            return MetricsService(server: server)
        } catch {
            throw Failure.badInput("--metrics-listen \(listen): \(error.cause)")
        }
    }

    private init(server: PluginServer) { self.server = server }

    /// Where it listens, the port as bound.
    public var address: String { server.path }

    /// `host:port`, brackets around an IPv6 address.
    public static func address(_ host: String, _ port: Int) -> String { PluginServer.tcpName(host, port) }

    public func run() async throws {
        try? await gracefulShutdown()
        await server.close()
    }

    static func respond(method: String, path: String, metrics: DaemonMetrics) -> PluginResponse {
        let route = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
        guard route == "/metrics" else {
            return PluginResponse(status: 404, body: Array("not found: the metrics are at /metrics\n".utf8), contentType: "text/plain; charset=utf-8")
        }
        guard method == "GET" else {
            return PluginResponse(status: 405, body: Array("\(method) /metrics: only GET\n".utf8), contentType: "text/plain; charset=utf-8")
        }
        return PluginResponse(status: 200, body: Array(metrics.render().utf8), contentType: DaemonMetrics.contentType)
    }

    /// `HOST:PORT`, `[IPV6]:PORT`, or `:PORT` for every interface (0.0.0.0).
    public static func parse(_ text: String) throws(Failure) -> (host: String, port: Int) {
        let host: String
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw Failure.badInput("--metrics-listen \(text): expected [IPV6]:PORT")
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else {
                throw Failure.badInput("--metrics-listen \(text): expected HOST:PORT, [IPV6]:PORT or :PORT")
            }
            host = colon == text.startIndex ? "0.0.0.0" : String(text[..<colon])
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty,
              host.allSatisfy({ $0.isLetter || $0.isNumber || ".-:%".contains($0) }) else {
            throw Failure.badInput("--metrics-listen \(text): expected HOST:PORT with a port from 0 to 65535")
        }
        return (host, port)
    }
}
