#if canImport(Glibc)
import Glibc
#endif
import HostIO
import NetkeepCore

/// One daemon per instance on a host: an exclusive flock on
/// `RUN_DIR/daemon-INSTANCE.lock`, held for the daemon's life, with its PID
/// and state directory written in, so that a second daemon of the same
/// instance can name the first. The kernel drops it when the daemon dies.
/// Two daemons of one instance would both act on its labelled containers.
public final class DaemonLock: @unchecked Sendable {
    public let path: String
    private var fd: Int32

    /// Who holds the lock, as the holder wrote it.
    public struct Holder: Equatable, Sendable, CustomStringConvertible {
        public var pid: Int32?
        public var stateDirectory: String?

        public var description: String {
            "pid \(pid.map(String.init) ?? "unknown"), state directory \(stateDirectory.map(quoted) ?? "unknown")"
        }
    }

    public enum Error: Swift.Error, Equatable, Sendable, CustomStringConvertible {
        case held(instance: Instance, path: String, by: Holder)
        case io(SystemError)

        public var description: String {
            switch self {
            case .held(let instance, let path, let holder):
                return "another netkeep daemon serves instance \(quoted(instance.name)) on this host (\(holder); \(path)): stop it first, or give this one an instance of its own (--instance NAME, with the label netkeep.instance=NAME on its containers)"
            case .io(let error): return "daemon lock: \(error)"
            }
        }
    }

    /// Takes the instance's lock at once, or says who has it.
    public init(runDirectory: String, instance: Instance, stateDirectory: String) throws(Error) {
        path = "\(runDirectory)/daemon-\(instance.name).lock"
        do { try Files.makeDirectories(runDirectory) } catch { throw .io(error) }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(SystemError("open", path, errno: errno)) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let err = errno
            if err == EINTR { continue }
            let holder = Self.holder(fd)
            close(fd)
            guard err == EWOULDBLOCK else { throw .io(SystemError("flock", path, errno: err)) }
            throw .held(instance: instance, path: path, by: holder)
        }
        self.fd = fd
        let text = "\(getpid())\n\(stateDirectory)\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// The holder's two lines: its PID, its state directory.
    static func holder(_ fd: Int32) -> Holder {
        var buffer = [UInt8](repeating: 0, count: 4097)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4096, 0) }
        guard n > 0 else { return Holder() }
        let lines = String(decoding: buffer[..<n], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let pid = lines.first.flatMap { Int32($0) }
        let directory = lines.count > 1 && !lines[1].isEmpty ? String(lines[1]) : nil
        return Holder(pid: pid, stateDirectory: directory)
    }

    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
