#if canImport(Glibc)
import Glibc
#endif
import NetkeepCore

public enum Files {
    /// The whole file, or nil when it does not exist.
    public static func read(_ path: String) throws(SystemError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw SystemError("open", path, errno: errno)
        }
        defer { close(fd) }
        return try readAll(fd: fd, path: path)
    }

    /// Everything until end of file from an open descriptor (stdin: fd 0);
    /// with `limit`, no more than `limit + 1` bytes are read, so that the
    /// caller can tell "more than the limit" without holding all of it.
    public static func readAll(fd: Int32, path: String = "stdin", limit: Int? = nil) throws(SystemError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let room = limit.map { $0 + 1 - bytes.count } ?? chunk.count
            if room <= 0 { return bytes }
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, min($0.count, room)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", path, errno: errno)
            }
            if n == 0 { return bytes }
            bytes += chunk[..<n]
        }
    }

    /// The target of a symlink, or nil when `path` is missing or not a symlink.
    public static func symlinkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public enum Kind: Sendable, Equatable { case missing, symlink, directory, regular, other }

    /// What is at `path`, without following a symlink.
    public static func kind(_ path: String) -> Kind {
        var st = stat()
        guard lstat(path, &st) == 0 else { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFLNK: return .symlink
        case S_IFDIR: return .directory
        case S_IFREG: return .regular
        default: return .other
        }
    }

    /// Device and inode of what `path` resolves to (for namespaces: their identity).
    public static func identity(_ path: String) -> (device: UInt64, inode: UInt64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// Replaces `path` in one step (a temporary file in the same directory,
    /// then rename): a reader sees the old content or the new, never a part.
    /// No fsync: for files that are made again (a status, metrics), not records.
    public static func replace(_ path: String, with bytes: [UInt8], mode: mode_t = 0o644) throws(SystemError) {
        let name = path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
        let directory = directory(of: path)
        let temp = "\(directory == "/" ? "" : directory)/.\(name).\(getpid()).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("create", temp, errno: errno) }
        var failure = writeAll(fd: fd, bytes, path: temp)
        // The mode asked for, whatever the umask took away.
        if failure == nil, fchmod(fd, mode) != 0 { failure = SystemError("chmod", temp, errno: errno) }
        if close(fd) != 0, failure == nil { failure = SystemError("close", temp, errno: errno) }
        if failure == nil, rename(temp, path) != 0 { failure = SystemError("rename to \(path)", temp, errno: errno) }
        if let failure {
            unlink(temp)
            throw failure
        }
    }

    /// The directory that holds `path`: "/" for "/x", "." for "x".
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Writes every byte (again after a short write or EINTR); the error, if any.
    public static func writeAll(fd: Int32, _ bytes: [UInt8], path: String) -> SystemError? {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno != EINTR { return SystemError("write", path, errno: errno) }
            } else {
                offset += n
            }
        }
        return nil
    }

    /// mkdir -p.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, mode) != 0, errno != EEXIST {
                throw SystemError("mkdir", current, errno: errno)
            }
        }
    }
}
