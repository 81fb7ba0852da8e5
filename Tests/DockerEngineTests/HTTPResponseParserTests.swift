@testable import DockerEngine
import Testing

@Suite struct HTTPResponseParserTests {
    func parseAll(_ text: String, splitEvery: Int, maxBodySize: Int = 64 << 20) throws -> (HTTPResponseParser.Head?, String, Bool) {
        let (head, body, complete) = try parse(Array(text.utf8), splitEvery: splitEvery, maxBodySize: maxBodySize)
        return (head, String(decoding: body, as: UTF8.self), complete)
    }

    func parse(_ bytes: [UInt8], splitEvery: Int, maxBodySize: Int = 64 << 20) throws -> (HTTPResponseParser.Head?, [UInt8], Bool) {
        var parser = HTTPResponseParser(maxBodySize: maxBodySize)
        var body: [UInt8] = []
        var i = 0
        while i < bytes.count {
            parser.append(bytes[i..<min(i + splitEvery, bytes.count)])
            i += splitEvery
            if try parser.parseHead() != nil { body += try parser.takeBody() }
        }
        return (parser.head, body, parser.isComplete)
    }

    func parseError(_ text: String, splitEvery: Int = 1000, maxBodySize: Int = 64 << 20) -> String? {
        do {
            _ = try parseAll(text, splitEvery: splitEvery, maxBodySize: maxBodySize)
            return nil
        } catch {
            return (error as? HTTPResponseParser.ParseError)?.reason
        }
    }

    @Test(arguments: [1, 3, 7, 1000])
    func contentLength(split: Int) throws {
        let (head, body, complete) = try parseAll("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}", splitEvery: split)
        #expect(head?.status == 200)
        #expect(head?.headers["content-type"] == "application/json")
        #expect(body == "{\"a\":1}")
        #expect(complete)
    }

    @Test(arguments: [1, 2, 5, 1000])
    func chunked(split: Int) throws {
        let response = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nB;ext=1\r\n, world! ok\r\n0\r\n\r\n"
        let (head, body, complete) = try parseAll(response, splitEvery: split)
        #expect(head?.status == 404)
        #expect(body == "hello, world! ok")
        #expect(complete)
    }

    @Test(arguments: ["HTTP/2 200\r\n\r\n", "SSH-2.0\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
                      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
    func rejectsMalformed(_ text: String) {
        #expect(throws: HTTPResponseParser.ParseError.self) { _ = try parseAll(text, splitEvery: 1000) }
    }

    static let chunkedResponse = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + "5\r\nhello\r\n1\r\n,\r\nA; name=value\r\n world! ok\r\n0\r\nX-Trailer: 1\r\n\r\n"

    @Test func chunkedAtEverySplitSize() throws {
        for split in 1...Self.chunkedResponse.utf8.count {
            let (head, body, complete) = try parseAll(Self.chunkedResponse, splitEvery: split)
            #expect(head?.status == 200, "split \(split)")
            #expect(body == "hello, world! ok", "split \(split)")
            #expect(complete, "split \(split)")
        }
    }

    @Test func chunkedInTwoPiecesAtEveryOffset() throws {
        let bytes = Array(Self.chunkedResponse.utf8)
        for cut in 0...bytes.count {
            var parser = HTTPResponseParser()
            var body: [UInt8] = []
            for piece in [bytes[..<cut], bytes[cut...]] {
                parser.append(piece)
                if try parser.parseHead() != nil { body += try parser.takeBody() }
            }
            #expect(String(decoding: body, as: UTF8.self) == "hello, world! ok", "cut at \(cut)")
            #expect(parser.isComplete, "cut at \(cut)")
        }
    }

    @Test(arguments: [1, 4, 1000])
    func contentLengthOverTheBound(split: Int) throws {
        let response = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"
        #expect(parseError(response, splitEvery: split, maxBodySize: 10) == "body larger than 10 bytes")
        #expect(try parseAll(response, splitEvery: split, maxBodySize: 11).1 == "hello world")
    }

    @Test(arguments: [1, 4, 1000])
    func chunkedOverTheBound(split: Int) throws {
        let response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        #expect(parseError(response, splitEvery: split, maxBodySize: 10) == "body larger than 10 bytes")
        #expect(try parseAll(response, splitEvery: split, maxBodySize: 11).1 == "hello world")
    }

    @Test(arguments: [1, 4, 1000])
    func untilCloseOverTheBound(split: Int) throws {
        let response = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello world"
        #expect(parseError(response, splitEvery: split, maxBodySize: 10) == "body larger than 10 bytes")
        let (_, body, complete) = try parseAll(response, splitEvery: split, maxBodySize: 11)
        #expect(body == "hello world")
        #expect(!complete)
    }

    /// An endless stream (Docker's /events) is parsed with no body bound; huge
    /// chunk sizes must still not overflow the count.
    @Test func unboundedBodyCountsWithoutOverflow() throws {
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        let (_, body, complete) = try parseAll(chunked + "7fffffffffffffff\r\nabc", splitEvery: 5, maxBodySize: .max)
        #expect(body == "abc")
        #expect(!complete)
        #expect(parseError(chunked + "1\r\na\r\n7fffffffffffffff\r\n", maxBodySize: .max) == "body larger than \(Int.max) bytes")
        #expect(parseError(chunked + "ffffffffffffffff\r\n", maxBodySize: .max) == "bad chunk size \"ffffffffffffffff\"")
    }

    @Test func headerLinesAreBounded() throws {
        func response(headers: Int) -> String {
            "HTTP/1.1 200 OK\r\n" + (0..<headers).map { "X-H\($0): v\r\n" }.joined() + "Content-Length: 0\r\n\r\n"
        }
        #expect(try parseAll(response(headers: 99), splitEvery: 1000).0?.headers.count == 100)
        #expect(parseError(response(headers: 100)) == "more than 100 header lines")
    }

    @Test(arguments: [1, 1000, 100_000])
    func headIsBounded(split: Int) {
        let filler = String(repeating: "x", count: 70_000)
        #expect(parseError("HTTP/1.1 200 OK\r\nX-Big: \(filler)\r\n\r\n", splitEvery: split) == "head larger than 65536 bytes")
        #expect(parseError("HTTP/1.1 200 OK\r\nX-Big: \(filler)", splitEvery: split) == "head larger than 65536 bytes")
    }

    @Test(arguments: [1, 1000])
    func chunkLinesAndTrailerAreBounded(split: Int) {
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        let longExtension = String(repeating: "e", count: 2000)
        #expect(parseError(chunked + "5;\(longExtension)\r\nhello\r\n0\r\n\r\n", splitEvery: split) == "chunk size line too long")
        #expect(parseError(chunked + "5;\(longExtension)", splitEvery: split) == "chunk size line too long")
        let trailer = (0..<1000).map { "T\($0): v\r\n" }.joined()
        #expect(parseError(chunked + "0\r\n\(trailer)\r\n", splitEvery: split) == "trailer larger than 8192 bytes")
        #expect(parseError(chunked + "-5\r\nhello\r\n0\r\n\r\n", splitEvery: split) == "bad chunk size \"-5\"")
        #expect(parseError(chunked + "5\r\nhelloXY0\r\n\r\n", splitEvery: split) == "chunk not followed by CRLF")
    }

    /// Many tiny pieces and many tiny chunks: quadratic parsing would take
    /// minutes here, so this finishing at all is the check on the cost.
    @Test func manySmallPiecesParseCorrectly() throws {
        let chunkCount = 30_000
        var text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        var expected = ""
        for i in 0..<chunkCount {
            let data = String(i % 1000)
            text += String(data.utf8.count, radix: 16) + "\r\n" + data + "\r\n"
            expected += data
        }
        text += "0\r\n\r\n"
        let bytes = Array(text.utf8)
        #expect(bytes.count > 200_000)
        let (head, body, complete) = try parse(bytes, splitEvery: 1)
        #expect(head?.status == 200)
        #expect(String(decoding: body, as: UTF8.self) == expected)
        #expect(complete)
        // All at once: consuming chunk by chunk must not shift the rest each time.
        #expect(String(decoding: try parse(bytes, splitEvery: bytes.count).1, as: UTF8.self) == expected)
    }

    /// A head just under the bound arriving byte by byte: the search for its
    /// end resumes rather than rescanning the whole head on every byte.
    @Test func largeHeadByteByByte() throws {
        let value = String(repeating: "v", count: 600)
        let text = "HTTP/1.1 200 OK\r\n" + (0..<99).map { "X-H\($0): \(value)\r\n" }.joined() + "Content-Length: 2\r\n\r\nok"
        #expect(text.utf8.count > 60_000)
        let (head, body, complete) = try parseAll(text, splitEvery: 1)
        #expect(head?.headers["x-h98"] == value)
        #expect(body == "ok")
        #expect(complete)
    }

    @Test func decodesInspectAndErrors() throws {
        let body = Array(#"{"Id":"abc123","Name":"/web","State":{"Status":"running","Running":true,"Pid":4242},"Config":{}}"#.utf8)
        #expect(try DockerClient.decodeInspect(body) == Container(id: "abc123", name: "web", running: true, pid: 4242, status: "running"))
        let exited = Array(#"{"Id":"abc","Name":"/x","State":{"Status":"exited","Running":false,"Pid":0}}"#.utf8)
        #expect(try DockerClient.decodeInspect(exited).running == false)
        #expect(throws: DockerError.self) { try DockerClient.decodeInspect(Array("[]".utf8)) }
        #expect(DockerClient.errorMessage(Array(#"{"message":"No such container: x"}"#.utf8)) == "No such container: x")
        let list = Array(#"[{"Id":"a","Names":["/one"],"State":"running"},{"Id":"b","Names":["/two"],"State":"exited"}]"#.utf8)
        #expect(try DockerClient.decodeList(list).map(\.name) == ["one", "two"])
    }

    @Test func unreachableSocketIsUnreachable() {
        do {
            _ = try DockerClient(socketPath: "/nonexistent/docker.sock").ping()
            Issue.record("ping succeeded")
        } catch {
            guard case .unreachable = error else { Issue.record("\(error)"); return }
        }
    }
}
