#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// netkeep as the CNI plugin of containerd 1.6 (`ctr run --cni`). ctr reads
/// conflists from /etc/cni/net.d and plugins from /opt/cni/bin only, so the
/// test puts its own there: a conflist named for its network and a plugin
/// `nkt-<hex>` that runs this build's netkeep with the test's state directory.
/// Both are removed at the end.
final class ContainerdNetwork: @unchecked Sendable {
    static let namespace = "netkeep-test"
    static let image = "docker.io/netkeep-test/busybox:latest"
    let network = CNINetwork()
    let plugin: InstalledPlugin
    var conflistPath: String { "/etc/cni/net.d/00-\(network.name).conflist" }

    init() throws {
        plugin = try InstalledPlugin(stateDirectory: network.netkeep.stateDirectory)
        guard run(["ctr", "version"]).status == 0 else { throw Testbed.TestbedMissing("ctr cannot reach containerd: run scripts/testbed up") }
        if !run(["ctr", "-n", Self.namespace, "images", "ls", "-q"]).lines.contains(Self.image) {
            let tar = FileManager.default.temporaryDirectory.appendingPathComponent("nkt-image-\(UUID().uuidString.prefix(6)).tar").path
            defer { try? FileManager.default.removeItem(atPath: tar) }
            let saved = run(["docker", "save", "-o", tar, Testbed.image])
            let imported = run(["ctr", "-n", Self.namespace, "images", "import", tar])
            guard saved.status == 0, imported.status == 0 else { throw Testbed.TestbedMissing("image import: \(saved.stderr) \(imported.stderr)") }
        }
        try FileManager.default.createDirectory(atPath: "/etc/cni/net.d", withIntermediateDirectories: true)
        let entry = network.config(version: "1.0.0", type: plugin.name)
        let list = #"{"cniVersion":"1.0.0","name":"\#(network.name)","plugins":[\#(entry)]}"#
        try list.write(toFile: conflistPath, atomically: true, encoding: .utf8)
        // ctr takes the first config of the directory, by name.
        let first = ((try? FileManager.default.contentsOfDirectory(atPath: "/etc/cni/net.d")) ?? []).sorted().first
        guard first == (conflistPath as NSString).lastPathComponent else {
            throw Testbed.TestbedMissing("/etc/cni/net.d/\(first ?? "") comes before the test's conflist: ctr would use it")
        }
    }

    /// `ctr run --rm --cni` in the foreground, as a supervisor would run it:
    /// ctr calls ADD before the task starts and DEL once it has ended.
    func start(_ id: String) throws -> BackgroundProcess {
        let process = try BackgroundProcess(["ctr", "-n", Self.namespace, "run", "--rm", "--cni", Self.image, id, "sleep", "1000000"])
        guard eventually(within: 20, { self.taskStatus(id) == "RUNNING" }) else {
            throw Testbed.TestbedMissing("ctr run \(id) did not start: \(process.log)")
        }
        return process
    }

    func taskStatus(_ id: String) -> String? {
        run(["ctr", "-n", Self.namespace, "task", "ls"]).lines.first { $0.hasPrefix(id + " ") }?.split(separator: " ").last.map(String.init)
    }

    func exec(_ id: String, _ arguments: String...) -> CommandResult {
        run(["ctr", "-n", Self.namespace, "task", "exec", "--exec-id", "e\(UUID().uuidString.prefix(6))", id] + arguments)
    }

    func kill(_ id: String) { run(["ctr", "-n", Self.namespace, "task", "kill", "-s", "SIGKILL", id]) }

    func remove(_ id: String) {
        kill(id)
        _ = eventually(within: 10) { self.taskStatus(id) != "RUNNING" }
        run(["ctr", "-n", Self.namespace, "task", "rm", "-f", id])
        run(["ctr", "-n", Self.namespace, "container", "rm", id])
    }

    deinit { try? FileManager.default.removeItem(atPath: conflistPath) }
}

/// This build's netkeep as a plugin in /opt/cni/bin (where ctr and Podman
/// look), under a name of the test's own: a script that runs it with the
/// test's state directory, since a runtime passes no environment of ours.
final class InstalledPlugin: @unchecked Sendable {
    let name = "nkt-\(UUID().uuidString.prefix(8).lowercased())"
    var path: String { "/opt/cni/bin/\(name)" }

    init(stateDirectory: String) throws {
        try FileManager.default.createDirectory(atPath: "/opt/cni/bin", withIntermediateDirectories: true)
        let script = "#!/bin/sh\nNETKEEP_STATE_DIR=\(stateDirectory) exec \(Testbed.netkeepBinary) \"$@\"\n"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

extension IntegrationSuite {
    @Suite struct ContainerdCNITests {
        func address(_ out: String) -> String? {
            let words = out.split(whereSeparator: { $0 == " " || $0 == "\n" })
            return words.firstIndex(of: "inet").map { String(words[$0 + 1]) }
        }

        /// A container of containerd gets its address through netkeep, pings a
        /// neighbour on the same network, and its DEL leaves nothing behind.
        @Test func aContainerdContainerIsAttachedAndItsDelLeavesNothing() throws {
            try Testbed.check()
            let ctr = try ContainerdNetwork()
            let net = ctr.network
            let neighbour = try TestNamespace()
            let add = net.call("ADD", container: "neighbour", netns: neighbour.path)
            #expect(add.status == 0, "\(add.stdout)")
            let target = try #require(firstAddress(add.stdout))

            let id = "nktctr-\(UUID().uuidString.prefix(6).lowercased())"
            let process = try ctr.start(id)
            defer { ctr.remove(id) }
            let inside = try #require(address(ctr.exec(id, "ip", "-o", "-4", "addr", "show", "eth0").stdout), "no address: \(process.log)")
            #expect(inside.hasPrefix(net.subnet + ".") && inside.hasSuffix("/24"))
            #expect(eventually(within: 10) { ctr.exec(id, "ping", "-c", "1", "-W", "1", target).status == 0 }, "no traffic to the neighbour")
            let record = try #require(net.records.first { ($0["container_id"] as? String)?.hasSuffix(id) == true })
            #expect((record["netns"] as? String)?.hasPrefix("/proc/") == true && record["status"] as? String == "ready")
            let host = try #require(record["host_ifname"] as? String)
            #expect(bridgePorts.contains(host))

            ctr.kill(id)
            #expect(process.wait(within: 30) != nil, "ctr run did not end")
            #expect(net.records.count == 1, "DEL left \(net.records.count - 1) records")
            #expect(!bridgePorts.contains(host) && !run(["ip", "-o", "link"]).stdout.contains(host))
            let allocated = (try? FileManager.default.contentsOfDirectory(atPath: "\(net.ipamDirectory)/\(net.name)")) ?? []
            #expect(!allocated.contains(String(inside.split(separator: "/")[0])), "host-local still holds \(inside)")
        }

        /// `ctr run -d` never calls DEL (a runtime that crashed or forgot): the
        /// attachment stays recorded until the runtime's GC, which collects it.
        @Test func gcCollectsWhatAContainerdThatNeverCalledDelLeft() throws {
            try Testbed.check()
            let ctr = try ContainerdNetwork()
            let net = ctr.network
            let id = "nktctr-\(UUID().uuidString.prefix(6).lowercased())"
            let started = run(["ctr", "-n", ContainerdNetwork.namespace, "run", "-d", "--cni", ContainerdNetwork.image, id, "sleep", "1000000"])
            #expect(started.status == 0, "\(started.stderr)")
            ctr.remove(id)
            let record = try #require(net.records.first, "ADD was not recorded")
            let host = try #require(record["host_ifname"] as? String)
            #expect(bridgePorts.contains(host), "the port went without a DEL")
            let gc = net.call("GC", config: net.config(extra: #","cni.dev/valid-attachments":[]"#))
            #expect(gc.status == 0, "\(gc.stdout)")
            #expect(net.records.isEmpty && !bridgePorts.contains(host))
        }
    }
}
