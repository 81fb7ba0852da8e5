import NetkeepCore
import Testing

/// `netkeep.instance`: which netkeep of the host a labelled container is for.
@Suite struct InstanceTests {
    static let labels = ["netkeep.eth1.bridge": "br0", "netkeep.eth1.ip": "dhcp"]

    func declaration(_ labels: [String: String], for instance: String) throws -> LabelDeclaration {
        try LabelDeclaration.parse(labels: labels, container: "c1", instance: try Instance(parsing: instance))
    }

    @Test func aContainerWithoutTheLabelIsTheDefaultInstancesOnly() throws {
        guard case .interfaces(let requests) = try declaration(Self.labels, for: "default") else {
            Issue.record("the default instance does not see the container's labels")
            return
        }
        #expect(requests.map(\.ifname) == ["eth1"])
        #expect(try declaration(Self.labels, for: "test-1") == .nothing, "another instance acts on an unlabelled container")
        #expect(try declaration(Self.labels.merging([Instance.label: ""]) { $1 }, for: "test-1") == .nothing, "empty is the default")
    }

    @Test func aLabelledContainerIsItsInstancesOnly() throws {
        let mine = Self.labels.merging([Instance.label: "test-1"]) { $1 }
        #expect(try declaration(mine, for: "default") == .nothing)
        #expect(try declaration(mine, for: "test-2") == .nothing)
        guard case .interfaces(let requests) = try declaration(mine, for: "test-1") else {
            Issue.record("instance test-1 does not see its own container")
            return
        }
        #expect(requests.map(\.ifname) == ["eth1"], "the instance label is not an interface")
        #expect(try declaration([Instance.label: "test-1"], for: "test-1") == .nothing, "the label alone declares nothing")
    }

    @Test func aBadInstanceLabelIsRefusedByTheDefaultInstanceAndIgnoredByTheOthers() throws {
        let bad = Self.labels.merging([Instance.label: "Not Mine"]) { $1 }
        guard case .refused(let problems) = try declaration(bad, for: "default") else {
            Issue.record("the default instance did not refuse a malformed netkeep.instance")
            return
        }
        #expect(problems.map(\.key) == [Instance.label], "\(problems)")
        #expect(problems.first?.description.contains("\"Not Mine\"") == true, "\(problems)")
        #expect(try declaration(bad, for: "test-1") == .nothing)
    }

    @Test(arguments: ["default", "a", "test-1", "ci_run.7", String(repeating: "x", count: 63)])
    func goodNames(_ name: String) throws {
        #expect(try Instance(parsing: name).name == name)
    }

    @Test(arguments: ["", "-a", ".a", "_a", "A", "a b", "a/b", "../x", "é", "a\n", String(repeating: "x", count: 64)])
    func badNamesSayWhy(_ name: String) {
        #expect(throws: InputError.self) { try Instance(parsing: name) }
    }
}
