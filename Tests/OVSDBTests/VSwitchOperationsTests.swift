@testable import OVSDB
import Testing

@Suite struct VSwitchOperationsTests {
    @Test func addPortsIsOneTransactionWithWaitInsertsMutateAndNextCfg() {
        let spec = PortSpec(bridge: "br0", name: "nkabc", tag: 10, interfaceExternalIDs: ["container_id": "c", "netkeep-attachment": "id"])
        let ops = VSwitchOperations.addPorts([spec], comment: "netkeep: test")
        let encoded = JSON.array([.string(VSwitchOperations.database)] + ops).description
        #expect(encoded == """
        ["Open_vSwitch",{"comment":"netkeep: test","op":"comment"},\
        {"columns":["name"],"op":"wait","rows":[{"name":"br0"}],"table":"Bridge","timeout":0,"until":"==","where":[["name","==","br0"]]},\
        {"op":"insert","row":{"external_ids":["map",[["container_id","c"],["netkeep-attachment","id"]]],"name":"nkabc"},"table":"Interface","uuid-name":"iface0"},\
        {"op":"insert","row":{"interfaces":["named-uuid","iface0"],"name":"nkabc","tag":10},"table":"Port","uuid-name":"port0"},\
        {"mutations":[["ports","insert",["set",[["named-uuid","port0"]]]]],"op":"mutate","table":"Bridge","where":[["name","==","br0"]]},\
        {"mutations":[["next_cfg","+=",1]],"op":"mutate","table":"Open_vSwitch","where":[]},\
        {"columns":["next_cfg"],"op":"select","table":"Open_vSwitch","where":[]}]
        """)
    }

    @Test func untaggedPortsGetAnEmptySetAndBridgesAreGrouped() {
        let specs = [
            PortSpec(bridge: "a", name: "p1", tag: nil, interfaceExternalIDs: [:]),
            PortSpec(bridge: "b", name: "p2", tag: nil, interfaceExternalIDs: [:]),
            PortSpec(bridge: "a", name: "p3", tag: nil, interfaceExternalIDs: [:]),
        ]
        let ops = VSwitchOperations.addPorts(specs, comment: "c")
        let waits = ops.filter { $0["op"] == "wait" }
        #expect(waits.count == 2)
        let mutateA = ops.first { $0["op"] == "mutate" && $0["table"] == "Bridge" && $0.description.contains(#""a""#) }
        #expect(mutateA?.description.contains(#"[["named-uuid","port0"],["named-uuid","port2"]]"#) == true)
        #expect(ops.contains { $0.description.contains(#""tag":["set",[]]"#) })
    }

    @Test func deletePortsMutatesEachBridgeOnce() {
        let ops = VSwitchOperations.deletePorts([("B1", "P1"), ("B1", "P2"), ("B2", "P3")], comment: "c")
        let mutates = ops.filter { $0["table"] == "Bridge" }
        #expect(mutates.count == 2)
        #expect(mutates[0].description.contains(#"["ports","delete",["set",[["uuid","P1"],["uuid","P2"]]]]"#))
    }

    @Test func decodesASnapshotAsOVSDBSendsIt() throws {
        let results = try JSON.parse("""
        [{"rows":[{"_uuid":["uuid","b1"],"name":"nk-br0","datapath_type":"netdev","ports":["set",[["uuid","p1"],["uuid","p2"]]]}]},
         {"rows":[{"_uuid":["uuid","p1"],"name":"nkabc","tag":7,"interfaces":["uuid","i1"],"external_ids":["map",[]]},
                  {"_uuid":["uuid","p2"],"name":"vx0","tag":["set",[]],"interfaces":["uuid","i2"],"external_ids":["map",[]]}]},
         {"rows":[{"_uuid":["uuid","i1"],"name":"nkabc","type":"","ofport":-1,"error":"could not open network device nkabc (No such device)",
                   "external_ids":["map",[["container_id","abc"],["container_iface","eth1"]]]},
                  {"_uuid":["uuid","i2"],"name":"vx0","type":"vxlan","ofport":["set",[]],"error":["set",[]],"external_ids":["map",[]]}]}]
        """).arrayValue!
        let snapshot = try VSwitchOperations.decodeSnapshot(results)
        #expect(snapshot.bridge(named: "nk-br0")?.isUserspace == true)
        #expect(snapshot.bridge(named: "nk-br0")?.portUUIDs == ["p1", "p2"])
        let port = try #require(snapshot.port(named: "nkabc"))
        #expect(port.tag == 7)
        #expect(snapshot.bridge(holding: port)?.name == "nk-br0")
        let iface = try #require(snapshot.interfaces(of: port).first)
        #expect(iface.ofport == -1)
        #expect(iface.error?.hasPrefix("could not open") == true)
        #expect(iface.externalIDs == ["container_id": "abc", "container_iface": "eth1"])
        #expect(snapshot.port(named: "vx0")?.tag == nil)
        #expect(snapshot.interface(named: "vx0")?.ofport == nil)
    }

    @Test func decodeRejectsResultsWithoutRows() {
        #expect(throws: OVSDBError.self) { try VSwitchOperations.decodeSnapshot([.object([:])]) }
    }

    @Test func curConfigIsReadFromTableUpdates() throws {
        let update = try JSON.parse(#"{"Open_vSwitch":{"u1":{"new":{"cur_cfg":12}}}}"#)
        #expect(VSwitchClient.curConfig(in: update) == 12)
    }
}
