#if canImport(Glibc)
import Glibc
#endif
import HostIO
import NetkeepCore

/// An exclusive flock on `state.lock`, held only to read and write records
/// (DESIGN.md rule 7): never across a DHCP exchange, an OVSDB wait or a
/// Docker call, for which a caller holds the records' claims instead
/// (`ContainerClaims`). Released on `release()` or when the value is
/// deallocated (the kernel also drops it if we die).
public final class StateLock: @unchecked Sendable {
    private var fd: Int32
    public let path: String

    /// Takes the lock, waiting up to `timeout` seconds for another holder.
    public init(path: String, timeout: Double = 120, onWait: (String?) -> Void = { _ in }) throws(StateFileError) {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(SystemError("open", path, errno: errno)) }
        var waited = false
        var delay: UInt32 = 1_000
        let deadline = Deadline.after(seconds: timeout)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let err = errno
            guard err == EWOULDBLOCK || err == EINTR else {
                close(fd)
                throw .io(SystemError("flock", path, errno: err))
            }
            let holder = Self.readHolder(fd)
            if !waited { onWait(holder); waited = true }
            if deadline.hasPassed || Interruption.isRequested {
                close(fd)
                throw .locked(path: path, holder: holder)
            }
            usleep(delay)
            delay = min(delay * 2, 50_000)
        }
        self.fd = fd
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    private static func readHolder(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 31, 0) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[..<n], as: UTF8.self).filter(\.isNumber)
        return text.isEmpty ? nil : text
    }

    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        close(fd)
        fd = -1
    }

    deinit { release() }
}

