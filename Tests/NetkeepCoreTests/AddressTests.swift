import NetkeepCore
import Testing

@Suite struct MACAddressTests {
    @Test func parsesColonAndDashForms() throws {
        #expect(try MACAddress(parsing: "02:42:AC:11:00:02").description == "02:42:ac:11:00:02")
        #expect(try MACAddress(parsing: "02-42-ac-11-00-02").bytes == [2, 0x42, 0xac, 0x11, 0, 2])
    }

    @Test(arguments: ["", "02:42:ac:11:00", "02:42:ac:11:00:02:03", "zz:42:ac:11:00:02", "2:42:ac:11:00:02", "02:42:ac:11:00:0٣", "02:42:ac:11:00:02 "])
    func rejectsMalformed(_ text: String) {
        #expect(throws: InputError.self) { try MACAddress(parsing: text) }
    }

    @Test func rejectsMulticastAndZeroForInterfaces() throws {
        #expect(throws: InputError.self) { try MACAddress(parsing: "01:00:5e:00:00:01").validatedForInterface() }
        #expect(throws: InputError.self) { try MACAddress(parsing: "00:00:00:00:00:00").validatedForInterface() }
        #expect(try MACAddress(parsing: "02:00:00:00:00:01").validatedForInterface().description == "02:00:00:00:00:01")
    }

    @Test func randomAddressesAreLocalUnicast() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let mac = MACAddress.randomLocal(using: &rng)
            #expect(mac.isLocallyAdministered)
            #expect(!mac.isMulticast)
        }
    }
}

@Suite struct IPv4Tests {
    @Test func parsesAddress() throws {
        #expect(try IPv4Address(parsing: "10.1.2.3").value == 0x0A01_0203)
        #expect(try IPv4Address(parsing: "255.255.255.255").description == "255.255.255.255")
    }

    @Test(arguments: ["10.1.2", "10.1.2.3.4", "10.1.2.256", "10.1.2.-1", "10.01.2.3", "a.b.c.d", "10.1.2.", " 10.1.2.3", "1e1.1.1.1"])
    func rejectsBadAddresses(_ text: String) {
        #expect(throws: InputError.self) { try IPv4Address(parsing: text) }
    }

    @Test func parsesCIDRAndDerivesNetwork() throws {
        let cidr = try IPv4CIDR(parsing: "10.1.2.5/24")
        #expect(cidr.network.description == "10.1.2.0")
        #expect(cidr.broadcast.description == "10.1.2.255")
        #expect(cidr.contains(try IPv4Address(parsing: "10.1.2.1")))
        #expect(!cidr.contains(try IPv4Address(parsing: "10.1.3.1")))
        #expect(try IPv4CIDR(parsing: "10.1.2.5/32").prefixLength == 32)
    }

    @Test(arguments: ["10.1.2.5", "10.1.2.5/", "10.1.2.5/0", "10.1.2.5/33", "10.1.2.5/2x", "10.1.2.0/24", "10.1.2.255/24", "10.1.2.5/24/1", "10.1.2.300/24"])
    func rejectsBadCIDR(_ text: String) {
        #expect(throws: InputError.self) { try IPv4CIDR(parsing: text) }
    }
}

@Suite struct TimestampTests {
    @Test func formatsAndParsesRFC3339() throws {
        let t = Timestamp(secondsSinceEpoch: 1_795_752_965)
        #expect(t.description == "2026-11-27T04:16:05Z")
        #expect(Timestamp(rfc3339: t.description) == t)
        #expect(Timestamp(secondsSinceEpoch: 0).description == "1970-01-01T00:00:00Z")
        #expect(Timestamp(rfc3339: "2024-02-29T23:59:59Z")?.secondsSinceEpoch == 1_709_251_199)
    }

    @Test(arguments: ["", "2026-11-27 03:36:05Z", "2026-13-01T00:00:00Z", "2026-11-27T03:36:05", "2026-11-27T25:00:00Z"])
    func rejectsOtherForms(_ text: String) {
        #expect(Timestamp(rfc3339: text) == nil)
    }
}
