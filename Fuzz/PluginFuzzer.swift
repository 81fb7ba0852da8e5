// libFuzzer entry for what Docker (or anyone who can reach the plugin
// socket) sends netkeep's network driver: a request path and a JSON body,
// through PluginRouter and the driver's own checks of what it records
// (DockerNetwork.parse, the network's endpoint-address rule). Built by
// scripts/fuzz-plugin with `swiftc -sanitize=fuzzer,address` together with
// the DockerPlugin module's messages and router and NetkeepCore.
//
// Input: one control byte (which request), then the body. Whatever comes
// in, the answer is a known status with a JSON body, an error says what is
// wrong in plain words, and a network accepted passes every check of
// loading it again.

import FoundationEssentials

/// The driver's checks without a host: what NetworkPlugin records is what these accept.
final class FuzzDriver: NetworkDriver, @unchecked Sendable {
    func createNetwork(_ r: CreateNetworkRequest) throws(PluginError) {
        let options = try r.generic.get()
        let v4 = r.IPv4Data?.first
        let network: DockerNetwork
        do {
            network = try DockerNetwork.parse(id: r.NetworkID, options: options, pool: v4?.Pool, gateway: v4?.Gateway, now: Timestamp(secondsSinceEpoch: 0))
        } catch { throw PluginError("\(error)") }
        guard network.problems().isEmpty else { fatalError("a network accepted that would not load: \(network.problems())") }
        if let subnet = network.subnet, let gateway = network.gateway, let cidr = try? IPv4CIDR(address: gateway, prefixLength: subnet.prefixLength) {
            guard (try? network.checkEndpointAddress(cidr)) == nil else { fatalError("the gateway was accepted as an endpoint address") }
        }
    }
    func deleteNetwork(_ r: NetworkRequest) throws(PluginError) {}
    func createEndpoint(_ r: CreateEndpointRequest) throws(PluginError) -> CreateEndpointReply { CreateEndpointReply(Interface: nil) }
    func deleteEndpoint(_ r: EndpointRequest) throws(PluginError) {}
    func join(_ r: JoinRequest) throws(PluginError) -> JoinReply {
        JoinReply(SrcName: "nkp0", DstPrefix: "eth", Gateway: nil, DisableGatewayService: true)
    }
    func leave(_ r: EndpointRequest) throws(PluginError) {}
}

let router = PluginRouter(driver: FuzzDriver())

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPlugin(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let control = bytes.first else { return 0 }
    let paths = PluginRouter.methods + ["/NetworkDriver.Unknown", "/IpamDriver.RequestPool"]
    let path = paths[Int(control) % paths.count]
    let method = control & 0x80 == 0 ? "POST" : "GET"
    let response = router.respond(method: method, path: path, body: Array(bytes.dropFirst()))
    guard [200, 400, 404, 405, 500].contains(response.status) else { fatalError("status \(response.status) for \(path)") }
    struct Refusal: Decodable { var Err: String }
    if response.status != 200 {
        guard let refusal = try? JSONDecoder().decode(Refusal.self, from: Data(response.body)) else { fatalError("an error without Err: \(response.body)") }
        let text = refusal.Err
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else { fatalError("a raw control character in \(text.debugDescription)") }
        for swiftism in ["\\u{", "Array<", "Dictionary<", "Optional(", "Swift.", "DecodingError"] where text.contains(swiftism) {
            fatalError("Swift's notation in \(text.debugDescription)")
        }
        guard text.utf8.count < 4096 else { fatalError("an unbounded message of \(text.utf8.count) bytes") }
    } else {
        struct AnyObject: Decodable {}
        guard (try? JSONDecoder().decode(AnyObject.self, from: Data(response.body))) != nil else { fatalError("a 200 without a JSON object") }
    }
    return 0
}
