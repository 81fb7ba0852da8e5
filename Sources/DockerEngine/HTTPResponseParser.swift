/// An incremental HTTP/1.1 response parser: feed bytes as they arrive, read the
/// head once complete, then body bytes (de-chunked when chunked). Pure. The
/// work is linear in the bytes fed however they are split, and every part of
/// a response is bounded, so no answer can make it take unbounded memory.
public struct HTTPResponseParser: Sendable {
    public struct Head: Equatable, Sendable {
        public var status: Int
        /// Header names in lower case.
        public var headers: [String: String]
    }

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public let reason: String
        public var description: String { "malformed HTTP response: \(reason)" }
    }

    enum BodyMode: Equatable, Sendable { case length(Int), chunked, untilClose }
    enum ChunkState: Equatable, Sendable { case size, data(Int), dataEnd, trailer, done }

    static let maxHeadSize = 64 * 1024
    static let maxHeaderLines = 100
    static let maxChunkSizeLine = 1024
    static let maxTrailerSize = 8 * 1024

    /// The most body bytes a response may carry (after de-chunking).
    public let maxBodySize: Int
    private var queue = ByteQueue()
    public private(set) var head: Head?
    private var mode: BodyMode = .untilClose
    private var chunk: ChunkState = .size
    /// Body bytes returned by `takeBody` so far.
    private var delivered = 0
    /// Body bytes announced by the chunk sizes so far.
    private var announced = 0
    private var trailerSize = 0

    public init(maxBodySize: Int = 64 << 20) {
        self.maxBodySize = maxBodySize
    }

    public mutating func append(_ bytes: some Collection<UInt8>) { queue.append(bytes) }

    /// True once the body is complete (by length or last chunk); `untilClose`
    /// bodies end when the connection does.
    public var isComplete: Bool {
        guard head != nil else { return false }
        switch mode {
        case .length(let n): return delivered >= n
        case .chunked: return chunk == .done
        case .untilClose: return false
        }
    }

    /// Parses the head when it is complete; returns it (once available).
    public mutating func parseHead() throws(ParseError) -> Head? {
        if let head { return head }
        guard let end = queue.find(Self.crlfcrlf) else {
            // A terminator arriving later would start at count - 3 at the earliest.
            if queue.count - 3 > Self.maxHeadSize { throw headTooLarge }
            return nil
        }
        if end > Self.maxHeadSize { throw headTooLarge }
        let text = String(decoding: queue.prefix(end), as: UTF8.self)
        queue.consume(end + 4)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { throw ParseError(reason: "empty head") }
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]), (100...599).contains(status) else {
            throw ParseError(reason: "bad status line")
        }
        guard lines.count <= Self.maxHeaderLines else { throw ParseError(reason: "more than \(Self.maxHeaderLines) header lines") }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw ParseError(reason: "header line without ':'") }
            let name = line[..<colon].lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
        }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            mode = .chunked
        } else if let length = headers["content-length"] {
            guard let n = Int(length), n >= 0 else { throw ParseError(reason: "bad Content-Length \(quotedForError(length))") }
            guard n <= maxBodySize else { throw bodyTooLarge }
            mode = .length(n)
        } else if status == 204 || status == 304 {
            mode = .length(0)
        }
        let parsed = Head(status: status, headers: headers)
        head = parsed
        return parsed
    }

    /// Body bytes available so far (after the head), de-chunked.
    public mutating func takeBody() throws(ParseError) -> [UInt8] {
        guard head != nil else { return [] }
        switch mode {
        case .length(let n):
            return take(min(n - delivered, queue.count))
        case .untilClose:
            guard queue.count <= maxBodySize - delivered else { throw bodyTooLarge }
            return take(queue.count)
        case .chunked:
            return try takeChunks()
        }
    }

    private mutating func take(_ n: Int) -> [UInt8] {
        let out = Array(queue.prefix(n))
        queue.consume(n)
        delivered += n
        return out
    }

    private mutating func takeChunks() throws(ParseError) -> [UInt8] {
        var out: [UInt8] = []
        while true {
            switch chunk {
            case .size:
                guard let lineEnd = try findLine(limit: Self.maxChunkSizeLine, "chunk size line too long") else { return out }
                let line = String(decoding: queue.prefix(lineEnd), as: UTF8.self)
                queue.consume(lineEnd + 2)
                let sizeText = line.split(separator: ";", omittingEmptySubsequences: false)[0].trimmingCharacters(in: " \t")
                guard !sizeText.isEmpty, sizeText.allSatisfy(\.isHexDigit), let size = Int(sizeText, radix: 16) else {
                    throw ParseError(reason: "bad chunk size \(quotedForError(line))")
                }
                guard size <= maxBodySize - announced else { throw bodyTooLarge }
                announced += size
                chunk = size == 0 ? .trailer : .data(size)
            case .data(let remaining):
                guard queue.count > 0 else { return out }
                let take = min(remaining, queue.count)
                out += queue.prefix(take)
                queue.consume(take)
                delivered += take
                chunk = take == remaining ? .dataEnd : .data(remaining - take)
            case .dataEnd:
                guard queue.count >= 2 else { return out }
                guard queue[0] == 13, queue[1] == 10 else { throw ParseError(reason: "chunk not followed by CRLF") }
                queue.consume(2)
                chunk = .size
            case .trailer:
                let room = Self.maxTrailerSize - trailerSize - 2
                guard let lineEnd = try findLine(limit: room, "trailer larger than \(Self.maxTrailerSize) bytes") else { return out }
                queue.consume(lineEnd + 2)
                trailerSize += lineEnd + 2
                if lineEnd == 0 { chunk = .done }
            case .done:
                return out
            }
        }
    }

    /// The length of the next CRLF-terminated line, nil until it is complete;
    /// throws once it is certain to be longer than `limit`.
    private mutating func findLine(limit: Int, _ reason: @autoclosure () -> String) throws(ParseError) -> Int? {
        guard let end = queue.find(Self.crlf) else {
            // The CR may be the last byte queued.
            if queue.count - 1 > limit { throw ParseError(reason: reason()) }
            return nil
        }
        if end > limit { throw ParseError(reason: reason()) }
        return end
    }

    private var headTooLarge: ParseError { ParseError(reason: "head larger than \(Self.maxHeadSize) bytes") }
    private var bodyTooLarge: ParseError { ParseError(reason: "body larger than \(maxBodySize) bytes") }

    private static let crlf: [UInt8] = [13, 10]
    private static let crlfcrlf: [UInt8] = [13, 10, 13, 10]
}

func quotedForError(_ text: String) -> String { "\"" + text.prefix(40) + "\"" }

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String { self[...].trimmingCharacters(in: set) }
}
