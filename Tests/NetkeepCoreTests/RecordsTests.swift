import NetkeepCore
import Testing

@Suite struct RecordsTests {
    @Test func aPassWritesBackOnlyTheContainersItClaimed() {
        var w = World()
        let a = w.addHealthy(1)
        let b = w.addHealthy(2)
        let file = w.state
        // The pass saw a and b, claimed only a, changed both and made a new record for a.
        var pass = file
        var a2 = a
        a2.status = .down
        pass.upsert(a2)
        var b2 = b
        b2.status = .removing
        pass.upsert(b2)
        let extra = w.addHealthy(1, ifname: "eth2")
        pass.upsert(extra)
        // Meanwhile b's holder removed b's record, and a third container was attached.
        var now = file
        now.remove(id: b.id)
        var other = World()
        let c = other.addHealthy(3)
        now.upsert(c)

        let merged = now.merging(pass, for: [a.containerID])
        #expect(merged.attachments.map(\.id) == [a.id, c.id, extra.id])
        #expect(merged.attachments.first { $0.id == a.id }?.status == .down)
        #expect(!merged.attachments.contains { $0.id == b.id }, "b's holder removed it; the pass must not bring it back")
    }

    @Test func aRecordThePassRemovedGoesAndTheNewestEventTimeStays() {
        var w = World()
        let a = w.addHealthy(1)
        var file = w.state
        file.lastEventNano = 200
        var pass = file
        pass.remove(id: a.id)
        pass.lastEventNano = 100
        let merged = file.merging(pass, for: [a.containerID])
        #expect(merged.attachments.isEmpty)
        #expect(merged.lastEventNano == 200)
        #expect(merged.only([a.containerID]).attachments.isEmpty)
    }
}
