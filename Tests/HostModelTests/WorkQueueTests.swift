@testable import NetkeepService
import Testing

/// How the daemon's queue hands out container events: batched, the latest
/// event of a container deciding, container repairs before full passes.
@Suite struct WorkQueueTests {
    static func id(_ n: Int) -> String { String(repeating: String(n % 10), count: 63) + String(n / 10 % 10) }

    @Test func eventsWaitingTogetherAreOneBatchOfAtMost64() async {
        let queue = WorkQueue()
        for n in 0..<70 { await queue.submit(.container(Self.id(n), eventNano: Int64(n))) }
        guard case .containers(let first)? = await queue.next() else { Issue.record("no batch"); return }
        #expect(first.count == WorkQueue.batch)
        #expect(first.map(\.id) == (0..<64).map(Self.id), "the order of arrival is kept")
        guard case .containers(let rest)? = await queue.next() else { Issue.record("no second batch"); return }
        #expect(rest.map(\.id) == (64..<70).map(Self.id))
    }

    @Test func theLatestEventOfAContainerDecides() async {
        let queue = WorkQueue()
        await queue.submit(.containerDown(Self.id(1), eventNano: 10))
        await queue.submit(.container(Self.id(2), eventNano: 11))
        await queue.submit(.container(Self.id(1), eventNano: 12))
        await queue.submit(.containerDown(Self.id(2), eventNano: 13))
        // A replayed older event does not undo a newer one.
        await queue.submit(.containerDown(Self.id(1), eventNano: 5))
        let work = await queue.next()
        #expect(work == .containers([ContainerEvent(id: Self.id(1), down: false, nano: 12),
                                     ContainerEvent(id: Self.id(2), down: true, nano: 13)]))
    }

    @Test func aFullPassWaitsForTheContainerRepairsButNotForever() async {
        let queue = WorkQueue()
        await queue.submit(.full)
        await queue.submit(.container(Self.id(1), eventNano: 1))
        #expect(await queue.next() == .containers([ContainerEvent(id: Self.id(1), down: false, nano: 1)]))
        #expect(await queue.next() == .full)
        // A steady stream of events: after `fairness` batches the full pass goes first.
        await queue.submit(.full)
        var order: [String] = []
        for n in 0..<(WorkQueue.fairness + 2) {
            await queue.submit(.container(Self.id(n), eventNano: Int64(n)))
            switch await queue.next() {
            case .full?: order.append("full")
            case .containers?: order.append("batch")
            default: order.append("other")
            }
        }
        #expect(order.contains("full"))
        #expect(order.firstIndex(of: "full") == WorkQueue.fairness)
    }
}
