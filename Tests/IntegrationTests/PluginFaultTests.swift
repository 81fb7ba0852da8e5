#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// DESIGN.md's faults for the Docker network plugin, on the real dockerd:
/// afterwards Docker's view (`docker network inspect`) and netkeep's records agree.
extension IntegrationSuite {
    @Suite struct PluginFaultTests {
        func recorded(_ daemon: PluginDaemon, network: PluginNetwork? = nil) -> Set<String> {
            let entries = (try? daemon.netkeep.list()) ?? []
            return Set(entries.filter { $0["declared_by"] as? String == "docker-network" }.compactMap { $0["id"] as? String })
        }

        /// netkeep's endpoint records are exactly the endpoints Docker lists on `networks`.
        func agree(_ daemon: PluginDaemon, _ networks: PluginNetwork..., within seconds: Double = 20) -> Bool {
            eventually(within: seconds) { recorded(daemon) == Set(networks.flatMap { $0.endpoints.keys }) }
        }

        func address(_ c: TestContainer) -> String? {
            let out = c.exec("ip", "-o", "-4", "addr", "show", "eth0").stdout
            return out.split(separator: " ").firstIndex(of: "inet").map { String(out.split(separator: " ")[$0 + 1]) }
        }

        var endpointLinks: Set<String> {
            Set(run(["ip", "-o", "link"]).lines.compactMap { line in
                line.split(separator: ":").dropFirst().first.map { $0.trimmingCharacters(in: .whitespaces).split(separator: "@")[0] }
                    .map(String.init).flatMap { $0.hasPrefix("nke") || $0.hasPrefix("nkp") ? $0 : nil }
            })
        }

        /// netkeep dies (SIGKILL) at `fault` while Docker waits for it; a new
        /// netkeep starts at once, as systemd restarts it.
        func killed(at fault: String) throws {
            try Testbed.check()
            let daemon = try PluginDaemon()
            let network = try PluginNetwork(daemon)
            let before = endpointLinks
            daemon.stop()
            try daemon.start(environment: ["NETKEEP_FAULT": fault], resyncInterval: 1)
            let name = "nktf-\(UUID().uuidString.prefix(8).lowercased())"
            defer { run(["docker", "rm", "-f", name]) }
            let running = try BackgroundProcess(["docker", "run", "-d", "--name", name, "--network", network.name, Testbed.image, "sleep", "1000000"])
            #expect(eventually(within: 20) { daemon.process?.exitStatus != nil }, "\(fault) was not reached: \(daemon.log)")
            daemon.stop()
            try daemon.start(resyncInterval: 1)
            #expect(running.wait(within: 60) != nil, "docker run did not end")
            #expect(agree(daemon, network), "records \(recorded(daemon)) vs Docker \(network.endpoints.keys): \(daemon.log)")
            #expect(eventually(within: 10) { endpointLinks.subtracting(before).isEmpty }, "left behind: \(endpointLinks.subtracting(before))")
            // The container starts now, on a netkeep that works.
            let started = run(["docker", "start", name])
            #expect(started.status == 0, "\(started.stderr)")
            #expect(agree(daemon, network) && recorded(daemon).count == 1)
        }

        @Test func killedDuringCreateEndpoint() throws { try killed(at: "endpoint.veth-made") }

        @Test func killedDuringJoin() throws { try killed(at: "join.started") }

        @Test func dockerdAndOVSRestartedWhileContainersRun() throws {
            try Testbed.check()
            let daemon = try PluginDaemon()
            let network = try PluginNetwork(daemon)
            let net = try #require(network.subnet)
            let a = try pluginContainer(on: network, ip: "\(net).20", restart: true)
            let b = try pluginContainer(on: network, ip: "\(net).21", restart: true)
            // A DHCP endpoint with a fixed MAC keeps its lease across the dockerd restart.
            let leased = try PluginNetwork(daemon, dhcp: true)
            let d = try pluginContainer(on: leased, mac: randomMAC(), restart: true)
            let lease = try #require(address(d), "no lease: \(daemon.log)")
            #expect(a.exec("ping", "-c", "1", "-W", "2", "\(net).21").status == 0)

            #expect(run([Testbed.packageRoot + "/scripts/testbed", "ovs-stop"]).status == 0)
            #expect(run([Testbed.packageRoot + "/scripts/testbed", "ovs-start"]).status == 0)
            #expect(eventually(within: 20) { a.exec("ping", "-c", "1", "-W", "1", "\(net).21").status == 0 }, "no traffic after the OVS restart")
            #expect(agree(daemon, network, leased))

            // A port row deleted behind netkeep's back (a database cleared): reconcile adds it back.
            let port = try #require(((try? daemon.netkeep.list()) ?? []).first { $0["address"] as? String == "\(net).20/24" }?["host_ifname"] as? String)
            #expect(run(["ovs-vsctl", "del-port", Testbed.bridge, port]).status == 0)
            let repair = daemon.netkeep("reconcile")
            #expect(repair.stdout.contains("added port \(port)"), "\(repair.stdout) \(repair.stderr)")
            #expect(eventually(within: 20) { a.exec("ping", "-c", "1", "-W", "1", "\(net).21").status == 0 }, "no traffic after the port came back")

            #expect(run([Testbed.packageRoot + "/scripts/testbed", "docker-stop"]).status == 0)
            #expect(run([Testbed.packageRoot + "/scripts/testbed", "docker-start"]).status == 0)
            #expect(eventually(within: 60) { address(a) == "\(net).20/24" && address(b) == "\(net).21/24" && address(d) == lease },
                    "\(address(d) ?? "-") for \(lease): \(daemon.log)")
            #expect(eventually(within: 20) { a.exec("ping", "-c", "1", "-W", "1", "\(net).21").status == 0 })
            #expect(agree(daemon, network, leased), "records \(recorded(daemon)) vs Docker \(network.endpoints.keys) + \(leased.endpoints.keys)")
        }

        /// The reboot of TESTBED.md with 20 restart-policy containers on a
        /// netkeep network: the plugin socket (systemd-socket-activate, as
        /// netkeep.socket) exists before dockerd starts; every container comes
        /// back with its address, dockerd logs no plugin failure, and the
        /// endpoints that died with the old sandboxes are collected.
        @Test func aRebootBringsEveryContainerBackWithItsAddress() throws {
            try Testbed.check()
            let daemon = try PluginDaemon()
            let network = try PluginNetwork(daemon)
            let net = try #require(network.subnet)
            let containers = try (0..<20).map { try pluginContainer(on: network, ip: "\(net).\(30 + $0)", restart: true) }
            // And one DHCP endpoint with a fixed MAC: its lease comes back with it.
            let leased = try PluginNetwork(daemon, dhcp: true)
            let d = try pluginContainer(on: leased, mac: randomMAC(), restart: true)
            let lease = try #require(address(d), "no lease: \(daemon.log)")
            #expect(agree(daemon, network, leased) && recorded(daemon).count == 21)
            let before = recorded(daemon)
            daemon.stop()

            #expect(run([Testbed.packageRoot + "/scripts/testbed", "reboot", "--hold-docker"]).status == 0)
            try daemon.start(activated: true)
            let started = Date()
            #expect(run([Testbed.packageRoot + "/scripts/testbed", "docker-start"]).status == 0)
            let back = eventually(within: 120) { containers.allSatisfy { address($0) != nil } }
            let seconds = Date().timeIntervalSince(started)
            #expect(back, "not every container came back: \(daemon.log)")
            for (i, c) in containers.enumerated() { #expect(address(c) == "\(net).\(30 + i)/24", "\(c.name)") }
            #expect(eventually(within: 30) { address(d) == lease }, "\(address(d) ?? "-") for \(lease): \(daemon.log)")
            #expect(containers[0].exec("ping", "-c", "1", "-W", "2", "\(net).49").status == 0)
            let dockerd = (try? String(contentsOfFile: "/run/netkeep-testbed/dockerd.log", encoding: .utf8)) ?? ""
            let failures = dockerd.split(separator: "\n").filter { $0.contains(daemon.driver) || $0.lowercased().contains("plugin") }
                .filter { $0.contains("level=error") || $0.contains("level=warning") || $0.contains("not found") }
            #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
            // The old endpoints went with their sandboxes; the daemon's sweep collects them.
            #expect(agree(daemon, network, leased, within: 90),
                    "records \(recorded(daemon).count) vs Docker \(network.endpoints.count) + \(leased.endpoints.count)")
            #expect(recorded(daemon).isDisjoint(with: before))
            print("plugin reboot: 20 containers back with their addresses \(Int(seconds * 1000)) ms after dockerd was started")
        }
    }
}
