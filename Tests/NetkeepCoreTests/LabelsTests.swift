import NetkeepCore
import PropertyBased
import Testing

@Suite struct LabelsTests {
    static let base = ["netkeep.eth1.bridge": "br0", "netkeep.eth1.ip": "10.1.2.5/24"]

    func parse(_ labels: [String: String]) throws -> LabelDeclaration {
        try LabelDeclaration.parse(labels: labels, container: "c1")
    }

    func requests(_ labels: [String: String], sourceLocation: SourceLocation = #_sourceLocation) throws -> [AttachRequest] {
        let declaration = try parse(labels)
        guard case .interfaces(let requests) = declaration else {
            Issue.record("expected interfaces, got \(declaration)", sourceLocation: sourceLocation)
            return []
        }
        return requests
    }

    func problems(_ labels: [String: String], sourceLocation: SourceLocation = #_sourceLocation) throws -> [LabelProblem] {
        let declaration = try parse(labels)
        guard case .refused(let problems) = declaration else {
            Issue.record("expected refused, got \(declaration)", sourceLocation: sourceLocation)
            return []
        }
        return problems
    }

    func base(_ key: String, _ value: String) -> [String: String] {
        Self.base.merging(["netkeep.eth1.\(key)": value]) { $1 }
    }

    // MARK: accepted

    @Test func everyKeyIsAcceptedWithItsValue() throws {
        let labels = Self.base.merging([
            "netkeep.eth1.gateway": "10.1.2.1", "netkeep.eth1.mac": "02:00:00:00:00:09",
            "netkeep.eth1.mtu": "9000", "netkeep.eth1.vlan": "42",
        ]) { $1 }
        let r = try requests(labels)
        #expect(r.count == 1)
        let eth1 = try #require(r.first)
        #expect(eth1.container == "c1")
        #expect(eth1.ifname == "eth1")
        #expect(eth1.bridge == "br0")
        #expect(eth1.address?.description == "10.1.2.5/24")
        #expect(eth1.dhcp == false)
        #expect(eth1.gateway?.description == "10.1.2.1")
        #expect(eth1.mac?.description == "02:00:00:00:00:09")
        #expect(eth1.mtu == 9000)
        #expect(eth1.vlan == 42)
        // The same request `netkeep attach` makes from the same values.
        let attach = try AttachRequest.parse(container: "c1", bridge: "br0", ifname: "eth1", ip: "10.1.2.5/24",
                                             gateway: "10.1.2.1", mac: "02:00:00:00:00:09", mtu: "9000", vlan: "42")
        #expect(eth1 == attach)
    }

    @Test func bridgeAndIPAloneTakeAttachsDefaults() throws {
        let eth1 = try #require(try requests(Self.base).first)
        #expect(eth1.mtu == AttachRequest.defaultMTU)
        #expect(eth1.vlan == nil)
        #expect(eth1.mac == nil)
        #expect(eth1.gateway == nil)
    }

    @Test func dhcpOnEth0IsLeftToTheAttachChecks() throws {
        let r = try requests(["netkeep.eth0.bridge": "vxbr", "netkeep.eth0.ip": "dhcp"])
        #expect(r.map(\.ifname) == ["eth0"])
        #expect(r.first?.dhcp == true)
        #expect(r.first?.address == nil)
    }

    @Test func containerReferenceIsTheRequestsContainer() throws {
        let r = try LabelDeclaration.parse(labels: Self.base, container: "/web")
        let attach = try AttachRequest.parse(container: "web", bridge: "br0", ifname: "eth1", ip: "10.1.2.5/24",
                                             gateway: nil, mac: nil, mtu: nil, vlan: nil)
        #expect(r == .interfaces([attach]))
    }

    @Test func badContainerReferenceIsThrownNotBlamedOnALabel() {
        #expect(throws: InputError.self) { try LabelDeclaration.parse(labels: Self.base, container: "-x") }
    }

    @Test func dottedIfnameRunsToTheLastDot() throws {
        let r = try requests(["netkeep.eth1.100.bridge": "br0", "netkeep.eth1.100.ip": "dhcp", "netkeep.eth1.100.vlan": "100"])
        #expect(r.map(\.ifname) == ["eth1.100"])
        #expect(r.first?.vlan == 100)
    }

    @Test func severalInterfacesAreSortedByIfname() throws {
        var labels: [String: String] = [:]
        for (ifname, n) in [("net0", 3), ("eth2", 2), ("eth1", 1)] {
            labels["netkeep.\(ifname).bridge"] = "br\(n)"
            labels["netkeep.\(ifname).ip"] = "10.1.\(n).5/24"
        }
        let r = try requests(labels)
        #expect(r.map(\.ifname) == ["eth1", "eth2", "net0"])
        #expect(r.map(\.bridge) == ["br1", "br2", "br3"])
    }

    // MARK: not ours

    @Test func noLabelsDeclareNothing() throws {
        #expect(try parse([:]) == .nothing)
    }

    @Test func labelsOfOthersAreIgnored() throws {
        let others = [
            "com.docker.compose.project": "x", "ovs.bridge": "br0", "Netkeep.eth1.bridge": "br0", "NETKEEP.eth1.ip": "x",
            "netkeep": "x", "netkeeper.eth1.bridge": "x", "netkeep_eth1.bridge": "x", "netkeep-x": "",
        ]
        #expect(try parse(others) == .nothing)
        let mixed = others.merging(Self.base) { $1 }
        #expect(try requests(mixed).map(\.ifname) == ["eth1"])
    }

    // MARK: refused

    /// key, value, words the cause must contain.
    static let badValues: [(String, String, String)] = [
        ("bridge", "br;0", "may contain only letters"),
        ("bridge", "a-bridge-name-too-long", "22 bytes long"),
        ("bridge", "", "is empty"),
        ("bridge", "-br", "not a usable interface name"),
        ("ip", "DHCP", "neither dhcp nor ADDRESS/PREFIX"),
        ("ip", "10.1.2.5", "neither dhcp nor ADDRESS/PREFIX"),
        ("ip", "", "neither dhcp nor ADDRESS/PREFIX"),
        ("ip", "10.1.2.0/24", "network address"),
        ("ip", "10.1.2.255/24", "broadcast address"),
        ("ip", "127.0.0.2/8", "not a unicast host address"),
        ("ip", "10.1.2.5/33", "must be a number 1-32"),
        ("ip", "10.1.2.256/24", "out of range 0-255"),
        ("ip", "10.01.2.5/24", "leading zero"),
        ("gateway", "10.1.3.1", "outside the subnet 10.1.2.0/24 of netkeep.eth1.ip 10.1.2.5/24"),
        ("gateway", "10.1.2.5", "the interface's own address"),
        ("gateway", "gw", "not a dotted-quad"),
        ("mac", "02:00:00:00:00", "six hex pairs"),
        ("mac", "01:00:00:00:00:01", "multicast"),
        ("mac", "00:00:00:00:00:00", "all zeros"),
        ("mtu", "67", "must be 68-65535"),
        ("mtu", "65536", "must be 68-65535"),
        ("mtu", "1e3", "not a decimal number"),
        ("mtu", "", "not a decimal number"),
        ("mtu", " 1500", "not a decimal number"),
        ("vlan", "4096", "must be 0-4094"),
        ("vlan", "4095", "is reserved (802.1Q); use 0-4094"),
        ("vlan", "-1", "not a decimal number"),
        ("vlan", "ten", "not a decimal number"),
    ]

    @Test(arguments: badValues)
    func badValueNamesItsLabelAndCause(_ key: String, _ value: String, _ words: String) throws {
        let found = try problems(base(key, value))
        #expect(found.count == 1)
        let problem = try #require(found.first)
        #expect(problem.key == "netkeep.eth1.\(key)")
        #expect(problem.value == value)
        #expect(problem.cause.contains(words), "\(problem)")
        #expect(problem.description.hasPrefix("label \"netkeep.eth1.\(key)\"=\(quoted(value)): "))
    }

    @Test func gatewayWithDHCPIsRefused() throws {
        let found = try problems(["netkeep.eth1.bridge": "br0", "netkeep.eth1.ip": "dhcp", "netkeep.eth1.gateway": "10.1.2.1"])
        #expect(found == [LabelProblem(key: "netkeep.eth1.gateway", value: "10.1.2.1",
                                       cause: "cannot be combined with ip=dhcp (the lease names the router)")])
    }

    @Test func gatewayIsCheckedEvenWhenTheIPIsBad() throws {
        let found = try problems(["netkeep.eth1.bridge": "br0", "netkeep.eth1.ip": "nope", "netkeep.eth1.gateway": "1.2.3"])
        #expect(found.map(\.key) == ["netkeep.eth1.gateway", "netkeep.eth1.ip"])
    }

    @Test func missingBridge() throws {
        let found = try problems(["netkeep.eth1.ip": "dhcp"])
        #expect(found.map(\.key) == ["netkeep.eth1.bridge"])
        #expect(found.first?.cause.contains("is missing") == true)
        #expect(found.first?.value == nil)
    }

    @Test func missingIP() throws {
        let found = try problems(["netkeep.eth1.bridge": "br0", "netkeep.eth1.mtu": "9000"])
        #expect(found.map(\.key) == ["netkeep.eth1.ip"])
        #expect(found.first?.cause.contains("is missing") == true)
    }

    @Test func unknownKeyIsNamedAndTheInterfaceStillNeedsItsBridge() throws {
        let found = try problems(["netkeep.eth1.brige": "br0", "netkeep.eth1.ip": "dhcp"])
        #expect(found.map(\.key) == ["netkeep.eth1.bridge", "netkeep.eth1.brige"])
        #expect(found.last?.cause.hasPrefix("unknown key \"brige\"; the keys are bridge, ip") == true)
    }

    @Test(arguments: [
        ("netkeep.eth1", "is not of the form netkeep.<ifname>.<key>"),
        ("netkeep.", "is not of the form"),
        ("netkeep..bridge", "has no interface name"),
        ("netkeep.eth1.", "has no key after the interface name"),
        ("netkeep.a;b.bridge", "the interface name may contain only letters"),
        ("netkeep.a-very-long-name.bridge", "the interface name is 16 bytes long"),
        ("netkeep.-x.bridge", "the interface name is not a usable interface name"),
        ("netkeep.e\u{301}th1.bridge", "the interface name may contain only letters"),
    ])
    func malformedKey(_ label: String, _ words: String) throws {
        let found = try problems(base("mtu", "9000").merging([label: "br0"]) { $1 })
        #expect(found.count == 1)
        #expect(found.first?.key == label)
        #expect(found.first?.cause.contains(words) == true, "\(found)")
    }

    @Test func oneBadInterfaceRefusesTheWholeContainer() throws {
        let labels = Self.base.merging(["netkeep.eth2.bridge": "br0", "netkeep.eth2.ip": "10.1.3.5/24", "netkeep.eth2.vlan": "5000"]) { $1 }
        #expect(try problems(labels).map(\.key) == ["netkeep.eth2.vlan"])
    }

    @Test func everyProblemIsCollectedSortedByLabel() throws {
        let labels = [
            "netkeep.eth2.ip": "dhcp", "netkeep.eth1.bridge": "br;0", "netkeep.eth1.ip": "10.1.2.5/24",
            "netkeep.eth1.mtu": "1", "netkeep.eth1.bogus": "", "netkeep.eth3": "",
        ]
        let found = try problems(labels)
        #expect(found.map(\.key) == ["netkeep.eth1.bogus", "netkeep.eth1.bridge", "netkeep.eth1.mtu", "netkeep.eth2.bridge", "netkeep.eth3"])
        #expect(try problems(labels) == found)
    }

    static func interfaces(_ count: Int) -> [String: String] {
        var labels: [String: String] = [:]
        for i in 0..<count {
            labels["netkeep.n\(i < 10 ? "0" : "")\(i).bridge"] = "br0"
            labels["netkeep.n\(i < 10 ? "0" : "")\(i).ip"] = "dhcp"
        }
        return labels
    }

    @Test func sixteenInterfacesAreAccepted() throws {
        #expect(try requests(Self.interfaces(LabelDeclaration.maxInterfaces)).count == 16)
    }

    @Test func seventeenInterfacesAreRefusedWithTheReason() throws {
        let found = try problems(Self.interfaces(17))
        #expect(found.count == 1)
        #expect(found.first?.key == "netkeep.n16.bridge")
        #expect(found.first?.cause.contains("17 interfaces declared; a container may declare at most 16") == true)
        #expect(found.first?.cause.contains("veth pair") == true)
    }

    // MARK: hostile input

    /// Named, so that the test log shows the name and not 10 KB.
    static let hostile = [
        "newline": "br\n0", "NUL": "br0\0", "escape": "\u{1b}[31mred", "forged field": "x\r\nLABEL=forged",
        "10 KB of controls": String(repeating: "\u{7f}A\u{85}", count: 3500), "10 KB": String(repeating: "a", count: 10_240),
    ]

    static func isPrintableLine(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { (0x20...0x7e).contains($0.value) }
    }

    @Test(arguments: hostile.keys.sorted())
    func hostileValuesGivePrintableSingleLineMessages(_ name: String) throws {
        let value = try #require(Self.hostile[name])
        var labels = ["netkeep.eth1.\(value)": "x", "netkeep.\(value).bridge": "br0", "netkeep.eth2.ip": value]
        for key in LabelDeclaration.keys { labels["netkeep.eth3.\(key)"] = value }
        let found = try problems(labels)
        #expect(found.count >= 8)
        for problem in found {
            #expect(Self.isPrintableLine(problem.description), "\(problem.description)")
            #expect(problem.description.count < 2000)
            #expect(labels[problem.key] != nil || problem.cause.hasPrefix("is missing"), "\(problem.description)")
        }
    }

    // MARK: labels win

    static let declared = try! AttachRequest.parse(container: "c1", bridge: "br0", ifname: "eth1", ip: "10.1.2.5/24",
                                                  gateway: "10.1.2.1", mac: "02:00:00:00:00:09", mtu: "9000", vlan: "42")

    func request(bridge: String = "br0", ifname: String = "eth1", ip: String? = "10.1.2.5/24", gateway: String? = "10.1.2.1",
                 mac: String? = "02:00:00:00:00:09", mtu: String? = "9000", vlan: String? = "42") throws -> AttachRequest {
        try AttachRequest.parse(container: "web", bridge: bridge, ifname: ifname, ip: ip, dhcp: ip == nil,
                                gateway: gateway, mac: mac, mtu: mtu, vlan: vlan)
    }

    @Test func sameRequestHasNoDifferences() throws {
        #expect(Self.declared.differences(from: try request()).isEmpty)
    }

    @Test func requestDifferencesNameEachField() throws {
        let d = Self.declared
        #expect(d.differences(from: try request(bridge: "br1")) == ["bridge: labels say \"br0\", the request says \"br1\""])
        #expect(d.differences(from: try request(ifname: "eth2")) == ["ifname: labels say \"eth1\", the request says \"eth2\""])
        #expect(d.differences(from: try request(ip: "10.1.2.6/24")) == ["ip: labels say 10.1.2.5/24, the request says 10.1.2.6/24"])
        #expect(d.differences(from: try request(ip: nil, gateway: nil)) == ["ip: labels say 10.1.2.5/24, the request says dhcp"])
        #expect(d.differences(from: try request(gateway: "10.1.2.2")) == ["gateway: labels say 10.1.2.1, the request says 10.1.2.2"])
        #expect(d.differences(from: try request(gateway: nil)) == ["gateway: labels say 10.1.2.1, the request says none"])
        #expect(d.differences(from: try request(mac: "02:00:00:00:00:0a")) == ["mac: labels say 02:00:00:00:00:09, the request says 02:00:00:00:00:0a"])
        #expect(d.differences(from: try request(mac: nil)) == ["mac: labels say 02:00:00:00:00:09, the request says none"])
        #expect(d.differences(from: try request(mtu: nil)) == ["mtu: labels say 9000, the request says 1500"])
        #expect(d.differences(from: try request(vlan: nil)) == ["vlan: labels say 42, the request says none"])
        #expect(d.differences(from: try request(bridge: "br1", vlan: "7")).count == 2)
    }

    @Test func labelsWithoutAMACAcceptTheRequestsMAC() throws {
        var d = Self.declared
        d.mac = nil
        #expect(d.differences(from: try request(mac: "02:00:00:00:00:0a")).isEmpty)
    }

    static func record(mode: AddressMode = .static, address: String? = "10.1.2.5/24", gateway: String? = "10.1.2.1",
                       mac: String = "02:00:00:00:00:09", mtu: Int = 9000, vlan: Int? = 42, bridge: String = "br0",
                       ifname: String = "eth1") throws -> NetkeepCore.Attachment {
        NetkeepCore.Attachment(containerID: String(repeating: "a", count: 64), containerName: "web", ifname: ifname, bridge: bridge,
                               mac: try MACAddress(parsing: mac), mtu: mtu, vlan: vlan, mode: mode,
                               address: try address.map { text throws(InputError) in try IPv4CIDR(parsing: text) },
                               gateway: try gateway.map { text throws(InputError) in try IPv4Address(parsing: text) },
                               netnsLink: nil, status: .ready, createdAt: Timestamp(secondsSinceEpoch: 0))
    }

    @Test func recordDifferencesNameEachField() throws {
        let d = Self.declared
        #expect(d.differences(from: try Self.record()).isEmpty)
        #expect(d.differences(from: try Self.record(bridge: "br1")) == ["bridge: labels say \"br0\", the record says \"br1\""])
        #expect(d.differences(from: try Self.record(ifname: "eth2")) == ["ifname: labels say \"eth1\", the record says \"eth2\""])
        #expect(d.differences(from: try Self.record(address: "10.1.2.6/24")) == ["ip: labels say 10.1.2.5/24, the record says 10.1.2.6/24"])
        #expect(d.differences(from: try Self.record(gateway: nil)) == ["gateway: labels say 10.1.2.1, the record says none"])
        #expect(d.differences(from: try Self.record(mac: "02:00:00:00:00:0a")) == ["mac: labels say 02:00:00:00:00:09, the record says 02:00:00:00:00:0a"])
        #expect(d.differences(from: try Self.record(mtu: 1500)) == ["mtu: labels say 9000, the record says 1500"])
        #expect(d.differences(from: try Self.record(vlan: 7)) == ["vlan: labels say 42, the record says 7"])
        #expect(d.differences(from: try Self.record(mode: .dhcp, address: nil, gateway: nil)) == ["ip: labels say 10.1.2.5/24, the record says dhcp"])
    }

    @Test func labelsWithoutAMACAcceptAnyRecordedMAC() throws {
        var d = Self.declared
        d.mac = nil
        #expect(d.differences(from: try Self.record(mac: "02:00:00:00:00:0a")).isEmpty)
    }

    @Test func aDHCPRecordsGatewayIsTheLeasesNotADifference() throws {
        let d = try AttachRequest.parse(container: "c1", bridge: "br0", ifname: "eth1", ip: nil, dhcp: true,
                                        gateway: nil, mac: nil, mtu: nil, vlan: nil)
        #expect(d.differences(from: try Self.record(mode: .dhcp, address: "10.9.0.7/16", gateway: "10.9.0.1", mtu: 1500, vlan: nil)).isEmpty)
        #expect(d.differences(from: try Self.record(mode: .static, mtu: 1500, vlan: nil)) == ["ip: labels say dhcp, the record says 10.1.2.5/24"])
    }

    // MARK: property

    /// Labels from a small vocabulary, so that random dictionaries hit every
    /// rule: three codes in four declare a whole good interface, the fourth
    /// adds one label of any kind.
    static func labels(script: [Int]) -> [String: String] {
        let ifnames = ["eth1", "eth0", "eth1.100", "", "a;b", "averyveryverylongname", "e\u{301}"]
        let keys = LabelDeclaration.keys + ["brige", "", "x.y"]
        let values = ["br0", "dhcp", "10.1.2.5/24", "10.1.2.1", "02:00:00:00:00:09", "1500", "42", "", "\n", "DHCP", "10.1.3.1", "0"]
        let good = ["gateway": "10.1.2.1", "mac": "02:00:00:00:00:09", "mtu": "9000", "vlan": "42"]
        var labels: [String: String] = [:]
        for code in script {
            if code % 4 != 0 {
                let head = "netkeep.\(ifnames[code / 4 % 3])."
                labels[head + "bridge"] = "br0"
                labels[head + "ip"] = code / 12 % 2 == 0 ? "dhcp" : "10.1.2.5/24"
                let extra = Array(good.keys.sorted())[code / 24 % 4]
                labels[head + extra] = good[extra]
                continue
            }
            let head = code % 32 == 0 ? ["Netkeep.", "netkeep", "other.", "netkeep."][code / 32 % 4] : "netkeep."
            labels[head + ifnames[code / 3 % ifnames.count] + "." + keys[code / 7 % keys.count]] = values[code / 11 % values.count]
        }
        return labels
    }

    @Test func randomLabelsEitherDeclareOrNameTheirProblems() async {
        await propertyCheck(count: 1000, input: Gen.int(in: 0...9999).array(of: 0...12)) { script in
            let labels = Self.labels(script: script)
            let ours = labels.keys.filter { $0.utf8.starts(with: "netkeep.".utf8) }
            let declaration: LabelDeclaration
            do { declaration = try LabelDeclaration.parse(labels: labels, container: "c1") } catch {
                Issue.record("threw \(error)")
                return
            }
            switch declaration {
            case .nothing:
                #expect(ours.isEmpty)
            case .interfaces(let requests):
                #expect(!ours.isEmpty)
                #expect(requests.map(\.ifname) == Set(requests.map(\.ifname)).sorted())
                for r in requests {
                    #expect(labels["netkeep.\(r.ifname).bridge"] == r.bridge)
                    #expect(labels["netkeep.\(r.ifname).ip"] == (r.dhcp ? "dhcp" : r.address?.description))
                }
            case .refused(let problems):
                #expect(!problems.isEmpty)
                #expect(problems.map(\.key) == problems.map(\.key).sorted())
                for p in problems {
                    let missing = p.key.hasSuffix(".bridge") || p.key.hasSuffix(".ip")
                    #expect(labels[p.key] != nil || (missing && p.cause.hasPrefix("is missing")), "\(p)")
                    #expect(Self.isPrintableLine(p.description), "\(p)")
                }
            }
        }
    }
}
