#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: what was attempted, on what, and the errno.
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    public let operation: String
    public let object: String
    public let errno: Int32
    /// Said instead of strerror when the errno alone would mislead.
    public let detail: String?

    public init(_ operation: String, _ object: String, errno: Int32, detail: String? = nil) {
        self.operation = operation
        self.object = object
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        if let detail { return "\(operation) \(object): \(detail)" }
        return "\(operation) \(object): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
