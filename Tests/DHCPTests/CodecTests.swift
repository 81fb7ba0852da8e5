@testable import DHCP
import Foundation
import NetkeepCore
import Testing

/// Packets captured from the test bed's dnsmasq talking to netkeep
/// (scripts/capture-dhcp-fixtures).
enum Fixtures {
    static func bytes(_ name: String) throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "bin", subdirectory: "Fixtures"))
        return Array(try Data(contentsOf: url))
    }

    static var all: [String] {
        let dir = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [])
            .filter { $0.hasSuffix(".bin") }.map { String($0.dropLast(4)) }.sorted()
    }

    static let mac = MACAddress(bytes: [0x02, 0x4e, 0x4b, 0, 0, 1])!
}

@Suite struct CodecTests {
    @Test func everyCapturedPacketDecodesAndRoundTrips() throws {
        let names = Fixtures.all
        #expect(names.count == 15)
        for name in names {
            let bytes = try Fixtures.bytes(name)
            let message = try DHCPMessage.decode(bytes)
            #expect(message.chaddr == Fixtures.mac, "\(name)")
            #expect(try DHCPMessage.decode(message.encode()) == message, "\(name): decode(encode(m)) != m")
            if message.op == DHCPMessage.bootRequest {
                // netkeep wrote these: encoding gives the very same bytes.
                #expect(message.encode() == bytes, "\(name): not byte-identical")
            }
        }
    }

    @Test func capturedExchangeHasTheExpectedContent() throws {
        let discover = try DHCPMessage.decode(Fixtures.bytes("01-discover"))
        #expect(discover.messageType == .discover)
        #expect(discover.flags == DHCPMessage.broadcastFlag)
        #expect(discover.options.clientID == [1] + Fixtures.mac.bytes)
        let offer = try DHCPMessage.decode(Fixtures.bytes("02-offer"))
        #expect(offer.messageType == .offer && offer.xid == discover.xid)
        #expect(offer.options.serverID == IPv4Address(10, 1, 2, 1))
        #expect(offer.options.subnetMask == IPv4Address(255, 255, 255, 0))
        #expect(offer.options.routers == [IPv4Address(10, 1, 2, 1)])
        let ack = try DHCPMessage.decode(Fixtures.bytes("04-ack"))
        #expect(ack.messageType == .ack)
        #expect(ack.options.leaseTime == 3600 && ack.options.renewalTime == 1800 && ack.options.rebindingTime == 3150)
        let reboot = try DHCPMessage.decode(Fixtures.bytes("05-initreboot-request"))
        #expect(reboot.options.requestedAddress == ack.yiaddr && reboot.options.serverID == nil && reboot.ciaddr.value == 0)
        let renew = try DHCPMessage.decode(Fixtures.bytes("07-renew-request"))
        #expect(renew.ciaddr == ack.yiaddr && renew.options.requestedAddress == nil && renew.flags == 0)
        let nak = try DHCPMessage.decode(Fixtures.bytes("10-nak"))
        #expect(nak.messageType == .nak)
        #expect(nak.options.other.first { $0.0 == 56 }.map { String(decoding: $0.1, as: UTF8.self) } == "wrong address")
        let release = try DHCPMessage.decode(Fixtures.bytes("15-release"))
        #expect(release.messageType == .release && release.options.serverID == IPv4Address(10, 1, 2, 1))
    }

    @Test func malformedPacketsAreErrorsNotCrashes() throws {
        let ack = try Fixtures.bytes("04-ack")
        #expect(throws: DHCPDecodeError.truncated(239)) { try DHCPMessage.decode(Array(ack.prefix(239))) }
        #expect(throws: DHCPDecodeError.truncated(0)) { try DHCPMessage.decode([]) }
        var cookie = ack
        cookie[237] = 0
        #expect(throws: DHCPDecodeError.badMagicCookie) { try DHCPMessage.decode(cookie) }
        var hlen = ack
        hlen[2] = 16
        #expect(throws: DHCPDecodeError.badHardware(type: 1, length: 16)) { try DHCPMessage.decode(hlen) }
        var op = ack
        op[0] = 7
        #expect(throws: DHCPDecodeError.badOp(7)) { try DHCPMessage.decode(op) }
        // An option whose length runs past the end of the packet.
        var overrun = Array(ack.prefix(240)) + [53, 1, 5, 51, 200, 0, 0]
        #expect(throws: DHCPDecodeError.optionOverrun(code: 51, offset: 243)) { try DHCPMessage.decode(overrun) }
        overrun = Array(ack.prefix(240)) + [53, 1, 5]
        #expect(throws: DHCPDecodeError.missingEnd) { try DHCPMessage.decode(overrun) }
        #expect(throws: DHCPDecodeError.badOptionLength(code: 54, length: 3)) {
            try DHCPMessage.decode(Array(ack.prefix(240)) + [53, 1, 5, 54, 3, 1, 2, 3, 255])
        }
        #expect(throws: DHCPDecodeError.badOptionLength(code: 53, length: 2)) {
            try DHCPMessage.decode(Array(ack.prefix(240)) + [53, 2, 5, 5, 255])
        }
        #expect(throws: DHCPDecodeError.tooLarge(5000)) { try DHCPMessage.decode(ack + [UInt8](repeating: 0, count: 4700)) }
    }

    @Test func padsAreSkippedAndSplitOptionsConcatenated() throws {
        let header = Array(try Fixtures.bytes("04-ack").prefix(240))
        let m = try DHCPMessage.decode(header + [0, 0, 53, 1, 5, 6, 4, 1, 1, 1, 1, 0, 6, 4, 8, 8, 8, 8, 255])
        #expect(m.messageType == .ack)
        #expect(m.options.dnsServers == [IPv4Address(1, 1, 1, 1), IPv4Address(8, 8, 8, 8)])
    }

    @Test func everyTruncationOfEveryFixtureIsHandled() throws {
        for name in Fixtures.all {
            let bytes = try Fixtures.bytes(name)
            for length in 0..<bytes.count { _ = try? DHCPMessage.decode(Array(bytes.prefix(length))) }
            for i in stride(from: 236, to: bytes.count, by: 1) {
                var mutated = bytes
                mutated[i] = 0xff &- mutated[i]
                _ = try? DHCPMessage.decode(mutated)
            }
        }
    }
}
