@testable import DockerEngine
import NetkeepCore
import Testing

/// The Docker client with canned answers: what counts as evidence, what is sent.
@Suite struct DockerClientTests {
    @Test func onlyDockersOwnWordsForAMissingContainerAreEvidence() {
        #expect(DockerClient.saysNoSuchContainer(Array("{\"message\":\"No such container: web1\"}\n".utf8)))
        #expect(!DockerClient.saysNoSuchContainer(Array("{\"message\":\"page not found\"}\n".utf8)), "an unknown route")
        #expect(!DockerClient.saysNoSuchContainer(Array("404 page not found".utf8)))
        #expect(!DockerClient.saysNoSuchContainer([]))
    }

    @Test(arguments: ["a/b", "a?b", "a#b", "a%b", "a b", "a\r\nGET / HTTP/1.1", "é"])
    func everyByteThatCouldChangeTheRequestIsEncoded(_ text: String) {
        let segment = DockerClient.pathSegment(text)
        for forbidden in ["/", "?", "#", " ", "\r", "\n"] { #expect(!segment.contains(forbidden), "\(segment)") }
        #expect(segment.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f })
        #expect(segment.contains("%"))
    }

    @Test func wellFormedReferencesAreSentAsTheyAre() {
        #expect(DockerClient.pathSegment("web_1.a-b") == "web_1.a-b")
    }

    @Test func aMalformedReferenceIsNeverSent() {
        // No socket exists at this path: a request would fail as unreachable, not as invalid.
        let client = DockerClient(socketPath: "/nonexistent/docker.sock", timeout: 1)
        #expect(throws: DockerError.invalidReference("a/b")) { try client.inspect("a/b") }
        #expect(throws: DockerError.invalidReference(String(repeating: "a", count: 256))) {
            try client.inspect(String(repeating: "a", count: 256))
        }
    }

    @Test func networkModesTellASharedNamespace() throws {
        func inspect(_ mode: String, _ sandbox: String) throws -> Container {
            try DockerClient.decodeInspect(Array(#"{"Id":"abc","Name":"/x","State":{"Status":"running","Running":true,"Pid":7},"HostConfig":{"NetworkMode":"\#(mode)"},"NetworkSettings":{"SandboxKey":"\#(sandbox)"}}"#.utf8))
        }
        #expect(try inspect("none", "/var/run/docker/netns/27d6dcee6ee5").sharedNamespace == nil)
        #expect(try inspect("none", "/var/run/docker/netns/27d6dcee6ee5").sandboxKey == "/var/run/docker/netns/27d6dcee6ee5")
        #expect(try inspect("bridge", "/var/run/docker/netns/1").sharedNamespace == nil)
        #expect(try inspect("host", "/var/run/docker/netns/default").sharedNamespace?.contains("--network host") == true)
        #expect(try inspect("container:" + String(repeating: "f", count: 64), "").sharedNamespace?.contains("--network \"container:") == true)
    }

    @Test func anEventTimeThatOverflowsIsRefusedNotATrap() {
        #expect(throws: DockerEvent.DecodeError.self) {
            try DockerEvent.decode(Array(#"{"Type":"container","Action":"start","Actor":{"ID":"abc"},"time":170000000000001}"#.utf8))
        }
    }
}
