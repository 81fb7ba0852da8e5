import Foundation
import Testing

/// Containers that declare their attachments with `netkeep.<ifname>.*`
/// labels, on the real test bed: the daemon attaches them at their `start`
/// and at its first pass; bad labels leave the container alone.
extension IntegrationSuite {
    @Suite struct LabelsIntegrationTests {
        static func journal(action: String, since: Int) -> [[String: Any]] {
            let r = run(["journalctl", "-o", "json", "--no-pager", "--since=@\(since)", "NETKEEP_ACTION=\(action)"])
            return r.lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        static func row(_ netkeep: Netkeep, _ c: TestContainer, _ ifname: String = "eth1") -> [String: Any]? {
            (try? netkeep.list())?.first { $0["container_id"] as? String == c.id && ($0["ifname"] as? String ?? ifname) == ifname }
        }

        static func daemon(_ netkeep: Netkeep, environment: [String: String] = [:]) throws -> BackgroundProcess {
            let since = Int(Date().timeIntervalSince1970) - 1
            let d = try BackgroundProcess([Testbed.netkeepBinary, "daemon", "--verbose", "--state-dir", netkeep.stateDirectory],
                                          environment: environment)
            let following = eventually(within: 30) {
                d.log.contains("following Docker events")
                    || run(["journalctl", "--since=@\(since)", "-t", "netkeep", "--no-pager", "-o", "cat"]).stdout.contains("following Docker events")
            }
            #expect(following, "the daemon did not start: \(d.log)")
            return d
        }

        @Test func aLabelledContainerIsAttachedAtItsStartAndRepairedAfterARestart() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let net = randomSubnet()
            let since = Int(Date().timeIntervalSince1970) - 1
            let daemon = try Self.daemon(netkeep)
            defer { daemon.stop() }
            let c = try TestContainer(labels: [
                "netkeep.eth1.bridge": Testbed.bridge, "netkeep.eth1.ip": "\(net).20/24", "netkeep.eth1.mac": "02:6e:6b:00:00:20",
                "netkeep.eth2.bridge": Testbed.bridge, "netkeep.eth2.ip": "dhcp", "netkeep.eth2.mtu": "1400",
            ])
            defer { netkeep("detach", c.name) }
            #expect(eventually(within: 30) { c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(net).20/24 ") }, "eth1 not attached: \(daemon.log)")
            #expect(eventually(within: 30) { c.exec("ip", "-o", "-4", "addr", "show", "eth2").stdout.contains(" 10.1.2.") }, "eth2 has no lease")
            #expect(c.exec("cat", "/sys/class/net/eth1/address").stdout.hasPrefix("02:6e:6b:00:00:20"))
            #expect(c.exec("cat", "/sys/class/net/eth2/mtu").stdout.hasPrefix("1400"))
            let rows = try netkeep.list().filter { $0["container_id"] as? String == c.id }
            #expect(rows.map { $0["ifname"] as? String } == ["eth1", "eth2"])
            #expect(rows.allSatisfy { $0["declared_by"] as? String == "labels" && $0["status"] as? String == "ready" }, "\(rows)")
            #expect(eventually {
                Set(Self.journal(action: "create", since: since).filter { $0["NETKEEP_CONTAINER_ID"] as? String == c.id && $0["NETKEEP_REASON"] as? String == "declared-by-labels" }
                    .compactMap { $0["NETKEEP_IFNAME"] as? String }) == ["eth1", "eth2"]
            }, "no create entries with reason declared-by-labels")
            // The same record as `netkeep attach`: a restart is repaired like any other.
            #expect(run(["docker", "restart", "-t", "0", c.name]).status == 0)
            #expect(eventually(within: 30) { c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(net).20/24 ") }, "not repaired after the restart")
            #expect(try netkeep.list().filter { $0["container_id"] as? String == c.id }.count == 2)
        }

        @Test func aLabelledContainerThatRanBeforeTheDaemonIsAttachedByItsFirstPass() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let net = randomSubnet()
            let c = try TestContainer(labels: ["netkeep.eth1.bridge": Testbed.bridge, "netkeep.eth1.ip": "\(net).21/24", "netkeep.eth1.vlan": "5"])
            defer { netkeep("detach", c.name) }
            let before = try #require(Self.row(netkeep, c))
            #expect(before["status"] as? String == "declared", "\(before)")
            let daemon = try Self.daemon(netkeep)
            defer { daemon.stop() }
            #expect(eventually(within: 30) { c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(net).21/24 ") }, "\(daemon.log)")
            let row = try #require(Self.row(netkeep, c))
            #expect(row["status"] as? String == "ready" && row["vlan"] as? Int == 5 && row["declared_by"] as? String == "labels")
            let port = try #require(row["host_ifname"] as? String)
            #expect(run(["ovs-vsctl", "get", "port", port, "tag"]).stdout.hasPrefix("5"))
        }

        @Test func badLabelsLeaveTheContainerAloneWithOneWarningAndTheDaemonGoesOn() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let net = randomSubnet()
            let since = Int(Date().timeIntervalSince1970) - 1
            let daemon = try Self.daemon(netkeep)
            defer { daemon.stop() }
            let bad = try TestContainer(labels: ["netkeep.eth1.bridge": Testbed.bridge, "netkeep.eth1.ip": "\(net).300/24", "netkeep.eth1.colour": "blue"])
            let good = try TestContainer(labels: ["netkeep.eth1.bridge": Testbed.bridge, "netkeep.eth1.ip": "\(net).22/24"])
            defer { netkeep("detach", good.name) }
            #expect(eventually(within: 30) { good.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(net).22/24 ") }, "\(daemon.log)")
            var warnings: [[String: Any]] = []
            #expect(eventually {
                warnings = Self.journal(action: "labels-refused", since: since).filter { $0["NETKEEP_CONTAINER_ID"] as? String == bad.id }
                return !warnings.isEmpty
            }, "no labels-refused entry")
            let warning = try #require(warnings.first)
            let message = warning["MESSAGE"] as? String ?? ""
            #expect(warning["PRIORITY"] as? String == "4")
            #expect(message.contains(bad.name) && message.contains("netkeep.eth1.colour") && message.contains("unknown key"), "\(message)")
            #expect(message.contains("netkeep.eth1.ip") && message.contains("\(net).300/24"), "\(message)")
            // Nothing of it attached; the daemon runs on, and a later pass does not warn again.
            #expect(bad.exec("ip", "-o", "link", "show", "eth1").status != 0)
            #expect(daemon.exitStatus == nil)
            #expect(run(["docker", "restart", "-t", "0", good.name]).status == 0)
            #expect(eventually(within: 30) { good.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(net).22/24 ") })
            #expect(Self.journal(action: "labels-refused", since: since).filter { $0["NETKEEP_CONTAINER_ID"] as? String == bad.id }.count == 1)
            let row = try #require(Self.row(netkeep, bad))
            #expect(row["status"] as? String == "refused")
            #expect((row["problems"] as? [String] ?? []).contains { $0.contains("netkeep.eth1.colour") }, "\(row)")
            let dry = netkeep("reconcile", "--dry-run")
            #expect(dry.stdout.contains("labels refused, nothing attached") && dry.stdout.contains(bad.name), "\(dry.stdout)")
            #expect(!(try netkeep.list().contains { $0["container_id"] as? String == bad.id && $0["status"] as? String != "refused" }))
        }

        @Test func attachOfALabelledInterfaceWithOtherValuesIsRefusedLabelsWin() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let net = randomSubnet()
            let c = try TestContainer(labels: ["netkeep.eth1.bridge": Testbed.bridge, "netkeep.eth1.ip": "\(net).23/24"])
            defer { netkeep("detach", c.name) }
            let r = netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(net).99/24")
            #expect(r.status == 2, "\(r.stderr)")
            #expect(r.stderr.contains("labels win") && r.stderr.contains("ip: labels say \(net).23/24, the request says \(net).99/24"), "\(r.stderr)")
            #expect(c.exec("ip", "-o", "link", "show", "eth1").status != 0, "nothing was made")
            // `netkeep reconcile` attaches it as declared.
            let dry = netkeep("reconcile", "--dry-run")
            #expect(dry.stdout.contains("declare: \(c.name) eth1 on \(Testbed.bridge)"), "\(dry.stdout)")
            #expect(try netkeep.list().filter { $0["container_id"] as? String == c.id }.map { $0["status"] as? String } == ["declared"])
            let done = netkeep("reconcile")
            #expect(done.status == 0, "\(done.stdout) \(done.stderr)")
            #expect(c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(net).23/24 "))
            #expect(Self.row(netkeep, c)?["declared_by"] as? String == "labels")
        }
    }
}
