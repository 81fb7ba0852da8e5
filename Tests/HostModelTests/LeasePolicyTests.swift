import DHCP
import NetkeepCore
@testable import NetkeepService
import Testing

/// The retransmission budgets of the lease keeper's exchanges.
@Suite struct LeasePolicyTests {
    func waits(_ p: RetransmitPolicy, jitter: Double) -> [Double] { (1...p.attempts).map { p.delay(attempt: $0, jitter: jitter) } }

    @Test func aDiscoverRepeatsWithinASecondAndStillOutlastsAPingingServer() {
        let p = LeaseKeeper.policy(for: .discover)
        #expect((waits(p, jitter: 1).first ?? .infinity) <= 1.25, "a lost first OFFER costs at most about a second")
        #expect((waits(p, jitter: -1).first ?? 0) >= 0.75)
        #expect(waits(p, jitter: -1).reduce(0, +) > 30, "long enough for dnsmasq's serialized pings of many new addresses")
        #expect(waits(p, jitter: 1).reduce(0, +) < 60)
        #expect(zip(waits(p, jitter: 0), waits(p, jitter: 0).dropFirst()).allSatisfy { $1 >= $0 }, "backs off")
    }

    @Test func confirmationsStartAt25msAndSlowDownForABatch() {
        let one = LeaseKeeper.policy(for: .initReboot(IPv4Address(10, 1, 2, 3)), batch: 1)
        let many = LeaseKeeper.policy(for: .initReboot(IPv4Address(10, 1, 2, 3)), batch: 32)
        #expect(abs(one.initial - 0.025) < 1e-9 && many.initial > one.initial)
        #expect(waits(many, jitter: 0).reduce(0, +) <= 6.4 + 1e-9)
    }
}
