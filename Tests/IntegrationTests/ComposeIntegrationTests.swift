import Foundation
import Testing

/// examples/compose/docker-compose.yml with the real docker-compose 1.29:
/// three labelled services and two on netkeep Docker networks (static and
/// DHCP) attached, repaired, recreated with the same MACs and addresses, and
/// collected by `down` without giving anything back.
extension IntegrationSuite {
    @Suite struct ComposeIntegrationTests {
        struct Seen: Equatable, CustomStringConvertible {
            var mac: String
            var address: String
            var description: String { "\(mac) \(address)" }
        }

        static func seen(_ container: String, _ ifname: String) -> Seen? {
            let mac = run(["docker", "exec", container, "cat", "/sys/class/net/\(ifname)/address"])
            let addr = run(["docker", "exec", container, "ip", "-o", "-4", "addr", "show", ifname]).stdout.split(separator: " ").map(String.init)
            guard mac.status == 0, let i = addr.firstIndex(of: "inet"), i + 1 < addr.count else { return nil }
            return Seen(mac: mac.stdout.trimmingCharacters(in: .whitespacesAndNewlines), address: addr[i + 1])
        }

        @Test func theExampleProjectIsAttachedRepairedRecreatedAndCollected() throws {
            try Testbed.check()
            let version = run(["docker-compose", "version", "--short"])
            try #require(version.status == 0, "docker-compose is missing (scripts/testbed up installs it): \(version.stderr)")
            let netkeep = Netkeep()
            let driver = "nkc\(UUID().uuidString.prefix(6).lowercased())"
            let daemon = try BackgroundProcess([Testbed.netkeepBinary, "daemon", "--verbose", "--state-dir", netkeep.stateDirectory],
                                               environment: ["NETKEEP_RETENTION": "24h", "NETKEEP_PLUGIN_SOCKET": "/run/docker/plugins/\(driver).sock"])
            defer { daemon.stop() }
            #expect(eventually(within: 10) { FileManager.default.fileExists(atPath: "/run/docker/plugins/\(driver).sock") }, "\(daemon.log)")
            let project = "nkc\(UUID().uuidString.prefix(6).lowercased())"
            let net = randomSubnet(), pluginNet = randomSubnet()
            let file = Testbed.packageRoot + "/examples/compose/docker-compose.yml"
            let env = ["NETKEEP_BRIDGE": Testbed.bridge, "NETKEEP_NET": net, "NETKEEP_IMAGE": Testbed.image, "NETKEEP_DRIVER": driver,
                       "NETKEEP_PLUGIN_NET": pluginNet]
            @discardableResult
            func compose(_ args: String...) -> CommandResult {
                run(["docker-compose", "--no-ansi", "-f", file, "-p", project] + args, environment: env)
            }
            let interfaces = [("\(project)_dhcp_1", "eth1"), ("\(project)_web_1", "eth1"), ("\(project)_router_1", "eth1"), ("\(project)_router_1", "eth2"),
                              ("\(project)_api_1", "eth0"), ("\(project)_lease_1", "eth0")]
            defer {
                compose("down", "-t", "0")
                for name in Set(interfaces.map(\.0)) { netkeep("detach", name) }
            }
            func all() -> [String: Seen]? {
                var out: [String: Seen] = [:]
                for (c, i) in interfaces {
                    guard let s = Self.seen(c, i) else { return nil }
                    out["\(c) \(i)"] = s
                }
                return out
            }

            let up = compose("up", "-d")
            try #require(up.status == 0, "\(up.stderr)")
            var first: [String: Seen] = [:]
            #expect(eventually(within: 40) { all().map { first = $0; return true } ?? false }, "not all attached: \(daemon.log)")
            #expect(first["\(project)_web_1 eth1"] == Seen(mac: "02:6e:6b:77:00:10", address: "\(net).10/24"))
            #expect(first["\(project)_router_1 eth1"]?.address == "\(net).1/25" && first["\(project)_router_1 eth2"]?.address == "\(net).129/25")
            #expect(first["\(project)_dhcp_1 eth1"]?.address.hasPrefix("10.1.2.") == true, "\(first)")
            #expect(first["\(project)_api_1 eth0"]?.address == "\(pluginNet).20/24")
            #expect(first["\(project)_lease_1 eth0"]?.mac == "02:6e:6b:78:00:21" && first["\(project)_lease_1 eth0"]?.address.hasPrefix("10.1.2.") == true)
            // Docker's view of the netkeep networks and netkeep's records agree.
            func endpoints() -> Set<String> {
                Set(((try? netkeep.list()) ?? []).filter { $0["declared_by"] as? String == "docker-network" }.compactMap { $0["id"] as? String })
            }
            func dockers() -> Set<String> {
                Set(["\(project)_ovs", "\(project)_ovs-dhcp"].flatMap { name in
                    run(["docker", "network", "inspect", "-f", "{{range .Containers}}{{.EndpointID}} {{end}}", name]).stdout.split(whereSeparator: \.isWhitespace).map(String.init)
                })
            }
            #expect(endpoints().count == 2 && endpoints() == dockers(), "\(endpoints()) vs \(dockers())")
            #expect(run(["docker", "exec", "\(project)_web_1", "ip", "-o", "link", "show", "eth0"]).status == 0, "web has its Docker network too")
            #expect(run(["docker", "exec", "\(project)_router_1", "cat", "/sys/class/net/eth2/mtu"]).stdout.hasPrefix("1400"))
            // Only this project's (a labelled container of someone else's would be declared too).
            func mine() -> [[String: Any]] { ((try? netkeep.list()) ?? []).filter { ($0["container_name"] as? String ?? "").hasPrefix(project + "_") } }
            let rows = mine()
            #expect(rows.count == 4 && rows.allSatisfy { $0["declared_by"] as? String == "labels" && $0["status"] as? String == "ready" }, "\(rows)")
            let tags = Dictionary(rows.compactMap { r in (r["ifname"] as? String).map { ("\(r["container_name"] as? String ?? "") \($0)", r["vlan"] as? Int) } },
                                  uniquingKeysWith: { a, _ in a })
            #expect(tags["\(project)_router_1 eth1"] == 10 && tags["\(project)_router_1 eth2"] == 20)

            // restart: the same containers, new namespaces, repaired.
            let pids = interfaces.map { run(["docker", "inspect", "-f", "{{.State.Pid}}", $0.0]).stdout }
            #expect(compose("restart", "-t", "0").status == 0)
            #expect(eventually(within: 40) { all() == first && interfaces.map { run(["docker", "inspect", "-f", "{{.State.Pid}}", $0.0]).stdout } != pids },
                    "not repaired after restart: \(String(describing: all()))")

            // --force-recreate: new containers, the same MACs and addresses.
            let ids = Set(interfaces.map { run(["docker", "inspect", "-f", "{{.Id}}", $0.0]).stdout })
            let recreate = compose("up", "-d", "--force-recreate", "-t", "0")
            try #require(recreate.status == 0, "\(recreate.stderr)")
            #expect(Set(interfaces.map { run(["docker", "inspect", "-f", "{{.Id}}", $0.0]).stdout }).isDisjoint(with: ids))
            var again: [String: Seen]?
            #expect(eventually(within: 40) { again = all(); return again == first }, "\(first) -> \(String(describing: again))\n\(daemon.log)")
            #expect(eventually(within: 20) {
                let now = mine()
                return now.count == 4 && now.allSatisfy { $0["status"] as? String == "ready" && $0["recreated_from"] is String }
            }, "\(mine())")

            // down: ports and netns links collected, MACs and leases kept for the next up.
            let ports = Set(mine().compactMap { $0["host_ifname"] as? String })
            let dhcpMAC = try #require(first["\(project)_dhcp_1 eth1"]?.mac)
            #expect(compose("down", "-t", "0").status == 0)
            #expect(eventually(within: 30) {
                let now = mine()
                return now.count == 4 && now.allSatisfy { $0["status"] as? String == "retained" }
            }, "\(mine())")
            #expect(eventually(within: 10) { endpoints().isEmpty }, "endpoints left after down: \(endpoints())")
            let bridgePorts = Set(run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines)
            #expect(bridgePorts.isDisjoint(with: ports), "ports left: \(bridgePorts.intersection(ports))")
            let links = (try? FileManager.default.contentsOfDirectory(atPath: "/var/run/netns")) ?? []
            #expect(!links.contains { $0.hasPrefix(project) }, "netns links left: \(links)")
            #expect(DHCPIntegrationTests.leaseLine(dhcpMAC) != nil, "the lease was released by down")

            // And up again: everything back as it was.
            #expect(compose("up", "-d").status == 0)
            #expect(eventually(within: 40) { all() == first }, "\(String(describing: all()))")
            #expect(endpoints().count == 2 && endpoints() == dockers())
        }
    }
}
