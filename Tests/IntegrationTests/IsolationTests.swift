import Foundation
import Testing

/// Whatever else runs on the engine and the bridge is not a test's business,
/// nor a netkeep's: a netkeep of this run's instance, with a state directory
/// of its own, lists, reconciles, renews and follows events only for what it
/// made or was asked for. Someone else's world is made first: a labelled
/// container of the default instance (what scripts/demo leaves), one labelled
/// for another instance, another state directory's record with its port, a
/// port that ovs-docker would have made for a running container, and a port
/// nobody owns.
extension IntegrationSuite {
    @Suite struct IsolationTests {
        final class ForeignWorld {
            let netkeep = Netkeep()
            static let instance = "foreign-\(UUID().uuidString.prefix(6).lowercased())"
            let defaultInstance: TestContainer
            let otherInstance: TestContainer
            let recorded: TestContainer
            let ovsDockerOwner: TestContainer
            let ovsDockerPort: String
            let plainPort: String
            var containers: [TestContainer] { [defaultInstance, otherInstance, recorded, ovsDockerOwner] }
            var ports: [String] { [ovsDockerPort, plainPort] + recordedPorts }
            private(set) var recordedPorts: [String] = []

            init() throws {
                let tag = UUID().uuidString.prefix(6).lowercased()
                // As the demo leaves it: the default instance's labels (empty is the default, as compose's ${NETKEEP_INSTANCE:-} gives).
                defaultInstance = try TestContainer(prefix: "nkforeign", labels: ["netkeep.instance": "", "netkeep.eth1.bridge": Testbed.bridge,
                                                                                   "netkeep.eth1.ip": "dhcp"])
                otherInstance = try TestContainer(prefix: "nkforeign", labels: ["netkeep.instance": Self.instance, "netkeep.eth1.bridge": Testbed.bridge,
                                                                                 "netkeep.eth1.ip": "\(randomSubnet()).5/24"])
                recorded = try TestContainer(prefix: "nkforeign")
                ovsDockerOwner = try TestContainer(prefix: "nkforeign")
                ovsDockerPort = "nkfd\(tag)_l"
                plainPort = "nkfp\(tag)"
                let attach = netkeep.invoke(["attach", recorded.name, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).6/24"],
                                            environment: ["NETKEEP_INSTANCE": Self.instance])
                guard attach.status == 0 else { throw Testbed.TestbedMissing("the foreign attach failed: \(attach.stderr)") }
                recordedPorts = ((try? netkeep.list()) ?? []).compactMap { $0["host_ifname"] as? String }
                for (port, ids) in [(ovsDockerPort, ["container_id=\(ovsDockerOwner.id)", "container_iface=eth5"]), (plainPort, [])] {
                    let made = run(["ip", "link", "add", port, "type", "veth", "peer", "name", port + "p"])
                    guard made.status == 0 else { throw Testbed.TestbedMissing("veth \(port): \(made.stderr)") }
                    var add = ["ovs-vsctl", "--timeout=20", "add-port", Testbed.bridge, port]
                    if !ids.isEmpty { add += ["--", "set", "Interface", port] + ids.map { "external_ids:\($0)" } }
                    let added = run(add)
                    guard added.status == 0 else { throw Testbed.TestbedMissing("port \(port): \(added.stderr)") }
                }
            }

            /// What must not change: the foreign ports' rows, the foreign
            /// record's state file, the foreign containers' interfaces.
            func fingerprint() -> String {
                var parts = ports.sorted().map { port in
                    port + " " + run(["ovs-vsctl", "--timeout=20", "--columns=name,external_ids", "list", "Interface", port]).stdout
                        + run(["ovs-vsctl", "--timeout=20", "port-to-br", port]).stdout
                }
                parts.append(netkeep.stateBytes.map { String(decoding: $0, as: UTF8.self) } ?? "no foreign state file")
                for c in containers { parts.append(c.name + " " + c.exec("ip", "-o", "link").stdout + c.exec("ip", "-o", "-4", "addr").stdout) }
                return parts.joined(separator: "\n")
            }

            func mentions(_ text: String) -> [String] {
                (containers.flatMap { [$0.name, $0.id] } + ports).filter { text.contains($0) }
            }

            deinit {
                for port in [ovsDockerPort, plainPort] {
                    run(["ovs-vsctl", "--timeout=20", "--if-exists", "del-port", port])
                    run(["ip", "link", "del", port])
                }
                _ = netkeep.invoke(["detach", recorded.name], environment: ["NETKEEP_INSTANCE": Self.instance])
            }
        }

        @Test func listReconcileStatusRenewAndTheDaemonActOnlyOnTheirOwn() throws {
            try Testbed.check()
            let foreign = try ForeignWorld()
            let before = foreign.fingerprint()
            let since = Date().timeIntervalSince1970

            let netkeep = Netkeep()
            let net = randomSubnet()
            let attached = try TestContainer()
            let labelled = try TestContainer(labels: ["netkeep.eth1.bridge": Testbed.bridge, "netkeep.eth1.ip": "\(net).21/24"])
            defer { netkeep("detach", attached.name); netkeep("detach", labelled.name) }
            let attach = netkeep("attach", attached.name, "--bridge", Testbed.bridge, "--ip", "\(net).20/24")
            try #require(attach.status == 0, "\(attach.stderr)")
            let mine = Set([attached.name, labelled.name])

            // list: my record and my labelled container's declaration, nothing else.
            let listed = try netkeep.list()
            #expect(Set(listed.compactMap { $0["container_name"] as? String }) == mine, "\(listed)")
            #expect(listed.first { $0["container_name"] as? String == labelled.name }?["status"] as? String == "declared", "\(listed)")
            let table = netkeep("list")
            #expect(table.status == 0 && foreign.mentions(table.stdout).isEmpty, "list shows \(foreign.mentions(table.stdout)): \(table.stdout)")

            // reconcile: plans and makes only mine (its notices may say what it leaves alone).
            func actionsAndDeclarations(_ r: CommandResult) throws -> String {
                let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout) \(r.stderr)")
                return "\(report["actions"] ?? "no actions") \(report["declarations"] ?? "no declarations")"
            }
            let dry = try actionsAndDeclarations(netkeep("reconcile", "--dry-run", "--json"))
            #expect(foreign.mentions(dry).isEmpty, "the plan is about \(foreign.mentions(dry)): \(dry)")
            #expect(dry.contains(labelled.name), "my labelled container is not declared: \(dry)")
            let done = try actionsAndDeclarations(netkeep("reconcile", "--json"))
            #expect(foreign.mentions(done).isEmpty, "reconcile acted on \(foreign.mentions(done)): \(done)")
            #expect(labelled.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(net).21/24 "), "my labelled container is not attached: \(done)")
            #expect(foreign.defaultInstance.exec("ip", "link", "show", "eth1").status != 0, "the default instance's container was attached")
            #expect(foreign.otherInstance.exec("ip", "link", "show", "eth1").status != 0, "another instance's container was attached")

            // status and dhcp-renew: counts and leases of mine only.
            let status = netkeep("status", "--json")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any], "\(status.stdout)")
            #expect(foreign.mentions(status.stdout).isEmpty, "status names \(foreign.mentions(status.stdout))")
            let counts = report["attachments"] as? [String: Int]
            #expect(counts?["ready"] == 2 && counts?.values.reduce(0, +) == 2, "status counts: \(report)")
            let renew = netkeep("dhcp-renew", "--all")
            #expect(renew.status == 0 && foreign.mentions(renew.stdout + renew.stderr).isEmpty, "\(renew.stdout) \(renew.stderr)")

            // The daemon: a restart of someone else's labelled container is not its business; mine is repaired.
            let daemon = try LabelsIntegrationTests.daemon(netkeep)
            defer { daemon.stop() }
            #expect(run(["docker", "restart", "-t", "0", foreign.defaultInstance.name]).status == 0)
            #expect(run(["docker", "restart", "-t", "0", foreign.otherInstance.name]).status == 0)
            #expect(run(["docker", "restart", "-t", "0", labelled.name]).status == 0)
            #expect(eventually(within: 20) { labelled.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(net).21/24 ") },
                    "my labelled container was not repaired: \(daemon.log)")
            #expect(foreign.defaultInstance.exec("ip", "link", "show", "eth1").status != 0, "the daemon attached the default instance's container")
            #expect(foreign.otherInstance.exec("ip", "link", "show", "eth1").status != 0, "the daemon attached another instance's container")
            #expect(daemon.stop() == 0, "\(daemon.log)")

            // No audit entry since the foreign world was made (one per change netkeep makes) is about it.
            let audit = run(["journalctl", "-o", "json", "--no-pager", "--since=@\(Int(since) - 1)", "SYSLOG_IDENTIFIER=netkeep"]).lines.filter { line in
                guard let entry = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], entry["NETKEEP_ACTION"] != nil,
                      let time = (entry["__REALTIME_TIMESTAMP"] as? String).flatMap(Double.init) else { return false }
                return time >= since * 1_000_000
            }
            #expect(!audit.isEmpty, "no audit entries of my own changes: is journald running?")
            let touching = audit.filter { !foreign.mentions($0).isEmpty }
            #expect(touching.isEmpty, "audit entries about the foreign world: \(touching)")
            // The foreign world's restarts changed its namespaces: compare what netkeep could have touched.
            #expect(foreign.fingerprint().components(separatedBy: "\n").filter { !$0.contains(" link/") && !$0.contains(" inet ") }
                        == before.components(separatedBy: "\n").filter { !$0.contains(" link/") && !$0.contains(" inet ") })
        }
    }
}
