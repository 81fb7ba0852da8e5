import NetkeepCore
import Testing

func sampleAttachment(container: String = String(repeating: "a", count: 64), ifname: String = "eth1") -> NetkeepCore.Attachment {
    NetkeepCore.Attachment(containerID: container, containerName: "c1", ifname: ifname, bridge: "br0",
               mac: try! MACAddress(parsing: "02:00:00:00:00:01"), mtu: 1500, vlan: 10, mode: .static,
               address: try! IPv4CIDR(parsing: "10.1.2.5/24"), gateway: try! IPv4Address(parsing: "10.1.2.1"),
               netnsLink: "c1", status: .ready, createdAt: Timestamp(secondsSinceEpoch: 1_800_000_000))
}

@Suite struct StateModelTests {
    @Test func derivedNamesComeFromContainerAndIfname() {
        let a = sampleAttachment()
        #expect(a.hostIfname == Names.hostInterface(containerID: a.containerID, ifname: "eth1"))
        #expect(a.id == Names.attachmentID(containerID: a.containerID, ifname: "eth1"))
    }

    @Test func upsertReplacesByIdentity() {
        var state = State()
        var a = sampleAttachment()
        state.upsert(a)
        a.status = .pending
        state.upsert(a)
        #expect(state.attachments.count == 1)
        #expect(state.attachments[0].status == .pending)
        state.upsert(sampleAttachment(ifname: "eth2"))
        #expect(state.attachments.count == 2)
        state.remove(id: a.id)
        #expect(state.attachments.map(\.ifname) == ["eth2"])
    }

    @Test func problemsFindDuplicatesAndForgedNames() {
        let state = State(attachments: [sampleAttachment(), sampleAttachment()])
        #expect(state.problems().contains { $0.contains("same container and ifname") })
        var forged = sampleAttachment()
        forged.hostIfname = "eth0"
        #expect(State(attachments: [forged]).problems().isEmpty, "adopted ports keep their own host name")
        forged.hostIfname = "eth0;x"
        #expect(State(attachments: [forged]).problems().contains { $0.contains("host_ifname") })
        var outside = sampleAttachment()
        outside.gateway = try! IPv4Address(parsing: "192.168.0.1")
        #expect(State(attachments: [outside]).problems().contains { $0.contains("gateway") })
        #expect(State(attachments: [sampleAttachment()]).problems().isEmpty)
    }

    @Test func matchesContainerByNameIdOrPrefix() {
        let a = sampleAttachment()
        #expect(a.matchesContainer("c1"))
        #expect(a.matchesContainer("/c1"))
        #expect(a.matchesContainer("aaaa"))
        #expect(!a.matchesContainer("aaa"))
        #expect(!a.matchesContainer("c2"))
    }
}
