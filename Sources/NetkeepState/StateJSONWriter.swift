import NetkeepCore

// JSONEncoder and JSONDecoder took most of a load or save of a large state
// file; these write and read the same bytes by hand. Key names and their
// order repeat the CodingKeys of NetkeepCore: StateJSONTests hold both to
// the Foundation path.

private let quote: UInt8 = 0x22, backslash: UInt8 = 0x5c, comma: UInt8 = 0x2c, colon: UInt8 = 0x3a
private let openBrace: UInt8 = 0x7b, closeBrace: UInt8 = 0x7d, openBracket: UInt8 = 0x5b, closeBracket: UInt8 = 0x5d
private let newline: UInt8 = 0x0a, space: UInt8 = 0x20, minus: UInt8 = 0x2d, zero: UInt8 = 0x30

/// Writes the state file byte for byte as JSONEncoder does with
/// `[.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]`, plus a final newline.
struct StateJSONWriter {
    private var out: [UInt8] = []
    private var level = 0
    /// Whether the innermost open object or array has a member yet: a comma is due before the next.
    private var hasMember = false
    private var cachedDay: (day: Int64, date: [UInt8])?

    static func write(_ state: State) -> [UInt8] {
        var writer = StateJSONWriter()
        writer.out.reserveCapacity(256 + state.attachments.count * 1024)
        writer.state(state)
        writer.out.append(newline)
        return writer.out
    }

    private mutating func state(_ state: State) {
        open(openBrace)
        key("attachments")
        open(openBracket)
        for attachment in state.attachments {
            element()
            self.attachment(attachment)
        }
        close(closeBracket)
        if let bootID = state.bootID { key("boot_id"); string(bootID) }
        if let engine = state.engine {
            key("docker_engine")
            open(openBrace)
            key("id"); string(engine.id)
            key("root_dir"); string(engine.rootDir)
            close(closeBrace)
        }
        if let nano = state.lastEventNano { key("last_event_nano"); integer(nano) }
        key("version"); integer(state.version)
        close(closeBrace)
    }

    private mutating func attachment(_ a: Attachment) {
        open(openBrace)
        if let address = a.address { key("address"); cidr(address) }
        key("bridge"); string(a.bridge)
        key("container_id"); string(a.containerID)
        key("container_name"); string(a.containerName)
        if let pid = a.containerPID { key("container_pid"); integer(pid) }
        key("created_at"); timestamp(a.createdAt)
        if let declarer = a.declaredBy { key("declared_by"); string(declarer.rawValue) }
        if let gateway = a.gateway { key("gateway"); ipv4(gateway) }
        key("host_ifname"); string(a.hostIfname)
        key("id"); string(a.id)
        key("ifname"); string(a.ifname)
        if let lease = a.lease { key("lease"); self.lease(lease) }
        key("mac"); mac(a.mac)
        key("mode"); string(a.mode.rawValue)
        key("mtu"); integer(a.mtu)
        if let link = a.netnsLink { key("netns_link"); string(link) }
        if let from = a.recreatedFrom { key("recreated_from"); string(from) }
        if let until = a.retainedUntil { key("retained_until"); timestamp(until) }
        key("status"); string(a.status.rawValue)
        if let vlan = a.vlan { key("vlan"); integer(vlan) }
        close(closeBrace)
    }

    private mutating func lease(_ lease: Lease) {
        open(openBrace)
        key("address"); cidr(lease.address)
        key("confirmed"); raw(lease.confirmed ? "true" : "false")
        key("dns")
        open(openBracket)
        for server in lease.dnsServers {
            element()
            ipv4(server)
        }
        close(closeBracket)
        key("lease_time"); integer(lease.leaseSeconds)
        key("obtained_at"); timestamp(lease.obtainedAt)
        key("rebind_at"); timestamp(lease.rebindAt)
        key("renew_at"); timestamp(lease.renewAt)
        if let retry = lease.retryAt { key("retry_at"); timestamp(retry) }
        if let router = lease.router { key("router"); ipv4(router) }
        key("server_id"); ipv4(lease.serverID)
        key("t1"); integer(lease.renewSeconds)
        key("t2"); integer(lease.rebindSeconds)
        close(closeBrace)
    }

    // MARK: Layout

    private mutating func open(_ bracket: UInt8) {
        out.append(bracket)
        level += 1
        hasMember = false
    }

    /// An empty object or array is printed with an empty line inside, as Foundation does.
    private mutating func close(_ bracket: UInt8) {
        level -= 1
        if !hasMember { out.append(newline) }
        lineBreak()
        out.append(bracket)
        hasMember = true
    }

    private mutating func key(_ name: StaticString) {
        element()
        out.append(quote)
        raw(name)
        raw("\" : ")
    }

    private mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    private mutating func element() {
        if hasMember { out.append(comma) }
        lineBreak()
        hasMember = true
    }

    private mutating func lineBreak() {
        out.append(newline)
        out.append(contentsOf: repeatElement(space, count: 2 * level))
    }

    // MARK: Values

    /// Foundation's escaping: `"` and `\`, control characters (`\n` and the like
    /// where JSON has a short form, else `\u00xx`); "/" and non-ASCII as they are.
    private mutating func string(_ text: String) {
        var text = text
        out.append(quote)
        text.withUTF8 { utf8 in
            guard utf8.contains(where: { $0 < 0x20 || $0 == quote || $0 == backslash }) else {
                out.append(contentsOf: utf8)
                return
            }
            for byte in utf8 {
                switch byte {
                case quote, backslash: out.append(contentsOf: [backslash, byte])
                case 0x08: out.append(contentsOf: [backslash, 0x62])
                case 0x09: out.append(contentsOf: [backslash, 0x74])
                case 0x0a: out.append(contentsOf: [backslash, 0x6e])
                case 0x0c: out.append(contentsOf: [backslash, 0x66])
                case 0x0d: out.append(contentsOf: [backslash, 0x72])
                case 0..<0x20: out.append(contentsOf: [backslash, 0x75, zero, zero, hexDigit(byte >> 4), hexDigit(byte & 0x0f)])
                default: out.append(byte)
                }
            }
        }
        out.append(quote)
    }

    private mutating func integer(_ value: some BinaryInteger) {
        if value < 0 { out.append(minus) }
        var magnitude = UInt64(value.magnitude)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = digits.endIndex
            repeat {
                start -= 1
                digits[start] = zero + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            out.append(contentsOf: digits[start...])
        }
    }

    /// `Timestamp.description`, whose date part is kept for the next
    /// timestamp of the same day: most in one file share a few days.
    private mutating func timestamp(_ time: Timestamp) {
        let seconds = time.secondsSinceEpoch
        let day = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        if day != cachedDay?.day {
            let text = Array(time.description.utf8)
            cachedDay = (day, Array(text[...text.firstIndex(of: 0x54)!]))
        }
        let rest = seconds - day * 86_400
        out.append(quote)
        out.append(contentsOf: cachedDay!.date)
        for (i, part) in [rest / 3600, rest / 60 % 60, rest % 60].enumerated() {
            if i > 0 { out.append(colon) }
            out.append(zero + UInt8(part / 10))
            out.append(zero + UInt8(part % 10))
        }
        out.append(contentsOf: [0x5a, quote])
    }

    /// Addresses as their `description`s spell them, without building the strings.
    private mutating func ipv4(_ address: IPv4Address, quoted: Bool = true) {
        if quoted { out.append(quote) }
        integer(address.value >> 24)
        for shift: UInt32 in [16, 8, 0] {
            out.append(0x2e)
            integer((address.value >> shift) & 0xff)
        }
        if quoted { out.append(quote) }
    }

    private mutating func cidr(_ cidr: IPv4CIDR) {
        out.append(quote)
        ipv4(cidr.address, quoted: false)
        out.append(0x2f)
        integer(cidr.prefixLength)
        out.append(quote)
    }

    private mutating func mac(_ mac: MACAddress) {
        out.append(quote)
        for (i, byte) in mac.bytes.enumerated() {
            if i > 0 { out.append(colon) }
            out.append(hexDigit(byte >> 4))
            out.append(hexDigit(byte & 0x0f))
        }
        out.append(quote)
    }

    private func hexDigit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? zero + nibble : 0x61 + nibble - 10 }
}
