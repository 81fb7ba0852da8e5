import NetkeepCore
@testable import NetkeepService
import Testing

/// A removed container's MAC and lease are kept for one recreated under its
/// name, bridge and interface (Compose, `docker run --rm`, upgrades).
@Suite struct RecreateTests {
    static let dhcp = ["netkeep.eth1.bridge": "br0", "netkeep.eth1.ip": "dhcp"]

    func retainingBed() -> Bed {
        let bed = Bed()
        bed.environment.retentionSeconds = 3600
        return bed
    }

    func declareAndPass(_ bed: Bed) throws {
        _ = try Declare(environment: bed.environment, logger: bed.logger).run(dryRun: false)
        #expect(try bed.reconcile().exitCode == 0)
    }

    func advance(_ bed: Bed, seconds: Int64) {
        var w = bed.host.snapshot
        w.now = w.now.adding(seconds: seconds)
        bed.host.snapshot = w
    }

    @Test func aRecreatedContainerGetsTheSameMACAndLeaseAndTheOldOneIsForgotten() throws {
        let bed = retainingBed()
        let old = bed.host.run(name: "web", labels: Self.dhcp)
        try declareAndPass(bed)
        let first = try #require(try bed.records().first)
        let lease = try #require(first.lease)

        bed.host.remove(old)
        #expect(try bed.reconcile().exitCode == 0)
        let kept = try #require(try bed.records().first)
        #expect(kept.status == .retained && kept.retainedUntil == bed.host.snapshot.now.adding(seconds: 3600))
        #expect(kept.mac == first.mac && kept.lease == lease && kept.netnsLink == nil)
        #expect(bed.host.snapshot.released.isEmpty, "nothing is given back during the retention")
        #expect(bed.host.snapshot.ports.isEmpty && bed.host.snapshot.hostLinks.isEmpty)
        #expect(try bed.problems() == [])

        advance(bed, seconds: 600)
        let new = bed.host.run(name: "web", labels: Self.dhcp)
        try declareAndPass(bed)
        let records = try bed.records()
        #expect(records.count == 1, "the retained record went to the new container")
        let made = try #require(records.first)
        #expect(made.containerID == new && made.recreatedFrom == old && made.status == .ready)
        #expect(made.mac == first.mac && made.lease?.address == lease.address)
        let w = bed.host.snapshot
        #expect(w.namespaces[w.containers[new]!.ns]?.addresses["eth1"] == [lease.address])
        #expect(w.released.isEmpty)
        #expect(try bed.problems() == [])
    }

    @Test func anotherBridgeOrInterfaceUnderTheSameNameInheritsNothing() throws {
        let bed = retainingBed()
        let old = bed.host.run(name: "web", labels: Self.dhcp)
        try declareAndPass(bed)
        let first = try #require(try bed.records().first)
        bed.host.remove(old)
        try bed.reconcile()

        bed.host.run(name: "web", labels: ["netkeep.eth1.bridge": "br1", "netkeep.eth1.ip": "dhcp",
                                           "netkeep.eth2.bridge": "br0", "netkeep.eth2.ip": "dhcp"])
        try declareAndPass(bed)
        let fresh = try bed.records().filter { $0.status != .retained }
        #expect(fresh.count == 2)
        #expect(fresh.allSatisfy { $0.mac != first.mac && $0.recreatedFrom == nil }, "\(fresh)")
        #expect(try bed.records().contains { $0.status == .retained && $0.containerID == old }, "still kept for its own project")
        #expect(try bed.problems() == [])
    }

    @Test func whenTheRetentionEndsTheLeaseIsReleased() throws {
        let bed = retainingBed()
        // Shorter than the lease (an hour): there is still something to give back.
        bed.environment.retentionSeconds = 1800
        let old = bed.host.run(name: "web", labels: Self.dhcp)
        try declareAndPass(bed)
        let mac = try #require(try bed.records().first).mac
        bed.host.remove(old)
        try bed.reconcile()
        advance(bed, seconds: 1799)
        #expect(try bed.reconcile().plan.actions.isEmpty, "not yet")
        advance(bed, seconds: 1)
        let report = try bed.reconcile()
        #expect(report.plan.actions.contains { if case .removeAttachment(_, .retentionEnded) = $0 { return true } else { return false } })
        #expect(try bed.records().isEmpty)
        #expect(bed.host.snapshot.released == [mac] && bed.host.snapshot.leases[mac] == nil)
        #expect(try bed.problems() == [])
    }

    @Test func detachOfARetainedNameReleasesItsLeaseAtOnce() throws {
        let bed = retainingBed()
        let old = bed.host.run(name: "web", labels: Self.dhcp)
        try declareAndPass(bed)
        let mac = try #require(try bed.records().first).mac
        bed.host.remove(old)
        try bed.reconcile()
        #expect(try bed.detach("web").map(\.containerID) == [old])
        #expect(try bed.records().isEmpty)
        #expect(bed.host.snapshot.released == [mac])
    }

    @Test func composeStartsTheNewContainerBeforeItRemovesTheOldRenamedOne() throws {
        let bed = retainingBed()
        let old = bed.host.run(name: "proj_web_1", labels: Self.dhcp)
        try declareAndPass(bed)
        let first = try #require(try bed.records().first)
        // docker-compose up --force-recreate: stop, rename, create and start the new one, then remove the old.
        bed.host.stop(old)
        var w = bed.host.snapshot
        w.containers[old]?.name = "1a2b3c_proj_web_1"
        bed.host.snapshot = w
        let new = bed.host.run(name: "proj_web_1", labels: Self.dhcp)
        try declareAndPass(bed)
        let made = try #require(try bed.records().first { $0.containerID == new })
        #expect(made.mac == first.mac && made.lease?.address == first.lease?.address && made.recreatedFrom == old)
        #expect(!(try bed.records().contains { $0.containerID == old }), "the old record went without its lease")
        bed.host.remove(old)
        try bed.reconcile()
        #expect(bed.host.snapshot.released.isEmpty, "the lease moved; nothing was released")
        #expect(try bed.records().map(\.containerID) == [new])
        #expect(try bed.problems() == [])
    }

    @Test func aRunningPredecessorKeepsItsIdentity() throws {
        let bed = retainingBed()
        let old = bed.host.run(name: "web", labels: Self.dhcp)
        try declareAndPass(bed)
        let first = try #require(try bed.records().first)
        // Renamed while it runs; a new container takes the name.
        var w = bed.host.snapshot
        w.containers[old]?.name = "web-old"
        bed.host.snapshot = w
        bed.host.run(name: "web", labels: Self.dhcp)
        try declareAndPass(bed)
        let records = try bed.records()
        #expect(records.count == 2)
        #expect(records.first { $0.containerID == old }?.mac == first.mac)
        #expect(records.first { $0.containerID != old }?.mac != first.mac)
    }

    @Test func aStaticRecreateByAttachKeepsTheMAC() throws {
        let bed = retainingBed()
        let old = bed.host.run(name: "db")
        let first = try bed.attach("db", ip: "10.1.2.70/24", mac: "02:00:00:00:07:00")
        bed.host.remove(old)
        try bed.reconcile()
        let new = bed.host.run(name: "db")
        var request = try AttachRequest.parse(container: "db", bridge: "br0", ifname: "eth1", ip: "10.1.2.70/24", gateway: nil,
                                              mac: nil, mtu: nil, vlan: nil)
        request.container = new
        let made = try Attach(environment: bed.environment, logger: bed.logger).run(request)
        #expect(made.mac == first.mac && made.recreatedFrom == old)
        #expect(try bed.records().count == 1)
        #expect(try bed.problems() == [])
    }
}
