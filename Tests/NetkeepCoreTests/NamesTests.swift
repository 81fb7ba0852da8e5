import NetkeepCore
import Testing

@Suite struct NamesTests {
    static let id = String(repeating: "ab", count: 32)

    @Test func hostInterfaceNamesAreDeterministicAndFitIFNAMSIZ() {
        let a = Names.hostInterface(containerID: Self.id, ifname: "eth1")
        #expect(a == Names.hostInterface(containerID: Self.id, ifname: "eth1"))
        #expect(a.utf8.count <= 15)
        #expect(a.hasPrefix("nk"))
        #expect((try? Names.interface(a)) == a)
        #expect(a != Names.hostInterface(containerID: Self.id, ifname: "eth2"))
        #expect(a != Names.hostInterface(containerID: String(repeating: "cd", count: 32), ifname: "eth1"))
    }

    @Test func hostInterfaceNamesDoNotCollideAcrossManyContainers() {
        var seen = Set<String>()
        for i in 0..<5000 {
            let id = String(String(i, radix: 16).reversed()).padding(to: 64)
            seen.insert(Names.hostInterface(containerID: id, ifname: "eth1"))
        }
        #expect(seen.count == 5000)
    }

    @Test func attachmentIDIsKnownFNV1a() {
        // FNV-1a 64 of "" is the offset basis; of "a" it is af63dc4c8601ec8c.
        #expect(Names.attachmentID(containerID: "", ifname: "").count == 16)
        #expect(Names.attachmentID(containerID: "x", ifname: "eth1") != Names.attachmentID(containerID: "x", ifname: "eth2"))
    }

    @Test(arguments: ["", "averyveryverylongname", "eth 1", "eth1;rm", "e$(x)", "eth1/", "..", ".", "-eth1", "eth`1`", "éth1", "eth1\n"])
    func rejectsHostileInterfaceNames(_ name: String) {
        #expect(throws: InputError.self) { try Names.interface(name) }
    }

    @Test(arguments: ["eth1", "net0", "e", "a_b.c-d", "fifteen-chars15"])
    func acceptsInterfaceNames(_ name: String) throws {
        #expect(try Names.interface(name) == name)
    }

    @Test(arguments: ["", "/", "-rm", "a;b", "a b", "$(id)", "../etc", "a/b", "a'b", String(repeating: "a", count: 256), "a\r\nGET / HTTP/1.1", "a?b", "a#b", "a%2fb"])
    func rejectsHostileContainerReferences(_ ref: String) {
        #expect(throws: InputError.self) { try Names.containerReference(ref) }
    }

    @Test func acceptsDockerNamesAndIDs() throws {
        #expect(try Names.containerReference("/web_1.a-b") == "web_1.a-b")
        #expect(try Names.containerReference(Self.id) == Self.id)
    }
}

extension String {
    func padding(to length: Int) -> String { self + String(repeating: "0", count: max(0, length - count)) }
}
