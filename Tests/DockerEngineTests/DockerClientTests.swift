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

    @Test func labelsComeFromInspectListAndEvents() throws {
        let id = String(repeating: "ab", count: 32)
        let inspected = try DockerClient.decodeInspect(Array(#"{"Id":"\#(id)","Name":"/web","State":{"Status":"running","Running":true,"Pid":7},"Config":{"Labels":{"netkeep.eth1.bridge":"br0","netkeep.eth1.ip":"dhcp","other":"x"}}}"#.utf8))
        #expect(inspected.labels == ["netkeep.eth1.bridge": "br0", "netkeep.eth1.ip": "dhcp", "other": "x"])
        guard case .interfaces(let requests) = inspected.declaration(for: .default) else { Issue.record("\(inspected.declaration(for: .default))"); return }
        #expect(requests.map(\.bridge) == ["br0"] && requests.map(\.dhcp) == [true] && requests.map(\.container) == [id])
        let unlabelled = try DockerClient.decodeInspect(Array(#"{"Id":"\#(id)","Name":"/x","State":{"Status":"exited","Running":false,"Pid":0},"Config":{"Labels":null}}"#.utf8))
        #expect(unlabelled.labels.isEmpty && unlabelled.declaration(for: .default) == .nothing)
        let list = try DockerClient.decodeList(Array(#"[{"Id":"a","Names":["/one"],"State":"running","Labels":{"netkeep.eth1.brige":"br0"}},{"Id":"b","Names":["/two"],"State":"running"}]"#.utf8))
        #expect(list.map(\.labels) == [["netkeep.eth1.brige": "br0"], [:]])
        guard case .refused(let problems) = list[0].declaration(for: .default) else { Issue.record("\(list[0].declaration(for: .default))"); return }
        #expect(problems.contains { $0.key == "netkeep.eth1.brige" })

        let start = try DockerEvent.decode(Array(#"{"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"web","netkeep.eth1.bridge":"br0"}},"timeNano":1}"#.utf8))
        #expect(start.declares && start.name == "web")
        let plain = try DockerEvent.decode(Array(#"{"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"web","netkeeper":"x","Netkeep.eth1.bridge":"br0"}},"timeNano":1}"#.utf8))
        #expect(!plain.declares)
    }

    @Test func anEventTimeThatOverflowsIsRefusedNotATrap() {
        #expect(throws: DockerEvent.DecodeError.self) {
            try DockerEvent.decode(Array(#"{"Type":"container","Action":"start","Actor":{"ID":"abc"},"time":170000000000001}"#.utf8))
        }
    }
}
