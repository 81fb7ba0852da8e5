/// An incremental HTTP/1.1 response parser: feed bytes as they arrive, read the
/// head once complete, then body bytes (de-chunked when chunked). Pure.
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

    private var buffer: [UInt8] = []
    public private(set) var head: Head?
    private var mode: BodyMode = .untilClose
    private var chunk: ChunkState = .size
    private var delivered = 0
    static let maxHeadSize = 64 * 1024

    public init() {}

    public mutating func append(_ bytes: [UInt8]) { buffer += bytes }

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
        guard let end = findHeadEnd() else {
            if buffer.count > Self.maxHeadSize { throw ParseError(reason: "head larger than \(Self.maxHeadSize) bytes") }
            return nil
        }
        let text = String(decoding: buffer[..<end], as: UTF8.self)
        buffer.removeFirst(end + 4)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { throw ParseError(reason: "empty head") }
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]), (100...599).contains(status) else {
            throw ParseError(reason: "bad status line")
        }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw ParseError(reason: "header line without ':'") }
            let name = line[..<colon].lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
        }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            mode = .chunked
        } else if let length = headers["content-length"] {
            guard let n = Int(length), n >= 0 else { throw ParseError(reason: "bad Content-Length \(length)") }
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
            let take = min(n - delivered, buffer.count)
            let out = Array(buffer[..<take])
            buffer.removeFirst(take)
            delivered += take
            return out
        case .untilClose:
            defer { buffer.removeAll() }
            return buffer
        case .chunked:
            return try takeChunks()
        }
    }

    private mutating func takeChunks() throws(ParseError) -> [UInt8] {
        var out: [UInt8] = []
        while true {
            switch chunk {
            case .size:
                guard let lineEnd = findCRLF() else {
                    if buffer.count > 1024 { throw ParseError(reason: "chunk size line too long") }
                    return out
                }
                let line = String(decoding: buffer[..<lineEnd], as: UTF8.self)
                buffer.removeFirst(lineEnd + 2)
                let sizeText = line.split(separator: ";").first.map(String.init)?.trimmingCharacters(in: " ") ?? ""
                guard let size = Int(sizeText, radix: 16), size >= 0, size < 1 << 30 else {
                    throw ParseError(reason: "bad chunk size \(quotedForError(line))")
                }
                chunk = size == 0 ? .trailer : .data(size)
            case .data(let remaining):
                guard !buffer.isEmpty else { return out }
                let take = min(remaining, buffer.count)
                out += buffer[..<take]
                buffer.removeFirst(take)
                chunk = take == remaining ? .dataEnd : .data(remaining - take)
            case .dataEnd:
                guard buffer.count >= 2 else { return out }
                guard buffer[0] == 13, buffer[1] == 10 else { throw ParseError(reason: "chunk not followed by CRLF") }
                buffer.removeFirst(2)
                chunk = .size
            case .trailer:
                guard let lineEnd = findCRLF() else { return out }
                buffer.removeFirst(lineEnd + 2)
                if lineEnd == 0 { chunk = .done }
            case .done:
                return out
            }
        }
    }

    private func findHeadEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    private func findCRLF() -> Int? {
        guard buffer.count >= 2 else { return nil }
        for i in 0...(buffer.count - 2) where buffer[i] == 13 && buffer[i + 1] == 10 { return i }
        return nil
    }
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
