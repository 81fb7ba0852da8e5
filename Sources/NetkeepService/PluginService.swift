#if canImport(Glibc)
import Glibc
#endif
import DockerPlugin
import Logging
import ServiceLifecycle
import Systemd

/// The Docker plugin API as one of the daemon's services. The socket is bound
/// (or taken from systemd) before the service group starts, so it answers
/// before READY=1 and before the first reconcile, whatever Docker is doing.
public final class PluginService: Service {
    let server: PluginServer
    let activated: Bool
    let logger: Logger

    /// Takes the socket systemd passed (`passed`, from `SocketActivation`), or binds `path`.
    public static func start(path: String, passed: [Int32], environment: HostEnvironment, logger: Logger) async throws(Failure) -> PluginService {
        let router = PluginRouter(driver: NetworkPlugin(environment: environment, logger: logger))
        do {
            if let fd = passed.first {
                guard SocketActivation.isUnixStreamListener(fd) else {
                    throw Failure.badInput("socket activation: descriptor \(fd) is not a listening unix stream socket")
                }
                let server = try await PluginServer.adopt(fd: fd, path: path, router: router)
                logger.notice("serving Docker's plugin API on the socket systemd passed (\(path))")
                return PluginService(server: server, activated: true, logger: logger)
            }
            let server = try await PluginServer.listen(path: path, router: router)
            logger.notice("serving Docker's plugin API on \(path)")
            return PluginService(server: server, activated: false, logger: logger)
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure.unreachable("\(error)")
        }
    }

    private init(server: PluginServer, activated: Bool, logger: Logger) {
        self.server = server
        self.activated = activated
        self.logger = logger
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await server.close()
        // A socket systemd made stays for the next start; one made here goes,
        // so dockerd finds no stale socket while netkeep is stopped.
        if !activated { _ = server.path.withCString { unlink($0) } }
    }
}
