@testable import DHCP
import NetkeepCore
import Testing

/// DESIGN.md rule 6 at the DHCP client: a reply that could not be recorded is
/// refused where it enters, and a reply counts only for its own exchange.
@Suite struct HostileReplyTests {
    let mac = MACAddress(bytes: [2, 0, 0, 0, 0, 9])!
    let server = IPv4Address(10, 1, 2, 1)

    func reply(_ type: DHCPMessage.MessageType, xid: UInt32 = 7, yiaddr: IPv4Address, mask: IPv4Address? = IPv4Address(255, 255, 255, 0),
               lease: UInt32? = 3600, t1: UInt32? = nil, chaddr: MACAddress? = nil) -> DHCPMessage {
        var o = DHCPOptions()
        o.messageType = type
        o.serverID = server
        o.subnetMask = mask
        o.leaseTime = lease
        o.renewalTime = t1
        var m = DHCPMessage(op: DHCPMessage.bootReply, xid: xid, chaddr: chaddr ?? mac, options: o)
        m.yiaddr = yiaddr
        return m
    }

    func selecting() -> ClientMachine {
        var m = ClientMachine(goal: .discover, mac: mac, xid: 7, policy: RetransmitPolicy(attempts: 2), jitter: [0])
        _ = m.start(now: 0)
        return m
    }

    @Test(arguments: [
        (IPv4Address(10, 1, 2, 255), IPv4Address(255, 255, 255, 0), UInt32(3600), "broadcast address"),
        (IPv4Address(10, 1, 2, 0), IPv4Address(255, 255, 255, 0), UInt32(3600), "network address"),
        (IPv4Address(10, 1, 2, 50), IPv4Address(0, 0, 0, 0), UInt32(3600), "not contiguous"),
        (IPv4Address(10, 1, 2, 50), IPv4Address(128, 0, 0, 0), UInt32(3600), "shorter than /8"),
        (IPv4Address(10, 1, 2, 50), IPv4Address(255, 255, 255, 0), UInt32(0), "lease time 0 s"),
        (IPv4Address(10, 1, 2, 50), IPv4Address(255, 255, 255, 0), UInt32(59), "lease time 59 s"),
        (IPv4Address(127, 0, 0, 5), IPv4Address(255, 0, 0, 0), UInt32(3600), "unicast host address"),
        (IPv4Address(224, 0, 0, 5), IPv4Address(255, 255, 255, 0), UInt32(3600), "unicast host address"),
    ])
    func offersThatCouldNotBeRecordedAreRefused(_ yiaddr: IPv4Address, _ mask: IPv4Address, _ lease: UInt32, _ why: String) {
        var m = selecting()
        #expect(m.receive(reply(.offer, yiaddr: yiaddr, mask: mask, lease: lease), now: 0.1) == nil)
        #expect(m.refusal?.contains(why) == true, "refusal: \(m.refusal ?? "none")")
        // A good offer from another server afterwards is still taken.
        #expect(m.receive(reply(.offer, yiaddr: IPv4Address(10, 1, 2, 60)), now: 0.2)?.send?.options.requestedAddress == IPv4Address(10, 1, 2, 60))
    }

    @Test func anAcknowledgementWithALeaseOfZeroIsRefusedToo() {
        var m = ClientMachine(goal: .initReboot(IPv4Address(10, 1, 2, 50)), mac: mac, xid: 7, policy: RetransmitPolicy(attempts: 2), jitter: [0])
        _ = m.start(now: 0)
        #expect(m.receive(reply(.ack, yiaddr: IPv4Address(10, 1, 2, 50), lease: 0), now: 0.1) == nil)
        #expect(m.refusal?.contains("lease time 0 s") == true)
        #expect(!m.isDone)
    }

    @Test func repliesForAnotherExchangeOrClientDoNotCount() {
        var m = selecting()
        #expect(m.receive(reply(.offer, xid: 8, yiaddr: IPv4Address(10, 1, 2, 60)), now: 0.1) == nil)
        #expect(m.receive(reply(.offer, yiaddr: IPv4Address(10, 1, 2, 60), chaddr: MACAddress(bytes: [2, 0, 0, 0, 0, 8])!), now: 0.1) == nil)
        #expect(m.refusal == nil, "not ours: ignored, not refused")
    }

    @Test func aT1OfZeroIsClampedNeverALoop() throws {
        let grant = try ClientMachine.grant(from: reply(.ack, yiaddr: IPv4Address(10, 1, 2, 50), lease: 120, t1: 0), fallbackServer: nil).get()
        #expect(grant.renewSeconds == 30)
        #expect(grant.rebindSeconds == 105)
        let tiny = AddressRules.renewalTimes(lease: 60, t1: 1, t2: 2)
        #expect(tiny.t1 == 30 && tiny.t2 == 30)
        let infinite = AddressRules.renewalTimes(lease: Int64(UInt32.max), t1: nil, t2: nil)
        #expect(infinite.t1 > 1_000_000 && infinite.t1 <= infinite.t2)
    }
}
