import DockerPlugin
import Foundation
import Testing

/// swift-nio's server on a real unix socket, spoken to as dockerd does.
@Suite struct ServerTests {
    func post(_ path: String, _ body: String, to socket: String, keepAlive: Bool = false) throws -> (status: Int, body: String) {
        let fd = Foundation.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in socket.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        try #require(rc == 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = "POST \(path) HTTP/1.1\r\nHost: \r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: \(body.utf8.count)\r\n\(keepAlive ? "" : "Connection: close\r\n")\r\n\(body)"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            reply += buffer[..<n]
            if keepAlive, let text = String(bytes: reply, encoding: .utf8), let end = text.range(of: "\r\n\r\n"),
               let length = text[..<end.lowerBound].split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") })
                .flatMap({ Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }),
               text.utf8.count - text[..<end.upperBound].utf8.count >= length { break }
        }
        let text = String(decoding: reply, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let bodyStart = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        #expect(text.lowercased().contains("content-type: application/vnd.docker.plugins.v1+json"))
        return (status, bodyStart)
    }

    @Test func servesDockersRequestsAndRefusesASecondServerOnTheSameSocket() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nkplugin-\(UUID().uuidString.prefix(8))").path
        let path = dir + "/plugins/netkeep-test.sock"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let driver = RecordingDriver()
        let server = try await PluginServer.listen(path: path, router: PluginRouter(driver: driver))
        let activate = try post("/Plugin.Activate", "", to: path)
        #expect(activate.status == 200 && activate.body == #"{"Implements":["NetworkDriver"]}"#)
        let created = try post("/NetworkDriver.CreateNetwork", #"{"NetworkID":"abc","Options":{"com.docker.network.generic":{"bridge":"b"}}}"#, to: path, keepAlive: true)
        #expect(created.status == 200 && created.body == "{}")
        #expect(driver.calls == ["CreateNetwork abc"])
        #expect(try post("/Nope.Nothing", "{}", to: path).status == 404)
        await #expect(throws: PluginServerError.self) { _ = try await PluginServer.listen(path: path, router: PluginRouter(driver: driver)) }
        await server.close()
        // Gone: a new server replaces the socket file the old one left.
        let again = try await PluginServer.listen(path: path, router: PluginRouter(driver: driver))
        #expect(try post("/Plugin.Activate", "", to: path).status == 200)
        await again.close()
    }
}
