import NetkeepCore
@testable import NetkeepService
import Testing

/// Containers that declare their attachments with labels, against the in-memory host.
@Suite struct DeclareTests {
    static let labels = [
        "netkeep.eth1.bridge": "br0", "netkeep.eth1.ip": "10.1.2.60/24", "netkeep.eth1.gateway": "10.1.2.1",
        "netkeep.eth1.mac": "02:00:00:00:01:01", "netkeep.eth1.vlan": "7",
        "netkeep.eth2.bridge": "br1", "netkeep.eth2.ip": "dhcp", "netkeep.eth2.mtu": "1400",
        "com.example.other": "left alone",
    ]

    func declare(_ bed: Bed, dryRun: Bool = false) throws -> Declare.Outcome {
        try Declare(environment: bed.environment, logger: bed.logger).run(dryRun: dryRun)
    }

    @Test func declaredInterfacesArePendingRecordsThatThePassMakes() throws {
        let bed = Bed()
        let web = bed.host.run(name: "web1", labels: Self.labels)
        bed.host.run(name: "plain")

        let preview = try declare(bed, dryRun: true)
        #expect(preview.declared.map(\.ifname) == ["eth1", "eth2"])
        #expect(try bed.records().isEmpty, "a dry run writes nothing")

        let outcome = try declare(bed)
        #expect(outcome.refused.isEmpty && outcome.failed.isEmpty)
        let pending = try bed.records()
        #expect(pending.map(\.ifname) == ["eth1", "eth2"])
        #expect(pending.allSatisfy { $0.status == .pending && $0.declaredBy == .labels && $0.containerID == web })

        let report = try bed.reconcile()
        #expect(report.exitCode == 0)
        #expect(report.plan.actions.contains { if case .createVeth(_, _, .declaredByLabels) = $0 { return true } else { return false } })
        let made = try bed.records()
        #expect(made.map(\.status) == [.ready, .ready])
        let eth1 = try #require(made.first { $0.ifname == "eth1" })
        #expect(eth1.bridge == "br0" && eth1.vlan == 7 && eth1.mac.description == "02:00:00:00:01:01")
        #expect(eth1.address?.description == "10.1.2.60/24" && eth1.gateway?.description == "10.1.2.1")
        let eth2 = try #require(made.first { $0.ifname == "eth2" })
        #expect(eth2.bridge == "br1" && eth2.mode == .dhcp && eth2.mtu == 1400 && eth2.lease != nil)
        #expect(try bed.problems() == [])

        // Declared once: the next look finds the records.
        #expect(try declare(bed).isEmpty)
        #expect(try bed.reconcile().plan.actions.isEmpty)
    }

    @Test func aContainerWithOneBadLabelIsLeftAloneAndSaysWhy() throws {
        let bed = Bed()
        var labels = Self.labels
        labels["netkeep.eth2.mtu"] = "9\n9"
        labels["netkeep.eth3.brige"] = "br0"
        bed.host.run(name: "bad1", labels: labels)
        let outcome = try declare(bed)
        #expect(outcome.declared.isEmpty)
        let refused = try #require(outcome.refused.first)
        #expect(refused.container.name == "bad1")
        #expect(Set(refused.problems.map(\.key)) == ["netkeep.eth2.mtu", "netkeep.eth3.brige", "netkeep.eth3.bridge", "netkeep.eth3.ip"])
        #expect(try bed.records().isEmpty)
        let line = try #require(outcome.lines.first)
        #expect(line.contains("bad1") && line.contains("netkeep.eth3.brige") && line.contains("nothing attached") && !line.contains("\n"), "\(line)")
        #expect(bed.host.snapshot.ports.isEmpty)
    }

    @Test func oneInterfaceOnAMissingBridgeKeepsTheWholeContainerWaiting() throws {
        let bed = Bed()
        bed.host.run(name: "web1", labels: ["netkeep.eth1.bridge": "nosuchbr", "netkeep.eth1.ip": "10.1.2.61/24",
                                            "netkeep.eth2.bridge": "br0", "netkeep.eth2.ip": "10.1.2.62/24"])
        let outcome = try declare(bed)
        #expect(outcome.declared.isEmpty)
        #expect(outcome.failed.map(\.ifname) == ["eth1"])
        let error = outcome.failed.first?.error ?? ""
        #expect(error.contains("bridge \"nosuchbr\" does not exist") && error.contains("so eth2 waits too"), "\(outcome.failed)")
        #expect(try bed.records().isEmpty)
        #expect(bed.host.snapshot.ports.isEmpty)
        // Once the bridge exists, the next look declares both.
        var w = bed.host.snapshot
        w.bridges["nosuchbr"] = "netdev"
        bed.host.snapshot = w
        #expect(try declare(bed).declared.map(\.ifname) == ["eth1", "eth2"])
    }

    @Test func labelsWinOverAnAttachThatDiffers() throws {
        let bed = Bed()
        bed.host.run(name: "web1", labels: Self.labels)
        do {
            _ = try bed.attach("web1", bridge: "br1", ifname: "eth1", ip: "10.1.2.60/24", gateway: "10.1.2.1", mac: "02:00:00:00:01:01", vlan: 7)
            Issue.record("an attach that differs from the labels was let through")
        } catch {
            #expect("\(error)".contains("labels win") && "\(error)".contains("bridge: labels say \"br0\", the request says \"br1\""), "\(error)")
        }
        #expect(try bed.records().isEmpty)
        // The same values: made, and recorded as the labels'.
        let made = try bed.attach("web1", bridge: "br0", ifname: "eth1", ip: "10.1.2.60/24", gateway: "10.1.2.1", mac: "02:00:00:00:01:01", vlan: 7)
        #expect(made.declaredBy == .labels && made.status == .ready)
        // An interface the labels do not mention is the operator's.
        let extra = try bed.attach("web1", bridge: "br1", ifname: "eth5", ip: "10.9.0.5/16", mac: "02:00:00:00:01:05")
        #expect(extra.declaredBy == nil)
    }
}
