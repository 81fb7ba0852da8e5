#if canImport(Glibc)
import Glibc
#endif
import CSystemd

/// Structured entries for journald through sd_journal_sendv(3) (the variadic
/// sd_journal_send cannot be called from Swift).
public enum Journal {
    public static let socketPath = "/run/systemd/journal/socket"

    /// Whether a journald listens here.
    public static var isAvailable: Bool {
        var st = stat()
        return stat(socketPath, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK
    }

    public struct Entry: Sendable, Equatable {
        public var fields: [(String, String)]
        public static func == (a: Entry, b: Entry) -> Bool { a.fields.map(\.0) == b.fields.map(\.0) && a.fields.map(\.1) == b.fields.map(\.1) }
        public init(_ fields: [(String, String)]) { self.fields = fields }
    }

    /// A journal field name: upper case letters, digits and underscores, not
    /// starting with an underscore or a digit, at most 64 bytes. Anything else
    /// is mapped into that alphabet, so no key can forge a trusted field.
    public static func fieldName(_ raw: String) -> String {
        var out = String(raw.uppercased().map { c -> Character in
            (c.isASCII && (c.isLetter || c.isNumber)) ? c : "_"
        })
        while out.hasPrefix("_") { out.removeFirst() }
        if out.first?.isNumber ?? true { out = "F" + out }
        return String(out.prefix(64))
    }

    /// Sends one entry; returns false when journald did not take it.
    @discardableResult
    public static func send(_ entry: Entry) -> Bool {
        // One contiguous buffer, the iovecs pointing into it, all inside one closure.
        var bytes: [UInt8] = []
        var ranges: [Range<Int>] = []
        for (name, value) in entry.fields {
            let start = bytes.count
            bytes += Array("\(fieldName(name))=".utf8) + Array(value.utf8)
            ranges.append(start..<bytes.count)
        }
        return bytes.withUnsafeMutableBytes { raw -> Bool in
            var vectors = ranges.map { iovec(iov_base: raw.baseAddress! + $0.lowerBound, iov_len: $0.count) }
            return sd_journal_sendv(&vectors, Int32(vectors.count)) == 0
        }
    }
}
