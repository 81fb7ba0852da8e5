// libFuzzer entry for what netkeep reads from the Docker engine: the HTTP
// response parser, the line splitter of event streams and the event decoder.
// Built by scripts/fuzz-http with `swiftc -sanitize=fuzzer,address` together
// with the DockerEngine sources and the NetkeepCore and HostIO files they use.
//
// Input: three control bytes (bounds and how the rest is split into pieces),
// then the bytes as the engine would send them.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard bytes.count >= 3 else { return 0 }
    let control = FuzzControl(bytes[0], bytes[1], bytes[2])
    let input = Array(bytes[3...])
    let pieces = control.pieces(of: input.count)

    // Parsed whole or in pieces, a response must come out the same.
    let whole = HTTPOutcome(input, pieces: [0..<input.count], maxBodySize: control.maxBodySize)
    let split = HTTPOutcome(input, pieces: pieces, maxBodySize: control.maxBodySize)
    guard whole == split else { fatalError("whole \(whole) != in pieces \(split) for \(pieces)") }

    // Lines as `netkeep hook` reads them from docker events, and as
    // DockerEventStream reads them from a /events body.
    checkLines(input, pieces: pieces, maxLineLength: control.maxLineLength)
    checkLines(split.body, pieces: control.pieces(of: split.body.count), maxLineLength: control.maxLineLength)
    return 0
}

/// What the control bytes select: bounds small enough to be reached, and a
/// pseudo-random sequence of piece sizes.
struct FuzzControl {
    let maxBodySize: Int
    let maxLineLength: Int
    let maxPiece: Int
    let seed: UInt32

    init(_ a: UInt8, _ b: UInt8, _ c: UInt8) {
        maxBodySize = [0, 1, 7, 64, 300, 4096, 1 << 20, .max][Int(a & 7)]
        maxLineLength = [0, 1, 4, 16, 100, 1000, 1 << 20, 1 << 20][Int(a >> 3 & 7)]
        maxPiece = [1, 2, 3, 5, 16, 100, 1000, 1 << 20][Int(b & 7)]
        seed = UInt32(b) << 8 | UInt32(c) | 1
    }

    func pieces(of count: Int) -> [Range<Int>] {
        var state = seed
        var out: [Range<Int>] = []
        var start = 0
        while start < count {
            // xorshift32: cheap and deterministic for the same input.
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            let end = min(count, start + 1 + Int(state % UInt32(maxPiece)))
            out.append(start..<end)
            start = end
        }
        return out
    }
}

/// The result of feeding a response to HTTPResponseParser piece by piece.
struct HTTPOutcome: Equatable, CustomStringConvertible {
    var head: HTTPResponseParser.Head?
    var body: [UInt8] = []
    var complete = false
    var error: String?

    init(_ input: [UInt8], pieces: [Range<Int>], maxBodySize: Int) {
        var parser = HTTPResponseParser(maxBodySize: maxBodySize)
        do {
            for piece in pieces {
                parser.append(input[piece])
                if try parser.parseHead() != nil { body += try parser.takeBody() }
                guard body.count <= maxBodySize else { fatalError("body of \(body.count) bytes over the bound \(maxBodySize)") }
            }
        } catch {
            // Where a failure is noticed may differ with the pieces; that it fails may not.
            self.error = "failed"
            body = []
            return
        }
        head = parser.head
        complete = parser.isComplete
        if complete, case let length? = head?.headers["content-length"].flatMap({ Int($0) }),
           head?.headers["transfer-encoding"] == nil, body.count != length {
            fatalError("complete body of \(body.count) bytes, Content-Length \(length)")
        }
    }

    var description: String { "head \(String(describing: head)), \(body.count) body bytes, complete \(complete), \(error ?? "no error")" }
}

/// A line, or the splitter's refusal of one.
enum FuzzLine: Equatable {
    case line([UInt8])
    case tooLong
}

/// Splits `input` in `pieces` and checks it against splitting it all at once
/// by hand; decodes every line as a Docker event.
func checkLines(_ input: [UInt8], pieces: [Range<Int>], maxLineLength: Int) {
    var splitter = LineSplitter(maxLineLength: maxLineLength)
    var lines: [FuzzLine] = []
    for piece in pieces {
        splitter.append(input[piece])
        while true {
            do {
                guard let line = try splitter.next() else { break }
                lines.append(.line(line))
            } catch {
                lines.append(.tooLong)
            }
        }
    }
    let last = splitter.finish()
    let (expectedLines, expectedLast) = referenceLines(input, maxLineLength: maxLineLength)
    guard lines == expectedLines, last == expectedLast else {
        fatalError("lines \(lines) + \(String(describing: last)) != \(expectedLines) + \(String(describing: expectedLast)) for \(pieces)")
    }
    for case .line(let line) in lines + (last.map { [.line($0)] } ?? []) {
        guard let event = try? DockerEvent.decode(line) else { continue }
        guard !event.action.isEmpty, !event.actorID.isEmpty else { fatalError("event without action or id from \(line)") }
    }
}

/// The lines of `input` by the splitter's documented rules, found the slow
/// and obvious way.
func referenceLines(_ input: [UInt8], maxLineLength: Int) -> ([FuzzLine], [UInt8]?) {
    func content(_ segment: ArraySlice<UInt8>) -> ArraySlice<UInt8> { segment.last == 0x0d ? segment.dropLast() : segment }
    var segments = input.split(separator: 0x0a, omittingEmptySubsequences: false)
    let tail = content(segments.removeLast())
    var lines = segments.map { segment -> FuzzLine in
        let line = content(segment)
        return line.count > maxLineLength ? .tooLong : .line(Array(line))
    }
    if tail.count > maxLineLength {
        lines.append(.tooLong)
        return (lines, nil)
    }
    return (lines, tail.isEmpty ? nil : Array(tail))
}
