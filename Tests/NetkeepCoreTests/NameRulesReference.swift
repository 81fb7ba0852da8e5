import NetkeepCore

/// The name, address and record checks as they were before they were made
/// byte-based (Character by Character, messages built up front), kept
/// verbatim so NameRulesEquivalenceTests can hold the new ones to them.
enum ReferenceRules {
    static func isSafeCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "_" || c == "." || c == "-")
    }

    static func interface(_ name: String, role: String = "interface name") throws(InputError) -> String {
        let object = "\(role) \(quoted(name))"
        guard !name.isEmpty else { throw InputError(object: object, cause: "is empty") }
        guard name.utf8.count <= Names.maxInterfaceNameLength else {
            throw InputError(object: object, cause: "is \(name.utf8.count) bytes long; Linux allows at most \(Names.maxInterfaceNameLength) (IFNAMSIZ)")
        }
        guard name.allSatisfy(isSafeCharacter) else {
            throw InputError(object: object, cause: "may contain only letters, digits, '_', '.' and '-'")
        }
        guard name != ".", name != "..", name.first != "-" else {
            throw InputError(object: object, cause: "is not a usable interface name")
        }
        return name
    }

    static func bridge(_ name: String) throws(InputError) -> String {
        try interface(name, role: "bridge")
    }

    static func containerReference(_ ref: String) throws(InputError) -> String {
        try containerName(ref.hasPrefix("/") ? String(ref.dropFirst()) : ref, object: "container \(quoted(ref))")
    }

    static func containerName(_ name: String, object: String? = nil) throws(InputError) -> String {
        let object = object ?? "container name \(quoted(name))"
        guard !name.isEmpty else { throw InputError(object: object, cause: "is empty") }
        guard name.utf8.count <= Names.maxContainerNameLength else {
            throw InputError(object: object, cause: "is \(name.utf8.count) bytes long; netkeep accepts at most \(Names.maxContainerNameLength) (its /var/run/netns link is named after it)")
        }
        guard let first = name.first, first.isASCII, first.isLetter || first.isNumber else {
            throw InputError(object: object, cause: "must start with a letter or digit")
        }
        guard name.allSatisfy(isSafeCharacter) else {
            throw InputError(object: object, cause: "may contain only letters, digits, '_', '.' and '-'")
        }
        return name
    }

    static func isContainerReference(_ ref: String) -> Bool {
        !ref.hasPrefix("/") && (try? containerName(ref)) != nil
    }

    static func hostInterface(containerID: String, ifname: String) -> String {
        "nk" + String(attachmentID(containerID: containerID, ifname: ifname).prefix(12))
    }

    static func attachmentID(containerID: String, ifname: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(containerID)/\(ifname)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return (0..<8).reversed().map { hexByte(UInt8(truncatingIfNeeded: hash >> (8 * UInt64($0)))) }.joined()
    }

    static func hexByte(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]])
    }

    static func check(_ cidr: IPv4CIDR, role: String) throws(InputError) {
        let object = "\(role) \(cidr)"
        let first = cidr.address.value >> 24
        if first == 0 || first == 127 || first >= 224 {
            throw InputError(object: object, cause: "is not a unicast host address")
        }
        if cidr.prefixLength <= 30 {
            if cidr.address == cidr.network { throw InputError(object: object, cause: "is the network address of its subnet") }
            if cidr.address == cidr.broadcast { throw InputError(object: object, cause: "is the broadcast address of its subnet") }
        }
    }

    static func check(_ lease: Lease) throws(InputError) {
        let address = lease.address
        try check(address, role: "lease address")
        guard address.prefixLength >= AddressRules.shortestLeasePrefix else {
            throw InputError(object: "lease of \(address)", cause: "prefix /\(address.prefixLength) is shorter than /\(AddressRules.shortestLeasePrefix)")
        }
        if let router = lease.router, !address.contains(router) || router == address.address {
            throw InputError(object: "lease router \(router)", cause: "is not another address of \(address.network)/\(address.prefixLength)")
        }
        guard lease.renewSeconds >= 0, lease.renewSeconds <= lease.rebindSeconds, lease.rebindSeconds <= lease.leaseSeconds else {
            throw InputError(object: "lease of \(address)", cause: "T1 \(lease.renewSeconds) s and T2 \(lease.rebindSeconds) s do not fit the lease time \(lease.leaseSeconds) s")
        }
    }

    static func problems(of a: NetkeepCore.Attachment) -> [String] {
        var problems: [String] = []
        if a.id != attachmentID(containerID: a.containerID, ifname: a.ifname) {
            problems.append(".id: \(quoted(a.id)) does not match its container_id and ifname")
        }
        if (try? interface(a.hostIfname)) == nil {
            problems.append(".host_ifname: \(quoted(a.hostIfname)) is not a valid interface name")
        }
        if !a.containerID.isEmpty, !(a.containerID.utf8.count == 64 && a.containerID.allSatisfy(\.isHexDigit)) {
            problems.append(".container_id: \(quoted(a.containerID)) is not a 64-digit hex container id")
        }
        do {
            _ = try interface(a.ifname)
            _ = try bridge(a.bridge)
            _ = try containerName(a.containerName)
            if let link = a.netnsLink { _ = try containerName(link) }
            _ = try a.mac.validatedForInterface()
            _ = try AttachRequest.validateMTU(a.mtu)
            if let vlan = a.vlan { _ = try AttachRequest.loadableVLAN(vlan) }
            if let address = a.address { try check(address, role: "address") }
            if let lease = a.lease { try check(lease) }
        } catch {
            problems.append(": \(error)")
        }
        if let gw = a.gateway, let address = a.address, !address.contains(gw) {
            problems.append(".gateway: \(gw) is outside \(address)")
        }
        if let gw = a.gateway, gw == a.address?.address { problems.append(".gateway: \(gw) is the interface's own address") }
        if a.mode == .static, a.lease != nil { problems.append(".lease: a static attachment has no DHCP lease") }
        return problems
    }

    static func problems(of state: State) -> [String] {
        var problems: [String] = []
        var seen: [String: Int] = [:]
        var hostNames: [String: Int] = [:]
        for (i, a) in state.attachments.enumerated() {
            let at = "attachments[\(i)]"
            if let j = seen[a.id] { problems.append("\(at): same container and ifname as attachments[\(j)]") }
            seen[a.id] = i
            if let j = hostNames[a.hostIfname] { problems.append("\(at).host_ifname: also used by attachments[\(j)]") }
            hostNames[a.hostIfname] = i
            problems += Self.problems(of: a).map { "\(at)\($0)" }
        }
        if let engine = state.engine, !engine.isUsable { problems.append("docker_engine: an engine without an ID or data root cannot be recorded") }
        return problems
    }
}
