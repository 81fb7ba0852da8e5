import HostIO

/// The Open_vSwitch database, as netkeep uses it: read a snapshot, add and
/// delete ports, wait for ovs-vswitchd to apply a change.
public final class VSwitchClient {
    public static let defaultSocket = "/var/run/openvswitch/db.sock"
    public let connection: OVSDBConnection

    public init(socketPath: String = VSwitchClient.defaultSocket, timeout: Double = 10) throws(OVSDBError) {
        connection = try OVSDBConnection(socketPath: socketPath, timeout: timeout)
    }

    public func snapshot() throws(OVSDBError) -> VSwitchSnapshot {
        try VSwitchOperations.decodeSnapshot(connection.transact(VSwitchOperations.database, VSwitchOperations.snapshot()))
    }

    /// Adds the ports in one transaction; returns the next_cfg to wait for.
    @discardableResult
    public func addPorts(_ specs: [PortSpec], retag: [(port: String, tag: Int?)] = [], comment: String) throws(OVSDBError) -> Int64? {
        guard !specs.isEmpty || !retag.isEmpty else { return nil }
        let results = try connection.transact(VSwitchOperations.database, VSwitchOperations.addPorts(specs, retag: retag, comment: comment))
        return VSwitchOperations.decodeNextConfig(results)
    }

    public func addExternalIDs(_ items: [(interface: String, ids: [String: String])], comment: String) throws(OVSDBError) {
        guard !items.isEmpty else { return }
        _ = try connection.transact(VSwitchOperations.database, VSwitchOperations.addExternalIDs(items, comment: comment))
    }

    /// Deletes the named ports that exist (in one transaction); returns the
    /// names that were found and the next_cfg to wait for.
    @discardableResult
    public func deletePorts(named names: [String], comment: String, in snapshot: VSwitchSnapshot? = nil) throws(OVSDBError) -> (deleted: [String], nextConfig: Int64?) {
        let current: VSwitchSnapshot
        if let snapshot { current = snapshot } else { current = try self.snapshot() }
        var targets: [(bridgeUUID: String, portUUID: String)] = []
        var deleted: [String] = []
        for name in names {
            guard let port = current.port(named: name), let bridge = current.bridge(holding: port) else { continue }
            targets.append((bridge.uuid, port.uuid))
            deleted.append(name)
        }
        guard !targets.isEmpty else { return ([], nil) }
        let results = try connection.transact(VSwitchOperations.database, VSwitchOperations.deletePorts(targets, comment: comment))
        return (deleted, VSwitchOperations.decodeNextConfig(results))
    }

    /// Waits until ovs-vswitchd reports cur_cfg >= `nextConfig`, which means it
    /// has applied the change (what `ovs-vsctl` waits for). Returns false on timeout,
    /// for example when ovs-vswitchd is not running.
    public func waitApplied(_ nextConfig: Int64?, timeout: Double = 5) throws(OVSDBError) -> Bool {
        guard let nextConfig else { return true }
        let monitorID: JSON = "netkeep-cur-cfg"
        let initial = try connection.call("monitor", [
            .string(VSwitchOperations.database), monitorID, ["Open_vSwitch": ["columns": ["cur_cfg"]]],
        ])
        defer { _ = try? connection.call("monitor_cancel", [monitorID]) }
        if Self.curConfig(in: initial) ?? 0 >= nextConfig { return true }
        let deadline = Deadline.after(seconds: timeout)
        while !deadline.hasPassed {
            let params: JSON
            do { params = try connection.nextNotification(deadline: deadline) } catch {
                if case .unreachable(let e) = error, e.errno == 110 /* ETIMEDOUT */ { return false }
                throw error
            }
            guard let updates = params.arrayValue, updates.count == 2, updates[0] == monitorID else { continue }
            if Self.curConfig(in: updates[1]) ?? 0 >= nextConfig { return true }
        }
        return false
    }

    static func curConfig(in tableUpdates: JSON) -> Int64? {
        guard let rows = tableUpdates["Open_vSwitch"]?.objectValue else { return nil }
        return rows.values.compactMap { $0["new"]?["cur_cfg"]?.intValue }.max()
    }

    public func close() { connection.close() }
}
