#if canImport(Glibc)
import Glibc
#endif
import NetkeepCore

/// A connected AF_UNIX stream socket with deadlines on every read and write.
/// Owns its descriptor: closed exactly once, by `close()` or deinit.
public final class UnixStreamSocket: @unchecked Sendable {
    public let path: String
    private var fd: Int32

    /// Connects to `path`; fails at once when nothing listens there.
    public init(path: String) throws(SystemError) {
        self.path = path
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else { throw SystemError("connect", path, errno: ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", path, errno: errno) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            let err = errno
            Glibc.close(fd)
            throw SystemError("connect", path, errno: err)
        }
        self.fd = fd
    }

    /// Sends every byte or throws; `ETIMEDOUT` when the peer stops reading.
    public func send(_ bytes: [UInt8], deadline: Deadline) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            try wait(for: Int16(POLLOUT), deadline: deadline, operation: "send to")
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw SystemError("send to", path, errno: errno)
            }
            offset += n
        }
    }

    /// Reads what is available (at most `max` bytes), waiting until `deadline`.
    /// An empty result means the peer closed the connection.
    public func receive(max: Int = 65536, deadline: Deadline) throws(SystemError) -> [UInt8] {
        while true {
            try wait(for: Int16(POLLIN), deadline: deadline, operation: "receive from")
            var buffer = [UInt8](repeating: 0, count: max)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, max, 0) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw SystemError("receive from", path, errno: errno)
            }
            return Array(buffer[..<n])
        }
    }

    private func wait(for events: Int16, deadline: Deadline, operation: String) throws(SystemError) {
        while true {
            var pfd = pollfd(fd: fd, events: events, revents: 0)
            let remaining = deadline.remainingMilliseconds
            if remaining == 0 { throw SystemError(operation, path, errno: ETIMEDOUT) }
            let rc = poll(&pfd, 1, Int32(clamping: remaining))
            if rc > 0 { return }
            if rc == 0 { throw SystemError(operation, path, errno: ETIMEDOUT) }
            if errno != EINTR { throw SystemError("poll", path, errno: errno) }
        }
    }

    /// Shuts the connection down from another thread, waking a blocked reader.
    public func shutdown() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

    public func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    deinit { close() }
}
