#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import OVSDB
import Testing

/// The client against a private ovsdb-server with the real vswitch schema on a
/// temporary socket (as libovsdb tests its client). Needs the openvswitch
/// binaries, not root; with NETKEEP_TESTBED=1 their absence is a failure.
@Suite(.serialized) struct RealServerTests {
    static let schema = "/usr/share/openvswitch/vswitch.ovsschema"
    static var available: Bool { FileManager.default.fileExists(atPath: schema) && which("ovsdb-server") != nil }
    static var required: Bool { ProcessInfo.processInfo.environment["NETKEEP_TESTBED"] == "1" }

    final class Server {
        let dir: String
        let process: Process
        var socket: String { dir + "/db.sock" }

        init() throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("netkeep-ovsdb-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            guard let tool = which("ovsdb-tool"), let server = which("ovsdb-server") else { throw CocoaError(.executableNotLoadable) }
            try run(tool, ["create", dir + "/conf.db", RealServerTests.schema])
            process = Process()
            process.executableURL = URL(fileURLWithPath: server)
            process.arguments = [dir + "/conf.db", "--remote=punix:" + dir + "/db.sock", "--unixctl=" + dir + "/ctl",
                                 "--log-file=" + dir + "/ovsdb.log", "--pidfile=" + dir + "/pid"]
            try process.run()
            let deadline = Date().addingTimeInterval(10)
            while !FileManager.default.fileExists(atPath: socket) {
                if Date() > deadline { throw CocoaError(.fileNoSuchFile) }
                usleep(10_000)
            }
            // One Open_vSwitch row and a bridge, as ovs-vsctl init/add-br make them.
            let client = try VSwitchClient(socketPath: socket)
            _ = try client.connection.transact("Open_vSwitch", [
                ["op": "insert", "table": "Open_vSwitch", "row": ["bridges": ["named-uuid", "br"]]],
                ["op": "insert", "table": "Bridge", "uuid-name": "br", "row": ["name": "tbr0", "datapath_type": "netdev"]],
            ])
            client.close()
        }

        deinit {
            // SIGKILL: children of the test runner inherit a mask that blocks SIGTERM.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    @Test func addSnapshotAndDeletePorts() throws {
        guard Self.available else {
            #expect(!Self.required, "NETKEEP_TESTBED=1 but ovsdb-server or the vswitch schema is missing")
            return
        }
        let server = try Server()
        let client = try VSwitchClient(socketPath: server.socket)
        defer { client.close() }
        let next = try client.addPorts([
            PortSpec(bridge: "tbr0", name: "nk1", tag: 5, interfaceExternalIDs: ["netkeep-attachment": "a1", "container_id": "c1", "container_iface": "eth1"]),
            PortSpec(bridge: "tbr0", name: "nk2", tag: nil, interfaceExternalIDs: [:]),
        ], comment: "test")
        #expect(next == 1)
        let snapshot = try client.snapshot()
        #expect(snapshot.bridge(named: "tbr0")?.portUUIDs.count == 2)
        #expect(snapshot.port(named: "nk1")?.tag == 5)
        #expect(snapshot.interface(named: "nk1")?.externalIDs["container_iface"] == "eth1")
        // No ovs-vswitchd runs here, so nobody applies next_cfg.
        #expect(try client.waitApplied(next, timeout: 0.2) == false)

        let result = try client.deletePorts(named: ["nk1", "missing"], comment: "test")
        #expect(result.deleted == ["nk1"])
        let after = try client.snapshot()
        #expect(after.port(named: "nk1") == nil)
        #expect(after.interface(named: "nk1") == nil)
        #expect(after.port(named: "nk2") != nil)
    }

    @Test func missingBridgeFailsTheWholeTransaction() throws {
        guard Self.available else {
            #expect(!Self.required, "NETKEEP_TESTBED=1 but ovsdb-server or the vswitch schema is missing")
            return
        }
        let server = try Server()
        let client = try VSwitchClient(socketPath: server.socket)
        defer { client.close() }
        #expect(throws: OVSDBError.self) {
            try client.addPorts([PortSpec(bridge: "tbr0", name: "ok", tag: nil, interfaceExternalIDs: [:]),
                                 PortSpec(bridge: "nope", name: "nk3", tag: nil, interfaceExternalIDs: [:])], comment: "test")
        }
        #expect(try client.snapshot().ports.isEmpty)
    }

    @Test func unreachableSocketIsReportedAsSuch() {
        do { _ = try VSwitchClient(socketPath: "/nonexistent/db.sock"); Issue.record("connected") } catch {
            guard case .unreachable = error else { Issue.record("\(error)"); return }
        }
    }
}

func which(_ name: String) -> String? {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
        return "\(dir)/\(name)"
    }
    return nil
}

func run(_ path: String, _ arguments: [String]) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw CocoaError(.executableLoad) }
}
