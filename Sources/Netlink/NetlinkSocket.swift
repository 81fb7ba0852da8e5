#if canImport(Glibc)
import Glibc
#endif
import CLinux
import NetkeepCore

/// What a netlink session needs from its socket; tests hand it canned replies.
public protocol NetlinkSocket: AnyObject {
    func send(_ message: [UInt8]) throws(NetlinkError)
    /// One datagram (may hold several messages).
    func receive() throws(NetlinkError) -> [UInt8]
}

/// An AF_NETLINK/NETLINK_ROUTE socket. It belongs to the network namespace of
/// the thread that opened it, for its whole life.
public final class RouteSocket: NetlinkSocket, @unchecked Sendable {
    private var fd: Int32
    /// Receive timeout: the kernel answers at once, so a stall means a bug.
    static let timeoutSeconds = 10

    /// Opens a socket in the calling thread's namespace.
    public init() throws(NetlinkError) {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_ROUTE)
        guard fd >= 0 else { throw NetlinkError(operation: "socket(AF_NETLINK)", errno: errno) }
        var one: Int32 = 1
        // Extended acks carry the kernel's reason; capped acks keep them short.
        _ = setsockopt(fd, RTNL.SOL_NETLINK, RTNL.NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, RTNL.SOL_NETLINK, RTNL.NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: Self.timeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var size: Int32 = 1 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        guard rc == 0 else {
            let err = errno
            close(fd)
            throw NetlinkError(operation: "bind(AF_NETLINK)", errno: err)
        }
        self.fd = fd
    }

    /// Opens a socket inside `namespace` (on a dedicated thread; see NamespaceThread).
    public static func open(in namespace: NetworkNamespace?) throws(NetlinkError) -> RouteSocket {
        guard let namespace else { return try RouteSocket() }
        do {
            return try NamespaceThread.run(in: namespace) { () throws(NetlinkError) -> RouteSocket in try RouteSocket() }
        } catch let error as NetlinkError {
            throw error
        } catch let error as SystemError {
            throw NetlinkError(operation: "\(error.operation) \(error.object)", errno: error.errno)
        } catch {
            throw NetlinkError(operation: "enter namespace \(namespace.path)", errno: EINVAL)
        }
    }

    public func send(_ message: [UInt8]) throws(NetlinkError) {
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        while true {
            let n = message.withUnsafeBytes { buffer in
                withUnsafePointer(to: &kernel) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                    }
                }
            }
            if n >= 0 { return }
            if errno != EINTR { throw NetlinkError(operation: "send netlink request", errno: errno) }
        }
    }

    public func receive() throws(NetlinkError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n >= 0 { return Array(buffer[..<n]) }
            if errno == EINTR { continue }
            throw NetlinkError(operation: "receive netlink reply", errno: errno)
        }
    }

    deinit { close(fd) }
}

/// A failed netlink request: which `ip` command it equals, the errno and the
/// kernel's extended-ack message when it gave one.
public struct NetlinkError: Error, Equatable, Sendable, CustomStringConvertible {
    public let operation: String
    public let errno: Int32
    public let kernelMessage: String?

    public init(operation: String, errno: Int32, kernelMessage: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.kernelMessage = kernelMessage
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        return "\(operation): \(reason)\(kernelMessage.map { " (\($0))" } ?? "")"
    }
}
