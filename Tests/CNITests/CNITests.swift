import CNI
import Foundation
import NetkeepCore
import Testing

@Suite struct CNIConfigTests {
    func parse(_ json: String, args: String = "") throws(CNIError) -> CNIConfig { try CNIConfig.parse(Array(json.utf8), args: args) }

    func error(_ json: String) -> CNIError? {
        do { _ = try parse(json); return nil } catch { return error }
    }

    @Test func aFullConfigReadsEveryKey() throws {
        let c = try parse(#"{"cniVersion":"1.1.0","name":"ovs1","type":"netkeep","bridge":"br0","vlan":10,"mtu":1400,"#
                          + #""mac":"02:00:00:00:00:01","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}"#)
        #expect(c.cniVersion == "1.1.0" && c.name == "ovs1" && c.bridge == "br0" && c.vlan == 10 && c.mtu == 1400)
        #expect(c.mac?.description == "02:00:00:00:00:01" && c.ipamType == "host-local")
    }

    @Test func defaultsAreMTU1500NoVLANNoIPAM() throws {
        let c = try parse(#"{"cniVersion":"1.0.0","name":"n","type":"netkeep","bridge":"br0"}"#)
        #expect(c.mtu == 1500 && c.vlan == nil && c.mac == nil && c.ipamType == nil && c.prevResult == nil)
    }

    @Test func theMostSpecificMACWins() throws {
        let base = #"{"cniVersion":"1.0.0","name":"n","type":"netkeep","bridge":"br0","mac":"02:00:00:00:00:01""#
        #expect(try parse(base + "}").mac?.description == "02:00:00:00:00:01")
        #expect(try parse(base + #","runtimeConfig":{"mac":"02:00:00:00:00:02"}}"#).mac?.description == "02:00:00:00:00:02")
        #expect(try parse(base + #","runtimeConfig":{"mac":"02:00:00:00:00:02"}}"#, args: "IgnoreUnknown=1;MAC=02:00:00:00:00:03").mac?.description
                == "02:00:00:00:00:03")
    }

    @Test(arguments: [
        (#"{"cniVersion":"9.9.9","name":"n","bridge":"br0"}"#, CNIError.incompatibleVersion, "cniVersion \"9.9.9\""),
        (#"{"cniVersion":"1.0.0","name":"n"}"#, CNIError.invalidConfig, "no \"bridge\""),
        (#"{"cniVersion":"1.0.0","bridge":"br0"}"#, CNIError.invalidConfig, "no \"name\""),
        (#"{"cniVersion":"1.0.0","name":"-n","bridge":"br0"}"#, CNIError.invalidConfig, "network name \"-n\""),
        (#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","vlan":5000}"#, CNIError.invalidConfig, "5000"),
        (#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","vlan":"ten"}"#, CNIError.invalidConfig, "\"vlan\" must be a whole number"),
        (#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","mtu":10}"#, CNIError.invalidConfig, "10"),
        (#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","mac":"01:00:00:00:00:01"}"#, CNIError.invalidConfig, "01:00:00:00:00:01"),
        (#"{"cniVersion":"1.0.0","name":"n","bridge":"a/b"}"#, CNIError.invalidConfig, "bridge"),
        (#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","brige":"x"}"#, CNIError.invalidConfig, "\"brige\""),
        (#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","ipam":{"type":"../bin/sh"}}"#, CNIError.invalidConfig, "ipam type"),
        (#"[1,2]"#, CNIError.decodingFailure, "not a JSON object"),
        (#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","prevResult":{"ips":"x"}}"#, CNIError.invalidConfig, "prevResult.ips"),
        // Issue 28, case 10: what is wrong, in JSON's words, never Swift's.
        (#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","vlan":1.5}"#, CNIError.invalidConfig, "\"vlan\" must be a whole number"),
        (#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","vlan":4095}"#, CNIError.invalidConfig, "reserved"),
        (#"{"cniVersion":"1.0.0","name":"n","bridge":["br0"]}"#, CNIError.invalidConfig, "\"bridge\" must be a string"),
        (#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","ipam":[]}"#, CNIError.invalidConfig, "\"ipam\" must be an object"),
        (#"{"cniVersion":"1.0.0","name":"n\n","bridge":"br0"}"#, CNIError.invalidConfig, #"\n"#),
        (#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","cni.dev/valid-attachments":[{"ifname":"eth0"}]}"#, CNIError.invalidConfig,
         "\"cni.dev/valid-attachments.[0].containerID\" is missing"),
        (#"{"cniVersion":"1.0.0","name":"#, CNIError.decodingFailure, "not a JSON object"),
    ])
    func badConfigsAreRefusedByName(json: String, code: Int, mentions: String) {
        let e = error(json)
        #expect(e?.code == code, "\(String(describing: e))")
        #expect(e.map { "\($0)".contains(mentions) } == true, "\(String(describing: e))")
        for swiftism in ["\\u{", "Array<", "Dictionary<", "Optional(", "Swift.", "DecodingError"] {
            #expect(e.map { "\($0)".contains(swiftism) } == false, "Swift's notation in \(String(describing: e))")
        }
    }

    /// Issue 28, case 5: every string from the runtime has a bound, checked where it enters.
    @Test func unboundedStringsAreRefusedByTheirSize() throws {
        let long = String(repeating: "n", count: CNIRules.maxNetworkName + 1)
        #expect(error(#"{"cniVersion":"1.0.0","name":""# + long + #"","bridge":"br0"}"#).map { "\($0)".contains("at most \(CNIRules.maxNetworkName)") } == true)
        #expect(try parse(#"{"cniVersion":"1.0.0","name":""# + String(long.dropFirst()) + #"","bridge":"br0"}"#).name.count == CNIRules.maxNetworkName)
        let huge = Array((#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","x":""# + String(repeating: "a", count: CNIRules.maxConfigBytes) + "\"}").utf8)
        #expect(throws: CNIError.self) { try CNIConfig.parse(huge) }
        func parameters(_ extra: [String: String]) -> CNIError? {
            let env = ["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/var/run/netns/x"].merging(extra) { $1 }
            do { _ = try CNIParameters.parse(env); return nil } catch { return error }
        }
        #expect(parameters([:]) == nil)
        #expect(parameters(["CNI_CONTAINERID": String(repeating: "c", count: 257)])?.code == CNIError.invalidEnvironment)
        #expect(parameters(["CNI_NETNS": "/" + String(repeating: "p", count: 4095)])?.code == CNIError.invalidEnvironment)
        #expect(parameters(["CNI_ARGS": String(repeating: "A=b;", count: 20_000)])?.code == CNIError.invalidEnvironment)
        #expect(parameters(["CNI_PATH": String(repeating: "/opt/cni/bin:", count: 6000)])?.code == CNIError.invalidEnvironment)
        #expect(parameters(["CNI_IFNAME": "averyveryverylongname"])?.code == CNIError.invalidEnvironment)
        let pod = "K8S_POD_NAME=" + String(repeating: "p", count: 254)
        #expect(throws: CNIError.self) { try CNIConfig.parse(Array(#"{"cniVersion":"1.0.0","name":"n","bridge":"br0"}"#.utf8), args: pod) }
    }

    @Test func gcReadsBothAttachmentKeys() throws {
        let valid = try parse(#"{"cniVersion":"1.1.0","name":"n","bridge":"br0","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}"#)
        #expect(valid.validAttachments?.map { "\($0.containerID)/\($0.ifname)" } == ["a/eth0"])
        let older = try parse(#"{"cniVersion":"1.1.0","name":"n","bridge":"br0","cni.dev/attachments":[{"containerID":"b","ifname":"net1"}]}"#)
        #expect(older.validAttachments?.map { "\($0.containerID)/\($0.ifname)" } == ["b/net1"])
        let empty = try parse(#"{"cniVersion":"1.1.0","name":"n","bridge":"br0","cni.dev/valid-attachments":[]}"#)
        #expect(empty.validAttachments?.isEmpty == true, "an empty list is a list: nothing is valid")
    }

    /// Issue 28, case 3: no list is not an empty list; nothing is known to be garbage.
    @Test(arguments: [#""#, #","cni.dev/valid-attachments":null"#, #","cni.dev/attachments":null"#])
    func gcWithoutAListKnowsNothing(extra: String) throws {
        let config = try parse(#"{"cniVersion":"1.1.0","name":"n","bridge":"br0""# + extra + "}")
        #expect(config.validAttachments == nil)
    }

    @Test func prevResultIsRead() throws {
        let c = try parse(#"{"cniVersion":"1.0.0","name":"n","bridge":"br0","prevResult":{"cniVersion":"1.0.0","#
                          + #""interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","sandbox":"/run/netns/x"}],"#
                          + #""ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0}]}}"#)
        #expect(try c.prevResult?.addresses().map { $0.cidr.description } == ["10.1.0.5/24"])
    }
}

@Suite struct CNIParametersTests {
    let base = ["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": "/var/run/netns/x", "CNI_IFNAME": "eth0",
                "CNI_PATH": "/opt/cni/bin:/usr/lib/cni"]

    @Test func addReadsEverything() throws {
        let p = try CNIParameters.parse(base)
        #expect(p.command == .add && p.containerID == "abc123" && p.ifname == "eth0" && p.path == ["/opt/cni/bin", "/usr/lib/cni"])
    }

    @Test func delNeedsNoNamespace() throws {
        var env = base
        env["CNI_COMMAND"] = "DEL"
        env["CNI_NETNS"] = ""
        #expect(try CNIParameters.parse(env).netns == "")
        env["CNI_COMMAND"] = "ADD"
        #expect(throws: CNIError.self) { try CNIParameters.parse(env) }
    }

    @Test(arguments: [("CNI_COMMAND", "PUT"), ("CNI_CONTAINERID", "a b"), ("CNI_CONTAINERID", ""), ("CNI_IFNAME", "a/b"),
                      ("CNI_IFNAME", "averyveryverylongname"), ("CNI_NETNS", "relative"), ("CNI_NETNS", "/a/../b")])
    func badVariablesAreRefusedByName(key: String, value: String) {
        var env = base
        env[key] = value
        do { _ = try CNIParameters.parse(env); Issue.record("\(key)=\(value) accepted") } catch {
            #expect(error.code == CNIError.invalidEnvironment)
            #expect(error.msg.contains(key) || error.msg.contains("CNI_"), "\(error)")
        }
    }
}

@Suite struct CNIResultTests {
    let result = CNIResult(cniVersion: nil,
                           interfaces: [.init(name: "nkc0123456789ab", mac: "02:00:00:00:00:09", sandbox: nil),
                                        .init(name: "eth0", mac: "02:00:00:00:00:01", mtu: 1500, sandbox: "/run/netns/x")],
                           ips: [.init(address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 1)],
                           routes: [.init(dst: "0.0.0.0/0", gw: "10.1.0.1")], dns: nil)

    func object(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test(arguments: CNIVersion.supported)
    func everyVersionEncodesAsItsSpecSays(version: String) throws {
        let o = try object(result.encoded(for: version))
        #expect(o["cniVersion"] as? String == version)
        let ip = try #require((o["ips"] as? [[String: Any]])?.first)
        #expect(ip["address"] as? String == "10.1.0.5/24" && ip["interface"] as? Int == 1 && ip["gateway"] as? String == "10.1.0.1")
        // Before 1.0.0 every IP says its family; from 1.0.0 on the key is gone.
        #expect((ip["version"] as? String) == (version.hasPrefix("0.") ? "4" : nil))
        let sandbox = (o["interfaces"] as? [[String: Any]])?[1]["sandbox"] as? String
        #expect(sandbox == "/run/netns/x")
        #expect(o["dns"] == nil)
    }

    @Test func errorsAreTheSpecsJSON() throws {
        let e = CNIError(CNIError.invalidConfig, "bridge \"nope\" does not exist", details: "ovsdb")
        let o = try object(e.json(version: "1.0.0"))
        #expect(o["cniVersion"] as? String == "1.0.0" && o["code"] as? Int == 7 && o["msg"] as? String == "bridge \"nope\" does not exist")
        #expect(o["details"] as? String == "ovsdb")
        #expect(CNIError.decode(e.json(version: "1.0.0")) == e)
    }

    @Test func ipv6AndBadAddressesAreRefused() {
        var r = result
        r.ips = [.init(address: "fd00::5/64", gateway: nil, interface: 1)]
        #expect(throws: CNIError.self) { try r.addresses() }
        r.ips = [.init(address: "10.1.0.0/24", gateway: nil, interface: 1)]
        #expect(throws: CNIError.self) { try r.addresses() }
        r.ips = [.init(address: "10.1.0.300/24", gateway: nil, interface: 1)]
        #expect(throws: CNIError.self) { try r.addresses() }
    }
}

@Suite struct CNIGarbageTests {
    func record(_ network: String, _ id: String, _ ifname: String) -> CNIAttachment {
        CNIAttachment(network: network, containerID: id, ifname: ifname, netns: "/run/netns/\(id)", bridge: "br0",
                      mac: MACAddress(bytes: [2, 0, 0, 0, 0, 1])!, mtu: 1500, vlan: nil, ipam: nil, createdAt: Timestamp(secondsSinceEpoch: 0))
    }

    @Test func onlyTheNetworksRecordsNotListedGo() {
        let records = [record("n", "a", "eth0"), record("n", "a", "net1"), record("n", "b", "eth0"), record("other", "c", "eth0")]
        let garbage = CNIRules.garbage(in: records, network: "n", valid: [("a", "eth0")])
        #expect(garbage.map(\.key) == ["n/a/net1", "n/b/eth0"])
        // An empty list collects every record of the network, and none of another.
        #expect(CNIRules.garbage(in: records, network: "n", valid: []).count == 3)
        #expect(CNIRules.garbage(in: records, network: "missing", valid: []).isEmpty)
    }

    @Test func hostNamesAreStableDistinctAndFitIFNAMSIZ() {
        let a = record("n", "a", "eth0"), b = record("n", "a", "eth1"), c = record("m", "a", "eth0")
        #expect(Set([a.hostIfname, b.hostIfname, c.hostIfname]).count == 3)
        #expect(a.hostIfname == record("n", "a", "eth0").hostIfname)
        #expect(a.hostIfname.hasPrefix("nkc") && a.hostIfname.utf8.count == 15)
        #expect(a.problems().isEmpty)
        var bad = a
        bad.hostIfname = "nkc000000000000"
        #expect(!bad.problems().isEmpty)
    }

    @Test func theSweepMendsOnlyReadyRecordsOnWhatItSaw() {
        var live = record("n", "a", "eth0"), lost = record("n", "b", "eth0"), dead = record("n", "c", "eth0"), fine = record("n", "d", "eth0")
        var pending = record("n", "e", "eth0"), removing = record("n", "f", "eth0")
        live.status = .ready; lost.status = .ready; dead.status = .ready; fine.status = .ready
        pending.status = .pending; removing.status = .removing
        let links: Set = [live.hostIfname, lost.hostIfname, fine.hostIfname, pending.hostIfname, removing.hostIfname]
        let ports: Set = [live.hostIfname, dead.hostIfname, fine.hostIfname, removing.hostIfname]
        let records = [live, lost, dead, fine, pending, removing]
        #expect(CNIRules.sweep(records, hostLinks: links, ports: ports)
                == [.addPort(lost, reason: "cni-port-missing"), .removeDeadPort(dead, reason: "cni-veth-gone")])
        // Unseen links or ports: nothing at all.
        #expect(CNIRules.sweep(records, hostLinks: nil, ports: ports).isEmpty)
        #expect(CNIRules.sweep(records, hostLinks: links, ports: nil).isEmpty)
    }
}


/// netkeep-dhcp, the built-in IPAM: its config, the MAC it derives, and what
/// DEL keeps of a lease for the client's return.
@Suite struct CNIBuiltInDHCPTests {
    static let t0 = Timestamp(secondsSinceEpoch: 1_800_000_000)
    static let mac = MACAddress(bytes: [2, 0, 0, 0, 0, 7])!

    func parse(_ ipam: String, args: String = "") throws(CNIError) -> CNIConfig {
        try CNIConfig.parse(Array(#"{"cniVersion":"1.1.0","name":"n","type":"netkeep","bridge":"br0","ipam":\#(ipam)}"#.utf8), args: args)
    }

    static func lease(seconds: Int64 = 3600) -> Lease {
        Lease(address: try! IPv4CIDR(parsing: "10.1.2.150/24"), router: IPv4Address(10, 1, 2, 1), serverID: IPv4Address(10, 1, 2, 1),
              leaseSeconds: seconds, renewSeconds: seconds / 2, rebindSeconds: seconds * 7 / 8, obtainedAt: t0,
              renewAt: t0.adding(seconds: seconds / 2), rebindAt: t0.adding(seconds: seconds * 7 / 8), confirmed: true)
    }

    static func record(lease: Lease?, ipam: String? = CNIRules.builtInDHCP) -> CNIAttachment {
        var a = CNIAttachment(network: "n", containerID: "abc", ifname: "eth0", netns: "/run/netns/abc", bridge: "br0", mac: mac, mtu: 1500,
                              vlan: 10, ipam: ipam, createdAt: t0)
        a.lease = lease
        a.addresses = lease.map { [$0.address] } ?? []
        return a
    }

    @Test func theConfigReadsReleaseAfterAndDefaultsIt() throws {
        let plain = try parse(#"{"type":"netkeep-dhcp"}"#)
        #expect(plain.ipamType == CNIRules.builtInDHCP && plain.releaseAfter == CNIRules.defaultReleaseAfter)
        #expect(try parse(#"{"type":"netkeep-dhcp","releaseAfter":0}"#).releaseAfter == 0)
        #expect(try parse(#"{"type":"netkeep-dhcp","releaseAfter":2592000}"#).releaseAfter == 2_592_000)
        // A delegated plugin's keys are its own business: netkeep passes them on.
        #expect(try parse(#"{"type":"host-local","subnet":"10.1.0.0/24","releaseAfter":"x"}"#).ipamType == "host-local")
    }

    @Test(arguments: [
        (#"{"type":"netkeep-dhcp","subnet":"10.1.0.0/24"}"#, "ipam key \"subnet\""),
        (#"{"type":"netkeep-dhcp","releaseAfter":-1}"#, "releaseAfter -1"),
        (#"{"type":"netkeep-dhcp","releaseAfter":2592001}"#, "releaseAfter 2592001"),
        (#"{"type":"netkeep-dhcp","releaseAfter":"10m"}"#, "\"ipam.releaseAfter\" must be a whole number"),
    ])
    func badBuiltInConfigsAreRefusedByName(ipam: String, mentions: String) {
        do {
            _ = try parse(ipam)
            Issue.record("accepted \(ipam)")
        } catch {
            #expect(error.code == CNIError.invalidConfig, "\(error)")
            // A value of the wrong JSON type is named by its key path; the others by network too.
            #expect("\(error)".contains(mentions), "\(error)")
            #expect("\(error)".contains("network \"n\"") || mentions.hasSuffix("must be a whole number"), "\(error)")
        }
    }

    @Test func thePodIsTheIdentityWhenTheRuntimeNamesIt() throws {
        let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc"
        #expect(try parse(#"{"type":"netkeep-dhcp"}"#, args: args).podIdentity == "pod/default/web-0")
        // Podman names the container, without a namespace.
        #expect(try parse(#"{"type":"netkeep-dhcp"}"#, args: "IgnoreUnknown=1;K8S_POD_NAME=web").podIdentity == "pod//web")
        #expect(try parse(#"{"type":"netkeep-dhcp"}"#, args: "K8S_POD_NAMESPACE=default").podIdentity == nil)
        #expect(try parse(#"{"type":"netkeep-dhcp"}"#).podIdentity == nil)
    }

    @Test func theDerivedMACIsStableLocalUnicastAndPerNetworkAndInterface() {
        let a = CNIRules.derivedMAC(network: "n", identity: "pod/default/web-0", ifname: "eth0")
        #expect(a == CNIRules.derivedMAC(network: "n", identity: "pod/default/web-0", ifname: "eth0"))
        let others = [CNIRules.derivedMAC(network: "m", identity: "pod/default/web-0", ifname: "eth0"),
                      CNIRules.derivedMAC(network: "n", identity: "pod/default/web-1", ifname: "eth0"),
                      CNIRules.derivedMAC(network: "n", identity: "pod/default/web-0", ifname: "eth1")]
        #expect(Set(others + [a]).count == 4)
        for m in others + [a] {
            #expect(m.bytes[0] & 0x01 == 0 && m.bytes[0] & 0x02 == 2, "\(m)")
            #expect((try? m.validatedForInterface()) != nil, "\(m)")
        }
    }

    @Test func delKeepsAValidLeaseUntilReleaseAfterButNeverPastItsExpiry() throws {
        let now = Self.t0.adding(seconds: 100)
        let kept = try #require(CNIRules.keep(Self.record(lease: Self.lease()), releaseAfter: 600, now: now))
        #expect(kept.releaseAt == now.adding(seconds: 600) && kept.mac == Self.mac && kept.vlan == 10 && kept.network == "n")
        #expect(try #require(CNIRules.keep(Self.record(lease: Self.lease()), releaseAfter: 86_400, now: now)).releaseAt
                == Self.t0.adding(seconds: 3600))
        #expect(CNIRules.keep(Self.record(lease: nil), releaseAfter: 600, now: now) == nil)
        #expect(CNIRules.keep(Self.record(lease: Self.lease()), releaseAfter: 600, now: Self.t0.adding(seconds: 3600)) == nil, "expired: nothing to keep")
    }

    @Test func anAddTakesOnlyAValidLeaseOfItsNetworkAndMAC() throws {
        let now = Self.t0.adding(seconds: 100)
        let kept = try #require(CNIRules.keep(Self.record(lease: Self.lease()), releaseAfter: 600, now: now))
        #expect(CNIRules.keptLease(in: [kept], network: "n", mac: Self.mac, now: now) == kept)
        #expect(CNIRules.keptLease(in: [kept], network: "m", mac: Self.mac, now: now) == nil)
        #expect(CNIRules.keptLease(in: [kept], network: "n", mac: MACAddress(bytes: [2, 0, 0, 0, 0, 8])!, now: now) == nil)
        #expect(CNIRules.keptLease(in: [kept], network: "n", mac: Self.mac, now: Self.t0.adding(seconds: 3600)) == nil)
    }

    @Test func theDaemonReleasesWhatIsDueAndOnlyForgetsWhatRanOut() throws {
        let now = Self.t0.adding(seconds: 100)
        let soon = try #require(CNIRules.keep(Self.record(lease: Self.lease()), releaseAfter: 60, now: now))
        var later = try #require(CNIRules.keep(Self.record(lease: Self.lease()), releaseAfter: 600, now: now))
        later.mac = MACAddress(bytes: [2, 0, 0, 0, 0, 9])!
        var short = try #require(CNIRules.keep(Self.record(lease: Self.lease(seconds: 200)), releaseAfter: 600, now: now))
        short.mac = MACAddress(bytes: [2, 0, 0, 0, 0, 10])!
        #expect(CNIRules.releases(in: [soon, later, short], now: now.adding(seconds: 59)) == ([], []))
        #expect(CNIRules.releases(in: [soon, later, short], now: now.adding(seconds: 60)) == ([soon], []))
        // The short lease is due at its expiry (the release time is capped there) and then is only forgotten.
        #expect(CNIRules.releases(in: [later, short], now: Self.t0.adding(seconds: 200)) == ([], [short]))
        #expect(CNIRules.releases(in: [later, short], now: now.adding(seconds: 600)) == ([later], [short]))
    }

    @Test func aLeaseBelongsOnlyToABuiltInDHCPRecordAndToOneOfItsAddresses() {
        #expect(Self.record(lease: Self.lease()).problems().isEmpty)
        #expect(Self.record(lease: Self.lease(), ipam: "host-local").problems().contains { $0.contains("only an attachment of IPAM netkeep-dhcp") })
        var moved = Self.record(lease: Self.lease())
        moved.addresses = [try! IPv4CIDR(parsing: "10.1.2.151/24")]
        #expect(moved.problems().contains { $0.contains("10.1.2.150/24 is not among the addresses") })
    }

    @Test func theStateRefusesTwoKeptLeasesOfOneClient() throws {
        let kept = try #require(CNIRules.keep(Self.record(lease: Self.lease()), releaseAfter: 600, now: Self.t0))
        var state = State()
        state.keep(kept)
        state.keep(kept)
        #expect(state.cniLeases.count == 1 && state.problems().isEmpty, "keep replaces the client's earlier lease")
        state.cniLeases.append(kept)
        #expect(state.problems().contains { $0.contains("cni_leases[1]: the same network and MAC") })
        var bad = kept
        bad.network = "-n"
        var other = State()
        other.cniLeases = [bad]
        #expect(other.problems().contains { $0.hasPrefix("cni_leases[0]:") && $0.contains("network name") })
    }
}
