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
    /// With `isolated`: a Podman of the test's own (its root, run root, tmp
    /// dir and file locks in `own`, the vfs driver), whose /run a drill can
    /// wipe as a boot does without touching any other container.
    let own: String?

    init(ipam: String? = nil, isolated: Bool = false) throws {
        network = CNINetwork(ipam: ipam)
        own = isolated ? FileManager.default.temporaryDirectory.appendingPathComponent("nkpodown-\(UUID().uuidString.prefix(8))").path : nil
        if let own {
            try FileManager.default.createDirectory(atPath: own, withIntermediateDirectories: true)
            try "[engine]\nlock_type = \"file\"\n".write(toFile: own + "/containers.conf", atomically: true, encoding: .utf8)
        }
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
    func podman(_ arguments: String...) -> CommandResult {
        guard let own else { return run(["podman", "--cni-config-dir", configDirectory] + arguments) }
        return run(["podman", "--root", own + "/root", "--runroot", own + "/run", "--tmpdir", own + "/tmp", "--storage-driver", "vfs",
                    "--cni-config-dir", configDirectory] + arguments, environment: ["CONTAINERS_CONF": own + "/containers.conf"])
    }

    /// What a reboot does to this Podman's container `name`: conmon and the
    /// container die at once (no cleanup, so no DEL), the tmpfs parts go
    /// (the run root, the tmp dir with Podman's "alive" file, the OCI runtime's state,
    /// the shm mount), and so do the veths and the namespace.
    func reboot(_ name: String) throws {
        let own = try #require(own, "only an isolated Podman can be rebooted")
        let fields = podman("inspect", name, "--format", "{{.Id}} {{.State.Pid}} {{.State.ConmonPid}} {{.NetworkSettings.SandboxKey}}")
            .stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        try #require(fields.count == 4, "podman inspect: \(fields)")
        let (id, sandbox) = (fields[0], fields[3])
        let pid = try #require(pid_t(fields[1]), "podman inspect: \(fields)"), conmon = try #require(pid_t(fields[2]), "podman inspect: \(fields)")
        for p in [conmon, pid] { kill(p, SIGKILL) }
        #expect(eventually { kill(pid, 0) != 0 && kill(conmon, 0) != 0 }, "the container outlived the reboot")
        run(["umount", "\(own)/root/vfs-containers/\(id)/userdata/shm"])
        // The OCI runtime's state: runc's or crun's, whichever apt chose for Podman.
        for dir in ["\(own)/run", "\(own)/tmp", "/run/runc/\(id)", "/run/crun/\(id)"] { try? FileManager.default.removeItem(atPath: dir) }
        for record in network.records { run(["ip", "link", "del", record["host_ifname"] as? String ?? ""]) }
        run(["ip", "netns", "del", (sandbox as NSString).lastPathComponent])
    }

    /// `podman run -d` on the network. The sandbox does not let a container
    /// raise its limits, hence the two --ulimit (TESTBED.md); Podman's default
    /// capabilities lack NET_RAW, which busybox's ping needs.
    func start(_ name: String) -> CommandResult {
        podman("run", "-d", "--pull=never", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--cap-add", "NET_RAW",
               "--network", network.name, "--name", name, Self.image, "sleep", "1000000")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: configDirectory)
        if let own { try? FileManager.default.removeItem(atPath: own) }
    }
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

        /// The reboot drill with Podman's own restart: a `--restart=always`
        /// container on netkeep-dhcp, the reboot (no DEL comes), netkeep's
        /// sweep at boot removes the dead port row, and `podman start --all
        /// --filter restart-policy=always` (podman-restart.service) calls ADD
        /// for the same container id: the record is replaced, and the
        /// container is back with the same address, reaching the router.
        @Test func aRebootDrillBringsBackWhatPodmanRestarts() throws {
            try Testbed.check()
            let pod = try PodmanNetwork(ipam: #"{"type":"netkeep-dhcp"}"#, isolated: true)
            let net = pod.network
            let name = "nktpod-\(UUID().uuidString.prefix(6).lowercased())"
            defer { pod.podman("rm", "-f", "-t", "0", name) }
            let started = pod.podman("run", "-d", "--pull=never", "--restart=always", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
                                     "--cap-add", "NET_RAW", "--network", net.name, "--name", name, PodmanNetwork.image, "sleep", "1000000")
            #expect(started.status == 0, "\(started.stderr)")
            let before = try #require(address(pod.podman("exec", name, "ip", "-o", "-4", "addr", "show", "eth0").stdout), "no address")
            let host = try #require(net.records.first?["host_ifname"] as? String)

            try pod.reboot(name)
            #expect(bridgePorts.contains(host), "the dead row should be there until the sweep")
            let swept = net.netkeep("reconcile")
            #expect(swept.stdout.contains("removed dead port \(host)"), "\(swept.stdout) \(swept.stderr)")
            let restarted = pod.podman("start", "--all", "--filter", "restart-policy=always")
            #expect(restarted.status == 0, "\(restarted.stdout) \(restarted.stderr)")
            #expect(address(pod.podman("exec", name, "ip", "-o", "-4", "addr", "show", "eth0").stdout) == before)
            #expect(eventually(within: 10) { pod.podman("exec", name, "ping", "-c", "1", "-W", "1", "10.1.2.1").status == 0 }, "no traffic")
            #expect(net.records.count == 1 && net.records.first?["status"] as? String == "ready" && bridgePorts.contains(host))
            #expect(pod.podman("rm", "-f", "-t", "0", name).status == 0)
            #expect(net.records.isEmpty && !bridgePorts.contains(host))
            _ = net.netkeep("dhcp-renew", environment: ["NETKEEP_TIME_OFFSET": "700"])
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
