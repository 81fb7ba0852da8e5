import NetkeepCore
@testable import NetkeepService
import Testing

/// The real commands and passes against the in-memory host.
@Suite struct CommandTests {
    @Test func attachMakesTheWholeAttachmentStaticAndDHCP() throws {
        let bed = Bed()
        let web = bed.host.run(name: "web1")
        let db = bed.host.run(name: "db1")
        let a = try bed.attach("web1", ip: "10.1.2.50/24", gateway: "10.1.2.1", mac: "02:00:00:00:00:01", vlan: 5)
        let d = try bed.attach("db1", bridge: "br1", dhcp: true, mac: "02:00:00:00:00:02")

        let w = bed.host.snapshot
        #expect(w.ports[a.hostIfname] == MemoryHost.Port(bridge: "br0", tag: 5, externalIDs: [
            "netkeep-attachment": a.id, "container_id": web, "container_iface": "eth1"]))
        #expect(w.hostLinks[a.hostIfname]?.peer?.ns == w.containers[web]?.ns)
        #expect(w.namespaces[w.containers[web]!.ns]?.addresses["eth1"] == [try IPv4CIDR(parsing: "10.1.2.50/24")])
        #expect(w.netns["web1"] == .proc(w.containers[web]!.pid))
        #expect(w.ports[d.hostIfname]?.bridge == "br1")
        let lease = try #require(d.lease)
        #expect(w.leases[d.mac] == lease.address)
        #expect(w.namespaces[w.containers[db]!.ns]?.addresses["eth1"] == [lease.address])
        #expect(try bed.records().map(\.status) == [.ready, .ready])
        #expect(try bed.problems() == [])
        #expect(try bed.reconcile().plan.actions.isEmpty, "a second look finds nothing to do")
    }

    @Test func aContainerScopedPassRepairsARestartAndAHostPassCollectsARemoval() throws {
        let bed = Bed()
        let web = bed.host.run(name: "web1")
        let db = bed.host.run(name: "db1")
        let a = try bed.attach("web1", ip: "10.1.2.50/24", mac: "02:00:00:00:00:01")
        let d = try bed.attach("db1", dhcp: true, mac: "02:00:00:00:00:02")
        let leased = try #require(d.lease).address

        bed.host.restart(web)
        #expect(try bed.problems() != [], "the restart broke the attachment")
        let report = try bed.reconcile(.container(web))
        #expect(report.exitCode == 0)
        #expect(report.plan.actions.contains { if case .createVeth(_, _, .containerRestarted) = $0 { return true } else { return false } })
        #expect(try bed.problems() == [])
        #expect(try bed.records().first { $0.id == a.id }?.containerPID == bed.host.snapshot.containers[web]?.pid)

        bed.host.restart(db)
        try bed.reconcile(.container(db))
        #expect(try bed.records().first { $0.id == d.id }?.lease?.address == leased, "the same address after a restart")

        bed.host.remove(db)
        #expect(try bed.reconcile().exitCode == 0)
        let w = bed.host.snapshot
        #expect(try bed.records().map(\.id) == [a.id])
        #expect(w.ports[d.hostIfname] == nil && w.netns["db1"] == nil)
        #expect(w.released == [d.mac] && w.leases[d.mac] == nil, "the lease went back to the server")
        #expect(try bed.problems() == [])
    }

    @Test func detachRemovesEverythingAndReleasesTheLease() throws {
        let bed = Bed()
        bed.host.run(name: "web1")
        let a = try bed.attach("web1", dhcp: true, mac: "02:00:00:00:00:01")
        let b = try bed.attach("web1", bridge: "br1", ifname: "eth2", ip: "10.9.0.5/16", mac: "02:00:00:00:00:03")
        #expect(try bed.detach("web1", ifname: "eth1").map(\.id) == [a.id])
        var w = bed.host.snapshot
        #expect(w.ports[a.hostIfname] == nil && w.hostLinks[a.hostIfname] == nil)
        #expect(w.released == [a.mac])
        #expect(w.netns["web1"] != nil, "eth2 keeps the netns link")
        #expect(try bed.problems() == [])
        #expect(try bed.detach("web1").map(\.id) == [b.id])
        w = bed.host.snapshot
        #expect(w.ports.isEmpty && w.hostLinks.isEmpty && w.netns.isEmpty && w.leases.isEmpty)
        #expect(try bed.records() == [])
    }

    @Test func aPassThatConfirmsLaterAppliesTheLeaseAndTheTimerConfirmsIt() throws {
        let bed = Bed()
        let db = bed.host.run(name: "db1")
        let d = try bed.attach("db1", dhcp: true, mac: "02:00:00:00:00:02")
        let lease = try #require(d.lease)
        bed.host.restart(db)
        var w = bed.host.snapshot
        w.now = w.now.adding(seconds: 60)
        bed.host.snapshot = w

        let report = try Reconcile(environment: bed.environment, logger: bed.logger).run(dryRun: false, confirmLeasesLater: true)
        #expect(report.exitCode == 0)
        w = bed.host.snapshot
        #expect(w.namespaces[w.containers[db]!.ns]?.addresses["eth1"] == [lease.address], "the address is back before any answer")
        let applied = try #require(try bed.records().first?.lease)
        #expect(!applied.confirmed && applied.obtainedAt == lease.obtainedAt, "no exchange yet: \(applied)")
        #expect(LeaseLifecycle.due(applied, at: w.now) == .confirm)
        #expect(try bed.problems() == [])

        let outcomes = try RenewLeases(environment: bed.environment, logger: bed.logger).run(all: false)
        #expect(outcomes.map(\.due) == [.confirm])
        #expect(outcomes.first?.error == nil)
        let confirmed = try #require(try bed.records().first?.lease)
        #expect(confirmed.confirmed && confirmed.obtainedAt == w.now && confirmed.address == lease.address)
        #expect(try bed.problems() == [])
    }

    @Test func renewLeasesRenewsWhatIsDueAtT1() throws {
        let bed = Bed()
        bed.host.run(name: "web1")
        let a = try bed.attach("web1", dhcp: true, mac: "02:00:00:00:00:01")
        #expect(try RenewLeases(environment: bed.environment, logger: bed.logger).run(all: false).isEmpty, "nothing due yet")
        var w = bed.host.snapshot
        w.now = w.now.adding(seconds: MemoryDHCP.leaseSeconds / 2 + 1)
        bed.host.snapshot = w
        let outcomes = try RenewLeases(environment: bed.environment, logger: bed.logger).run(all: false)
        #expect(outcomes.map(\.due) == [.renew])
        #expect(outcomes.first?.error == nil)
        let renewed = try #require(try bed.records().first?.lease)
        #expect(renewed.obtainedAt == w.now && renewed.address == a.lease?.address)
        #expect(try bed.problems() == [])
    }

    @Test func aStoppedContainerIsUnpluggedAndRepairedWhenItStartsAgain() throws {
        let bed = Bed()
        let web = bed.host.run(name: "web1")
        let a = try bed.attach("web1", ip: "10.1.2.50/24", mac: "02:00:00:00:00:01")
        bed.host.stop(web)
        try bed.reconcile()
        #expect(try bed.records().map(\.status) == [.down])
        #expect(bed.host.snapshot.ports[a.hostIfname] == nil)
        #expect(try bed.problems() == [])
        bed.host.restart(web)
        try bed.reconcile()
        #expect(try bed.problems() == [])
    }
}
