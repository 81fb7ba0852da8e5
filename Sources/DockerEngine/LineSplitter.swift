/// Splits a newline-delimited stream (Docker's `/events` body, or
/// `docker events --format '{{json .}}'` on standard input) into lines as bytes
/// arrive. Total cost is linear in the bytes fed; drained after each `append`,
/// it holds at most about twice `maxLineLength` plus what one `append` brings.
///
/// A line longer than `maxLineLength` makes `next()` throw `TooLong` once; the
/// splitter then drops bytes up to and including the next newline, so the
/// stream goes on with the line after it.
public struct LineSplitter: Sendable {
    public struct TooLong: Error, Equatable, Sendable, CustomStringConvertible {
        public let limit: Int
        public var description: String { "line longer than \(limit) bytes" }
    }

    public let maxLineLength: Int
    private var queue = ByteQueue()
    /// Inside a too-long line: its bytes are dropped until its newline.
    private var discarding = false

    public init(maxLineLength: Int = 1 << 20) {
        self.maxLineLength = maxLineLength
    }

    public mutating func append(_ bytes: some Collection<UInt8>) {
        queue.append(bytes)
    }

    /// The next complete line without its "\n" or "\r\n"; nil until one has
    /// arrived. A copy, so that holding it does not pin the buffer.
    public mutating func next() throws(TooLong) -> [UInt8]? {
        while true {
            guard let newline = queue.find(Self.lf) else {
                if discarding {
                    queue.consume(queue.count)
                } else if pendingLength(queue.count) > maxLineLength {
                    queue.consume(queue.count)
                    discarding = true
                    throw TooLong(limit: maxLineLength)
                }
                return nil
            }
            let length = pendingLength(newline)
            let line = Array(queue.prefix(length))
            queue.consume(newline + 1)
            if discarding {
                discarding = false
                continue
            }
            if length > maxLineLength { throw TooLong(limit: maxLineLength) }
            return line
        }
    }

    /// At the end of input: the unterminated last line, nil when there is none
    /// (or when it was too long). Call it once `next()` has returned nil; it
    /// empties the splitter.
    public mutating func finish() -> [UInt8]? {
        defer {
            queue = ByteQueue()
            discarding = false
        }
        let length = pendingLength(queue.count)
        guard !discarding, length > 0, length <= maxLineLength else { return nil }
        return Array(queue.prefix(length))
    }

    /// The length of the first `end` pending bytes without a final "\r".
    private func pendingLength(_ end: Int) -> Int {
        end > 0 && queue[end - 1] == 0x0d ? end - 1 : end
    }

    private static let lf: [UInt8] = [0x0a]
}

/// Bytes received and not yet consumed. Consuming moves a read offset; the
/// consumed prefix is dropped only once it outweighs the rest, so each byte is
/// moved a bounded number of times. Offsets are relative to the first
/// unconsumed byte.
struct ByteQueue: Sendable {
    private var storage: [UInt8] = []
    private var start = 0
    /// Where the last unsuccessful `find` of `searchPattern` stopped, so the
    /// next one resumes there; reset by `consume`.
    private var searchedTo = 0
    private var searchPattern: [UInt8] = []

    static let compactionThreshold = 64 * 1024

    var count: Int { storage.count - start }

    subscript(offset: Int) -> UInt8 { storage[start + offset] }

    func prefix(_ n: Int) -> ArraySlice<UInt8> { storage[start..<(start + n)] }

    mutating func append(_ bytes: some Collection<UInt8>) {
        if start == storage.count {
            // A large buffer kept for a one-off large response would be held forever.
            storage.removeAll(keepingCapacity: storage.capacity <= 1 << 20)
            start = 0
        } else if start > Self.compactionThreshold && start > storage.count / 2 {
            storage.removeFirst(start)
            start = 0
        }
        storage.append(contentsOf: bytes)
    }

    mutating func consume(_ n: Int) {
        precondition(n >= 0 && n <= count, "consume beyond the queued bytes")
        start += n
        searchedTo = 0
    }

    /// The offset of the first occurrence of `pattern`, or nil; a later call
    /// for the same pattern only searches what arrived since.
    mutating func find(_ pattern: [UInt8]) -> Int? {
        if pattern != searchPattern {
            searchPattern = pattern
            searchedTo = 0
        }
        let last = count - pattern.count
        guard searchedTo <= last else { return nil }
        let (from, to, base) = (start + searchedTo, start + last, start)
        let found: Int? = storage.withUnsafeBufferPointer { bytes in
            var i = from
            while i <= to {
                var j = 0
                while j < pattern.count && bytes[i + j] == pattern[j] { j += 1 }
                if j == pattern.count { return i - base }
                i += 1
            }
            return nil
        }
        if found == nil { searchedTo = last + 1 }
        return found
    }
}
