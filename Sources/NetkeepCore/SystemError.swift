#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: what was attempted, on what, and the errno.
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    public let operation: String
    public let object: String
    public let errno: Int32

    public init(_ operation: String, _ object: String, errno: Int32) {
        self.operation = operation
        self.object = object
        self.errno = errno
    }

    public var description: String {
        "\(operation) \(object): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
