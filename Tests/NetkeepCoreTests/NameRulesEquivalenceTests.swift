import NetkeepCore
import Testing

/// The byte-based checks accept exactly what the Character-based ones
/// (NameRulesReference.swift) accepted, and refuse with the same messages.
/// Generated inputs are compared in bulk (`Differences`), one #expect per
/// rule showing the first differences: 10,000 rounds stay quick in a debug build.
@Suite struct NameRulesEquivalenceTests {
    static let rounds = 10_000

    @Test func interfaceAndBridgeNames() {
        var inputs = Inputs(seed: 1)
        var causes = Set<String>()
        var differences = Differences()
        for _ in 0..<Self.rounds {
            let name = inputs.name(around: [0, 1, 2, 14, 15, 16, 17])
            let old = outcome { () throws(InputError) in try ReferenceRules.interface(name) }
            differences.compare(outcome { () throws(InputError) in try Names.interface(name) }, old, name)
            differences.compare(outcome { () throws(InputError) in try Names.interface(name, role: "x y") },
                                outcome { () throws(InputError) in try ReferenceRules.interface(name, role: "x y") }, name)
            differences.compare(outcome { () throws(InputError) in try Names.bridge(name) },
                                outcome { () throws(InputError) in try ReferenceRules.bridge(name) }, name)
            causes.insert(old.cause)
        }
        #expect(differences.found.isEmpty, "\(differences.found)")
        // Each refusal and acceptance was reached, so the comparison covered them.
        #expect(causes.count == 5, "\(causes)")
    }

    @Test func containerNamesAndReferences() {
        var inputs = Inputs(seed: 2)
        var causes = Set<String>()
        var differences = Differences()
        for _ in 0..<Self.rounds {
            let name = inputs.name(around: [0, 1, 2, 127, 128, 129, 254, 255, 256])
            let old = outcome { () throws(InputError) in try ReferenceRules.containerName(name) }
            differences.compare(outcome { () throws(InputError) in try Names.containerName(name) }, old, name)
            differences.compare(outcome { () throws(InputError) in try Names.containerName(name, object: "o") },
                                outcome { () throws(InputError) in try ReferenceRules.containerName(name, object: "o") }, name)
            differences.compare(outcome { () throws(InputError) in try Names.containerReference(name) },
                                outcome { () throws(InputError) in try ReferenceRules.containerReference(name) }, name)
            differences.compare(Names.isContainerReference(name), ReferenceRules.isContainerReference(name), name)
            causes.insert(old.cause)
        }
        #expect(differences.found.isEmpty, "\(differences.found)")
        #expect(causes.count == 5, "\(causes)")
    }

    @Test(arguments: ["a\u{301}b", "a\u{301}b;", "a\u{20DD}", "1\u{FE0F}\u{20E3}", "\u{301}a", "é1", "a\u{301}", "/a\u{301};", "/\u{301}a", "//a", "/-a"])
    func aLetterThatCombinesIsNoLetter(_ name: String) {
        #expect(outcome { () throws(InputError) in try Names.containerReference(name) }
            == outcome { () throws(InputError) in try ReferenceRules.containerReference(name) })
        #expect(outcome { () throws(InputError) in try Names.containerName(name) }
            == outcome { () throws(InputError) in try ReferenceRules.containerName(name) })
    }

    @Test func derivedNames() {
        var inputs = Inputs(seed: 3)
        var differences = Differences()
        for _ in 0..<Self.rounds {
            let containerID = inputs.containerID()
            let ifname = inputs.name(around: [4, 15])
            differences.compare(Names.attachmentID(containerID: containerID, ifname: ifname),
                                ReferenceRules.attachmentID(containerID: containerID, ifname: ifname), containerID + "/" + ifname)
            differences.compare(Names.hostInterface(containerID: containerID, ifname: ifname),
                                ReferenceRules.hostInterface(containerID: containerID, ifname: ifname), containerID + "/" + ifname)
        }
        #expect(differences.found.isEmpty, "\(differences.found)")
        // FNV-1a 64 of "/" and of "abab...ab/eth1", computed elsewhere.
        #expect(Names.attachmentID(containerID: "", ifname: "") == "af63a24c860189fe")
        let id = String(repeating: "ab", count: 32)
        #expect(Names.attachmentID(containerID: id, ifname: "eth1") == "eea92993b19f983c")
        #expect(Names.hostInterface(containerID: id, ifname: "eth1") == "nkeea92993b19f")
    }

    @Test func addressRules() throws {
        var inputs = Inputs(seed: 4)
        var causes = Set<String>()
        var differences = Differences()
        for _ in 0..<Self.rounds {
            let cidr = inputs.cidr()
            let old = failure { () throws(InputError) in try ReferenceRules.check(cidr, role: "address") }
            differences.compare(failure { () throws(InputError) in try AddressRules.check(cidr, role: "address") }, old, "\(cidr)")
            causes.insert(old?.cause ?? "ok")
        }
        #expect(differences.found.isEmpty, "\(differences.found)")
        #expect(causes.count == 4, "\(causes)")
    }

    @Test func attachmentProblems() {
        var inputs = Inputs(seed: 5)
        var kinds = Set<String>()
        var differences = Differences()
        for _ in 0..<Self.rounds / 2 {
            let a = inputs.attachment()
            let old = ReferenceRules.problems(of: a)
            differences.compare(a.problems(), old, "\(a)")
            for problem in old { kinds.insert(String(problem.prefix { $0 != ":" })) }
            if old.isEmpty { kinds.insert("none") }
        }
        #expect(differences.found.isEmpty, "\(differences.found)")
        // .id, .host_ifname, .container_id, the thrown one (""), .gateway, .lease, and records without problems.
        #expect(kinds.count == 7, "\(kinds)")
    }

    @Test func stateProblems() {
        var inputs = Inputs(seed: 6)
        var duplicates = 0
        var differences = Differences()
        for _ in 0..<2_000 {
            var state = State(attachments: (0..<inputs.int(0...6)).map { _ in inputs.attachment(faults: 0.1) })
            // Some copies, so that ids and host names repeat.
            for _ in 0..<inputs.int(0...3) where !state.attachments.isEmpty {
                state.attachments.append(state.attachments[inputs.int(0...(state.attachments.count - 1))])
            }
            if inputs.chance(0.3) { state.engine = EngineIdentity(id: inputs.chance(0.5) ? "" : "E", rootDir: inputs.chance(0.5) ? "" : "/r") }
            let old = ReferenceRules.problems(of: state)
            differences.compare(state.problems(), old, "\(state.attachments.map(\.id))")
            duplicates += old.filter { $0.contains("same container") }.count
        }
        #expect(differences.found.isEmpty, "\(differences.found)")
        #expect(duplicates > 0)
    }

    @Test func fullwidthHexDigitsStillPassAsAContainerID() {
        // Character.isHexDigit takes U+FF10...; the old rule did, so the new one does.
        let id = String(repeating: "a", count: 61) + "\u{FF11}"
        #expect(id.utf8.count == 64)
        var inputs = Inputs(seed: 7)
        var a = inputs.attachment(faults: 0)
        a.containerID = id
        a.id = Names.attachmentID(containerID: id, ifname: a.ifname)
        #expect(ReferenceRules.problems(of: a) == [])
        #expect(a.problems() == [])
    }
}

/// The first few inputs on which the new and the old rule disagree.
struct Differences {
    var found: [String] = []

    mutating func compare<T: Equatable>(_ new: T, _ old: T, _ input: @autoclosure () -> String) {
        if new != old, found.count < 5 { found.append("\(quoted(input())): \(new) but before \(old)") }
    }
}

private func outcome(_ body: () throws(InputError) -> String) -> Result<String, InputError> {
    do { return .success(try body()) } catch { return .failure(error) }
}

private func failure(_ body: () throws(InputError) -> Void) -> InputError? {
    do { try body(); return nil } catch { return error }
}

private extension Result<String, InputError> {
    /// The cause without its numbers: one per rule.
    var cause: String {
        switch self {
        case .success: "accepted"
        case .failure(let error): String(error.cause.filter { !$0.isNumber })
        }
    }
}

/// Generated inputs from a fixed seed: names near the length limits, made of
/// safe characters with now and then something else in them.
struct Inputs {
    var rng: SplitMix

    init(seed: UInt64) { rng = SplitMix(state: seed) }

    static let safe: [String] = ["a", "z", "A", "Z", "0", "9", "_", ".", "-", "e", "t", "h", "1"]
    static let other: [String] = [
        // ASCII outside the set, control characters and CR LF (one Character).
        " ", "/", ";", "$", "\"", "\\", "'", "`", "~", "@", ":", "?", "#", "%", "*", "\n", "\r", "\r\n", "\t", "\0", "\u{7F}", "\u{1B}",
        // Letters and digits that are not ASCII, combining marks on their own and after a letter.
        "é", "e\u{301}", "a\u{301}", "\u{301}", "\u{20DD}", "\u{200D}", "\u{FE0F}", "ß", "İ", "²", "٣", "Ω", "\u{212A}", "\u{037E}",
        // Fullwidth digits and letters (Character.isHexDigit takes them), emoji, flags, Hangul, prepend and spacing marks.
        "１", "ａ", "Ａ", "ｇ", "👍", "👍🏽", "👨‍👩‍👧", "🇩🇪", "1\u{FE0F}\u{20E3}", "한", "\u{1100}\u{1161}", "\u{0600}", "\u{0915}\u{093F}",
        // Invisible and odd scalars.
        "\u{A0}", "\u{FEFF}", "\u{200B}", "\u{FFFF}", "\u{0378}", "\u{10FFFF}", "\u{D7FF}", "\u{E000}",
    ]
    static let special: [String] = [".", "..", "...", "-", "-a", ".a", "a.", "_a", "a-", "..a", ".\u{301}", "-\u{301}", "/", "//", "/a", "/-a", "/.", "a/b"]

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
    mutating func pick<T>(_ xs: [T]) -> T { xs[int(0...(xs.count - 1))] }

    /// A name of about one of `lengths` bytes, or a short mix, or a special case.
    mutating func name(around lengths: [Int]) -> String {
        switch int(0...9) {
        case 0: return pick(Self.special)
        case 1...3:
            return (0..<int(0...8)).map { _ in chance(0.6) ? pick(Self.safe) : pick(Self.other) }.joined()
        default:
            var parts = (0..<max(0, pick(lengths) + int(-1...1))).map { _ in pick(Self.safe) }
            for _ in 0..<int(0...2) where chance(0.5) {
                let fragment = chance(0.7) ? pick(Self.other) : pick(Self.special)
                parts.insert(fragment, at: pick([0, parts.count, int(0...parts.count)]))
            }
            if chance(0.2), !parts.isEmpty { parts[0] = pick(["-", ".", "_", "/", "a\u{301}", "1"]) }
            return parts.joined()
        }
    }

    mutating func containerID() -> String {
        let hex = Array("0123456789abcdef")
        let digits = String((0..<64).map { _ in pick(hex) })
        switch int(0...9) {
        case 0: return ""
        case 1: return digits.uppercased()
        case 2: return String(digits.dropLast(3)) + pick(["１", "ａ", "Ａ", "ｇ", "é\u{301}", "👍"])
        case 3: return String(digits.dropLast(int(1...2)))
        case 4: return digits + pick(["0", "\u{301}"])
        case 5: return name(around: [64])
        default: return digits
        }
    }

    mutating func address() -> IPv4Address {
        IPv4Address(UInt8(pick([0, 1, 10, 126, 127, 128, 192, 223, 224, 255])), UInt8(int(0...255)), pick([0, 1, 255]), pick([0, 1, 2, 254, 255]))
    }

    mutating func cidr() -> IPv4CIDR {
        try! IPv4CIDR(address: address(), prefixLength: pick([1, 7, 8, 16, 24, 29, 30, 31, 32, int(1...32)]))
    }

    /// An attachment in which each field is wrong with probability `faults`.
    mutating func attachment(faults: Double = 0.15) -> NetkeepCore.Attachment {
        let containerID = chance(faults) ? containerID() : String((0..<64).map { _ in pick(Array("0123456789abcdef")) })
        func name(_ valid: String, _ lengths: [Int], _ inputs: inout Inputs) -> String {
            inputs.chance(faults) ? inputs.name(around: lengths) : valid
        }
        let ifname = name("eth1", [15, 16], &self)
        let address = chance(0.1) ? nil : (chance(faults) ? cidr() : try! IPv4CIDR(address: IPv4Address(10, 1, 2, UInt8(int(2...250))), prefixLength: 24))
        var a = NetkeepCore.Attachment(
            containerID: containerID, containerName: name("web\(int(0...99))", [255, 256], &self), ifname: ifname,
            bridge: name("br0", [15, 16], &self),
            mac: chance(faults) ? MACAddress(bytes: pick([[0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6], [3, 0, 0, 0, 0, 1]]))! : MACAddress(bytes: [2, 0, 0, 0, 0, UInt8(int(1...255))])!,
            mtu: chance(faults) ? pick([0, 67, 68, 65535, 65536]) : 1500,
            vlan: chance(faults) ? pick([-1, 0, 4095, 4096]) : nil,
            mode: chance(0.5) ? .static : .dhcp, address: address,
            gateway: chance(0.3) ? nil : (chance(faults) ? self.address() : IPv4Address(10, 1, 2, pick([1, 2, 254]))),
            netnsLink: chance(0.2) ? nil : name("web1", [255, 256], &self),
            status: .ready, createdAt: Timestamp(secondsSinceEpoch: 0))
        if chance(faults) { a.id = pick([String(a.id.reversed()), a.id.uppercased(), "", self.name(around: [16]), a.id + "0"]) }
        if chance(faults) { a.hostIfname = self.name(around: [14, 15, 16]) }
        if a.mode == .dhcp || chance(faults), let address {
            let lease = chance(faults) ? cidr() : address
            let seconds = Int64(pick([0, 60, 3600]))
            a.lease = Lease(address: lease, router: chance(0.5) ? a.gateway : self.address(), serverID: IPv4Address(10, 1, 2, 1),
                            leaseSeconds: seconds, renewSeconds: chance(faults) ? Int64(pick([-1, 4000])) : seconds / 2,
                            rebindSeconds: seconds * 7 / 8, obtainedAt: a.createdAt, renewAt: a.createdAt, rebindAt: a.createdAt)
        }
        return a
    }
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
