#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A netkeep daemon serving the plugin API under a driver name of its own
/// (`/run/docker/plugins/<name>.sock`), so parallel runs never share one.
final class PluginDaemon: @unchecked Sendable {
    let netkeep: Netkeep
    let driver: String
    var socket: String { "/run/docker/plugins/\(driver).sock" }
    private(set) var process: BackgroundProcess?
    private(set) var logs: [String] = []

    /// `start`: false leaves the start to the test (`start(...)`).
    init(netkeep: Netkeep = Netkeep(), start: Bool = true) throws {
        self.netkeep = netkeep
        driver = "nkt\(UUID().uuidString.prefix(6).lowercased())"
        if start { try self.start() }
    }

    var pid: pid_t? { process?.pid }

    /// `activated`: run under systemd-socket-activate, which binds the socket
    /// and starts netkeep at the first connection, as netkeep.socket does.
    /// `wrapper`: a program that execs the daemon (`prlimit --nofile=...`).
    func start(activated: Bool = false, environment: [String: String] = [:], resyncInterval: Int = 60, wrapper: [String] = []) throws {
        var args = wrapper + [Testbed.netkeepBinary, "daemon", "--foreground", "--verbose", "--state-dir", netkeep.stateDirectory, "--plugin-socket", socket,
                              "--resync-interval", String(resyncInterval)]
        // systemd-socket-activate passes no environment but what -E names; the
        // run's instance always (without it the daemon would be the default
        // instance's, and attach labelled containers of others).
        if activated {
            let names = Set(environment.keys).union(["NETKEEP_INSTANCE"]).sorted()
            args = ["systemd-socket-activate", "-l", socket] + names.flatMap { ["-E", $0] } + args
        }
        let p = try BackgroundProcess(args, environment: environment)
        process = p
        #expect(eventually(within: 10) { FileManager.default.fileExists(atPath: socket) }, "no plugin socket: \(p.log)")
        if !activated {
            #expect(eventually(within: 30) { p.log.contains("following Docker events") }, "the daemon did not start: \(p.log)")
        }
    }

    /// Ends the process (SIGKILL: a crash) and keeps its log for messages.
    func stop(_ signal: Int32 = SIGTERM) {
        guard let p = process else { return }
        p.stop(signal)
        logs.append(p.log)
        process = nil
    }

    var log: String { (logs + [process?.log ?? ""]).joined(separator: "\n----\n") }

    deinit {
        stop()
        unlink(socket)
    }
}

/// A Docker network of the daemon's driver, removed at the end.
final class PluginNetwork: @unchecked Sendable {
    let name: String
    let subnet: String?

    init(_ daemon: PluginDaemon, options: [String] = [], dhcp: Bool = false) throws {
        name = "nktnet-\(UUID().uuidString.prefix(6).lowercased())"
        var args = ["docker", "network", "create", "-d", daemon.driver, "-o", "bridge=\(Testbed.bridge)"] + options
        if dhcp {
            subnet = nil
            args += ["-o", "dhcp=true", "--ipam-driver", "null"]
        } else {
            let net = randomSubnet()
            subnet = net
            args += ["--subnet", "\(net).0/24", "--gateway", "\(net).1"]
        }
        let r = run(args + [name])
        guard r.status == 0 else { throw Testbed.TestbedMissing("docker network create: \(r.stderr) \(daemon.log)") }
    }

    /// `docker network inspect`: endpoint id -> (container name, IPv4 address).
    var endpoints: [String: (name: String, address: String)] {
        let r = run(["docker", "network", "inspect", "-f", "{{json .Containers}}", name])
        guard let object = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: [String: String]] else { return [:] }
        var out: [String: (String, String)] = [:]
        for value in object.values { out[value["EndpointID"] ?? ""] = (value["Name"] ?? "", value["IPv4Address"] ?? "") }
        return out
    }

    deinit { run(["docker", "network", "rm", name]) }
}

/// A locally administered unicast MAC for a test container.
func randomMAC() -> String {
    String(format: "02:4e:4b:%02x:%02x:%02x", Int.random(in: 0...255), Int.random(in: 0...255), Int.random(in: 0...255))
}

/// A container on a netkeep network (`docker run --network`); `mac` through the
/// Engine API, since the docker CLI 28 refuses --mac-address against API 1.41.
func pluginContainer(on network: PluginNetwork, ip: String? = nil, mac: String? = nil, restart: Bool = false) throws -> TestContainer {
    let name = "nktp-\(UUID().uuidString.prefix(8).lowercased())"
    if let mac {
        let body = #"{"Image":"\#(Testbed.image)","Cmd":["sleep","1000000"],"MacAddress":"\#(mac)","HostConfig":{"NetworkMode":"\#(network.name)"\#(restart ? #","RestartPolicy":{"Name":"always"}"# : "")}}"#
        let created = run(["curl", "-sf", "--unix-socket", "/var/run/docker.sock", "-H", "Content-Type: application/json", "-d", body,
                           "http://d/containers/create?name=\(name)"])
        guard created.status == 0 else { throw Testbed.TestbedMissing("create \(name): \(created.stdout) \(created.stderr)") }
        let started = run(["docker", "start", name])
        guard started.status == 0 else { run(["docker", "rm", "-f", name]); throw Testbed.TestbedMissing("start \(name): \(started.stderr)") }
        return try TestContainer(adopting: name)
    }
    return try TestContainer(named: name, restart: restart, network: network.name, extra: ip.map { ["--ip", $0] } ?? [])
}

extension IntegrationSuite {
    @Suite struct PluginTests {
        func endpoints(_ daemon: PluginDaemon) throws -> [[String: Any]] {
            try daemon.netkeep.list().filter { $0["declared_by"] as? String == "docker-network" }
        }

        func address(_ c: TestContainer, _ ifname: String = "eth0") -> String? {
            let out = c.exec("ip", "-o", "-4", "addr", "show", ifname).stdout
            return out.split(separator: " ").firstIndex(of: "inet").map { String(out.split(separator: " ")[$0 + 1]) }
        }

        @Test func badNetworksAreRefusedByNameAndNothingIsRecorded() throws {
            try Testbed.check()
            let daemon = try PluginDaemon()
            let name = "nktbad-\(UUID().uuidString.prefix(6).lowercased())"
            defer { run(["docker", "network", "rm", name]) }
            let cases: [([String], String)] = [
                (["-o", "bridge=nope", "--subnet", "10.77.1.0/24"], #"bridge "nope" does not exist (ovsdb)"#),
                (["-o", "bridge=\(Testbed.bridge)", "-o", "colour=red", "--subnet", "10.77.1.0/24"], #"option "colour": is not a netkeep option"#),
                (["-o", "bridge=\(Testbed.bridge)", "-o", "vlan=9999", "--subnet", "10.77.1.0/24"], "VLAN 9999: must be 0-4094"),
                (["-o", "bridge=\(Testbed.bridge)", "-o", "dhcp=true", "--subnet", "10.77.1.0/24"], "--ipam-driver null"),
                (["--subnet", "10.77.1.0/24"], "needs -o bridge=BRIDGE"),
            ]
            for (options, message) in cases {
                let r = run(["docker", "network", "create", "-d", daemon.driver] + options + [name])
                #expect(r.status != 0 && r.stderr.contains(message), "\(options): \(r.stderr)")
                #expect(run(["docker", "network", "inspect", name]).status != 0, "\(options): the network exists")
            }
            let state = (try? String(contentsOfFile: daemon.netkeep.statePath, encoding: .utf8)) ?? ""
            #expect(!state.contains("\"networks\""), "\(state)")
        }

        @Test func twoContainersPingAndKeepTheirAddressesAcrossRestartStopAndStart() throws {
            try Testbed.check()
            let daemon = try PluginDaemon()
            let network = try PluginNetwork(daemon, options: ["-o", "mtu=1400"])
            let net = try #require(network.subnet)
            let a = try pluginContainer(on: network, ip: "\(net).10")
            let b = try pluginContainer(on: network)
            #expect(address(a) == "\(net).10/24")
            #expect(b.exec("ping", "-c", "1", "-W", "2", "\(net).10").status == 0, "\(daemon.log)")
            #expect(a.exec("cat", "/sys/class/net/eth0/mtu").stdout.hasPrefix("1400"))
            #expect(a.exec("ip", "route").stdout.contains("default via \(net).1"))
            // netkeep's records and Docker's view agree: the same endpoints.
            var records = try endpoints(daemon)
            #expect(Set(records.compactMap { $0["id"] as? String }) == Set(network.endpoints.keys))
            // No request named the containers; a reconcile asks Docker and records them.
            #expect(daemon.netkeep("reconcile").status == 0)
            let names = Set(try endpoints(daemon).compactMap { $0["container_name"] as? String })
            #expect(names == [a.name, b.name], "\(names)")
            let macBefore = a.exec("cat", "/sys/class/net/eth0/address").stdout
            for record in records {
                let port = try #require(record["host_ifname"] as? String)
                let id = run(["ovs-vsctl", "get", "Interface", port, "external_ids:netkeep-endpoint"]).stdout
                #expect(id.trimmingCharacters(in: CharacterSet(charactersIn: "\"\n")) == record["id"] as? String, "\(id)")
            }

            #expect(run(["docker", "restart", "-t", "0", a.name]).status == 0)
            #expect(address(a) == "\(net).10/24")
            #expect(a.exec("cat", "/sys/class/net/eth0/address").stdout == macBefore, "the MAC follows the address")
            #expect(eventually(within: 10) { b.exec("ping", "-c", "1", "-W", "1", "\(net).10").status == 0 })

            let bAddress = address(b)
            #expect(run(["docker", "stop", "-t", "0", b.name]).status == 0)
            records = try endpoints(daemon)
            #expect(records.count == 1 && Set(records.compactMap { $0["id"] as? String }) == Set(network.endpoints.keys))
            #expect(run(["docker", "start", b.name]).status == 0)
            #expect(address(b) != nil && b.exec("ping", "-c", "1", "-W", "2", "\(net).10").status == 0)
            _ = bAddress

            // A second netkeep network, connected and disconnected while the container runs.
            let second = try PluginNetwork(daemon, options: ["-o", "vlan=12"])
            #expect(run(["docker", "network", "connect", second.name, a.name]).status == 0)
            #expect(address(a, "eth1")?.hasPrefix(try #require(second.subnet)) == true)
            let tagged = try endpoints(daemon).first { ($0["vlan"] as? Int) == 12 }
            let port = try #require(tagged?["host_ifname"] as? String)
            #expect(run(["ovs-vsctl", "get", "Port", port, "tag"]).stdout.hasPrefix("12"))
            #expect(run(["docker", "network", "disconnect", second.name, a.name]).status == 0)
            #expect(address(a, "eth1") == nil)
            #expect(run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines.contains(port) == false)

            a.remove()
            b.remove()
            #expect(try endpoints(daemon).isEmpty)
            for record in records {
                #expect(!run(["ip", "-o", "link"]).stdout.contains(record["host_ifname"] as? String ?? "-"))
            }
        }

        @Test func aDHCPNetworkGivesALeaseAndAFixedMACKeepsItsAddressAcrossARestart() throws {
            try Testbed.check()
            let daemon = try PluginDaemon()
            let network = try PluginNetwork(daemon, dhcp: true)
            let mac = randomMAC()
            let c = try pluginContainer(on: network, mac: mac)
            let first = try #require(address(c), "no address: \(daemon.log)")
            #expect(first.hasPrefix("10.1.2.") && first.hasSuffix("/24"))
            #expect(c.exec("ping", "-c", "1", "-W", "2", "10.1.2.1").status == 0)
            #expect(c.exec("ip", "route").stdout.contains("default via 10.1.2.1"))
            let record = try #require(try endpoints(daemon).first)
            #expect(record["mode"] as? String == "dhcp" && record["mac"] as? String == mac)
            #expect((record["lease"] as? [String: Any])?["address"] as? String == first)
            #expect(run(["docker", "restart", "-t", "0", c.name]).status == 0)
            #expect(address(c) == first)
            let inspect = run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", c.name]).stdout
            #expect(inspect.contains(String(first.split(separator: "/")[0])), "\(inspect)")

            // The daemon renews the lease inside the container at T1 (the clock
            // moved past it: NETKEEP_TIME_OFFSET, a debug build's test aid).
            func lease() throws -> [String: Any] { try #require(try endpoints(daemon).first?["lease"] as? [String: Any]) }
            let before = try lease()
            daemon.stop()
            try daemon.start(environment: ["NETKEEP_TIME_OFFSET": "2400"])
            #expect(eventually(within: 30) { ((try? lease())?["obtained_at"] as? String) != before["obtained_at"] as? String },
                    "not renewed: \(daemon.log)")
            #expect(try lease()["address"] as? String == first)
            #expect(daemon.log.contains("lease of endpoint"), "\(daemon.log)")
            #expect(address(c) == first)

            // `dhcp-renew --all` renews it too, as the daemon does.
            let renewedBefore = try lease()["obtained_at"] as? String
            let renew = daemon.netkeep("dhcp-renew", "--all")
            let id = try #require(try endpoints(daemon).first?["id"] as? String)
            #expect(renew.status == 0 && renew.stdout.contains("endpoint \(id.prefix(12))") && renew.stdout.contains(first), "\(renew.stdout) \(renew.stderr)")
            #expect(try lease()["obtained_at"] as? String != renewedBefore, "dhcp-renew --all did not renew the endpoint's lease")
            #expect(address(c) == first)
        }

        @Test func socketActivationStartsNetkeepAtDockersFirstRequest() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let daemon = try PluginDaemon(netkeep: netkeep)
            daemon.stop()
            try daemon.start(activated: true)
            // Only the socket exists: netkeep starts when dockerd connects.
            #expect(!(daemon.process?.log.contains("serving Docker's plugin API") ?? true))
            let network = try PluginNetwork(daemon)
            #expect(eventually(within: 10) { daemon.log.contains("serving Docker's plugin API on the socket systemd passed") }, "\(daemon.log)")
            let c = try pluginContainer(on: network)
            #expect(address(c)?.hasPrefix(try #require(network.subnet)) == true)
        }

        @Test func aKilledAndRestartedNetkeepStillServesTheEndpointsItMade() throws {
            try Testbed.check()
            let daemon = try PluginDaemon()
            let network = try PluginNetwork(daemon)
            let c = try pluginContainer(on: network)
            let port = try #require(try endpoints(daemon).first?["host_ifname"] as? String)
            daemon.stop(SIGKILL)
            try daemon.start()
            // Leave and DeleteEndpoint of an endpoint the earlier process made.
            #expect(run(["docker", "stop", "-t", "0", c.name]).status == 0, "\(daemon.log)")
            #expect(try endpoints(daemon).isEmpty)
            #expect(!run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines.contains(port))
            #expect(run(["docker", "start", c.name]).status == 0)
            #expect(address(c) != nil)
        }
    }
}
