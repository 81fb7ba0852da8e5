import NetkeepCore
import Testing

/// DESIGN.md rule 5: evidence is about the very thing removed.
@Suite struct EvidenceTests {
    /// A port as `ovs-docker add-port` leaves it, naming its container by `reference`.
    func ovsDockerPort(_ name: String, reference: String) -> ObservedPort {
        ObservedPort(name: name, bridge: "br0", tag: nil, ofport: 7, error: nil, type: "",
                     externalIDs: ["container_id": reference, "container_iface": "eth1"])
    }

    @Test(arguments: ["web/1", "web\r\nGET /containers/json HTTP/1.1", String(repeating: "a", count: 300), "../etc", "a?all=1",
                      "a#b", "%2e%2e", " web", "web ", "/web", "", "-web", "wé"])
    func aMalformedReferenceIsNeverEvidence(_ reference: String) {
        var w = World()
        w.addHealthy(1)
        w.ovs!.ports["0123456789abc_l"] = ovsDockerPort("0123456789abc_l", reference: reference)
        w.removed.insert(reference)
        #expect(!Names.isContainerReference(reference))
        #expect(!w.plan.actions.contains { $0.removes }, "\(quoted(reference)) counted as evidence")
    }

    @Test func aWellFormedReferenceWithA404IsEvidence() {
        var w = World()
        w.addHealthy(1)
        w.ovs!.ports["0123456789abc_l"] = ovsDockerPort("0123456789abc_l", reference: "web_1.a-b")
        w.removed.insert("web_1.a-b")
        #expect(w.plan.actions == [.removePort(name: "0123456789abc_l", bridge: "br0", reason: .orphanPort(owner: .ovsDocker, container: "web_1.a-b"))])
    }

    @Test func aRenamedContainersPortWithALiveVethStays() {
        var w = World()
        w.addHealthy(1)
        // ovs-docker recorded "web1"; after `docker rename web1 web2`, inspect web1 is a 404.
        w.ovs!.ports["0123456789abc_l"] = ovsDockerPort("0123456789abc_l", reference: "web1")
        w.removed.insert("web1")
        w.hostLinks!["0123456789abc_l"] = ObservedLink(name: "0123456789abc_l", index: 900, kind: "veth", mac: nil, mtu: 1500, isUp: true)
        #expect(!w.plan.actions.contains { $0.removes })
        #expect(w.plan.notices.contains { $0.message.contains("0123456789abc_l") && $0.message.contains("veth lives") })
        // Once the veth is gone with its namespace, the 404 counts.
        w.hostLinks!["0123456789abc_l"] = nil
        #expect(w.plan.actions.map(\.kind) == ["remove-port"])
    }

    @Test func aRecordWhoseVethLivesIsNotCollectedButADetachIs() {
        var w = World()
        var a = w.addHealthy(1)
        w.containers[a.containerID] = nil
        w.removed.insert(a.containerID)
        #expect(!w.plan.actions.contains { $0.removes }, "the host veth lives: its peer is in some namespace")
        #expect(w.plan.notices.contains { $0.message.contains("still exists") })
        a.status = .removing
        w.state.upsert(a)
        #expect(w.plan.actions.first == .removeAttachment(a, reason: .detachRequested))
    }

    @Test(arguments: [
        EngineIdentity(id: "OTHER:ENGINE", rootDir: "/var/lib/docker"),
        EngineIdentity(id: World.engine.id, rootDir: "/mnt/other-root"),
        EngineIdentity(id: "", rootDir: "/var/lib/docker"),
    ])
    func anotherEnginesWordRemovesNothing(_ other: EngineIdentity) {
        var w = World()
        let a = w.addHealthy(1)
        w.remove(a)
        w.ovs!.ports["0123456789abc_l"] = ovsDockerPort("0123456789abc_l", reference: "web9")
        w.removed.insert("web9")
        #expect(w.plan.actions.filter(\.removes).count == 2)
        w.engine = other
        #expect(!w.plan.actions.contains { $0.removes })
        #expect(w.plan.hasErrors)
        #expect(w.plan.notices.contains { $0.message.contains("Docker") && $0.message.contains("nothing removed") })
    }

    @Test func anEngineThatDidNotAnswerRemovesNothing() {
        var w = World()
        let a = w.addHealthy(1)
        w.remove(a)
        w.engine = nil
        #expect(!w.plan.actions.contains { $0.removes })
        #expect(w.plan.notices.contains { $0.message.contains("did not say who it is") })
    }

    @Test func aStateWithoutARecordedEngineTakesTheOneThatAnswers() {
        var w = World()
        let a = w.addHealthy(1)
        w.remove(a)
        w.state.engine = nil
        #expect(w.plan.actions.first == .removeAttachment(a, reason: .containerRemoved))
    }

    @Test func aContainerWithoutANamespaceOfItsOwnIsNeverEntered() {
        var w = World()
        let a = w.addHealthy(1)
        w.hostLinks![a.hostIfname] = nil
        w.containers[a.containerID]!.sharedNamespace = "the host's network namespace (--network host)"
        #expect(w.plan.actions.isEmpty)
        #expect(w.plan.notices.contains { $0.severity == .error && $0.message.contains("--network host") })
    }

    @Test func aNamespaceThatIsNotTheContainersIsNotRepairedAndSaysWhy() {
        var w = World()
        let a = w.addHealthy(1)
        w.networks[a.containerID] = nil
        w.hostLinks![a.hostIfname] = nil
        var observed = w.observed
        observed.unreadableNetworks[a.containerID] = "it is net:[1], not the container's net:[2]"
        let thePlan = plan(desired: w.state, observed: observed)
        #expect(thePlan.actions.isEmpty)
        #expect(thePlan.notices.contains { $0.message.contains("not the container's") })
    }

    @Test func aReleaseStationLeftByACrashIsRemovedARunningOneIsNot() {
        var w = World()
        w.addHealthy(1)
        w.ovs!.ports["nkrel0123456789"] = ObservedPort(name: "nkrel0123456789", bridge: "br0", tag: 10, ofport: -1, error: nil, type: "",
                                                       externalIDs: ["netkeep-release": "1"])
        #expect(w.plan.actions == [.removePort(name: "nkrel0123456789", bridge: "br0", reason: .releasePortLeft)])
        w.hostLinks!["nkrel0123456789"] = ObservedLink(name: "nkrel0123456789", index: 990, kind: "veth", mac: nil, mtu: 1500, isUp: true)
        #expect(w.plan.actions.isEmpty, "a release in progress is left alone")
        w.dockerReachable = false
        w.hostLinks!["nkrel0123456789"] = nil
        #expect(w.plan.actions.isEmpty, "nothing is removed while a source is unreadable")
    }
}
