@testable import DockerEngine
import Testing

@Suite struct HTTPResponseParserTests {
    func parseAll(_ text: String, splitEvery: Int) throws -> (HTTPResponseParser.Head?, String, Bool) {
        var parser = HTTPResponseParser()
        var body: [UInt8] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            parser.append(Array(bytes[i..<min(i + splitEvery, bytes.count)]))
            i += splitEvery
            if try parser.parseHead() != nil { body += try parser.takeBody() }
        }
        return (parser.head, String(decoding: body, as: UTF8.self), parser.isComplete)
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
