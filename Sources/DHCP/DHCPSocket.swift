#if canImport(Glibc)
import Glibc
#endif
import CLinux
import HostIO
import NetkeepCore

/// A UDP socket on port 68 of one interface (SO_BINDTODEVICE), allowed to
/// broadcast. Opened inside the container's namespace by the caller (on a
/// namespace thread); usable from any thread afterwards.
public final class DHCPSocket: @unchecked Sendable {
    public let fd: Int32
    public let interface: String

    /// Opens the socket in the calling thread's namespace.
    public init(interface: String) throws(SystemError) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket(AF_INET, SOCK_DGRAM)", interface, errno: errno) }
        var one: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        func fail(_ what: String) -> SystemError {
            let e = SystemError(what, interface, errno: errno)
            close(fd)
            return e
        }
        guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, size) == 0 else { throw fail("setsockopt SO_REUSEADDR") }
        guard setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, size) == 0 else { throw fail("setsockopt SO_BROADCAST") }
        let bound = interface.withCString { setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
        guard bound == 0 else { throw fail("setsockopt SO_BINDTODEVICE") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(68).bigEndian
        address.sin_addr = in_addr(s_addr: 0)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw fail("bind 0.0.0.0:68") }
        self.fd = fd
        self.interface = interface
    }

    public func send(_ bytes: [UInt8], to destination: IPv4Address) throws(SystemError) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(67).bigEndian
        address.sin_addr = in_addr(s_addr: destination.value.bigEndian)
        let n = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        if n < 0 { throw SystemError("send DHCP to \(destination)", interface, errno: errno) }
    }

    /// One datagram if any is waiting (the socket does not block).
    public func receive() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: DHCPMessage.maxSize + 1)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? Array(buffer[..<n]) : nil
    }

    /// Whether everything sent has left the socket (an error counts as yes).
    public var allSent: Bool { nk_unsent_bytes(fd) <= 0 }

    deinit { close(fd) }
}
