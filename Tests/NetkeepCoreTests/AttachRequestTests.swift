import NetkeepCore
import Testing

@Suite struct AttachRequestTests {
    func parse(ip: String = "10.1.2.5/24", gateway: String? = nil, mac: String? = nil, mtu: String? = nil,
               vlan: String? = nil, ifname: String? = nil, bridge: String = "br0") throws(InputError) -> AttachRequest {
        try AttachRequest.parse(container: "c1", bridge: bridge, ifname: ifname, ip: ip, gateway: gateway, mac: mac, mtu: mtu, vlan: vlan)
    }

    @Test func defaults() throws {
        let r = try parse()
        #expect(r.ifname == "eth1")
        #expect(r.mtu == 1500)
        #expect(r.vlan == nil)
        #expect(r.mac == nil)
        #expect(r.gateway == nil)
    }

    @Test func fullRequest() throws {
        let r = try parse(gateway: "10.1.2.1", mac: "02:00:00:00:00:09", mtu: "9000", vlan: "4094", ifname: "net0")
        #expect(r.gateway?.description == "10.1.2.1")
        #expect(r.mac?.description == "02:00:00:00:00:09")
        #expect(r.mtu == 9000)
        #expect(r.vlan == 4094)
        #expect(r.ifname == "net0")
    }

    @Test func errorsNameTheObjectAndTheCause() {
        #expect(throws: InputError(object: "MTU 67", cause: "must be 68-65535")) { try parse(mtu: "67") }
        #expect(throws: InputError(object: "VLAN 4096", cause: "must be 0-4094")) { try parse(vlan: "4096") }
        #expect(throws: InputError(object: "VLAN 4095", cause: "is reserved (802.1Q); use 0-4094")) { try parse(vlan: "4095") }
        #expect(throws: InputError(object: "VLAN \"-1\"", cause: "is not a decimal number")) { try parse(vlan: "-1") }
        #expect(throws: InputError(object: "gateway 10.1.3.1", cause: "is outside the subnet 10.1.2.0/24 of --ip 10.1.2.5/24")) {
            try parse(gateway: "10.1.3.1")
        }
        #expect(throws: InputError(object: "gateway 10.1.2.5", cause: "is the interface's own address")) { try parse(gateway: "10.1.2.5") }
    }

    @Test(arguments: [("mtu", "1e3"), ("mtu", ""), ("mtu", "99999999999"), ("vlan", "ten"), ("bridge", "br;0"), ("bridge", "a-bridge-name-too-long")])
    func rejectsBadValues(_ field: String, _ value: String) {
        #expect(throws: InputError.self) {
            switch field {
            case "mtu": _ = try parse(mtu: value)
            case "vlan": _ = try parse(vlan: value)
            default: _ = try parse(bridge: value)
            }
        }
    }
}
