// libFuzzer entry for what a CNI runtime hands netkeep: the parameters in
// the environment (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
// CNI_ARGS, CNI_PATH) and the network config on stdin. Built by
// scripts/fuzz-cni with `swiftc -sanitize=fuzzer,address` together with the
// CNI module's sources and NetkeepCore's.
//
// Input: lines. The first six are the six variables, the rest is the
// config. Whatever comes in, the parser either gives a config whose every
// value passes netkeep's own checks again, or an error whose JSON is the
// spec's, in the runtime's words: no crash, no Swift notation, no raw
// control character in the message.

import FoundationEssentials

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCNI(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var lines = bytes.split(separator: 0x0a, maxSplits: 6, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    while lines.count < 7 { lines.append("") }
    let names = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"]
    let environment = Dictionary(uniqueKeysWithValues: zip(names, lines.prefix(6)))
    let stdin = Array(lines[6].utf8)

    do {
        let p = try CNIParameters.parse(environment)
        if [.add, .del, .check].contains(p.command) {
            guard (try? CNIRules.containerID(p.containerID)) != nil, (try? Names.interface(p.ifname)) != nil else {
                fatalError("parameters accepted that netkeep's checks refuse: \(p)")
            }
        }
        guard p.args.utf8.count <= CNIRules.maxEnvironmentValue else { fatalError("CNI_ARGS over its bound") }
    } catch {
        check(error)
    }
    do {
        let config = try CNIConfig.parse(stdin, args: environment["CNI_ARGS"] ?? "")
        guard CNIVersion.supported.contains(config.cniVersion), (try? CNIRules.networkName(config.name)) != nil,
              (try? Names.bridge(config.bridge)) != nil, (try? AttachRequest.validateMTU(config.mtu)) != nil,
              config.vlan.map({ (try? AttachRequest.validateVLAN($0)) != nil }) ?? true,
              config.mac.map({ (try? $0.validatedForInterface()) != nil }) ?? true else {
            fatalError("config accepted that netkeep's checks refuse: \(config.name) \(config.bridge) \(config.mtu) \(String(describing: config.vlan))")
        }
        // A result netkeep writes for it reads back.
        let result = CNIResult(cniVersion: config.cniVersion, interfaces: nil, ips: [], routes: nil, dns: nil)
        guard CNIResult.decode(result.encoded(for: config.cniVersion)) != nil else { fatalError("an unreadable result for \(config.cniVersion)") }
    } catch {
        check(error)
    }
    _ = CNIConfig.requestedVersion(stdin)
    return 0
}

/// An error as the runtime gets it: the spec's JSON, a known code, a message in the runtime's words.
func check(_ error: CNIError) {
    struct Wire: Decodable { var cniVersion: String; var code: Int; var msg: String; var details: String? }
    guard let wire = try? JSONDecoder().decode(Wire.self, from: Data(error.json(version: "1.0.0"))) else {
        fatalError("error JSON does not read back: \(error)")
    }
    guard [1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 101, 102].contains(wire.code) else { fatalError("unknown code \(wire.code)") }
    for text in [wire.msg, wire.details ?? ""] {
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else { fatalError("a raw control character in \(text.debugDescription)") }
        for swiftism in ["\\u{", "Array<", "Dictionary<", "Optional(", "Swift.", "DecodingError"] where text.contains(swiftism) {
            fatalError("Swift's notation in \(text.debugDescription)")
        }
    }
    guard wire.msg.utf8.count < 4096, (wire.details ?? "").utf8.count < 4096 else { fatalError("an unbounded message of \(wire.msg.utf8.count) bytes") }
}
