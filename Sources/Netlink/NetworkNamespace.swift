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

    public init(path: String) throws(SystemError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open network namespace", path, errno: errno) }
        self.path = path
        self.fd = fd
    }

    public convenience init(pid: Int32) throws(SystemError) {
        try self.init(path: "/proc/\(pid)/ns/net")
    }

    /// The namespace's inode: two handles name the same namespace when equal.
    public var inode: UInt64 {
        var st = stat()
        return fstat(fd, &st) == 0 ? UInt64(st.st_ino) : 0
    }

    deinit { close(fd) }
}

/// Runs code inside a network namespace on a dedicated OS thread that is
/// thrown away afterwards, so no other code (and no Swift task) ever runs in
/// the wrong namespace. Sockets opened there stay bound to that namespace.
public enum NamespaceThread {
    private final class Job: @unchecked Sendable {
        let namespaceFD: Int32
        let namespacePath: String
        let body: () -> Void
        var enterError: Int32 = 0

        init(namespaceFD: Int32, namespacePath: String, body: @escaping () -> Void) {
            self.namespaceFD = namespaceFD
            self.namespacePath = namespacePath
            self.body = body
        }
    }

    public static func run<T>(in namespace: NetworkNamespace, _ body: @escaping () throws -> T) throws -> T {
        var result: Result<T, any Error>?
        let job = Job(namespaceFD: namespace.fd, namespacePath: namespace.path) {
            result = Result { try body() }
        }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(job).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
            if nk_setns_net(job.namespaceFD) != 0 {
                job.enterError = errno
                return nil
            }
            job.body()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Job>.fromOpaque(context).release()
            throw SystemError("pthread_create for namespace", namespace.path, errno: rc)
        }
        pthread_join(thread, nil)
        if job.enterError != 0 { throw SystemError("setns", namespace.path, errno: job.enterError) }
        return try result!.get()
    }
}
