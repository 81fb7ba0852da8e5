#if canImport(Glibc)
import Glibc
#endif

/// Writes text to file descriptor 2 in one write(2), so concurrent lines do not interleave.
public func writeToStandardError(_ text: String) {
    writeAll(Array(text.utf8), to: 2)
}

/// Writes all of `bytes` to `fd`, again after a short write or EINTR; stops
/// at an error (a closed pipe: the reader wants no more). Returns the bytes written.
@discardableResult
public func writeAll(_ bytes: [UInt8], to fd: Int32) -> Int {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0, errno == EINTR { continue }
        if n <= 0 { break }
        offset += n
    }
    return offset
}
