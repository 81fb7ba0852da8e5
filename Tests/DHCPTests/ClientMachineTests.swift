@testable import DHCP
import NetkeepCore
import Testing

@Suite struct ClientMachineTests {
    let mac = MACAddress(bytes: [2, 0, 0, 0, 0, 7])!
    let server = IPv4Address(10, 1, 2, 1)
    let address = IPv4Address(10, 1, 2, 150)

    func reply(_ type: DHCPMessage.MessageType, xid: UInt32, yiaddr: IPv4Address? = nil, lease: UInt32? = 3600,
               mac: MACAddress? = nil) -> DHCPMessage {
        var o = DHCPOptions()
        o.messageType = type
        o.serverID = server
        o.subnetMask = IPv4Address(255, 255, 255, 0)
        o.routers = [server]
        o.leaseTime = lease
        var m = DHCPMessage(op: DHCPMessage.bootReply, xid: xid, chaddr: mac ?? self.mac, options: o)
        m.yiaddr = yiaddr ?? address
        return m
    }

    @Test func discoverOfferRequestAck() throws {
        var m = ClientMachine(goal: .discover, mac: mac, xid: 42, policy: RetransmitPolicy(attempts: 3), jitter: [0.5])
        let start = m.start(now: 100)
        #expect(start.send?.messageType == .discover)
        #expect(start.send?.options.clientID == [1, 2, 0, 0, 0, 0, 7])
        #expect(start.send?.flags == DHCPMessage.broadcastFlag)
        #expect(start.destination == .broadcast)
        #expect(start.wakeAt == 104.5)
        let requestStep = m.receive(reply(.offer, xid: 42), now: 101)
        let request = try #require(requestStep)
        #expect(request.send?.messageType == .request)
        #expect(request.send?.options.requestedAddress == address)
        #expect(request.send?.options.serverID == server)
        let boundStep = m.receive(reply(.ack, xid: 42), now: 101.01)
        let bound = try #require(boundStep)
        guard case .bound(let grant)? = bound.outcome else { Issue.record("not bound: \(bound)"); return }
        #expect(grant.address.description == "10.1.2.150/24")
        #expect(grant.router == server)
        #expect(grant.renewSeconds == 1800 && grant.rebindSeconds == 3150 && grant.leaseSeconds == 3600)
        #expect(m.isDone)
    }

    /// dnsmasq can offer one free address to two clients that DISCOVER at the
    /// same moment; the second REQUEST gets a NAK. The exchange ends as a NAK
    /// (not silence), which LeaseLifecycle turns into one more DISCOVER.
    @Test func aNakOfTheRequestAfterAnOfferEndsTheExchangeAsRefused() throws {
        var m = ClientMachine(goal: .discover, mac: mac, xid: 11, policy: RetransmitPolicy(attempts: 3), jitter: [0])
        #expect(m.start(now: 0).send?.messageType == .discover)
        let requestStep = m.receive(reply(.offer, xid: 11), now: 0.1)
        #expect(requestStep?.send?.messageType == .request)
        #expect(requestStep?.send?.options.requestedAddress == address)
        let nakStep = m.receive(reply(.nak, xid: 11), now: 0.2)
        let nak = try #require(nakStep)
        #expect(nak.outcome == .nak(server: server))
        #expect(nak.send == nil && nak.wakeAt == nil && m.isDone)
        #expect(m.receive(reply(.ack, xid: 11), now: 0.3) == nil, "a late ACK after the NAK is not taken")
        let decision = LeaseLifecycle.after(lease: nil, exchange: .discover, answer: .refused, at: Timestamp(secondsSinceEpoch: 0))
        #expect(decision.startOver && decision.lease == nil)
    }

    /// A NAK before any OFFER is not for this client's DISCOVER: it is ignored.
    @Test func aNakWhileSelectingIsIgnored() {
        var m = ClientMachine(goal: .discover, mac: mac, xid: 12, policy: RetransmitPolicy(attempts: 3), jitter: [0])
        _ = m.start(now: 0)
        #expect(m.receive(reply(.nak, xid: 12), now: 0.1) == nil)
        #expect(!m.isDone)
    }

    @Test func repliesForOthersAreIgnored() {
        var m = ClientMachine(goal: .initReboot(address), mac: mac, xid: 7, policy: RetransmitPolicy(attempts: 2), jitter: [0])
        _ = m.start(now: 0)
        do { let step = m.receive(reply(.ack, xid: 8), now: 1); #expect(step == nil, "other xid") }
        do { let step = m.receive(reply(.ack, xid: 7, mac: MACAddress(bytes: [2, 9, 9, 9, 9, 9])!), now: 1); #expect(step == nil, "other chaddr") }
        do { let step = m.receive(reply(.offer, xid: 7), now: 1); #expect(step == nil, "an OFFER while rebooting") }
        var request = reply(.ack, xid: 7)
        request.op = DHCPMessage.bootRequest
        do { let step = m.receive(request, now: 1); #expect(step == nil, "a request is not a reply") }
        do { let step = m.receive(reply(.ack, xid: 7, yiaddr: IPv4Address(0)), now: 1); #expect(step == nil, "an ACK without an address") }
        #expect(!m.isDone)
    }

    @Test func initRebootAsksForTheSameAddressWithoutServerID() throws {
        var m = ClientMachine(goal: .initReboot(address), mac: mac, xid: 9, policy: RetransmitPolicy(attempts: 2), jitter: [0])
        let s = m.start(now: 0)
        #expect(s.send?.messageType == .request)
        #expect(s.send?.options.requestedAddress == address)
        #expect(s.send?.options.serverID == nil)
        #expect(s.send?.ciaddr.value == 0)
        #expect(s.send?.flags == DHCPMessage.broadcastFlag, "without an address only a broadcast reply can arrive")
        #expect(s.destination == .broadcast)
        let nakStep = m.receive(reply(.nak, xid: 9), now: 0.1)
        let nak = try #require(nakStep)
        #expect(nak.outcome == .nak(server: server))
    }

    @Test func initRebootWithTheAddressInPlaceAsksForAUnicastReply() throws {
        var m = ClientMachine(goal: .initReboot(address), mac: mac, xid: 9, policy: RetransmitPolicy(attempts: 2), jitter: [0], addressInPlace: true)
        let s = m.start(now: 0)
        #expect(s.send?.flags == 0)
        #expect(s.send?.ciaddr.value == 0, "INIT-REBOOT keeps ciaddr zero (RFC 2131 4.3.2)")
        #expect(s.send?.options.requestedAddress == address)
        #expect(s.destination == .broadcast)
        // The retransmission is the same message.
        let again = m.timeout(now: 5)
        #expect(again.send?.flags == 0)
        let received = m.receive(reply(.ack, xid: 9), now: 5.1)
        let ack = try #require(received)
        guard case .bound(let grant)? = ack.outcome else { Issue.record("no lease: \(ack)"); return }
        #expect(grant.address.address == address)
    }

    @Test func renewIsUnicastWithCiaddrAndRebindIsBroadcast() {
        var renew = ClientMachine(goal: .renew(address: address, server: server), mac: mac, xid: 1, policy: RetransmitPolicy(attempts: 2), jitter: [0])
        let r = renew.start(now: 0)
        #expect(r.destination == .server(server))
        #expect(r.send?.ciaddr == address && r.send?.options.requestedAddress == nil && r.send?.flags == 0)
        var rebind = ClientMachine(goal: .rebind(address: address), mac: mac, xid: 2, policy: RetransmitPolicy(attempts: 2), jitter: [0])
        let b = rebind.start(now: 0)
        #expect(b.destination == .broadcast)
        #expect(b.send?.ciaddr == address && b.send?.options.serverID == nil)
    }

    @Test func releaseEndsAtOnce() {
        var m = ClientMachine(goal: .release(address: address, server: server), mac: mac, xid: 3, policy: RetransmitPolicy(attempts: 1), jitter: [0])
        let s = m.start(now: 0)
        #expect(s.send?.messageType == .release)
        #expect(s.send?.options.serverID == server && s.send?.ciaddr == address)
        #expect(s.outcome == .released && s.wakeAt == nil && m.isDone)
    }

    @Test func retransmissionsBackOffExponentiallyWithJitterThenGiveUp() {
        var m = ClientMachine(goal: .discover, mac: mac, xid: 5, policy: RetransmitPolicy(initial: 4, maximum: 64, attempts: 4),
                              jitter: [0.5, -1, 1, 0])
        var wake = m.start(now: 0).wakeAt!
        #expect(wake == 4.5)
        var waits: [Double] = []
        for _ in 0..<3 {
            let step = m.timeout(now: wake)
            #expect(step.send?.messageType == .discover)
            #expect(step.send?.secs == UInt16(Int(wake)))
            waits.append(step.wakeAt! - wake)
            wake = step.wakeAt!
        }
        #expect(waits == [7, 17, 32])
        let last = m.timeout(now: wake)
        #expect(last.outcome == .noAnswer)
        #expect(RetransmitPolicy(initial: 4, maximum: 64, attempts: 9).delay(attempt: 8, jitter: 0) == 64)
        let fast = RetransmitPolicy(initial: 0.5, maximum: 8, attempts: 4, jitter: 0.1)
        #expect((1...4).map { fast.delay(attempt: $0, jitter: 0) } == [0.5, 1, 2, 4])
        #expect(fast.delay(attempt: 1, jitter: -1) == 0.4)
        let confirm = RetransmitPolicy(initial: 0.025, maximum: 4, attempts: 8, jitter: 0.005)
        #expect((1...8).map { confirm.delay(attempt: $0, jitter: 0) } == [0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2])
        #expect(RetransmitPolicy(initial: 0.001, maximum: 1, attempts: 2, jitter: 0.5).delay(attempt: 1, jitter: -1) == 0.01)
        // A batch: the first wait grows with it, the waiting budget holds.
        #expect(confirm.forBatch(1, perExchange: 0.001, budget: 6.4) == confirm)
        let big = confirm.forBatch(201, perExchange: 0.001, budget: 6.4)
        #expect(abs(big.initial - 0.225) < 1e-9)
        #expect(big.attempts == 4)
        #expect((1...big.attempts).reduce(0) { $0 + big.delay(attempt: $1, jitter: 0) } <= 6.4)
        #expect(RetransmitPolicy(initial: 10, maximum: 64, attempts: 9).forBatch(5, perExchange: 1, budget: 6).attempts == 3)
    }

    @Test func leaseDefaultsAndMasks() throws {
        var ack = reply(.ack, xid: 1)
        ack.options.renewalTime = nil
        ack.options.rebindingTime = 99999
        let grant = try ClientMachine.grant(from: ack, fallbackServer: nil).get()
        #expect(grant.renewSeconds == 1800 && grant.rebindSeconds == 3150)
        #expect(ClientMachine.prefixLength(IPv4Address(255, 255, 240, 0)) == 20)
        #expect(ClientMachine.prefixLength(IPv4Address(255, 255, 255, 255)) == 32)
        #expect(ClientMachine.prefixLength(IPv4Address(255, 0, 255, 0)) == nil)
        #expect(ClientMachine.prefixLength(IPv4Address(0)) == nil)
        ack.options.routers = [IPv4Address(192, 168, 0, 1)]
        #expect((try? ClientMachine.grant(from: ack, fallbackServer: nil).get())?.router == nil, "a router outside the subnet is ignored")
    }
}

/// Issue 28, case 7: only the server asked, for the address asked for.
@Suite struct ClientAcceptanceTests {
    let mac = MACAddress(bytes: [2, 0, 0, 0, 0, 9])!
    let chosen = IPv4Address(10, 1, 2, 1), rogue = IPv4Address(10, 1, 2, 66)
    let offered = IPv4Address(10, 1, 2, 150), other = IPv4Address(10, 1, 2, 151)

    func reply(_ type: DHCPMessage.MessageType, xid: UInt32, from server: IPv4Address?, yiaddr: IPv4Address) -> DHCPMessage {
        var o = DHCPOptions()
        o.messageType = type
        o.serverID = server
        o.subnetMask = IPv4Address(255, 255, 255, 0)
        o.leaseTime = 3600
        var m = DHCPMessage(op: DHCPMessage.bootReply, xid: xid, chaddr: mac, options: o)
        m.yiaddr = type == .nak ? IPv4Address(0) : yiaddr
        return m
    }

    func machine(_ goal: ClientMachine.Goal) -> ClientMachine {
        var m = ClientMachine(goal: goal, mac: mac, xid: 7, policy: RetransmitPolicy(attempts: 3), jitter: [0])
        _ = m.start(now: 0)
        return m
    }

    @Test func afterAnOfferOnlyThatServersAckForThatAddressCounts() throws {
        var m = machine(.discover)
        #expect(m.receive(reply(.offer, xid: 7, from: chosen, yiaddr: offered), now: 0.1)?.send?.messageType == .request)
        #expect(m.receive(reply(.ack, xid: 7, from: rogue, yiaddr: other), now: 0.2) == nil, "a rogue server's ACK was taken")
        #expect(m.refusal?.contains("not from \(chosen)") == true, "\(m.refusal ?? "")")
        #expect(m.receive(reply(.ack, xid: 7, from: chosen, yiaddr: other), now: 0.25) == nil, "an ACK for another address was taken")
        #expect(m.receive(reply(.nak, xid: 7, from: rogue, yiaddr: offered), now: 0.3) == nil, "a rogue server's NAK was taken")
        let step = m.receive(reply(.ack, xid: 7, from: chosen, yiaddr: offered), now: 0.4)
        let bound = try #require(step)
        guard case .bound(let grant)? = bound.outcome else { Issue.record("\(bound)"); return }
        #expect(grant.address.address == offered && grant.serverID == chosen)
    }

    @Test func aRenewalTakesOnlyItsServersAckForItsAddress() throws {
        var m = machine(.renew(address: offered, server: chosen))
        #expect(m.receive(reply(.ack, xid: 7, from: rogue, yiaddr: offered), now: 0.1) == nil)
        #expect(m.receive(reply(.ack, xid: 7, from: chosen, yiaddr: other), now: 0.2) == nil)
        #expect(m.receive(reply(.nak, xid: 7, from: rogue, yiaddr: offered), now: 0.25) == nil)
        #expect(m.receive(reply(.ack, xid: 7, from: chosen, yiaddr: offered), now: 0.3)?.outcome.map { if case .bound = $0 { true } else { false } } == true)
    }

    @Test(arguments: [true, false])
    func initRebootAndRebindTakeAnyServerButOnlyTheirAddress(reboot: Bool) throws {
        var m = machine(reboot ? .initReboot(offered) : .rebind(address: offered))
        #expect(m.receive(reply(.ack, xid: 7, from: rogue, yiaddr: other), now: 0.1) == nil)
        #expect(m.refusal?.contains("not \(offered) that was asked for") == true, "\(m.refusal ?? "")")
        let step = m.receive(reply(.ack, xid: 7, from: rogue, yiaddr: offered), now: 0.2)
        let bound = try #require(step)
        guard case .bound(let grant)? = bound.outcome else { Issue.record("\(bound)"); return }
        #expect(grant.serverID == rogue, "any server may answer INIT-REBOOT and REBINDING")
        var n = machine(reboot ? .initReboot(offered) : .rebind(address: offered))
        #expect(n.receive(reply(.nak, xid: 7, from: rogue, yiaddr: offered), now: 0.1)?.outcome == .nak(server: rogue))
    }

    @Test func aDeclineIsBroadcastWithTheAddressAndTheServer() {
        var m = ClientMachine(goal: .decline(address: offered, server: chosen), mac: mac, xid: 9, policy: RetransmitPolicy(attempts: 1), jitter: [0])
        let step = m.start(now: 0)
        #expect(step.send?.messageType == .decline && step.destination == .broadcast && step.outcome == .declined)
        #expect(step.send?.options.requestedAddress == offered && step.send?.options.serverID == chosen && step.send?.ciaddr.value == 0)
        #expect(m.isDone)
    }
}

/// RFC 5227: what counts as another host on the address being probed.
@Suite struct ARPProbeTests {
    let mine = MACAddress(bytes: [2, 0, 0, 0, 0, 1])!, theirs = MACAddress(bytes: [2, 0, 0, 0, 0, 2])!
    let address = IPv4Address(10, 1, 2, 50)

    @Test func theProbeIsARequestFromNoAddressAndRoundTrips() throws {
        let probe = ARPPacket.probe(for: address, from: mine)
        let bytes = probe.encode()
        #expect(bytes.count == ARPPacket.size)
        #expect(Array(bytes[0..<8]) == [0, 1, 8, 0, 6, 4, 0, 1])
        #expect(ARPPacket.decode(bytes) == probe)
        #expect(probe.senderIP.value == 0 && probe.targetIP == address)
        #expect(ARPPacket.decode(Array(bytes.prefix(27))) == nil)
        #expect(ARPPacket.decode([0, 6] + Array(bytes.dropFirst(2))) == nil, "not Ethernet")
    }

    @Test func anotherHostUsingOrProbingTheAddressIsAConflictOurOwnEchoIsNot() {
        let reply = ARPPacket(operation: .reply, senderMAC: theirs, senderIP: address, targetMAC: mine, targetIP: IPv4Address(0))
        let announce = ARPPacket(operation: .request, senderMAC: theirs, senderIP: address, targetMAC: mine, targetIP: address)
        let theirProbe = ARPPacket.probe(for: address, from: theirs)
        let ownEcho = ARPPacket.probe(for: address, from: mine)
        let unrelated = ARPPacket(operation: .request, senderMAC: theirs, senderIP: IPv4Address(10, 1, 2, 9), targetMAC: mine, targetIP: IPv4Address(10, 1, 2, 1))
        #expect(ARPProbe.conflict(reply, probing: address, from: mine))
        #expect(ARPProbe.conflict(announce, probing: address, from: mine))
        #expect(ARPProbe.conflict(theirProbe, probing: address, from: mine))
        #expect(!ARPProbe.conflict(ownEcho, probing: address, from: mine))
        #expect(!ARPProbe.conflict(unrelated, probing: address, from: mine))
    }

    @Test func theScheduleFollowsRFC5227() {
        let policy = ARPProbe.Policy()
        let low = ARPProbe.schedule(policy) { 0 }, high = ARPProbe.schedule(policy) { 1 }
        #expect(low.probes == [0, 1, 2] && low.end == 4)
        #expect(high.probes == [1, 3, 5] && high.end == 7)
    }
}
