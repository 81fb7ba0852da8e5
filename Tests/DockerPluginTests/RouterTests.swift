import DockerPlugin
import Foundation
import Testing

/// What the router handed the driver, and canned answers.
final class RecordingDriver: NetworkDriver, @unchecked Sendable {
    let lock = NSLock()
    var calls: [String] = []
    var networks: [CreateNetworkRequest] = []
    var endpoints: [CreateEndpointRequest] = []
    var joins: [JoinRequest] = []
    var refuse: PluginError?

    func note(_ call: String) throws(PluginError) {
        lock.withLock { calls.append(call) }
        if let refuse { throw refuse }
    }

    func createNetwork(_ r: CreateNetworkRequest) throws(PluginError) {
        lock.withLock { networks.append(r) }
        try note("CreateNetwork \(r.NetworkID.prefix(12))")
    }
    func deleteNetwork(_ r: NetworkRequest) throws(PluginError) { try note("DeleteNetwork \(r.NetworkID.prefix(12))") }
    func createEndpoint(_ r: CreateEndpointRequest) throws(PluginError) -> CreateEndpointReply {
        lock.withLock { endpoints.append(r) }
        try note("CreateEndpoint \(r.EndpointID.prefix(12))")
        return CreateEndpointReply(Interface: EndpointInterface(Address: "10.1.2.7/24", AddressIPv6: "", MacAddress: ""))
    }
    func deleteEndpoint(_ r: EndpointRequest) throws(PluginError) { try note("DeleteEndpoint \(r.EndpointID.prefix(12))") }
    func join(_ r: JoinRequest) throws(PluginError) -> JoinReply {
        lock.withLock { joins.append(r) }
        try note("Join \(r.EndpointID.prefix(12))")
        return JoinReply(SrcName: "nkp0123456789ab", DstPrefix: "eth", Gateway: nil, DisableGatewayService: true)
    }
    func leave(_ r: EndpointRequest) throws(PluginError) { try note("Leave \(r.EndpointID.prefix(12))") }
}

func fixture(_ name: String) throws -> [UInt8] {
    let url = try #require(Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil))
    return Array(try Data(contentsOf: url))
}

func json(_ response: PluginResponse) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
}

@Suite struct RouterTests {
    let driver = RecordingDriver()
    var router: PluginRouter { PluginRouter(driver: driver) }

    @Test func activateNamesTheNetworkDriverAndTheScopeIsLocal() throws {
        let activate = router.respond(method: "POST", path: "/Plugin.Activate", body: try fixture("01-Activate.json"))
        #expect(activate.status == 200)
        #expect(try json(activate)["Implements"] as? [String] == ["NetworkDriver"])
        let caps = router.respond(method: "POST", path: "/NetworkDriver.GetCapabilities", body: try fixture("02-GetCapabilities.json"))
        #expect(try json(caps)["Scope"] as? String == "local")
    }

    @Test func createNetworkCarriesTheUsersOptionsAndDockersIPAM() throws {
        let r = router.respond(method: "POST", path: "/NetworkDriver.CreateNetwork", body: try fixture("03-CreateNetwork.json"))
        #expect(r.status == 200 && r.body == Array("{}".utf8))
        let request = try #require(driver.networks.first)
        #expect(try request.generic.get() == ["bridge": "nk-br0", "vlan": "5"])
        #expect(request.IPv4Data == [IPAMData(AddressSpace: "LocalDefault", Pool: "10.9.9.0/24", Gateway: "10.9.9.1/24")])
        _ = router.respond(method: "POST", path: "/NetworkDriver.CreateNetwork", body: try fixture("04-CreateNetwork.json"))
        #expect(try driver.networks[1].generic.get() == ["dhcp": "true"])
        #expect(driver.networks[1].IPv4Data?.first?.AddressSpace == "null")
    }

    @Test func createEndpointRepliesWithoutTheEmptyFields() throws {
        let r = router.respond(method: "POST", path: "/NetworkDriver.CreateEndpoint", body: try fixture("05-CreateEndpoint.json"))
        #expect(r.status == 200)
        #expect(String(decoding: r.body, as: UTF8.self) == #"{"Interface":{"Address":"10.1.2.7\/24"}}"#
            || String(decoding: r.body, as: UTF8.self) == #"{"Interface":{"Address":"10.1.2.7/24"}}"#)
        #expect(driver.endpoints.first?.Interface == EndpointInterface(Address: "10.9.9.50/24", AddressIPv6: "", MacAddress: ""))
        // --mac-address reaches the driver in Interface.MacAddress, again after a restart.
        _ = router.respond(method: "POST", path: "/NetworkDriver.CreateEndpoint", body: try fixture("07-CreateEndpoint.json"))
        _ = router.respond(method: "POST", path: "/NetworkDriver.CreateEndpoint", body: try fixture("11-CreateEndpoint.json"))
        #expect(driver.endpoints[1].Interface?.MacAddress == "02:4e:4b:00:00:42")
        #expect(driver.endpoints[2].Interface?.MacAddress == "02:4e:4b:00:00:42")
        #expect(driver.endpoints[1].EndpointID != driver.endpoints[2].EndpointID)
    }

    @Test func joinGivesTheInterfaceAndTurnsTheGatewayServiceOffWithoutAGateway() throws {
        let r = router.respond(method: "POST", path: "/NetworkDriver.Join", body: try fixture("06-Join.json"))
        #expect(r.status == 200)
        let body = try json(r)
        #expect(body["InterfaceName"] as? [String: String] == ["SrcName": "nkp0123456789ab", "DstPrefix": "eth"])
        #expect(body["DisableGatewayService"] as? Bool == true)
        #expect(body["Gateway"] == nil)
        #expect(driver.joins.first?.SandboxKey.hasPrefix("/var/run/docker/netns/") == true)
    }

    @Test func everyCapturedRequestReachesTheDriverOnce() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: try #require(Bundle.module.resourcePath) + "/Fixtures")
            .filter { $0.hasSuffix(".json") }.sorted()
        #expect(names.count >= 16)
        for name in names {
            let method = String(name.dropFirst(3).dropLast(5))
            let path = method == "Activate" ? "/Plugin.Activate" : "/NetworkDriver." + method
            let r = router.respond(method: "POST", path: path, body: try fixture(name))
            #expect(r.status == 200, "\(name): \(String(decoding: r.body, as: UTF8.self))")
        }
        let kinds = driver.calls.map { $0.split(separator: " ")[0] }
        #expect(kinds.filter { $0 == "CreateEndpoint" }.count == 3)
        #expect(kinds.filter { $0 == "DeleteEndpoint" }.count == 3)
        #expect(kinds.filter { $0 == "Leave" }.count == 3)
        #expect(kinds.filter { $0 == "DeleteNetwork" }.count == 2)
    }

    @Test func aRefusalIsAnErrWithStatus500() throws {
        driver.refuse = PluginError(#"bridge "nope" does not exist (ovsdb)"#)
        let r = router.respond(method: "POST", path: "/NetworkDriver.CreateNetwork", body: try fixture("03-CreateNetwork.json"))
        #expect(r.status == 500)
        #expect(try json(r)["Err"] as? String == #"bridge "nope" does not exist (ovsdb)"#)
    }

    @Test func unknownMethodsAre404AndBadBodiesAre400WithoutReachingTheDriver() throws {
        for path in ["/IpamDriver.RequestPool", "/NetworkDriver.AllocateNetwork", "/", "/../etc/passwd"] {
            #expect(router.respond(method: "POST", path: path, body: []).status == 404, "\(path)")
        }
        let cases: [(String, String)] = [
            ("not json", "not JSON"),
            (#"{"NetworkID": 5}"#, "NetworkID has the wrong type"),
            (#"{"EndpointID": "x"}"#, "NetworkID is missing"),
            (#"{"NetworkID":"a","EndpointID":"b","SandboxKey":null}"#, "SandboxKey"),
        ]
        for (body, cause) in cases {
            let r = router.respond(method: "POST", path: "/NetworkDriver.Join", body: Array(body.utf8))
            #expect(r.status == 400, "\(body)")
            let err = try json(r)["Err"] as? String ?? ""
            #expect(err.hasPrefix("malformed Join request") && err.contains(cause), "\(err)")
        }
        #expect(router.respond(method: "GET", path: "/NetworkDriver.Join", body: []).status == 405)
        #expect(driver.calls.isEmpty)
    }

    @Test func anOptionThatIsNotAStringIsRefusedByName() throws {
        let body = #"{"NetworkID":"n","Options":{"com.docker.network.generic":{"vlan":5}}}"#
        let request = try JSONDecoder().decode(CreateNetworkRequest.self, from: Data(body.utf8))
        #expect(throws: PluginError("option \"vlan\": a number, not a string")) { try request.generic.get() }
    }
}
