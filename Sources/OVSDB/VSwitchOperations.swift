/// Builders of Open_vSwitch transactions, pure so that their encoding is tested
/// byte for byte.
public enum VSwitchOperations {
    public static let database = "Open_vSwitch"

    /// Reads bridges, ports and interfaces (the columns netkeep needs) in one transaction.
    public static func snapshot() -> [JSON] {
        [
            select("Bridge", columns: ["_uuid", "name", "datapath_type", "ports"]),
            select("Port", columns: ["_uuid", "name", "tag", "interfaces", "external_ids"]),
            select("Interface", columns: ["_uuid", "name", "type", "ofport", "error", "external_ids"]),
        ]
    }

    /// Adds ports in one transaction that fails as a whole if a bridge is missing,
    /// then asks ovs-vswitchd to report when it has applied it (next_cfg).
    public static func addPorts(_ specs: [PortSpec], retag: [(port: String, tag: Int?)] = [], comment: String) -> [JSON] {
        var ops: [JSON] = [["op": "comment", "comment": .string(comment)]]
        let bridges = orderedUnique(specs.map(\.bridge))
        for bridge in bridges { ops.append(waitForBridge(bridge)) }
        for (i, spec) in specs.enumerated() {
            ops.append([
                "op": "insert", "table": "Interface", "uuid-name": .string("iface\(i)"),
                "row": ["name": .string(spec.name), "external_ids": Datum.map(spec.interfaceExternalIDs)],
            ])
            ops.append([
                "op": "insert", "table": "Port", "uuid-name": .string("port\(i)"),
                "row": [
                    "name": .string(spec.name),
                    "interfaces": Datum.namedUUID("iface\(i)"),
                    "tag": spec.tag.map { JSON.int(Int64($0)) } ?? Datum.emptySet(),
                ],
            ])
        }
        for bridge in bridges {
            let members = specs.indices.filter { specs[$0].bridge == bridge }.map { Datum.namedUUID("port\($0)") }
            ops.append([
                "op": "mutate", "table": "Bridge", "where": [["name", "==", .string(bridge)]],
                "mutations": [["ports", "insert", ["set", .array(members)]]],
            ])
        }
        return ops + setTags(retag) + bumpNextConfig()
    }

    /// Sets (or clears) the VLAN tag of ports, by name.
    public static func setTags(_ tags: [(port: String, tag: Int?)]) -> [JSON] {
        tags.map { item in
            ["op": "update", "table": "Port", "where": [["name", "==", .string(item.port)]],
             "row": ["tag": item.tag.map { JSON.int(Int64($0)) } ?? Datum.emptySet()]]
        }
    }

    /// Adds external_ids keys to interfaces, by name (existing keys are kept).
    public static func addExternalIDs(_ items: [(interface: String, ids: [String: String])], comment: String) -> [JSON] {
        [["op": "comment", "comment": .string(comment)]] + items.map { item in
            ["op": "mutate", "table": "Interface", "where": [["name", "==", .string(item.interface)]],
             "mutations": [["external_ids", "insert", Datum.map(item.ids)]]]
        }
    }

    /// Removes ports (by uuid) from the bridges that hold them; OVSDB then
    /// garbage-collects the Port and Interface rows.
    public static func deletePorts(_ ports: [(bridgeUUID: String, portUUID: String)], comment: String) -> [JSON] {
        var ops: [JSON] = [["op": "comment", "comment": .string(comment)]]
        let bridges = orderedUnique(ports.map(\.bridgeUUID))
        for bridge in bridges {
            let members = ports.filter { $0.bridgeUUID == bridge }.map { Datum.uuid($0.portUUID) }
            ops.append([
                "op": "mutate", "table": "Bridge", "where": [["_uuid", "==", Datum.uuid(bridge)]],
                "mutations": [["ports", "delete", ["set", .array(members)]]],
            ])
        }
        return ops + bumpNextConfig()
    }

    /// Increments next_cfg and reads it back: ovs-vswitchd copies it to cur_cfg
    /// once it has applied everything up to this transaction.
    static func bumpNextConfig() -> [JSON] {
        [
            ["op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["next_cfg", "+=", 1]]],
            ["op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]],
        ]
    }

    static func waitForBridge(_ name: String) -> JSON {
        [
            "op": "wait", "timeout": 0, "table": "Bridge", "where": [["name", "==", .string(name)]],
            "columns": ["name"], "until": "==", "rows": [["name": .string(name)]],
        ]
    }

    static func select(_ table: String, columns: [String]) -> JSON {
        ["op": "select", "table": .string(table), "where": [], "columns": .array(columns.map { .string($0) })]
    }

    static func orderedUnique(_ items: [String]) -> [String] {
        var seen = Set<String>()
        return items.filter { seen.insert($0).inserted }
    }

    /// Decodes the results of `snapshot()`.
    public static func decodeSnapshot(_ results: [JSON]) throws(OVSDBError) -> VSwitchSnapshot {
        func rows(_ i: Int) throws(OVSDBError) -> [[String: JSON]] {
            guard i < results.count, let rows = results[i]["rows"]?.arrayValue else {
                throw .protocolViolation("select result \(i) has no rows")
            }
            return rows.compactMap(\.objectValue)
        }
        let bridges = try rows(0).map { row in
            BridgeRow(uuid: Datum.uuids(row["_uuid"]).first ?? "", name: row["name"]?.stringValue ?? "",
                      datapathType: row["datapath_type"]?.stringValue ?? "", portUUIDs: Datum.uuids(row["ports"]))
        }
        let ports = try rows(1).map { row in
            PortRow(uuid: Datum.uuids(row["_uuid"]).first ?? "", name: row["name"]?.stringValue ?? "",
                    tag: Datum.optionalInt(row["tag"]), interfaceUUIDs: Datum.uuids(row["interfaces"]),
                    externalIDs: Datum.stringMap(row["external_ids"]))
        }
        let interfaces = try rows(2).map { row in
            InterfaceRow(uuid: Datum.uuids(row["_uuid"]).first ?? "", name: row["name"]?.stringValue ?? "",
                         type: row["type"]?.stringValue ?? "", ofport: Datum.optionalInt(row["ofport"]),
                         error: Datum.optionalString(row["error"]), externalIDs: Datum.stringMap(row["external_ids"]))
        }
        return VSwitchSnapshot(bridges: bridges, ports: ports, interfaces: interfaces)
    }

    /// The next_cfg value read back at the end of a change transaction.
    public static func decodeNextConfig(_ results: [JSON]) -> Int64? {
        results.last?["rows"]?.arrayValue?.first?["next_cfg"]?.intValue
    }
}
