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
        let address = try ip.map { text throws(InputError) in try IPv4CIDR(parsing: text) }
        if let address { try AddressRules.check(address, role: "--ip") }
        var gatewayAddress: IPv4Address?
        if let gateway, let address {
            let gw = try IPv4Address(parsing: gateway)
            guard address.contains(gw) else {
                throw InputError(object: "gateway \(gw)", cause: "is outside the subnet \(address.network)/\(address.prefixLength) of --ip \(address)")
            }
            guard gw != address.address else {
                throw InputError(object: "gateway \(gw)", cause: "is the interface's own address")
            }
            gatewayAddress = gw
        }
        let macAddress = try mac.map { text throws(InputError) in try MACAddress(parsing: text).validatedForInterface() }
        let mtuValue = try mtu.map { text throws(InputError) in try validateMTU(parseInt(text, what: "MTU")) } ?? defaultMTU
        let vlanValue = try vlan.map { text throws(InputError) in try validateVLAN(parseInt(text, what: "VLAN")) }
        return AttachRequest(container: container, bridge: bridge, ifname: ifname, address: address, dhcp: dhcp,
                             gateway: gatewayAddress, mac: macAddress, mtu: mtuValue, vlan: vlanValue)
    }

    /// 68 is the IPv4 minimum (RFC 791); 65535 the largest a veth takes.
    public static func validateMTU(_ mtu: Int) throws(InputError) -> Int {
        guard (68...65535).contains(mtu) else { throw InputError(object: "MTU \(mtu)", cause: "must be 68-65535") }
        return mtu
    }

    /// The range of the OVS Port `tag` column.
    public static func validateVLAN(_ vlan: Int) throws(InputError) -> Int {
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
