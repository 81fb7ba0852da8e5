#if canImport(Glibc)
import Glibc
#endif
import HostIO
import NetkeepCore

/// `/var/run/netns/<name>` symlinks to `/proc/<pid>/ns/net`, which make
/// `ip netns exec <container name>` work. Only symlinks into /proc are ever
/// replaced or removed: `ip netns add` mounts and anything else are left alone.
public struct NetnsLinks: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public func path(_ name: String) -> String { "\(directory)/\(name)" }

    public static func target(pid: Int32) -> String { "/proc/\(pid)/ns/net" }

    /// The PID a link points at, when it is a symlink of the form /proc/PID/ns/net.
    public func linkedPID(_ name: String) -> Int32? {
        guard let target = Files.symlinkTarget(path(name)) else { return nil }
        return Self.pid(fromTarget: target)
    }

    static func pid(fromTarget target: String) -> Int32? {
        let parts = target.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "proc", parts[3] == "ns", parts[4] == "net",
              let pid = Int32(parts[2]), pid > 0 else { return nil }
        return pid
    }

    public enum Outcome: Equatable, Sendable {
        case created, unchanged, replaced(previous: String)
        /// Something netkeep does not own is there; it was left alone.
        case skipped(reason: String)
    }

    /// Points `name` at `pid`'s namespace. Replaces an earlier /proc symlink
    /// (a dead or earlier process), atomically, through a temporary name.
    public func link(_ name: String, pid: Int32) throws(SystemError) -> Outcome {
        let target = Self.target(pid: pid)
        let linkPath = path(name)
        var previous: String?
        switch Files.kind(linkPath) {
        case .missing: break
        case .symlink:
            let current = Files.symlinkTarget(linkPath) ?? ""
            if current == target { return .unchanged }
            guard Self.pid(fromTarget: current) != nil else {
                return .skipped(reason: "\(linkPath) points at \(quoted(current)), not at a /proc namespace")
            }
            previous = current
        default:
            return .skipped(reason: "\(linkPath) exists and is not a symlink (an `ip netns add` namespace?)")
        }
        try Files.makeDirectories(directory)
        // Short, whatever the name's length (a 255-byte name plus a suffix would pass NAME_MAX).
        let temp = "\(directory)/.netkeep-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        unlink(temp)
        guard symlink(target, temp) == 0 else { throw SystemError("symlink", temp, errno: errno) }
        guard rename(temp, linkPath) == 0 else {
            let err = errno
            unlink(temp)
            throw SystemError("rename to \(linkPath)", temp, errno: err)
        }
        return previous.map { .replaced(previous: $0) } ?? .created
    }

    /// Removes `name` if it is a /proc symlink that points at `pid` (the
    /// container's own process) or at a process that no longer exists. Returns
    /// whether it was removed.
    @discardableResult
    public func remove(_ name: String, ifPointsAt pid: Int32?) -> Bool {
        guard let linked = linkedPID(name) else { return false }
        guard linked == pid || !Self.processExists(linked) else { return false }
        return unlink(path(name)) == 0
    }

    /// Unlinks `name` (the caller has checked that it is a /proc link).
    public func removeLink(_ name: String) -> Bool { unlink(path(name)) == 0 || errno == ENOENT }

    /// A process exists unless /proc says it is gone or a zombie.
    public static func processExists(_ pid: Int32) -> Bool {
        guard let stat = ProcessStat.read(pid) else { return false }
        return stat.state != "Z" && stat.state != "X"
    }
}
