#if canImport(Glibc)
import Glibc
#endif
import CLinux
import NetkeepCore

/// An open handle on a network namespace (`/proc/PID/ns/net` or a bind mount).
/// The descriptor keeps the namespace alive while the handle lives.
public final class NetworkNamespace: @unchecked Sendable {
    public let path: String
    public let fd: Int32

    /// Only a file of the namespace file system is opened: a FIFO at `path`
    /// would hang `open`, and opening a device can act on it. The handle is
    /// refused unless it is a network namespace.
    public init(path: String) throws(SystemError) {
        var fs = statfs()
        guard statfs(path, &fs) == 0 else { throw SystemError("open network namespace", path, errno: errno) }
        guard UInt64(fs.f_type) == Self.nsfsMagic else {
            throw SystemError("open network namespace", path, errno: EINVAL, detail: "it is not a namespace file (nsfs)")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw SystemError("open network namespace", path, errno: errno) }
        guard nk_is_net_namespace(fd) == 1 else {
            close(fd)
            throw SystemError("open network namespace", path, errno: EINVAL, detail: "it is not a network namespace")
        }
        self.path = path
        self.fd = fd
    }

    /// NSFS_MAGIC (linux/magic.h).
    static let nsfsMagic: UInt64 = 0x6e73_6673

    public convenience init(pid: Int32) throws(SystemError) {
        try self.init(path: "/proc/\(pid)/ns/net")
    }

    /// The namespace of `pid`, refused unless it is `expected` (when given)
    /// and not netkeep's own: a reused PID or a shared namespace is never entered.
    public convenience init(pid: Int32, expecting expected: NamespaceID?) throws(SystemError) {
        try self.init(path: "/proc/\(pid)/ns/net")
        if let expected, id != expected {
            throw SystemError("enter network namespace", path, errno: ESRCH,
                              detail: "it is \(id), not the container's \(expected) (the process is another one now)")
        }
        if let own = Self.ownID, id == own {
            throw SystemError("enter network namespace", path, errno: EPERM, detail: "it is netkeep's own (the host's) namespace")
        }
    }

    /// The namespace's inode: two handles name the same namespace when equal.
    public var inode: UInt64 { id.inode }

    /// Device and inode of the open namespace.
    public var id: NamespaceID {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return NamespaceID(device: 0, inode: 0) }
        return NamespaceID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// The namespace a path names (`/proc/PID/ns/net`, or a bind mount such as
    /// Docker's SandboxKey); nil when it cannot be read.
    public static func id(ofPath path: String) -> NamespaceID? {
        var st = stat()
        guard !path.isEmpty, stat(path, &st) == 0 else { return nil }
        return NamespaceID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// The namespace netkeep itself runs in (the host's, where host veth ends
    /// live); read once: only throw-away threads ever enter another.
    public static let ownID: NamespaceID? = id(ofPath: "/proc/self/ns/net")

    deinit { close(fd) }
}

/// Runs code inside a network namespace on a dedicated OS thread that is
/// thrown away afterwards, so no other code (and no Swift task) ever runs in
/// the wrong namespace. Sockets opened there stay bound to that namespace.
public enum NamespaceThread {
    private final class Job: @unchecked Sendable {
        let enter: () -> Int32
        let body: () -> Void
        var enterError: Int32 = 0

        init(enter: @escaping () -> Int32, body: @escaping () -> Void) {
            self.enter = enter
            self.body = body
        }
    }

    public static func run<T>(in namespace: NetworkNamespace, _ body: @escaping () throws -> T) throws -> T {
        let fd = namespace.fd
        return try run(entering: { nk_setns_net(fd) }, what: ("setns", namespace.path), body)
    }

    /// A new, empty network namespace (`ip netns add` without a name): made on
    /// a throw-away thread; it lives as long as the returned handle.
    public static func makeNamespace() throws -> NetworkNamespace {
        try run(entering: { nk_unshare_net() }, what: ("unshare", "a new network namespace")) {
            try NetworkNamespace(path: "/proc/thread-self/ns/net")
        }
    }

    private static func run<T>(entering enter: @escaping () -> Int32, what: (operation: String, object: String),
                               _ body: @escaping () throws -> T) throws -> T {
        var result: Result<T, any Error>?
        let job = Job(enter: enter) {
            result = Result { try body() }
        }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(job).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
            if job.enter() != 0 {
                job.enterError = errno
                return nil
            }
            job.body()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Job>.fromOpaque(context).release()
            throw SystemError("pthread_create for namespace", what.object, errno: rc)
        }
        pthread_join(thread, nil)
        if job.enterError != 0 { throw SystemError(what.operation, what.object, errno: job.enterError) }
        return try result!.get()
    }
}
