/// `netkeep attach` arguments, parsed and checked before anything is touched.
public struct AttachRequest: Equatable, Sendable {
    public static let defaultIfname = "eth1"
    public static let defaultMTU = 1500

    public var container: String
    public var bridge: String
    public var ifname: String
    /// nil with `dhcp`.
    public var address: IPv4CIDR?
    public var dhcp: Bool
    public var gateway: IPv4Address?
    public var mac: MACAddress?
    public var mtu: Int
    public var vlan: Int?

    /// Parses the raw command-line values; the first problem found is thrown.
    public static func parse(container: String, bridge: String, ifname: String?, ip: String?, dhcp: Bool = false,
                             gateway: String?, mac: String?, mtu: String?, vlan: String?) throws(InputError) -> AttachRequest {
        let container = try Names.containerReference(container)
        let bridge = try Names.bridge(bridge)
        let ifname = try Names.interface(ifname ?? defaultIfname)
        if dhcp {
            if let ip { throw InputError(object: "--ip \(quoted(ip))", cause: "cannot be combined with --dhcp") }
            if let gateway { throw InputError(object: "--gateway \(quoted(gateway))", cause: "cannot be combined with --dhcp (the lease names the router)") }
        }
        guard dhcp || ip != nil else { throw InputError(object: "attach", cause: "needs --ip CIDR or --dhcp") }
        let address = try ip.map { text throws(InputError) in try parseAddress(text, role: "--ip") }
        var gatewayAddress: IPv4Address?
        if let gateway, let address { gatewayAddress = try parseGateway(gateway, on: address, addressRole: "--ip") }
        let macAddress = try mac.map { text throws(InputError) in try parseMAC(text) }
        let mtuValue = try mtu.map { text throws(InputError) in try parseMTU(text) } ?? defaultMTU
        let vlanValue = try vlan.map { text throws(InputError) in try parseVLAN(text) }
        return AttachRequest(container: container, bridge: bridge, ifname: ifname, address: address, dhcp: dhcp,
                             gateway: gatewayAddress, mac: macAddress, mtu: mtuValue, vlan: vlanValue)
    }

    // One check per field, shared with the container labels (Labels.swift)
    // so that both ways of asking accept exactly the same values.

    /// An address netkeep may put on an interface; `role` names where it came from.
    static func parseAddress(_ text: String, role: String) throws(InputError) -> IPv4CIDR {
        let address = try IPv4CIDR(parsing: text)
        try AddressRules.check(address, role: role)
        return address
    }

    /// Another address of the interface's subnet; `addressRole` names where `address` came from.
    static func parseGateway(_ text: String, on address: IPv4CIDR, addressRole: String) throws(InputError) -> IPv4Address {
        let gw = try IPv4Address(parsing: text)
        guard address.contains(gw) else {
            throw InputError(object: "gateway \(gw)", cause: "is outside the subnet \(address.network)/\(address.prefixLength) of \(addressRole) \(address)")
        }
        guard gw != address.address else {
            throw InputError(object: "gateway \(gw)", cause: "is the interface's own address")
        }
        return gw
    }

    static func parseMAC(_ text: String) throws(InputError) -> MACAddress {
        try MACAddress(parsing: text).validatedForInterface()
    }

    static func parseMTU(_ text: String) throws(InputError) -> Int {
        try validateMTU(parseInt(text, what: "MTU"))
    }

    static func parseVLAN(_ text: String) throws(InputError) -> Int {
        try validateVLAN(parseInt(text, what: "VLAN"))
    }

    /// 68 is the IPv4 minimum (RFC 791); 65535 the largest a veth takes.
    public static func validateMTU(_ mtu: Int) throws(InputError) -> Int {
        guard (68...65535).contains(mtu) else { throw InputError(object: "MTU \(mtu)", cause: "must be 68-65535") }
        return mtu
    }

    /// The range of the OVS Port `tag` column.
    public static func validateVLAN(_ vlan: Int) throws(InputError) -> Int {
        guard (0...4094).contains(vlan) else {
            throw InputError(object: "VLAN \(vlan)", cause: vlan == 4095 ? "is reserved (802.1Q); use 0-4094" : "must be 0-4094")
        }
        return vlan
    }

    /// What a state file may hold: OVS's whole range, 4095 included (an
    /// older netkeep took it), so that such a file still loads.
    public static func loadableVLAN(_ vlan: Int) throws(InputError) -> Int {
        guard (0...4095).contains(vlan) else { throw InputError(object: "VLAN \(vlan)", cause: "must be 0-4095") }
        return vlan
    }

    static func parseInt(_ text: String, what: String) throws(InputError) -> Int {
        guard !text.isEmpty, text.count <= 9, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text) else {
            throw InputError(object: "\(what) \(quoted(text))", cause: "is not a decimal number")
        }
        return value
    }
}
