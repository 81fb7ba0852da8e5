#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// netkeep as a CNI plugin of Podman 4.3 (its CNI backend; Debian's libcni
/// speaks up to 1.0.0). The conflist is in a directory of the test's own
/// (`--cni-config-dir`, given to every podman command: Podman does not keep it).
final class PodmanNetwork: @unchecked Sendable {
    static let image = "localhost/netkeep-test/busybox"
    let network: CNINetwork
    let plugin: InstalledPlugin
    let configDirectory: String

    init(ipam: String? = nil) throws {
        network = CNINetwork(ipam: ipam)
        guard run(["podman", "--version"]).status == 0 else { throw Testbed.TestbedMissing("podman is not installed: run scripts/testbed up") }
        plugin = try InstalledPlugin(stateDirectory: network.netkeep.stateDirectory)
        configDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("nkpodconf-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: configDirectory, withIntermediateDirectories: true)
        let list = #"{"cniVersion":"1.0.0","name":"\#(network.name)","plugins":[\#(network.config(version: "1.0.0", type: plugin.name))]}"#
        try list.write(toFile: "\(configDirectory)/\(network.name).conflist", atomically: true, encoding: .utf8)
        if podman("image", "exists", Self.image).status != 0 {
            let tar = FileManager.default.temporaryDirectory.appendingPathComponent("nkt-image-\(UUID().uuidString.prefix(6)).tar").path
            defer { try? FileManager.default.removeItem(atPath: tar) }
            let saved = run(["docker", "save", "-o", tar, Testbed.image])
            let loaded = podman("load", "-i", tar)
            guard saved.status == 0, loaded.status == 0 else { throw Testbed.TestbedMissing("podman load: \(saved.stderr) \(loaded.stderr)") }
        }
    }

    @discardableResult
    func podman(_ arguments: String...) -> CommandResult { run(["podman", "--cni-config-dir", configDirectory] + arguments) }

    /// `podman run -d` on the network. The sandbox does not let a container
    /// raise its limits, hence the two --ulimit (TESTBED.md); Podman's default
    /// capabilities lack NET_RAW, which busybox's ping needs.
    func start(_ name: String) -> CommandResult {
        podman("run", "-d", "--pull=never", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--cap-add", "NET_RAW",
               "--network", network.name, "--name", name, Self.image, "sleep", "1000000")
    }

    deinit { try? FileManager.default.removeItem(atPath: configDirectory) }
}

extension IntegrationSuite {
    @Suite struct PodmanCNITests {
        func address(_ out: String) -> String? {
            let words = out.split(whereSeparator: { $0 == " " || $0 == "\n" })
            return words.firstIndex(of: "inet").map { String(words[$0 + 1]) }
        }

        /// run, stop, start and rm: ADD at each start, DEL at each stop, and
        /// nothing left after rm.
        @Test func aPodmanContainerIsAttachedAndEachStopCallsDel() throws {
            try Testbed.check()
            let pod = try PodmanNetwork()
            let net = pod.network
            let neighbour = try TestNamespace()
            let add = net.call("ADD", container: "neighbour", netns: neighbour.path)
            let target = try #require(firstAddress(add.stdout), "\(add.stdout)")
            let name = "nktpod-\(UUID().uuidString.prefix(6).lowercased())"
            defer { pod.podman("rm", "-f", "-t", "0", name) }
            let started = pod.start(name)
            #expect(started.status == 0, "\(started.stderr)")
            let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

            let inside = try #require(address(pod.podman("exec", name, "ip", "-o", "-4", "addr", "show", "eth0").stdout), "no address")
            #expect(inside.hasPrefix(net.subnet + "."))
            #expect(eventually(within: 10) { pod.podman("exec", name, "ping", "-c", "1", "-W", "1", target).status == 0 }, "no traffic")
            let record = try #require(net.records.first { $0["container_id"] as? String == id }, "no record for \(id)")
            #expect((record["netns"] as? String)?.hasPrefix("/run/netns/") == true)
            let host = try #require(record["host_ifname"] as? String)
            #expect(bridgePorts.contains(host))

            #expect(pod.podman("stop", "-t", "0", name).status == 0)
            #expect(net.records.count == 1 && !bridgePorts.contains(host), "stop did not take the interface down")
            #expect(pod.podman("start", name).status == 0)
            #expect(address(pod.podman("exec", name, "ip", "-o", "-4", "addr", "show", "eth0").stdout)?.hasPrefix(net.subnet + ".") == true)
            #expect(net.records.count == 2 && bridgePorts.contains(host), "start did not ADD again")

            #expect(pod.podman("rm", "-f", "-t", "0", name).status == 0)
            #expect(net.records.count == 1 && !bridgePorts.contains(host) && !run(["ip", "-o", "link"]).stdout.contains(host))
        }

        /// netkeep-dhcp under Podman: `podman rm` and `podman run` of the same
        /// name is a new container id, but the same client (Podman's
        /// K8S_POD_NAME): the same MAC and, from the kept lease, the same address.
        @Test func aRecreatedPodmanContainerKeepsItsDHCPAddress() throws {
            try Testbed.check()
            let pod = try PodmanNetwork(ipam: #"{"type":"netkeep-dhcp"}"#)
            let net = pod.network
            let name = "nktpod-\(UUID().uuidString.prefix(6).lowercased())"
            defer { pod.podman("rm", "-f", "-t", "0", name) }
            let started = pod.start(name)
            #expect(started.status == 0, "\(started.stderr)")
            let first = try #require(address(pod.podman("exec", name, "ip", "-o", "-4", "addr", "show", "eth0").stdout), "no address")
            #expect(first.hasPrefix("10.1.2."))
            #expect(eventually(within: 10) { pod.podman("exec", name, "ping", "-c", "1", "-W", "1", "10.1.2.1").status == 0 }, "no traffic")
            let mac = try #require(net.records.first?["mac"] as? String)

            #expect(pod.podman("rm", "-f", "-t", "0", name).status == 0)
            #expect(net.records.isEmpty && net.keptLeases.map { $0["mac"] as? String } == [mac])
            let again = pod.start(name)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(address(pod.podman("exec", name, "ip", "-o", "-4", "addr", "show", "eth0").stdout) == first)
            #expect(net.records.first?["mac"] as? String == mac && net.keptLeases.isEmpty)
            #expect(pod.podman("rm", "-f", "-t", "0", name).status == 0)
            let release = net.netkeep("dhcp-renew", environment: ["NETKEEP_TIME_OFFSET": "700"])
            #expect(release.stdout.contains(": released"), "\(release.stdout) \(release.stderr)")
        }
    }
}
