import NetkeepCore
import Testing

/// DESIGN.md rule 6: what netkeep writes, it could read back.
@Suite struct RecordRulesTests {
    func attachment(name: String = "web1", address: String? = "10.1.2.5/24", gateway: String? = nil) -> NetkeepCore.Attachment {
        NetkeepCore.Attachment(containerID: String(repeating: "a", count: 64), containerName: name, ifname: "eth1", bridge: "br0",
                   mac: MACAddress(bytes: [2, 0, 0, 0, 0, 1])!, mtu: 1500, vlan: nil, mode: .static,
                   address: address.map { try! IPv4CIDR(parsing: $0) }, gateway: gateway.map { try! IPv4Address(parsing: $0) },
                   netnsLink: name, status: .ready, createdAt: Timestamp(secondsSinceEpoch: 0))
    }

    @Test func containerNamesUpToAFileNameAreKeptLongerOnesRefused() {
        let longest = String(repeating: "n", count: Names.maxContainerNameLength)
        #expect(attachment(name: longest).problems().isEmpty)
        #expect(attachment(name: longest + "n").problems().first?.contains("at most 255") == true)
        #expect((try? Names.containerReference(longest + "n")) == nil)
        #expect(Names.isContainerReference(longest) && !Names.isContainerReference(longest + "n"))
    }

    @Test func anAdopted32WithAnOnLinkGatewayIsRefused() {
        // `ip addr add 10.1.2.5/32` + `ip route add default via 10.1.2.1 onlink`, as some setups do.
        let problems = attachment(address: "10.1.2.5/32", gateway: "10.1.2.1").problems()
        #expect(problems.contains { $0.contains("gateway") && $0.contains("outside") })
    }

    @Test func leasesMustBeRecordable() {
        let now = Timestamp(secondsSinceEpoch: 1_800_000_000)
        func lease(_ cidr: String, seconds: Int64 = 3600, t1: Int64 = 1800, router: IPv4Address? = nil) -> Lease {
            Lease(address: try! IPv4CIDR(parsing: cidr),
                  router: router, serverID: IPv4Address(10, 1, 2, 1), leaseSeconds: seconds,
                  renewSeconds: t1, rebindSeconds: seconds * 7 / 8, obtainedAt: now, renewAt: now.adding(seconds: t1), rebindAt: now.adding(seconds: seconds * 7 / 8))
        }
        #expect((try? lease("10.1.2.50/24").check()) != nil)
        // Timing minimums are for replies (ClientMachine refuses them); an older file still loads.
        #expect((try? lease("10.1.2.50/24", seconds: 3600, t1: 0).check()) != nil)
        #expect(throws: InputError.self) { try lease("10.1.2.50/24", seconds: 3600, t1: 4000).check() }
        #expect(throws: InputError.self) { try lease("10.1.2.50/24", router: IPv4Address(10, 9, 9, 9)).check() }
        #expect(throws: InputError.self) { try lease("10.1.2.50/24", router: IPv4Address(10, 1, 2, 50)).check() }
    }

    @Test func aStateWithAnInvalidLeaseIsAProblemForSaveAndLoadAlike() {
        var a = attachment()
        a.mode = .dhcp
        let now = Timestamp(secondsSinceEpoch: 1_800_000_000)
        a.lease = Lease(address: try! IPv4CIDR(address: IPv4Address(10, 1, 2, 255), prefixLength: 24), router: nil,
                        serverID: IPv4Address(10, 1, 2, 1), leaseSeconds: 3600, renewSeconds: 1800, rebindSeconds: 3150,
                        obtainedAt: now, renewAt: now, rebindAt: now)
        a.address = a.lease!.address
        let state = State(attachments: [a])
        #expect(state.problems().contains { $0.contains("broadcast") })
    }

    @Test(arguments: [IPv4Address(0, 1, 2, 3), IPv4Address(127, 0, 0, 2), IPv4Address(224, 0, 0, 1), IPv4Address(UInt32.max)])
    func addressRulesRefuseWhatIsNoHostAddress(_ address: IPv4Address) throws {
        #expect(throws: InputError.self) { try AddressRules.check(IPv4CIDR(address: address, prefixLength: 32), role: "x") }
    }

    @Test func hostAddressesPassIncludingPointToPoint() throws {
        try AddressRules.check(IPv4CIDR(parsing: "10.1.2.3/32"), role: "x")
        try AddressRules.check(IPv4CIDR(address: IPv4Address(10, 1, 2, 0), prefixLength: 31), role: "x")
        #expect(throws: InputError.self) { try AddressRules.check(IPv4CIDR(address: IPv4Address(10, 1, 2, 0), prefixLength: 24), role: "x") }
    }

    @Test func aDueAttemptThatChangedNothingWaitsBeforeTheNext() {
        let now = Timestamp(secondsSinceEpoch: 1_800_000_000)
        let expired = Lease(address: try! IPv4CIDR(parsing: "10.1.2.50/24"), router: nil, serverID: IPv4Address(10, 1, 2, 1),
                            leaseSeconds: 3600, renewSeconds: 1800, rebindSeconds: 3150,
                            obtainedAt: now.adding(seconds: -7200), renewAt: now.adding(seconds: -5400), rebindAt: now.adding(seconds: -4050))
        #expect(LeaseLifecycle.due(expired, at: now) == .expired)
        let after = LeaseLifecycle.afterAttempt(expired, at: now)
        #expect(after.retryAt == now.adding(seconds: LeaseLifecycle.retrySeconds))
        #expect(LeaseLifecycle.due(after, at: now.adding(seconds: 1)) == nil, "not again a second later")
        #expect(LeaseLifecycle.due(after, at: now.adding(seconds: 30)) == .expired)
        var renewed = after
        renewed.obtainedAt = now
        renewed.renewAt = now.adding(seconds: 1800)
        renewed.rebindAt = now.adding(seconds: 3150)
        #expect(LeaseLifecycle.afterAttempt(renewed, at: now).retryAt == nil)
    }
}
