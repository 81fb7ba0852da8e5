@testable import DockerEngine
import Testing

@Suite struct LineSplitterTests {
    /// A line, or the splitter's refusal of one.
    enum Item: Equatable {
        case line(String)
        case tooLong
    }

    /// Feeds `pieces` one after the other, draining after each; then finishes.
    func split(_ pieces: [ArraySlice<UInt8>], maxLineLength: Int = 1 << 20) -> (items: [Item], last: String?) {
        var splitter = LineSplitter(maxLineLength: maxLineLength)
        var items: [Item] = []
        for piece in pieces {
            splitter.append(piece)
            while true {
                do {
                    guard let line = try splitter.next() else { break }
                    items.append(.line(String(decoding: line, as: UTF8.self)))
                } catch {
                    #expect(error.limit == maxLineLength)
                    items.append(.tooLong)
                }
            }
        }
        return (items, splitter.finish().map { String(decoding: $0, as: UTF8.self) })
    }

    func split(_ text: String, every size: Int, maxLineLength: Int = 1 << 20) -> (items: [Item], last: String?) {
        let bytes = Array(text.utf8)
        let pieces = stride(from: 0, to: bytes.count, by: size).map { bytes[$0..<min($0 + size, bytes.count)] }
        return split(pieces, maxLineLength: maxLineLength)
    }

    static let stream = "a\nbc\r\n\n{\"Action\":\"start\"}\r\n\r\nlast"
    static let streamLines: [Item] = [.line("a"), .line("bc"), .line(""), .line("{\"Action\":\"start\"}"), .line("")]

    @Test func linesSplitAcrossTwoAppendsAtEveryOffset() {
        let bytes = Array(Self.stream.utf8)
        for cut in 0...bytes.count {
            let (items, last) = split([bytes[..<cut], bytes[cut...]])
            #expect(items == Self.streamLines, "cut at \(cut)")
            #expect(last == "last", "cut at \(cut)")
        }
    }

    @Test func linesAtEveryPieceSize() {
        for size in 1...Self.stream.utf8.count {
            let (items, last) = split(Self.stream, every: size)
            #expect(items == Self.streamLines, "pieces of \(size)")
            #expect(last == "last", "pieces of \(size)")
        }
    }

    @Test func carriageReturnsOnlyEndALineBeforeItsNewline() {
        let (items, last) = split("a\rb\n\r\r\n\r", every: 1)
        #expect(items == [.line("a\rb"), .line("\r")])
        #expect(last == nil)
    }

    @Test(arguments: [1, 3, 100])
    func tooLongLineIsSkippedAndTheStreamGoesOn(size: Int) {
        let (items, last) = split("abcd\nabcde\nok\nabcd\r\nlonger than four\r\nfine\n", every: size, maxLineLength: 4)
        #expect(items == [.line("abcd"), .tooLong, .line("ok"), .line("abcd"), .tooLong, .line("fine")])
        #expect(last == nil)
    }

    @Test func tooLongIsReportedBeforeItsNewlineArrives() throws {
        var splitter = LineSplitter(maxLineLength: 4)
        splitter.append("abcde".utf8)
        #expect(throws: LineSplitter.TooLong(limit: 4)) { _ = try splitter.next() }
        // The rest of that line is dropped as it arrives, without a second error.
        splitter.append("fghij".utf8)
        #expect(try splitter.next() == nil)
        splitter.append("k\nok\n".utf8)
        #expect(try splitter.next() == Array("ok".utf8))
        #expect(try splitter.next() == nil)
        #expect("\(LineSplitter.TooLong(limit: 4))" == "line longer than 4 bytes")
    }

    @Test func finishReturnsTheUnterminatedLastLine() throws {
        #expect(split("x\ntail", every: 2).last == "tail")
        #expect(split("x\ntail\r", every: 2).last == "tail")
        #expect(split("x\n", every: 2).last == nil)
        #expect(split("", every: 1).last == nil)
        let (items, last) = split("ok\nmuch too long", every: 3, maxLineLength: 4)
        #expect(items == [.line("ok"), .tooLong])
        #expect(last == nil)

        var splitter = LineSplitter()
        splitter.append("first".utf8)
        #expect(try splitter.next() == nil)
        #expect(splitter.finish() == Array("first".utf8))
        // Finishing empties the splitter.
        #expect(splitter.finish() == nil)
        splitter.append("second\n".utf8)
        #expect(try splitter.next() == Array("second".utf8))
    }

    /// Quadratic splitting would take minutes here, so this finishing at all
    /// is the check on the cost.
    @Test func manyLinesAndOneLongLine() throws {
        var splitter = LineSplitter()
        splitter.append(Array(repeating: Array("{}\n".utf8), count: 100_000).joined())
        var count = 0
        while let line = try splitter.next() {
            #expect(line == Array("{}".utf8))
            count += 1
        }
        #expect(count == 100_000)

        // One line of 200,000 bytes, a byte at a time, asked for after each byte.
        var early: [UInt8]?
        for _ in 0..<200_000 where early == nil {
            splitter.append(CollectionOfOne(UInt8(ascii: "x")))
            early = try splitter.next()
        }
        #expect(early == nil)
        splitter.append("\n".utf8)
        #expect(try splitter.next()?.count == 200_000)
    }
}
