import NetkeepCore
import Testing

@Suite struct DockerNetworkTests {
    static let id = String(repeating: "ab", count: 32)
    static let now = Timestamp(secondsSinceEpoch: 1_800_000_000)

    func parse(_ options: [String: String], pool: String? = "10.9.9.0/24", gateway: String? = "10.9.9.1/24") throws(InputError) -> DockerNetwork {
        try DockerNetwork.parse(id: Self.id, options: options, pool: pool, gateway: gateway, now: Self.now)
    }

    @Test func aStaticNetworkTakesDockersSubnetAndGateway() throws {
        let n = try parse(["bridge": "br0", "vlan": "5", "mtu": "1400"])
        #expect(n.bridge == "br0" && n.vlan == 5 && n.mtu == 1400 && n.mode == .static)
        #expect(n.subnet?.description == "10.9.9.0/24")
        #expect(n.gateway?.description == "10.9.9.1")
        #expect(n.problems().isEmpty)
    }

    @Test func aDHCPNetworkNeedsTheNullIPAMDriver() throws {
        let n = try parse(["bridge": "br0", "dhcp": "true"], pool: "0.0.0.0/0", gateway: nil)
        #expect(n.mode == .dhcp && n.subnet == nil && n.gateway == nil && n.mtu == 1500)
        #expect(throws: InputError(object: "option dhcp=true", cause: "addresses come from DHCP: create the network with --ipam-driver null")) {
            try parse(["bridge": "br0", "dhcp": "true"])
        }
    }

    @Test func badOptionsAreRefusedByName() {
        let cases: [([String: String], String?, String)] = [
            (["bridge": "br0", "colour": "red"], "10.9.9.0/24", #"option "colour""#),
            ([:], "10.9.9.0/24", "needs -o bridge=BRIDGE"),
            (["bridge": "br 0"], "10.9.9.0/24", "bridge"),
            (["bridge": "br0", "vlan": "4096"], "10.9.9.0/24", "VLAN 4096"),
            (["bridge": "br0", "vlan": "-1"], "10.9.9.0/24", "VLAN"),
            (["bridge": "br0", "mtu": "9x"], "10.9.9.0/24", "MTU"),
            (["bridge": "br0", "dhcp": "yes"], "10.9.9.0/24", "must be true or false"),
            (["bridge": "br0"], "0.0.0.0/0", "has no IPv4 subnet"),
            (["bridge": "br0"], nil, "has no IPv4 subnet"),
            (["bridge": "br0"], "10.9.9.1/24", "not a network address"),
            (["bridge": "br0"], "10.0.0.0/31", "/8 to /30"),
            (["bridge": "br0"], "10.9.9.0/x", "NETWORK/PREFIX"),
        ]
        for (options, pool, fragment) in cases {
            do {
                _ = try parse(options, pool: pool, gateway: nil)
                Issue.record("accepted \(options) \(pool ?? "nil")")
            } catch {
                #expect(error.description.contains(fragment), "\(options): \(error)")
            }
        }
        #expect(throws: InputError.self) { try parse(["bridge": "br0"], gateway: "10.8.0.1/24") }
        #expect(throws: InputError.self) { try DockerNetwork.parse(id: "../x", options: ["bridge": "br0"], pool: "10.9.9.0/24", gateway: nil, now: Self.now) }
    }

    @Test func endpointNamesAreDerivedFitIFNAMSIZAndNeverMeetAnAttachments() throws {
        var seen = Set<String>()
        for n in 0..<2000 {
            let id = String(String(n, radix: 16).reversed()).padding(toLength: 64, withPad: "0", startingAt: 0)
            let host = Names.endpointInterface(endpointID: id, host: true), peer = Names.endpointInterface(endpointID: id, host: false)
            #expect(host.count == 15 && peer.count == 15 && host.hasPrefix("nke") && peer.hasPrefix("nkp"))
            #expect(host == Names.endpointInterface(endpointID: id, host: true))
            #expect(seen.insert(host).inserted && seen.insert(peer).inserted)
            // An attachment's host end is nk + 12 hex: 14 bytes.
            #expect(Names.hostInterface(containerID: id, ifname: "eth1").count == 14)
        }
    }

    @Test func aStaticEndpointsMACFollowsItsAddress() throws {
        let mac = Endpoint.mac(for: try IPv4Address(parsing: "10.9.9.50"))
        #expect(mac.description == "02:6e:0a:09:09:32")
        #expect(try mac.validatedForInterface() == mac)
    }

    @Test func stateProblemsNameBadNetworkAndEndpointRecords() throws {
        let network = try parse(["bridge": "br0"])
        var endpoint = Endpoint(id: String(repeating: "cd", count: 32), network: network, mac: Endpoint.mac(for: IPv4Address(10, 9, 9, 5)),
                                macFromDocker: false, address: try IPv4CIDR(parsing: "10.9.9.5/24"), createdAt: Self.now)
        var state = State()
        state.networks = [network]
        state.endpoints = [endpoint]
        #expect(state.problems().isEmpty)
        endpoint.hostIfname = "eth0"
        endpoint.sandboxKey = "/etc/../proc/1/ns/net"
        state.endpoints = [endpoint, endpoint]
        state.networks = []
        let problems = state.problems()
        #expect(problems.contains("endpoints[1]: the same id as an earlier endpoint"))
        #expect(problems.contains("endpoints[0].network_id: no such network in the file"))
        #expect(problems.contains { $0.hasPrefix("endpoints[0].host_ifname") })
        #expect(problems.contains { $0.hasPrefix("endpoints[0].sandbox_key") })
        #expect(Endpoint.isSandboxKey("/var/run/docker/netns/63c681b9cce1"))
        #expect(!Endpoint.isSandboxKey("/var/run/docker/netns/../../x") && !Endpoint.isSandboxKey("/var/run/docker/netns/"))
    }
}
