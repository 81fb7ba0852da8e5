import NetkeepCore
import Testing

/// The planner's retention rules and the recreate rules (`Recreate`).
@Suite struct RetentionTests {
    func kinds(_ plan: Plan) -> [String] { plan.actions.map(\.kind) }

    @Test func aRemovedContainerIsRetainedNotReleasedWhenRetentionIsOn() {
        var w = World()
        let a = w.addHealthy(1, dhcp: true)
        w.remove(a)
        w.retention = 3600
        let plan = w.plan
        #expect(plan.actions.contains(.retainAttachment(a, until: w.now.adding(seconds: 3600), reason: .containerRemoved)), "\(kinds(plan))")
        #expect(!plan.actions.contains { if case .releaseLease = $0 { return true } else { return false } })
        #expect(!plan.actions.contains { if case .removeAttachment = $0 { return true } else { return false } })

        w.retention = 0
        #expect(kinds(w.plan).starts(with: ["release-lease", "remove-attachment"]), "\(kinds(w.plan))")
    }

    @Test func aDetachIsNeverRetained() {
        var w = World()
        var a = w.addHealthy(1, dhcp: true)
        a.status = .removing
        w.state.upsert(a)
        w.retention = 3600
        #expect(kinds(w.plan).starts(with: ["release-lease", "remove-attachment"]), "\(kinds(w.plan))")
    }

    @Test func aRetainedRecordWaitsItsTimeThenGivesTheLeaseBack() {
        var w = World()
        var a = w.addHealthy(1, dhcp: true)
        w.remove(a)
        a.status = .retained
        a.retainedUntil = w.now.adding(seconds: 60)
        a.netnsLink = nil
        a.containerPID = nil
        w.state.upsert(a)
        #expect(w.plan.actions.isEmpty, "\(kinds(w.plan))")
        w.now = w.now.adding(seconds: 60)
        #expect(w.plan.actions == [.releaseLease(a, pid: nil, reason: .retentionEnded), .removeAttachment(a, reason: .retentionEnded)])
        // Even when Docker cannot be asked: nothing of it is on the host.
        w.dockerReachable = false
        #expect(w.plan.actions.contains(.removeAttachment(a, reason: .retentionEnded)))
    }

    static func record(_ id: Int, name: String = "web", bridge: String = "br0", ifname: String = "eth1", mode: AddressMode = .dhcp,
                       status: AttachmentStatus, until: Int64? = nil, mac: UInt8 = 1) -> NetkeepCore.Attachment {
        var a = NetkeepCore.Attachment(containerID: World.containerID(id), containerName: name, ifname: ifname, bridge: bridge,
                           mac: MACAddress(bytes: [2, 0, 0, 0, 0, mac])!, mtu: 1500, vlan: nil, mode: mode, address: nil, gateway: nil,
                           netnsLink: nil, status: status, createdAt: Timestamp(secondsSinceEpoch: 100 + Int64(id)))
        a.retainedUntil = until.map { Timestamp(secondsSinceEpoch: $0) }
        return a
    }

    @Test func theDonorHasTheSameNameBridgeInterfaceAndModeAndIsNotRunning() {
        let now = Timestamp(secondsSinceEpoch: 1000)
        let intent = Self.record(9, status: .pending)
        func donor(_ records: [NetkeepCore.Attachment], stopped: Set<String> = [], mac: MACAddress? = nil) -> String? {
            Recreate.donor(for: intent, requestedMAC: mac, in: NetkeepCore.State(attachments: records), stopped: stopped, now: now)?.containerID
        }
        let retained = Self.record(1, status: .retained, until: 2000)
        #expect(donor([retained]) == retained.containerID)
        #expect(donor([Self.record(1, status: .retained, until: 1000)]) == nil, "its time is up")
        #expect(donor([Self.record(1, status: .retained, until: nil)]) == nil)
        #expect(donor([Self.record(1, bridge: "br1", status: .retained, until: 2000)]) == nil, "another bridge")
        #expect(donor([Self.record(1, ifname: "eth2", status: .retained, until: 2000)]) == nil, "another interface")
        #expect(donor([Self.record(1, name: "db", status: .retained, until: 2000)]) == nil, "another name")
        #expect(donor([Self.record(1, mode: .static, status: .retained, until: 2000)]) == nil, "another address mode")
        #expect(donor([retained], mac: MACAddress(bytes: [2, 0, 0, 0, 0, 7])!) == nil, "an explicit other MAC wins")
        #expect(donor([retained], mac: retained.mac) == retained.containerID)
        let down = Self.record(2, status: .down)
        #expect(donor([down]) == nil, "Docker did not say it is stopped")
        #expect(donor([down], stopped: [down.containerID]) == down.containerID)
        #expect(donor([Self.record(2, status: .removing)], stopped: [down.containerID]) == nil)
        #expect(donor([Self.record(9, status: .retained, until: 2000)]) == nil, "not its own record")
        let later = Self.record(3, status: .retained, until: 3000, mac: 3)
        #expect(donor([retained, later]) == later.containerID, "the latest")
        #expect(Recreate.candidates(for: intent, in: NetkeepCore.State(attachments: [retained, down, Self.record(4, bridge: "br1", status: .ready)])).map(\.containerID)
                == [down.containerID])
    }

    @Test func inheritingTakesTheMACAndAValidLeaseAndSaysWhatBecomesOfTheDonor() {
        let now = Timestamp(secondsSinceEpoch: 1000)
        var retained = Self.record(1, status: .retained, until: 2000)
        let lease = Lease(address: try! IPv4CIDR(parsing: "10.1.2.50/24"), router: IPv4Address(10, 1, 2, 1), serverID: IPv4Address(10, 1, 2, 2),
                          leaseSeconds: 3600, renewSeconds: 1800, rebindSeconds: 3150, obtainedAt: Timestamp(secondsSinceEpoch: 500),
                          renewAt: Timestamp(secondsSinceEpoch: 2300), rebindAt: Timestamp(secondsSinceEpoch: 3650))
        retained.lease = lease
        let intent = Self.record(9, status: .pending, mac: 9)
        let (taken, left) = Recreate.inherit(intent, from: retained, now: now)
        #expect(taken.mac == retained.mac && taken.lease == lease && taken.address == lease.address && taken.gateway == lease.router)
        #expect(taken.recreatedFrom == retained.containerID && taken.id == intent.id && taken.status == .pending)
        #expect(left == nil, "a retained record goes")

        var down = Self.record(2, status: .down)
        down.lease = lease
        let (fromDown, leftDown) = Recreate.inherit(intent, from: down, now: now)
        #expect(fromDown.lease == lease)
        #expect(leftDown?.status == .removing && leftDown?.lease == nil, "removed without a release: the lease moved")

        let (expired, _) = Recreate.inherit(intent, from: retained, now: Timestamp(secondsSinceEpoch: 5000))
        #expect(expired.mac == retained.mac && expired.lease == nil, "an expired lease is asked for again, with the same MAC")
    }

    @Test func retentionDurations() throws {
        #expect(try Retention.seconds(parsing: "0") == 0)
        #expect(try Retention.seconds(parsing: "90") == 90)
        #expect(try Retention.seconds(parsing: "90s") == 90)
        #expect(try Retention.seconds(parsing: "30m") == 1800)
        #expect(try Retention.seconds(parsing: "24h") == 86400)
        #expect(try Retention.seconds(parsing: "7d") == 604_800)
        for bad in ["", "h", "-1h", "1.5h", "1w", "24 h", "99999999999d", "3651d", "１h"] {
            #expect(throws: InputError.self, "\(bad)") { try Retention.seconds(parsing: bad) }
        }
    }
}
