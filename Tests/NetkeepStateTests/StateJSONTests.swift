import Foundation
import NetkeepCore
@testable import NetkeepState
import Testing

/// SplitMix64: the same states on every run, so a failure can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// States of any content, valid or not: the codec must carry whatever a State holds.
struct StateGenerator {
    var rng: SeededGenerator

    /// Quotes, backslashes, slashes, every control character, DEL, combining
    /// marks, U+2028, a BOM, a noncharacter, CJK and an emoji.
    static let awkward: [Unicode.Scalar] = Array("aZ09 _.-/\"\\é\u{301}\u{7f}\u{2028}\u{feff}\u{ffff}漢😀".unicodeScalars)
        + (0..<0x20).map { Unicode.Scalar(UInt8($0)) }

    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < percent }

    mutating func text() -> String {
        var out = String.UnicodeScalarView()
        for _ in 0..<Int.random(in: 0...10, using: &rng) {
            out.append(chance(50) ? Self.awkward.randomElement(using: &rng)! : Unicode.Scalar(UInt8.random(in: 0x20...0x7e, using: &rng)))
        }
        return String(out)
    }

    mutating func integer<T: FixedWidthInteger & SignedInteger>() -> T {
        chance(10) ? [T.min, T.max, 0, -1].randomElement(using: &rng)! : T.random(in: -100_000...100_000, using: &rng)
    }

    mutating func ipv4() -> IPv4Address { IPv4Address(UInt32.random(in: 0...UInt32.max, using: &rng)) }

    /// A CIDR that `IPv4CIDR(parsing:)` takes back (not a network or broadcast address up to /30).
    mutating func cidr() -> IPv4CIDR {
        while true {
            let cidr = try! IPv4CIDR(address: ipv4(), prefixLength: Int.random(in: 1...32, using: &rng))
            if (try? IPv4CIDR(parsing: cidr.description)) != nil { return cidr }
        }
    }

    /// Up to year 9999: `Timestamp(rfc3339:)` reads four-digit years.
    mutating func timestamp() -> Timestamp {
        Timestamp(secondsSinceEpoch: chance(10) ? [0, 253_402_300_799].randomElement(using: &rng)! : Int64.random(in: 0...4_000_000_000, using: &rng))
    }

    mutating func lease() -> Lease {
        var lease = Lease(address: cidr(), router: chance(50) ? ipv4() : nil, serverID: ipv4(), leaseSeconds: integer(),
                          renewSeconds: integer(), rebindSeconds: integer(), obtainedAt: timestamp(), renewAt: timestamp(),
                          rebindAt: timestamp(), dnsServers: (0..<Int.random(in: 0...3, using: &rng)).map { _ in ipv4() },
                          confirmed: chance(50))
        lease.retryAt = chance(50) ? timestamp() : nil
        return lease
    }

    mutating func attachment() -> NetkeepCore.Attachment {
        var a = NetkeepCore.Attachment(
            containerID: text(), containerName: text(), ifname: text(), bridge: text(),
            mac: MACAddress(bytes: (0..<6).map { _ in UInt8.random(in: 0...255, using: &rng) })!,
            mtu: integer(), vlan: chance(50) ? integer() : nil, mode: AddressMode.allCases.randomElement(using: &rng)!,
            address: chance(50) ? cidr() : nil, gateway: chance(50) ? ipv4() : nil, netnsLink: chance(50) ? text() : nil,
            status: AttachmentStatus.allCases.randomElement(using: &rng)!, createdAt: timestamp(),
            containerPID: chance(50) ? integer() : nil, hostIfname: text())
        if chance(20) { a.id = text() }
        a.lease = chance(50) ? lease() : nil
        a.declaredBy = chance(50) ? Declarer.allCases.randomElement(using: &rng) : nil
        a.retainedUntil = chance(30) ? timestamp() : nil
        a.recreatedFrom = chance(30) ? text() : nil
        return a
    }

    mutating func state() -> State {
        var state = State(bootID: chance(50) ? text() : nil,
                          attachments: (0..<Int.random(in: 0...4, using: &rng)).map { _ in attachment() })
        state.lastEventNano = chance(50) ? integer() : nil
        state.engine = chance(50) ? EngineIdentity(id: text(), rootDir: text()) : nil
        return state
    }
}

extension String {
    /// `"key" : "value"` with the value upper-cased.
    var uppercasedValue: String {
        guard let range = range(of: " : ") else { return self }
        return String(self[..<range.upperBound]) + self[range.upperBound...].uppercased()
    }
}

/// What JSONDecoder makes of the bytes, without the load checks.
func foundationRead(_ bytes: [UInt8]) -> State? { try? JSONDecoder().decode(State.self, from: Data(bytes)) }

func outcome(_ bytes: [UInt8], _ decode: ([UInt8], String) throws(StateFileError) -> State) -> Result<State, StateFileError> {
    Result { () throws(StateFileError) in try decode(bytes, "/s") }
}

/// A state that passes `problems()`, so that it goes through `StateCodec.decode`.
func validState(attachments: Int, seed: UInt64) -> State {
    var rng = SeededGenerator(state: seed)
    var state = State(bootID: "6a1c0f0e9b2a4d6f8e3b1c2d3e4f5a6b")
    for i in 0..<attachments {
        var a = sample("eth\(i)")
        a.mac = MACAddress.randomLocal(using: &rng)
        a.address = try! IPv4CIDR(parsing: "10.1.\(i / 200).\(i % 200 + 2)/16")
        a.gateway = try! IPv4Address(parsing: "10.1.255.254")
        a.containerPID = Int32(1000 + i)
        a.vlan = i % 3 == 0 ? i % 4096 : nil
        if i % 2 == 1 {
            a.mode = .dhcp
            a.status = .ready
            let t = a.createdAt
            a.lease = Lease(address: a.address!, router: a.gateway, serverID: a.gateway!, leaseSeconds: 3600, renewSeconds: 1800,
                            rebindSeconds: 3150, obtainedAt: t, renewAt: t.adding(seconds: 1790), rebindAt: t.adding(seconds: 3100),
                            dnsServers: [try! IPv4Address(parsing: "1.1.1.1")], confirmed: i % 4 == 1)
            a.lease?.retryAt = i % 4 == 3 ? t.adding(seconds: 30) : nil
        }
        state.attachments.append(a)
    }
    state.lastEventNano = 1_800_000_000_123_456_789
    state.engine = EngineIdentity(id: "ABCD:EFGH:IJKL", rootDir: "/var/lib/docker")
    precondition(state.problems().isEmpty, "\(state.problems())")
    return state
}

@Suite struct StateJSONWriterTests {
    @Test func writesWhatJSONEncoderWritesForGeneratedStates() {
        var generator = StateGenerator(rng: SeededGenerator(state: 1))
        for i in 0..<500 {
            let state = i == 0 ? State() : generator.state()
            let written = StateJSONWriter.write(state)
            #expect(written == StateCodec.encodeWithFoundation(state), "state \(i): \(state)")
        }
    }

    @Test func writesEveryUnicodeScalarAsJSONEncoderDoes() {
        let scalars = (0...0x10ffff).compactMap(Unicode.Scalar.init(_:))
        var state = State(bootID: String(String.UnicodeScalarView(scalars)))
        state.engine = EngineIdentity(id: "\u{0}\u{1f}\"\\/", rootDir: "e\u{301} \u{1f600}")
        #expect(StateJSONWriter.write(state) == StateCodec.encodeWithFoundation(state))
        #expect(StateJSONReader.read(StateJSONWriter.write(state)) == state)
    }

    /// The writer keeps a day's date for the next timestamp: same day, next day, before 1970, five-digit years.
    @Test func writesTimestampsOfAnyDayAsJSONEncoderDoes() {
        let seconds: [Int64] = [0, 86_399, 86_400, -1, -86_400, -86_401, 1_800_000_000, 1_800_000_001, 253_402_300_799,
                                253_402_300_800, 1_000_000_000_000, -62_135_596_800, -100_000_000_000]
        var state = State()
        for (i, s) in seconds.enumerated() {
            var a = sample("eth\(i)")
            a.createdAt = Timestamp(secondsSinceEpoch: s)
            state.attachments.append(a)
        }
        #expect(StateJSONWriter.write(state) == StateCodec.encodeWithFoundation(state))
    }

    @Test func writesALargeValidStateAsJSONEncoderDoes() {
        let state = validState(attachments: 300, seed: 7)
        #expect(StateCodec.encode(state) == StateCodec.encodeWithFoundation(state))
    }
}

@Suite struct StateJSONReaderTests {
    @Test func readsWhatItWritesAsJSONDecoderDoes() {
        var generator = StateGenerator(rng: SeededGenerator(state: 2))
        for i in 0..<500 {
            let state = generator.state()
            let bytes = StateJSONWriter.write(state)
            let fast = StateJSONReader.read(bytes)
            #expect(fast != nil, "state \(i) was declined: \(state)")
            #expect(fast == foundationRead(bytes), "state \(i)")
            #expect(fast == state, "state \(i)")
        }
    }

    @Test func validStatesTakeTheFastPathAndLoadAsBefore() throws {
        for (count, seed) in [(0, 3), (1, 4), (40, 5)] as [(Int, UInt64)] {
            let bytes = StateCodec.encode(validState(attachments: count, seed: seed))
            #expect(StateJSONReader.read(bytes) != nil)
            let state = try StateCodec.decode(bytes, path: "/s")
            #expect(state == (try StateCodec.decodeWithFoundation(bytes, path: "/s")))
            #expect(state.attachments.count == count)
        }
    }

    @Test func fixturesGiveTheSameStateOrErrorAsBefore() throws {
        let corrupt = stateFixtures + "/corrupt"
        let paths = try FileManager.default.contentsOfDirectory(atPath: corrupt).sorted().map { "\(corrupt)/\($0)" }
        #expect(paths.count >= 10)
        for path in paths + [stateFixtures + "/example.json"] {
            let bytes = try #require(readBytes(path), "cannot read \(path)")
            #expect(outcome(bytes, StateCodec.decode) == outcome(bytes, StateCodec.decodeWithFoundation), "\(path)")
        }
        let example = try #require(readBytes(stateFixtures + "/example.json"), "cannot read \(stateFixtures + "/example.json")")
        #expect(StateJSONReader.read(example) != nil, "example.json did not take the fast path")
        // These are refused by the load checks, which run after the fast reader too.
        for name in ["duplicate-attachment.json", "forged-host-ifname.json"] {
            #expect(StateJSONReader.read(readBytes("\(corrupt)/\(name)")!) != nil, "\(name)")
        }
    }

    @Test func oddButValidJSONLoadsToTheSameState() throws {
        let state = validState(attachments: 6, seed: 6)
        let pretty = String(decoding: StateCodec.encode(state), as: UTF8.self)
        let encoder = JSONEncoder()
        var variants: [String: String] = [
            "compact, declaration order": String(decoding: try encoder.encode(state), as: UTF8.self),
            "tabs and CRLF": pretty.replacingOccurrences(of: "  ", with: "\t").replacingOccurrences(of: "\n", with: "\r\n"),
            "spaces everywhere": pretty.replacingOccurrences(of: "\" : ", with: "\"\t:\r\n ").replacingOccurrences(of: ",\n", with: "\n , ")
                .replacingOccurrences(of: "[", with: "[ ").replacingOccurrences(of: "{", with: " { "),
            "escaped slash": pretty.replacingOccurrences(of: "\"/var/lib/docker\"", with: "\"\\/var\\/lib\\/docker\""),
            "escaped letters": pretty.replacingOccurrences(of: "\"6a1c0f0e", with: "\"\\u0036\\u00e9\\ud83d\\ude00"),
            "escaped key": pretty.replacingOccurrences(of: "\"version\"", with: "\"\\u0076ersion\""),
            "unknown key": pretty.replacingOccurrences(of: "\"version\" : 1", with: "\"version\" : 1, \"later\" : {\"x\" : [null]}"),
            "null optional": pretty.replacingOccurrences(of: "\"boot_id\" : \"6a1c0f0e9b2a4d6f8e3b1c2d3e4f5a6b\"", with: "\"boot_id\" : null"),
            "uppercase MAC": pretty.split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.contains("\"mac\" : ") ? String($0).uppercasedValue : String($0) }
                .joined(separator: "\n"),
        ]
        encoder.outputFormatting = [.prettyPrinted]
        variants["pretty, declaration order"] = String(decoding: try encoder.encode(state), as: UTF8.self)
        for (name, text) in variants {
            let bytes = Array(text.utf8)
            #expect(bytes != StateCodec.encode(state), "\(name) changed nothing")
            let loaded = outcome(bytes, StateCodec.decode)
            #expect(loaded == outcome(bytes, StateCodec.decodeWithFoundation), "\(name)")
            #expect(loaded.map(\.attachments.count) == .success(6), "\(name): \(loaded)")
        }
    }

    @Test func unusualValuesGiveTheSameStateOrErrorAsBefore() {
        let text = String(decoding: StateCodec.encode(validState(attachments: 2, seed: 8)), as: UTF8.self)
        let edits: [(String, String)] = [
            ("\"mtu\" : 1500", "\"mtu\" : 1500.0"), ("\"mtu\" : 1500", "\"mtu\" : 15e2"), ("\"mtu\" : 1500", "\"mtu\" : -0"),
            ("\"mtu\" : 1500", "\"mtu\" : 01500"), ("\"mtu\" : 1500", "\"mtu\" : \"1500\""), ("\"mtu\" : 1500", "\"mtu\" : 99999999999999999999"),
            ("\"container_pid\" : 1000", "\"container_pid\" : 2147483648"), ("\"version\" : 1", "\"version\" : 2"),
            ("\"version\" : 1", "\"version\" : 1, \"version\" : 1"), ("\"confirmed\" : true", "\"confirmed\" : 1"),
            ("\"mode\" : \"static\"", "\"mode\" : \"STATIC\""), ("\"6a1c0f0e", "\"\\ud800"), ("\"6a1c0f0e", "\"\\x41"),
            ("\"6a1c0f0e", "\"\u{1}"), ("\"10.1.255.254\"", "\"10.1.255.0254\""), ("/16\"", "/016\""),
            ("\"10.1.0.2/16\"", "\"10.1.0.0/16\""), ("\"dns\" : [", "\"dns\" : [\"1.1.1.1\", "), ("\n}\n", "\n},\n"),
        ]
        for (old, new) in edits {
            #expect(text.contains(old), "\(old) is not in the file")
            let bytes = Array(text.replacingOccurrences(of: old, with: new).utf8)
            #expect(outcome(bytes, StateCodec.decode) == outcome(bytes, StateCodec.decodeWithFoundation), "\(new)")
        }
        let invalidUTF8 = Array(text.utf8).map { $0 == 0x36 ? 0xff : $0 }
        #expect(StateJSONReader.read(invalidUTF8) == nil)
        #expect(outcome(invalidUTF8, StateCodec.decode) == outcome(invalidUTF8, StateCodec.decodeWithFoundation))
    }

    /// Whatever a damaged file holds, the fast path must not say anything Foundation would not.
    @Test func damagedFilesGiveTheSameStateOrErrorAsBefore() throws {
        var rng = SeededGenerator(state: 9)
        let original = try #require(readBytes(stateFixtures + "/example.json"), "cannot read \(stateFixtures + "/example.json")")
        let interesting = Array("{}[]\",:\\/0123456789-.eE+truefalsnul \t\n\u{7f}".utf8) + [0x00, 0x80, 0xc3, 0xe9, 0xff]
        var loaded = 0
        for _ in 0..<2000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[at] = interesting.randomElement(using: &rng)!
                case 1: bytes.remove(at: at)
                default: bytes.insert(interesting.randomElement(using: &rng)!, at: at)
                }
            }
            let fast = outcome(bytes, StateCodec.decode)
            #expect(fast == outcome(bytes, StateCodec.decodeWithFoundation), "\(String(decoding: bytes, as: UTF8.self))")
            if case .success = fast { loaded += 1 }
        }
        // Some damage (inside a string, extra whitespace) leaves a loadable file: both paths were compared on those too.
        #expect(loaded > 0)
    }
}

@Suite struct DockerNetworkRecordTests {
    @Test func networksAndEndpointsRoundTripAndAnOlderFileReadsWithout() throws {
        var state = State(bootID: "b")
        let network = try DockerNetwork.parse(id: String(repeating: "1", count: 64), options: ["bridge": "br0", "vlan": "7"],
                                              pool: "10.9.9.0/24", gateway: "10.9.9.1/24", now: Timestamp(secondsSinceEpoch: 1_800_000_000))
        var endpoint = Endpoint(id: String(repeating: "2", count: 64), network: network, mac: Endpoint.mac(for: IPv4Address(10, 9, 9, 9)),
                                macFromDocker: false, address: try IPv4CIDR(parsing: "10.9.9.9/24"), createdAt: network.createdAt)
        endpoint.status = .joined
        endpoint.sandboxKey = "/var/run/docker/netns/63c681b9cce1"
        state.networks = [network]
        state.endpoints = [endpoint]
        let bytes = StateCodec.encode(state)
        #expect(bytes == StateCodec.encodeWithFoundation(state))
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""subnet" : "10.9.9.0/24""#) && text.contains(#""sandbox_key" : "/var/run/docker/netns/63c681b9cce1""#))
        #expect(try StateCodec.decode(bytes, path: "s") == state)
        // A file of before the plugin has neither key, and writes neither.
        let old = StateCodec.encode(State(bootID: "b"))
        #expect(!String(decoding: old, as: UTF8.self).contains("endpoints"))
        #expect(try StateCodec.decode(old, path: "s").networks.isEmpty)
    }

    @Test func aCorruptEndpointIsRefusedWithItsField() throws {
        let good = try DockerNetworkRecordTests.sampleBytes()
        let bad = String(decoding: good, as: UTF8.self).replacingOccurrences(of: "nke", with: "xke")
        #expect(throws: StateFileError.self) { try StateCodec.decode(Array(bad.utf8), path: "s") }
        do { _ = try StateCodec.decode(Array(bad.utf8), path: "s") } catch {
            #expect("\(error)".contains("endpoints[0].host_ifname"), "\(error)")
        }
    }

    /// Written by a daemon serving a static and a DHCP network (state/example-networks.json).
    @Test func theNetworksExampleReadsAndIsWrittenBackByteForByte() throws {
        let bytes = try #require(readBytes(stateFixtures + "/example-networks.json"))
        let state = try StateCodec.decode(bytes, path: "example-networks.json")
        #expect(state.networks.map(\.mode) == [.static, .dhcp] && state.endpoints.count == 2)
        #expect(state.endpoints.allSatisfy { $0.status == .joined && $0.sandboxKey != nil })
        #expect(StateCodec.encode(state) == bytes)
    }

    /// Written by two CNI ADDs, one with a VLAN (state/example-cni.json).
    @Test func theCNIExampleReadsAndIsWrittenBackByteForByte() throws {
        let bytes = try #require(readBytes(stateFixtures + "/example-cni.json"))
        let state = try StateCodec.decode(bytes, path: "example-cni.json")
        #expect(state.cni.map(\.containerID.count) == [64, 12] && state.cni.allSatisfy { $0.status == .ready && $0.ipam == "host-local" })
        #expect(state.cni.map(\.vlan) == [10, nil] && state.cni.allSatisfy { $0.problems().isEmpty })
        #expect(StateCodec.encode(state) == bytes)
        // A record whose port name is not derived from its key is refused, as any bad record is.
        let forged = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "nkcce574f5664ed", with: "nkc000000000000")
        #expect(throws: (any Error).self) { try StateCodec.decode(Array(forged.utf8), path: "forged.json") }
    }

    /// Written by two ADDs of netkeep-dhcp and the DEL of one (state/example-cni-dhcp.json):
    /// a live lease in its record, and one kept for its client's return.
    @Test func theCNIDHCPExampleReadsAndIsWrittenBackByteForByte() throws {
        let bytes = try #require(readBytes(stateFixtures + "/example-cni-dhcp.json"))
        let state = try StateCodec.decode(bytes, path: "example-cni-dhcp.json")
        let record = try #require(state.cni.first)
        #expect(state.cni.count == 1 && record.ipam == CNIRules.builtInDHCP && record.lease?.address == record.addresses.first)
        #expect(state.cniLeases.count == 1 && state.cniLeases[0].releaseAt == state.cniLeases[0].lease.obtainedAt.adding(seconds: 600))
        #expect(StateCodec.encode(state) == bytes)
        // A kept lease of a hostile network name is refused with its field.
        let forged = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: #""network" : "lan",\#n      "release_at""#,
                                                                                 with: #""network" : "../lan",\#n      "release_at""#)
        #expect(forged != String(decoding: bytes, as: UTF8.self))
        do { _ = try StateCodec.decode(Array(forged.utf8), path: "forged.json"); Issue.record("accepted") } catch {
            #expect("\(error)".contains("cni_leases[0]"), "\(error)")
        }
    }

    static func sampleBytes() throws -> [UInt8] {
        var state = State()
        let network = try DockerNetwork.parse(id: String(repeating: "1", count: 64), options: ["bridge": "br0", "dhcp": "true"],
                                              pool: nil, gateway: nil, now: Timestamp(secondsSinceEpoch: 1_800_000_000))
        state.networks = [network]
        state.endpoints = [Endpoint(id: String(repeating: "3", count: 64), network: network, mac: Endpoint.mac(for: IPv4Address(10, 1, 2, 3)),
                                    macFromDocker: true, address: nil, createdAt: network.createdAt)]
        return StateCodec.encode(state)
    }
}
