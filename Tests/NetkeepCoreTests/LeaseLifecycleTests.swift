import NetkeepCore
import Testing

/// The lease state machine with explicit timestamps: T0 is when the lease was
/// granted, T1 = T0+1800, T2 = T0+3150, expiry = T0+3600.
@Suite struct LeaseLifecycleTests {
    static let t0 = Timestamp(secondsSinceEpoch: 1_800_000_000)
    static let t1 = t0.adding(seconds: 1800)
    static let t2 = t0.adding(seconds: 3150)
    static let expiry = t0.adding(seconds: 3600)

    static func lease(confirmed: Bool = true, retryAt: Timestamp? = nil, address: String = "10.1.2.50/24") -> Lease {
        var l = Lease(address: try! IPv4CIDR(parsing: address), router: IPv4Address(10, 1, 2, 1), serverID: IPv4Address(10, 1, 2, 1),
                      leaseSeconds: 3600, renewSeconds: 1800, rebindSeconds: 3150, obtainedAt: t0, renewAt: t1, rebindAt: t2,
                      confirmed: confirmed)
        l.retryAt = retryAt
        return l
    }

    static func attachment(_ n: UInt8, mode: AddressMode = .dhcp, status: AttachmentStatus = .ready, lease: Lease?) -> NetkeepCore.Attachment {
        var a = NetkeepCore.Attachment(containerID: String(repeating: String(n), count: 64), containerName: "c\(n)", ifname: "eth1", bridge: "br0",
                           mac: MACAddress(bytes: [2, 0, 0, 0, 0, n])!, mtu: 1500, vlan: nil, mode: mode,
                           address: lease?.address, gateway: lease?.router, netnsLink: nil, status: status, createdAt: t0)
        a.lease = lease
        return a
    }

    // MARK: phases and what is due

    @Test(arguments: [
        (0, LeaseLifecycle.Phase.bound), (1799, .bound), (1800, .renewing), (3149, .renewing),
        (3150, .rebinding), (3599, .rebinding), (3600, .expired), (100_000, .expired),
    ] as [(Int64, LeaseLifecycle.Phase)])
    func phaseBoundariesBelongToTheLaterPhase(_ offset: Int64, _ phase: LeaseLifecycle.Phase) {
        #expect(LeaseLifecycle.phase(of: Self.lease(), at: Self.t0.adding(seconds: offset)) == phase)
    }

    @Test(arguments: [
        (0, LeaseLifecycle.Due?.none), (1799, nil), (1800, .renew), (3149, .renew), (3150, .rebind), (3599, .rebind), (3600, .expired),
    ] as [(Int64, LeaseLifecycle.Due?)])
    func dueFollowsThePhase(_ offset: Int64, _ due: LeaseLifecycle.Due?) {
        #expect(LeaseLifecycle.due(Self.lease(), at: Self.t0.adding(seconds: offset)) == due)
    }

    @Test func anUnconfirmedLeaseIsConfirmedInAnyPhaseUntilItExpires() {
        let l = Self.lease(confirmed: false)
        for offset: Int64 in [0, 1799, 1800, 3150, 3599] {
            #expect(LeaseLifecycle.phase(of: l, at: Self.t0.adding(seconds: offset)) == .unconfirmed, "at T0+\(offset)")
            #expect(LeaseLifecycle.due(l, at: Self.t0.adding(seconds: offset)) == .confirm, "at T0+\(offset)")
        }
        #expect(LeaseLifecycle.phase(of: l, at: Self.expiry) == .expired)
        #expect(LeaseLifecycle.due(l, at: Self.expiry) == .expired)
    }

    @Test func retryAtHoldsTheDueUntilExactlyThen() {
        let retry = Self.t1.adding(seconds: 45)
        let l = Self.lease(retryAt: retry)
        #expect(LeaseLifecycle.phase(of: l, at: Self.t1) == .renewing, "the phase is the lease's, whatever the retry")
        #expect(LeaseLifecycle.due(l, at: Self.t1) == nil)
        #expect(LeaseLifecycle.due(l, at: retry.adding(seconds: -1)) == nil)
        #expect(LeaseLifecycle.due(l, at: retry) == .renew)
        // A retry past expiry holds an expired lease too.
        let late = Self.lease(retryAt: Self.expiry.adding(seconds: 10))
        #expect(LeaseLifecycle.due(late, at: Self.expiry) == nil)
        #expect(LeaseLifecycle.due(late, at: Self.expiry.adding(seconds: 10)) == .expired)
    }

    @Test func dueInStateTakesReadyDHCPAttachmentsWithALease() {
        let now = Self.t1
        let state = State(attachments: [
            Self.attachment(1, lease: Self.lease()),
            Self.attachment(2, lease: nil),
            Self.attachment(3, status: .pending, lease: Self.lease()),
            Self.attachment(4, status: .down, lease: Self.lease()),
            Self.attachment(5, lease: Self.lease(retryAt: now.adding(seconds: 1))),
            Self.attachment(6, lease: Self.lease(confirmed: false)),
        ])
        let due = LeaseLifecycle.due(in: state, at: now)
        #expect(due.map(\.0.containerName) == ["c1", "c6"])
        #expect(due.map(\.1) == [.renew, .confirm])
        #expect(LeaseLifecycle.due(in: state, at: Self.t1.adding(seconds: -1)).map(\.0.containerName) == ["c6"])
    }

    // MARK: next wake

    @Test func nextWakeIsT1OrTheLaterRetry() {
        #expect(LeaseLifecycle.nextWake(of: Self.lease()) == Self.t1)
        #expect(LeaseLifecycle.nextWake(of: Self.lease(retryAt: Self.t1.adding(seconds: 60))) == Self.t1.adding(seconds: 60))
        #expect(LeaseLifecycle.nextWake(of: Self.lease(retryAt: Self.t0.adding(seconds: 5))) == Self.t1, "a stale retry does not wake early")
        #expect(LeaseLifecycle.nextWake(of: Self.lease(confirmed: false)) == Self.t0, "unconfirmed: at once")
        #expect(LeaseLifecycle.nextWake(of: Self.lease(confirmed: false, retryAt: Self.t0.adding(seconds: 30))) == Self.t0.adding(seconds: 30))
        var short = Self.lease()
        short.renewAt = Self.expiry.adding(seconds: 100)
        #expect(LeaseLifecycle.nextWake(of: short) == Self.expiry, "never later than expiry")
    }

    @Test func nextWakeInStateIsTheEarliestOfTheLeasesThatCount() {
        let state = State(attachments: [
            Self.attachment(1, lease: Self.lease(retryAt: Self.t1.adding(seconds: 600))),
            Self.attachment(2, lease: Self.lease(retryAt: Self.t1.adding(seconds: 90))),
            Self.attachment(3, status: .pending, lease: Self.lease(confirmed: false)),
            Self.attachment(4, lease: nil),
        ])
        #expect(LeaseLifecycle.nextWake(in: state) == Self.t1.adding(seconds: 90))
        #expect(LeaseLifecycle.nextWake(in: State(attachments: [Self.attachment(4, lease: nil)])) == nil)
    }

    @Test func aLeaseAskedForOutOfTurnIsDueAtOnceUnlessItExpired() throws {
        let waiting = Self.lease(retryAt: Self.t1.adding(seconds: 600))
        let asked = try #require(LeaseLifecycle.dueNow(waiting, at: Self.t0.adding(seconds: 10)))
        #expect(asked.renewAt == Self.t0.adding(seconds: 10) && asked.retryAt == nil)
        #expect(LeaseLifecycle.due(asked, at: Self.t0.adding(seconds: 10)) == .renew)
        #expect(LeaseLifecycle.dueNow(waiting, at: Self.t2)?.renewAt == Self.t1, "a renewal already due keeps its T1")
        #expect(LeaseLifecycle.dueNow(waiting, at: Self.expiry) == nil)
    }

    @Test func cniLeasesWakeTheDaemonToRenewLiveOnesAndReleaseKeptOnes() {
        func record(_ id: String, status: CNIAttachmentStatus, lease: Lease?) -> CNIAttachment {
            var a = CNIAttachment(network: "n", containerID: id, ifname: "eth0", netns: "/run/netns/\(id)", bridge: "br0",
                                  mac: MACAddress(bytes: [2, 0, 0, 0, 1, UInt8(id.count)])!, mtu: 1500, vlan: nil, ipam: CNIRules.builtInDHCP,
                                  createdAt: Self.t0)
            a.status = status
            a.lease = lease
            return a
        }
        var state = State()
        state.cni = [record("a", status: .ready, lease: Self.lease()), record("bb", status: .pending, lease: Self.lease(confirmed: false)),
                     record("ccc", status: .ready, lease: nil)]
        #expect(LeaseLifecycle.nextWake(in: state) == Self.t1, "the pending record does not count")
        #expect(LeaseLifecycle.dueCNI(in: state, at: Self.t1.adding(seconds: -1)).isEmpty)
        #expect(LeaseLifecycle.dueCNI(in: state, at: Self.t1).map { $0.0.containerID + "/\($0.1)" } == ["a/\(LeaseLifecycle.Due.renew)"])
        state.cniLeases = [CNIKeptLease(network: "n", bridge: "br0", vlan: nil, mac: MACAddress(bytes: [2, 0, 0, 0, 2, 1])!,
                                        lease: Self.lease(), releaseAt: Self.t0.adding(seconds: 600))]
        #expect(LeaseLifecycle.nextWake(in: state) == Self.t0.adding(seconds: 600), "a kept lease wakes the daemon at its release time")
    }

    // MARK: after a pass

    @Test func afterAttemptKeepsTheExchangesOwnWaitAndClearsItOnceMovedOn() {
        let now = Self.t1
        let silent = LeaseLifecycle.after(lease: Self.lease(), exchange: .renew, answer: .silent, at: now).lease!
        #expect(LeaseLifecycle.afterAttempt(silent, at: now) == silent, "the RFC 2131 4.4.5 wait stays")
        let untouched = LeaseLifecycle.afterAttempt(Self.lease(), at: now)
        #expect(untouched.retryAt == now.adding(seconds: LeaseLifecycle.retrySeconds), "no exchange (no container): the short wait")
        #expect(LeaseLifecycle.afterAttempt(Self.lease(retryAt: now.adding(seconds: 5)), at: Self.t0).retryAt == nil, "not due: no retry")
    }

    // MARK: the decision after an exchange, phase by phase

    /// Each phase with the exchange RenewLeases or the executor asks for in it
    /// (bound: `dhcp-renew --all`), at a moment inside the phase.
    static let phases: [(LeaseLifecycle.Phase, Lease, LeaseLifecycle.Exchange, Timestamp)] = [
        (.bound, lease(), .renew, t0.adding(seconds: 100)),
        (.unconfirmed, lease(confirmed: false), .initReboot, t0.adding(seconds: 100)),
        (.renewing, lease(), .renew, t1),
        (.rebinding, lease(), .rebind, t2),
        (.expired, lease(), .initReboot, expiry),
    ]

    @Test(arguments: phases)
    func aGrantIsAppliedInEveryPhase(_ phase: LeaseLifecycle.Phase, _ old: Lease, _ exchange: LeaseLifecycle.Exchange, _ now: Timestamp) {
        #expect(LeaseLifecycle.phase(of: old, at: now) == phase)
        var granted = Self.lease(address: "10.1.2.51/24")
        granted.obtainedAt = now
        granted.retryAt = now.adding(seconds: 5)
        let outcome = LeaseLifecycle.after(lease: old, exchange: exchange, answer: .granted(granted), at: now)
        var expected = granted
        expected.retryAt = nil
        #expect(outcome == LeaseLifecycle.Outcome(lease: expected, address: .apply))
    }

    @Test(arguments: phases)
    func aRefusalStartsOverInEveryPhase(_ phase: LeaseLifecycle.Phase, _ old: Lease, _ exchange: LeaseLifecycle.Exchange, _ now: Timestamp) {
        let outcome = LeaseLifecycle.after(lease: old, exchange: exchange, answer: .refused, at: now)
        #expect(outcome == LeaseLifecycle.Outcome(lease: nil, address: .clear, problem: "the DHCP server refused 10.1.2.50/24", startOver: true))
    }

    @Test func aRefusedOfferStartsOverToo() {
        // dnsmasq offered the same free address to two clients; the second REQUEST gets a NAK.
        let outcome = LeaseLifecycle.after(lease: nil, exchange: .discover, answer: .refused, at: Self.t0)
        #expect(outcome.startOver)
        #expect(outcome.lease == nil && outcome.address == .clear)
        #expect(outcome.problem == "the DHCP server refused the address it had offered")
    }

    @Test func silenceWhileBoundKeepsTheAddressAndWaitsHalfwayToT2() {
        let now = Self.t0.adding(seconds: 100)
        let outcome = LeaseLifecycle.after(lease: Self.lease(), exchange: .renew, answer: .silent, at: now)
        #expect(outcome == LeaseLifecycle.Outcome(lease: Self.lease(retryAt: now.adding(seconds: 1525)), address: .keep))
    }

    @Test func silenceWhileRenewingWaitsHalfTheTimeToT2AndStaysRenewing() {
        let outcome = LeaseLifecycle.after(lease: Self.lease(), exchange: .renew, answer: .silent, at: Self.t1)
        let retry = Self.t1.adding(seconds: 675)
        #expect(outcome == LeaseLifecycle.Outcome(lease: Self.lease(retryAt: retry), address: .keep))
        #expect(LeaseLifecycle.due(outcome.lease!, at: retry) == .renew)
        // Close to T2 the wait is a minute, but never past T2: then it rebinds.
        let late = LeaseLifecycle.after(lease: Self.lease(), exchange: .renew, answer: .silent, at: Self.t2.adding(seconds: -30))
        #expect(late.lease?.retryAt == Self.t2)
        #expect(LeaseLifecycle.due(late.lease!, at: Self.t2) == .rebind)
        let minute = LeaseLifecycle.after(lease: Self.lease(), exchange: .renew, answer: .silent, at: Self.t2.adding(seconds: -100))
        #expect(minute.lease?.retryAt == Self.t2.adding(seconds: -40), "at least 60 s")
    }

    @Test func silenceWhileRebindingWaitsHalfTheTimeToExpiryAndStaysRebinding() {
        let outcome = LeaseLifecycle.after(lease: Self.lease(), exchange: .rebind, answer: .silent, at: Self.t2)
        let retry = Self.t2.adding(seconds: 225)
        #expect(outcome == LeaseLifecycle.Outcome(lease: Self.lease(retryAt: retry), address: .keep))
        #expect(LeaseLifecycle.due(outcome.lease!, at: retry) == .rebind, "not back to a unicast renewal")
        let late = LeaseLifecycle.after(lease: Self.lease(), exchange: .rebind, answer: .silent, at: Self.expiry.adding(seconds: -10))
        #expect(late.lease?.retryAt == Self.expiry)
        #expect(LeaseLifecycle.due(late.lease!, at: Self.expiry) == .expired)
    }

    @Test func silenceOnInitRebootOfAValidLeaseKeepsItUnconfirmed() {
        let now = Self.t0.adding(seconds: 100)
        for old in [Self.lease(), Self.lease(confirmed: false)] {
            let outcome = LeaseLifecycle.after(lease: old, exchange: .initReboot, answer: .silent, at: now)
            #expect(outcome == LeaseLifecycle.Outcome(lease: Self.lease(confirmed: false, retryAt: now.adding(seconds: 30)), address: .apply))
            #expect(LeaseLifecycle.due(outcome.lease!, at: now.adding(seconds: 29)) == nil)
            #expect(LeaseLifecycle.due(outcome.lease!, at: now.adding(seconds: 30)) == .confirm)
        }
        let nearEnd = LeaseLifecycle.after(lease: Self.lease(), exchange: .initReboot, answer: .silent, at: Self.expiry.adding(seconds: -10))
        #expect(nearEnd.lease?.retryAt == Self.expiry, "never asked again after expiry")
    }

    @Test func silenceOnARenewalOfAnUnconfirmedLeaseConfirmsAsSoonAsBefore() {
        let now = Self.t0.adding(seconds: 100)
        let outcome = LeaseLifecycle.after(lease: Self.lease(confirmed: false), exchange: .renew, answer: .silent, at: now)
        #expect(outcome == LeaseLifecycle.Outcome(lease: Self.lease(confirmed: false, retryAt: now.adding(seconds: 30)), address: .keep))
    }

    @Test(arguments: [LeaseLifecycle.Exchange.initReboot, .renew, .rebind, .discover])
    func silenceAfterExpiryClearsTheAddressAndKeepsTheRecordToAskAgain(_ exchange: LeaseLifecycle.Exchange) {
        let now = Self.expiry
        let outcome = LeaseLifecycle.after(lease: Self.lease(), exchange: exchange, answer: .silent, at: now)
        #expect(outcome.lease == Self.lease(retryAt: now.adding(seconds: 30)))
        #expect(outcome.address == .clear && !outcome.startOver)
        #expect(outcome.problem == "the lease of 10.1.2.50/24 expired at \(Self.expiry); the address was removed")
    }

    @Test func silenceWithoutALeaseLeavesNone() {
        let outcome = LeaseLifecycle.after(lease: nil, exchange: .discover, answer: .silent, at: Self.t0)
        #expect(outcome == LeaseLifecycle.Outcome(lease: nil, address: .keep, problem: "no address is leased"))
    }

    @Test func aGrantAfterDiscoverIsApplied() {
        let outcome = LeaseLifecycle.after(lease: nil, exchange: .discover, answer: .granted(Self.lease()), at: Self.t0)
        #expect(outcome == LeaseLifecycle.Outcome(lease: Self.lease(), address: .apply))
    }
}
