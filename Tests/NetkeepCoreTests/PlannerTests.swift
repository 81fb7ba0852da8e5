import NetkeepCore
import Testing

/// One test per reason and per garbage-collection rule.
@Suite struct PlannerTests {
    @Test func healthyHostNeedsNothing() {
        var w = World()
        w.addHealthy(1)
        w.addHealthy(2, vlan: 10)
        #expect(w.plan.actions.isEmpty)
        #expect(w.plan.notices.isEmpty)
    }

    /// Found by HostModelTests: LeaseKeeper adds a lease's router only where
    /// the container has no default route, so a second DHCP interface must not
    /// ask for one (the kernel answers EEXIST, every pass).
    @Test func aSecondDHCPInterfaceDoesNotAskForASecondDefaultRoute() {
        var w = World()
        w.addHealthy(1, dhcp: true)
        let second = w.addHealthy(1, ifname: "eth2", dhcp: true)
        w.networks[second.containerID]!.defaultRoutes.removeAll { $0.ifname == "eth2" }
        #expect(w.plan.actions.isEmpty)
        // Without any default route, the lease's router is asked for.
        w.networks[second.containerID]!.defaultRoutes = []
        #expect(w.plan.actions.count == 2)
        // A static gateway is still demanded (attach refuses a second one).
        var s = World()
        s.addHealthy(2)
        let other = s.addHealthy(2, ifname: "eth2")
        s.networks[other.containerID]!.defaultRoutes.removeAll { $0.ifname == "eth2" }
        #expect(s.plan.actions.count == 1)
    }

    @Test func containerRestartedRecreatesVethReplacesPortRelinksAndRecords() {
        var w = World()
        let a = w.addHealthy(1)
        // A restart: new PID, only lo inside, host veth gone, the old row left looking healthy.
        w.containers[a.containerID]!.pid = 2001
        w.networks[a.containerID] = ContainerNetwork(links: [:], addresses: [:], defaultRoutes: [])
        w.hostLinks![a.hostIfname] = nil
        let actions = w.plan.actions
        #expect(actions.map(\.kind) == ["create-veth", "replace-port", "link-netns", "mark-ready"])
        #expect(actions[0].reason == .containerRestarted(oldPID: 1001, newPID: 2001))
        #expect(actions[1].reason == .portStale)
        #expect(actions[2].reason == .netnsLinkStale(pid: 1001))
        #expect(actions[3] == .markReady(a, pid: 2001, reason: .containerRestarted(oldPID: 1001, newPID: 2001)))
    }

    @Test func rebootIsToldFromARestartByTheBootID() {
        var w = World()
        let a = w.addHealthy(1)
        w.bootID = "boot-2"
        w.hostLinks![a.hostIfname] = nil
        w.networks[a.containerID]!.links = [:]
        w.ovs!.ports[a.hostIfname]!.error = "could not open network device \(a.hostIfname) (No such device)"
        w.ovs!.ports[a.hostIfname]!.ofport = -1
        #expect(w.plan.actions.first?.reason == .vethMissingAfterReboot)
        w.bootID = "boot-1"
        #expect(w.plan.actions.first?.reason == .vethMissing)
    }

    @Test func deadRowIsReplaced() {
        var w = World()
        let a = w.addHealthy(1)
        w.ovs!.ports[a.hostIfname]!.ofport = -1
        #expect(w.plan.actions == [.replacePort(a, reason: .portDead("ofport -1"))])
        w.ovs!.ports[a.hostIfname]!.error = "could not open network device"
        #expect(w.plan.actions == [.replacePort(a, reason: .portDead("could not open network device"))])
    }

    @Test func missingPortIsAddedAndPortOnAnotherBridgeMoved() {
        var w = World()
        let a = w.addHealthy(1)
        w.ovs!.ports[a.hostIfname] = nil
        #expect(w.plan.actions == [.addPort(a, reason: .portMissing)])
        w.addHealthy(1)
        w.ovs!.bridges["br1"] = "system"
        w.ovs!.ports[a.hostIfname]!.bridge = "br1"
        #expect(w.plan.actions == [.replacePort(a, reason: .portOnWrongBridge("br1"))])
    }

    @Test func missingBridgeIsAnErrorNotAnAction() {
        var w = World()
        w.addHealthy(1)
        w.ovs!.bridges = [:]
        #expect(w.plan.actions.isEmpty)
        #expect(w.plan.hasErrors)
    }

    @Test func vlanDriftIsSetBack() {
        var w = World()
        let a = w.addHealthy(1, vlan: 10)
        w.ovs!.ports[a.hostIfname]!.tag = 20
        #expect(w.plan.actions == [.setVLAN(a, reason: .vlanDrifted(from: 20, to: 10))])
        w.ovs!.ports[a.hostIfname]!.tag = nil
        #expect(w.plan.actions == [.setVLAN(a, reason: .vlanDrifted(from: nil, to: 10))])
    }

    @Test func misconfiguredInterfaceIsFixedInPlace() {
        var w = World()
        let a = w.addHealthy(1)
        w.networks[a.containerID]!.links["eth1"]!.mtu = 9000
        w.networks[a.containerID]!.links["eth1"]!.isUp = false
        w.hostLinks![a.hostIfname]!.isUp = false
        w.hostLinks![a.hostIfname]!.mtu = 1400
        w.networks[a.containerID]!.addresses["eth1"] = []
        w.networks[a.containerID]!.defaultRoutes = []
        let fixes: [InterfaceFix] = [.containerMTU(9000), .hostMTU(1400), .containerUp, .hostUp, .address(a.address!), .defaultRoute(a.gateway!)]
        #expect(w.plan.actions == [.configureInterface(a, pid: 1001, fixes: fixes, reason: .interfaceMisconfigured(fixes))])
    }

    @Test func otherInterfaceWithOurNameIsNotTouched() {
        var w = World()
        let a = w.addHealthy(1)
        w.networks[a.containerID]!.links["eth1"]!.mac = MACAddress(bytes: [2, 9, 9, 9, 9, 9])
        #expect(w.plan.actions.isEmpty)
        #expect(w.plan.hasErrors)
    }

    @Test func hostVethWithoutPeerInTheContainerIsRecreated() {
        var w = World()
        let a = w.addHealthy(1)
        w.networks[a.containerID]!.links = [:]
        #expect(w.plan.actions.map(\.kind) == ["recreate-veth", "replace-port"])
        #expect(w.plan.actions[0].reason == .vethStale)
    }

    @Test func netnsLinkMissingIsMadeAndForeignEntriesAreLeftAlone() {
        var w = World()
        let a = w.addHealthy(1)
        w.netns!["c1"] = nil
        #expect(w.plan.actions == [.linkNetns(a, pid: 1001, reason: .netnsLinkMissing)])
        w.netns!["c1"] = NetnsEntry(name: "c1", kind: .other)
        #expect(w.plan.actions.isEmpty)
    }

    @Test func interruptedAttachIsFinishedAndRecorded() {
        var w = World()
        var a = w.addHealthy(1)
        a.status = .pending
        a.containerPID = nil
        w.state.upsert(a)
        w.hostLinks![a.hostIfname] = nil
        w.networks[a.containerID]!.links = [:]
        w.ovs!.ports[a.hostIfname] = nil
        #expect(w.plan.actions.map(\.kind) == ["create-veth", "add-port", "mark-ready"])
        #expect(w.plan.actions.last?.reason == .interruptedAttach)
    }

    @Test func pendingRepairReplacesTheRowEvenWhenTheVethLooksFine() {
        var w = World()
        var a = w.addHealthy(1)
        a.status = .pending
        w.state.upsert(a)
        #expect(w.plan.actions.map(\.kind) == ["replace-port", "mark-ready"])
        #expect(w.plan.actions[0].reason == .interruptedRepair)
    }

    @Test func stoppedContainerKeepsItsAttachment() {
        var w = World()
        let a = w.addHealthy(1)
        w.containers[a.containerID]!.running = false
        w.containers[a.containerID]!.pid = 0
        w.networks[a.containerID] = nil
        w.hostLinks![a.hostIfname] = nil
        w.netns!["c1"] = NetnsEntry(name: "c1", kind: .procLink(pid: 1001, alive: false))
        // Recorded as down; its dead OVS row unplugged (the veth went with the
        // namespace); the dangling link may go; the record stays.
        #expect(w.plan.actions == [.unplugPort(a, reason: .containerStopped), .markDown(a, reason: .containerStopped),
                                   .removeNetnsLink(name: "c1", pid: 1001, reason: .danglingNetnsLink(pid: 1001))])
        #expect(!w.plan.hasErrors)
        var down = a
        down.status = .down
        w.state.upsert(down)
        w.ovs!.ports[a.hostIfname] = nil
        #expect(w.plan.actions == [.removeNetnsLink(name: "c1", pid: 1001, reason: .danglingNetnsLink(pid: 1001))])
        // When it runs again it is repaired, its port added in one step, and recorded as ready.
        w.containers[a.containerID]!.running = true
        w.containers[a.containerID]!.pid = 3001
        w.networks[a.containerID] = ContainerNetwork(links: [:], addresses: [:], defaultRoutes: [])
        #expect(w.plan.actions.map(\.kind) == ["create-veth", "add-port", "link-netns", "mark-ready"])
    }

    @Test func aContainerAnotherPassHoldsIsLeftToIt() {
        var w = World()
        let a = w.addHealthy(1)
        let b = w.addHealthy(2)
        // Both broken: the veths are gone, the ports dead, Docker says a is removed.
        w.remove(a)
        w.hostLinks![b.hostIfname] = nil
        w.networks[b.containerID]!.links = [:]
        var observed = w.observed
        observed.busyContainers = [a.containerID, b.containerID]
        let held = NetkeepCore.plan(desired: w.state, observed: observed)
        #expect(held.actions.isEmpty, "\(held.actions.map(\.summary))")
        #expect(held.notices.filter { $0.message.contains("another netkeep is changing it") }.count == 2)
        // Nothing of theirs is collected as an orphan either: their links and ports are tracked.
        #expect(!held.actions.contains { $0.removes })
        observed.busyContainers = [a.containerID]
        #expect(NetkeepCore.plan(desired: w.state, observed: observed).actions.allSatisfy { $0.attachment?.id == b.id })
    }

    @Test func aStoppedContainerWhoseVethLivesKeepsItsPort() {
        var w = World()
        let a = w.addHealthy(1)
        w.containers[a.containerID]!.running = false
        w.containers[a.containerID]!.pid = 0
        // The host end still lives (some process holds the namespace): the row is not dead.
        #expect(w.plan.actions == [.markDown(a, reason: .containerStopped)])
        // The daemon looks again a moment later, when the kernel may have torn it down.
        #expect(w.plan.awaitingTeardown == [a.containerID])
        w.hostLinks![a.hostIfname] = nil
        #expect(w.plan.actions.first == .unplugPort(a, reason: .containerStopped) && w.plan.awaitingTeardown.isEmpty)
    }

    @Test func aDetachReleasesTheLeaseFromInsideARunningContainer() {
        var w = World()
        var a = w.addHealthy(1, dhcp: true)
        a.status = .removing
        w.state.upsert(a)
        #expect(w.plan.actions.prefix(2) == [.releaseLease(a, pid: 1001, reason: .detachRequested), .removeAttachment(a, reason: .detachRequested)])
        // Gone by Docker's word: from the release station.
        w.containers[a.containerID] = nil
        w.removed.insert(a.containerID)
        w.networks[a.containerID] = nil
        #expect(w.plan.actions.first == .releaseLease(a, pid: nil, reason: .detachRequested))
        // Docker unreachable: the record still goes (OVSDB and netlink answer), no lease is sent anywhere.
        w.dockerReachable = false
        #expect(w.plan.actions.map(\.kind) == ["remove-attachment"])
        // An expired lease is not released.
        w.dockerReachable = true
        w.now = w.now.adding(seconds: 7200)
        #expect(!w.plan.actions.contains { $0.kind == "release-lease" })
    }


    @Test func removedContainerIsCollectedOnlyWithA404() {
        var w = World()
        let a = w.addHealthy(1)
        w.containers[a.containerID] = nil
        w.netns!["c1"] = NetnsEntry(name: "c1", kind: .procLink(pid: 1001, alive: false))
        // Not listed, but no 404: the attachment stays; only the link to a dead PID may go.
        #expect(w.plan.actions == [.removeNetnsLink(name: "c1", pid: 1001, reason: .danglingNetnsLink(pid: 1001))])
        w.remove(a)
        #expect(w.plan.actions == [.removeAttachment(a, reason: .containerRemoved),
                                   .removeNetnsLink(name: "c1", pid: 1001, reason: .containerRemoved)])
    }

    @Test func aRemovedContainerWhoseVethStillLivesIsKeptAndLookedAtAgain() {
        var w = World()
        let a = w.addHealthy(1)
        w.remove(a)
        // The destroy came before the kernel tore the namespace down: the veth is still there.
        w.hostLinks![a.hostIfname] = ObservedLink(name: a.hostIfname, index: 900, kind: "veth", mac: nil, mtu: a.mtu, isUp: true)
        #expect(!w.plan.actions.contains { $0.removes }, "\(w.plan.actions.map(\.summary))")
        #expect(w.plan.awaitingTeardown == [a.containerID])
        w.hostLinks![a.hostIfname] = nil
        #expect(w.plan.actions.first == .removeAttachment(a, reason: .containerRemoved) && w.plan.awaitingTeardown.isEmpty)
    }

    @Test(arguments: ["docker", "ovs", "links", "netns"])
    func nothingIsRemovedWhenASourceIsUnreadable(_ source: String) {
        var w = World()
        let a = w.addHealthy(1)
        w.remove(a)
        w.removed.insert("gone")
        w.ovs!.ports["orphan_l"] = ObservedPort(name: "orphan_l", bridge: "br0", tag: nil, ofport: -1, error: nil, type: "",
                                               externalIDs: ["container_id": "gone", "container_iface": "eth1"])
        w.netns!["1234"] = NetnsEntry(name: "1234", kind: .procLink(pid: 1234, alive: false))
        // The attachment, the orphan port and the dead link; c1's link points at a live
        // (reused) PID that is not the container's, so it stays.
        #expect(w.plan.actions.filter(\.removes).count == 3)
        switch source {
        case "docker": w.dockerReachable = false
        case "ovs": w.ovs = nil
        case "links": w.hostLinks = nil
        default: w.netns = nil
        }
        #expect(!w.plan.actions.contains { $0.removes })
        #expect(w.plan.hasErrors)
    }

    @Test func interruptedDetachIsFinishedEvenForARunningContainer() {
        var w = World()
        var a = w.addHealthy(1)
        a.status = .removing
        w.state.upsert(a)
        #expect(w.plan.actions == [.removeAttachment(a, reason: .detachRequested),
                                   .removeNetnsLink(name: "c1", pid: 1001, reason: .detachRequested)])
    }

    @Test func netnsLinkStaysWhileAnotherAttachmentUsesIt() {
        var w = World()
        var a = w.addHealthy(1)
        w.addHealthy(1, ifname: "eth2")
        a.status = .removing
        w.state.upsert(a)
        #expect(w.plan.actions == [.removeAttachment(a, reason: .detachRequested)])
    }

    @Test func orphanPortsOfNetkeepAndOvsDockerGoOnlyWhenTheirContainerIsGone() {
        var w = World()
        w.addHealthy(1)
        w.ovs!.ports["abcdef0123456_l"] = ObservedPort(name: "abcdef0123456_l", bridge: "br0", tag: nil, ofport: -1, error: nil, type: "",
                                                       externalIDs: ["container_id": "web9", "container_iface": "eth1"])
        w.ovs!.ports["nkdeadbeef0000"] = ObservedPort(name: "nkdeadbeef0000", bridge: "br0", tag: nil, ofport: 3, error: nil, type: "",
                                                      externalIDs: ["netkeep-attachment": "x", "container_id": World.containerID(7), "container_iface": "eth1"])
        w.ovs!.ports["vxlan0"] = ObservedPort(name: "vxlan0", bridge: "br0", tag: nil, ofport: 4, error: nil, type: "vxlan",
                                              externalIDs: ["container_id": "web9", "container_iface": "eth1"])
        w.ovs!.ports["uplink"] = ObservedPort(name: "uplink", bridge: "br0", tag: nil, ofport: -1, error: "gone", type: "", externalIDs: [:])
        #expect(!w.plan.actions.contains { $0.removes }, "no 404 yet: nothing goes")
        w.removed = ["web9", World.containerID(7)]
        #expect(w.plan.actions == [
            .removePort(name: "abcdef0123456_l", bridge: "br0", reason: .orphanPort(owner: .ovsDocker, container: "web9")),
            .removePort(name: "nkdeadbeef0000", bridge: "br0", reason: .orphanPort(owner: .netkeep, container: World.containerID(7))),
        ])
    }

    @Test func onlyDeadProcLinksAreCollected() {
        var w = World()
        w.addHealthy(1)
        w.netns!["4242"] = NetnsEntry(name: "4242", kind: .procLink(pid: 4242, alive: false))
        w.netns!["4343"] = NetnsEntry(name: "4343", kind: .procLink(pid: 4343, alive: true))
        w.netns!["dhcpsrv"] = NetnsEntry(name: "dhcpsrv", kind: .other)
        #expect(w.plan.actions == [.removeNetnsLink(name: "4242", pid: 4242, reason: .danglingNetnsLink(pid: 4242))])
    }

    @Test func planIsDeterministic() {
        var w = World()
        for n in 1...9 { w.addHealthy(n) }
        for n in 1...9 { w.hostLinks![w.state.attachments[n - 1].hostIfname] = nil }
        #expect(w.plan == w.plan)
        #expect(w.plan.actions.count == 9 * 2)
    }
}
