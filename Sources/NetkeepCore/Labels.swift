/// What a container asks for with its labels, fixed when it was created:
/// `netkeep.<ifname>.bridge=BR` and `netkeep.<ifname>.ip=CIDR|dhcp`, with
/// optional `.gateway`, `.mac`, `.mtu` and `.vlan`; `netkeep.instance=NAME`
/// says which netkeep of the host the container is for (`Instance`).
///
/// Only labels whose key starts with the bytes `netkeep.` are ours. Docker
/// label keys are case-sensitive, so `Netkeep.eth1.bridge`, `netkeep` and
/// `netkeeper.x` belong to someone else and are ignored.
public enum LabelDeclaration: Equatable, Sendable {
    /// No `netkeep.` label: the container is left to `netkeep attach`.
    case nothing
    /// The interfaces to attach, sorted by ifname, each checked as `netkeep attach` checks it.
    case interfaces([AttachRequest])
    /// At least one label is bad, so nothing is attached: a container is
    /// attached as its labels say or not at all. Every problem, sorted by label.
    case refused([LabelProblem])

    public static let prefix = "netkeep."
    /// Each interface makes a veth pair, an OVS port and a record: the cap
    /// keeps the labels of one container from flooding the host.
    public static let maxInterfaces = 16
    public static let keys = ["bridge", "ip", "gateway", "mac", "mtu", "vlan"]

    /// Reads Docker's `Config.Labels` as `instance` sees them: a container
    /// labelled for another instance declares nothing to this one.
    /// `container` (an id or name) goes into each request; it is the
    /// caller's argument, not a label, so a bad one is thrown.
    public static func parse(labels: [String: String], container: String, instance: Instance = .default) throws(InputError) -> LabelDeclaration {
        let container = try Names.containerReference(container)
        var problems: [LabelProblem] = []
        switch Instance.of(labels: labels) {
        case .success(let owner) where owner != instance: return .nothing
        case .success: break
        case .failure(let problem):
            // Nobody's: said once, by the default instance.
            guard instance == .default else { return .nothing }
            problems.append(problem)
        }
        // ifname -> key -> value, unknown keys included: they still mention the interface.
        var declared: [String: [String: String]] = [:]
        for (label, value) in labels where label != Instance.label {
            guard label.utf8.starts(with: prefix.utf8) else { continue }
            do {
                let (ifname, key) = try split(label)
                if !keys.contains(key) {
                    problems.append(LabelProblem(key: label, cause: "unknown key \(quoted(key)); the keys are \(keys.joined(separator: ", "))"))
                }
                declared[ifname, default: [:]][key] = value
            } catch {
                problems.append(error)
            }
        }
        if declared.isEmpty, problems.isEmpty { return .nothing }

        let ifnames = declared.keys.sorted()
        if ifnames.count > maxInterfaces {
            let first = ifnames[maxInterfaces]
            problems.append(LabelProblem(
                key: "\(prefix)\(first).\(declared[first]!.keys.min()!)",
                cause: "\(ifnames.count) interfaces declared; a container may declare at most \(maxInterfaces) (each makes a veth pair, an OVS port and a record)"))
        }
        var requests: [AttachRequest] = []
        for ifname in ifnames {
            let fields = declared[ifname]!
            let found = interfaceProblems(ifname: ifname, fields: fields)
            guard found.isEmpty else {
                problems += found
                continue
            }
            // Built by attach's own parser, so nothing passes here that `netkeep attach` refuses.
            let ip = fields["ip"]!
            do {
                requests.append(try AttachRequest.parse(container: container, bridge: fields["bridge"]!, ifname: ifname,
                                                        ip: ip == "dhcp" ? nil : ip, dhcp: ip == "dhcp", gateway: fields["gateway"],
                                                        mac: fields["mac"], mtu: fields["mtu"], vlan: fields["vlan"]))
            } catch {
                problems.append(LabelProblem(key: "\(prefix)\(ifname).bridge", cause: error.description))
            }
        }
        guard problems.isEmpty else { return .refused(problems.sorted { ($0.key, $0.cause) < ($1.key, $1.cause) }) }
        return .interfaces(requests)
    }

    /// `netkeep.<ifname>.<key>`: the ifname runs to the last dot, since
    /// Linux interface names may contain dots (`eth1.100`).
    static func split(_ label: String) throws(LabelProblem) -> (ifname: String, key: String) {
        // The prefix is ASCII: as many scalars as bytes, and slicing scalars keeps every byte.
        let rest = label.unicodeScalars.dropFirst(prefix.utf8.count)
        let form = "netkeep.<ifname>.<key>"
        guard let dot = rest.lastIndex(of: ".") else { throw LabelProblem(key: label, cause: "is not of the form \(form)") }
        let ifname = String(rest[..<dot]), key = String(rest[rest.index(after: dot)...])
        if ifname.isEmpty { throw LabelProblem(key: label, cause: "has no interface name (\(form))") }
        if key.isEmpty { throw LabelProblem(key: label, cause: "has no key after the interface name (\(form))") }
        do { _ = try Names.interface(ifname) } catch {
            throw LabelProblem(key: label, cause: "the interface name \(error.cause)")
        }
        return (ifname, key)
    }

    /// Every problem of one interface's labels, each value checked alone by
    /// attach's own field check so that each problem names its label.
    static func interfaceProblems(ifname: String, fields: [String: String]) -> [LabelProblem] {
        var problems: [LabelProblem] = []
        func label(_ key: String) -> String { "\(prefix)\(ifname).\(key)" }
        func check<T>(_ key: String, _ parse: (String) throws(InputError) -> T) -> T? {
            guard let value = fields[key] else { return nil }
            do { return try parse(value) } catch {
                problems.append(LabelProblem(key: label(key), value: value, cause: error.cause))
                return nil
            }
        }
        for key in ["bridge", "ip"] where fields[key] == nil {
            problems.append(LabelProblem(key: label(key), cause: "is missing; an interface declared by labels needs a bridge and an ip"))
        }
        _ = check("bridge") { text throws(InputError) in try Names.bridge(text) }
        let dhcp = fields["ip"] == "dhcp"
        let address = dhcp ? nil : check("ip") { text throws(InputError) in
            // Without a slash the value is neither form: say both.
            guard text.unicodeScalars.contains("/") else {
                throw InputError(object: "ip", cause: "is neither dhcp nor ADDRESS/PREFIX like 10.1.2.5/24")
            }
            return try AttachRequest.parseAddress(text, role: "ip")
        }
        if let gateway = fields["gateway"] {
            if dhcp {
                problems.append(LabelProblem(key: label("gateway"), value: gateway, cause: "cannot be combined with ip=dhcp (the lease names the router)"))
            } else if let address {
                _ = check("gateway") { text throws(InputError) in try AttachRequest.parseGateway(text, on: address, addressRole: label("ip")) }
            } else {
                _ = check("gateway") { text throws(InputError) in try IPv4Address(parsing: text) }
            }
        }
        _ = check("mac") { text throws(InputError) in try AttachRequest.parseMAC(text) }
        _ = check("mtu") { text throws(InputError) in try AttachRequest.parseMTU(text) }
        _ = check("vlan") { text throws(InputError) in try AttachRequest.parseVLAN(text) }
        return problems
    }
}

/// One bad label: the whole container is refused because of it.
public struct LabelProblem: Error, Equatable, Sendable, CustomStringConvertible {
    /// The label key as the container has it, possibly hostile: print `description`.
    public let key: String
    /// The value, when the value is what is wrong.
    public let value: String?
    /// Printable, one line; the label's own text appears in it only through `quoted`.
    public let cause: String

    public init(key: String, value: String? = nil, cause: String) {
        self.key = key
        self.value = value
        self.cause = cause
    }

    /// `label "netkeep.eth1.mtu"="67": must be 68-65535`, the form of `docker run --label`.
    public var description: String {
        "label \(quoted(key))\(value.map { "=\(quoted($0))" } ?? ""): \(cause)"
    }
}

extension AttachRequest {
    /// How an explicit `netkeep attach` differs from what the labels declare
    /// (`self`), one line per field; empty when they agree. Labels win, so any
    /// difference refuses the request. An unset `--mac` (a random address) or
    /// `--mtu` (1500) differs from a label that sets one.
    public func differences(from request: AttachRequest) -> [String] {
        var fields: [Field] = [
            ("ifname", quoted(ifname), quoted(request.ifname)),
            ("bridge", quoted(bridge), quoted(request.bridge)),
            ("ip", ipText, request.ipText),
        ]
        if !dhcp, !request.dhcp { fields.append(("gateway", written(gateway), written(request.gateway))) }
        if let mac { fields.append(("mac", mac.description, written(request.mac))) }
        fields += [("mtu", String(mtu), String(request.mtu)), ("vlan", written(vlan), written(request.vlan))]
        return Self.differences(fields, other: "the request")
    }

    /// How an existing record differs from what the labels declare (`self`);
    /// empty when it is what the labels ask for. A label without a mac
    /// accepts the recorded one; a DHCP record's gateway is the lease's.
    public func differences(from attachment: Attachment) -> [String] {
        var fields: [Field] = [
            ("ifname", quoted(ifname), quoted(attachment.ifname)),
            ("bridge", quoted(bridge), quoted(attachment.bridge)),
            ("ip", ipText, attachment.mode == .dhcp ? "dhcp" : written(attachment.address)),
        ]
        if !dhcp, attachment.mode == .static { fields.append(("gateway", written(gateway), written(attachment.gateway))) }
        if let mac { fields.append(("mac", mac.description, attachment.mac.description)) }
        fields += [("mtu", String(mtu), String(attachment.mtu)), ("vlan", written(vlan), written(attachment.vlan))]
        return Self.differences(fields, other: "the record")
    }

    var ipText: String { dhcp ? "dhcp" : written(address) }

    typealias Field = (name: String, labels: String, other: String)

    /// Values are compared in their canonical written form, which is one-to-one.
    static func differences(_ fields: [Field], other: String) -> [String] {
        fields.filter { $0.labels != $0.other }.map { "\($0.name): labels say \($0.labels), \(other) says \($0.other)" }
    }
}

private func written(_ value: (some CustomStringConvertible)?) -> String { value.map(\.description) ?? "none" }
