import Foundation
import Testing

/// `netkeep daemon` and `netkeep hook` against the real Docker engine.
extension IntegrationSuite {
    @Suite struct DaemonTests {
        func startDaemon(_ netkeep: Netkeep, _ extra: [String] = []) throws -> BackgroundProcess {
            let daemon = try BackgroundProcess([Testbed.netkeepBinary, "daemon", "-v", "--foreground", "--state-dir", netkeep.stateDirectory] + extra)
            #expect(eventually(within: 20) { daemon.log.contains("following Docker events") }, "daemon did not start: \(daemon.log)")
            return daemon
        }

        func hasAddress(_ c: TestContainer, _ cidr: String) -> Bool {
            c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(cidr) ")
        }

        @Test func restartIsRepairedAndRemovalCollectedWithoutACommand() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer(), b = try TestContainer()
            let net = randomSubnet()
            #expect(netkeep("attach", a.name, "--bridge", Testbed.bridge, "--ip", "\(net).10/24").status == 0)
            #expect(netkeep("attach", b.name, "--bridge", Testbed.bridge, "--ip", "\(net).11/24").status == 0)
            let hostB = try #require(try netkeep.list().first { $0["container_name"] as? String == b.name }?["host_ifname"] as? String)
            let daemon = try startDaemon(netkeep)
            defer { daemon.stop(); netkeep("detach", a.name) }

            #expect(run(["docker", "restart", "-t", "0", a.name]).status == 0)
            #expect(eventually(within: 10) { hasAddress(a, "\(net).10/24") }, "not repaired: \(daemon.log)")
            #expect(eventually { run(["ip", "netns", "exec", a.name, "true"]).status == 0 })

            // A container the CLI attaches while the daemon runs is kept too.
            let c = try TestContainer()
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(net).12/24").status == 0)
            defer { netkeep("detach", c.name) }
            #expect(run(["docker", "restart", "-t", "0", c.name]).status == 0)
            #expect(eventually(within: 10) { hasAddress(c, "\(net).12/24") }, "CLI attachment not repaired: \(daemon.log)")
            #expect(eventually(within: 5) { a.exec("ping", "-c", "1", "-W", "1", "\(net).12").status == 0 })

            b.remove()
            #expect(eventually(within: 10) { !run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines.contains(hostB) }, "port of removed container left: \(daemon.log)")
            #expect(run(["ip", "link", "show", hostB]).status != 0)
            #expect(!FileManager.default.fileExists(atPath: "/var/run/netns/\(b.name)"))
            #expect(eventually { (try? netkeep.list().contains { $0["container_name"] as? String == b.name }) == false },
                    "record of removed container \(b.name) left: \(netkeep("list").stdout) \(daemon.log)")

            // SIGTERM: exit 0, nothing torn down.
            #expect(daemon.stop() == 0, "\(daemon.log)")
            #expect(hasAddress(a, "\(net).10/24"))
            #expect(daemon.log.contains("stopped; attachments are left as they are"))
            // The last event handled is kept for the next start (since=).
            let state = try JSONSerialization.jsonObject(with: netkeep.stateBytes ?? Data()) as? [String: Any]
            let last = try #require(state?["last_event_nano"] as? Int64)
            #expect(last > Int64(Date().timeIntervalSince1970 - 120) * 1_000_000_000)
        }

        @Test func stopRecordsDownAndUnplugsTheDeadPortStartBringsItBack() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer()
            let net = randomSubnet()
            #expect(netkeep("attach", a.name, "--bridge", Testbed.bridge, "--ip", "\(net).10/24").status == 0)
            defer { netkeep("detach", a.name) }
            let entry = try #require(try netkeep.list().first)
            let host = try #require(entry["host_ifname"] as? String)
            let mac = try #require(entry["mac"] as? String)
            let daemon = try startDaemon(netkeep)
            defer { daemon.stop() }

            #expect(run(["docker", "stop", "-t", "0", a.name]).status == 0)
            #expect(eventually(within: 10) { (try? netkeep.list().first?["status"] as? String) == "down" }, "\(daemon.log)")
            #expect(eventually(within: 10) { !run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines.contains(host) },
                    "dead port row left while the container is stopped: \(daemon.log)")
            #expect(try netkeep.list().count == 1, "the attachment of a stopped container is kept")

            #expect(run(["docker", "start", a.name]).status == 0)
            #expect(eventually(within: 10) { hasAddress(a, "\(net).10/24") }, "not repaired after start: \(daemon.log)")
            #expect(eventually(within: 10) { run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines.contains(host) })
            #expect(a.exec("cat", "/sys/class/net/eth1/address").stdout.trimmingCharacters(in: .whitespacesAndNewlines) == mac)
            #expect(run(["ovs-vsctl", "get", "Interface", host, "ofport"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) != "-1")
        }

        @Test func whatHappenedWhileTheDaemonWasStoppedIsCaughtUp() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer(), b = try TestContainer()
            let net = randomSubnet()
            #expect(netkeep("attach", a.name, "--bridge", Testbed.bridge, "--ip", "\(net).10/24").status == 0)
            #expect(netkeep("attach", b.name, "--bridge", Testbed.bridge, "--ip", "\(net).11/24").status == 0)
            defer { netkeep("detach", a.name) }
            let first = try startDaemon(netkeep)
            #expect(first.stop() == 0)
            let hostB = try #require(try netkeep.list().first { $0["container_name"] as? String == b.name }?["host_ifname"] as? String)
            #expect(run(["docker", "restart", "-t", "0", a.name]).status == 0)
            b.remove()
            let second = try startDaemon(netkeep)
            defer { second.stop() }
            #expect(eventually(within: 10) { hasAddress(a, "\(net).10/24") }, "\(second.log)")
            #expect(eventually(within: 10) { !run(["ovs-vsctl", "list-ports", Testbed.bridge]).lines.contains(hostB) })
            #expect(try netkeep.list().count == 1)
        }

        @Test func dockerRestartIsFollowedByAReconnectAndARepair() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer(restart: true)
            let net = randomSubnet()
            #expect(netkeep("attach", a.name, "--bridge", Testbed.bridge, "--ip", "\(net).10/24").status == 0)
            defer { netkeep("detach", a.name) }
            let daemon = try startDaemon(netkeep)
            defer { daemon.stop() }
            // dockerd stops its containers on the way down and starts them (restart
            // policy) on the way up: new PIDs, only lo.
            defer { run([Testbed.packageRoot + "/scripts/testbed", "docker-start"]) }
            #expect(run([Testbed.packageRoot + "/scripts/testbed", "docker-stop"]).status == 0)
            #expect(eventually(within: 15) { daemon.log.contains("Docker events unavailable") }, "\(daemon.log)")
            #expect(run([Testbed.packageRoot + "/scripts/testbed", "docker-start"]).status == 0)
            #expect(eventually(within: 30) { hasAddress(a, "\(net).10/24") }, "not repaired after dockerd came back: \(daemon.log)")
            #expect(daemon.log.components(separatedBy: "following Docker events").count >= 3, "no reconnect: \(daemon.log)")
        }

        @Test func hookRepairsFromARealEventStreamAndSkipsMalformedLines() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let a = try TestContainer()
            let net = randomSubnet()
            #expect(netkeep("attach", a.name, "--bridge", Testbed.bridge, "--ip", "\(net).10/24").status == 0)
            defer { netkeep("detach", a.name) }
            let since = String(Int(Date().timeIntervalSince1970) - 1)
            #expect(run(["docker", "restart", "-t", "0", a.name]).status == 0)
            let until = String(Int(Date().timeIntervalSince1970) + 1)
            let events = run(["docker", "events", "--filter", "type=container", "--since", since, "--until", until, "--format", "{{json .}}"])
            #expect(events.status == 0 && events.stdout.contains("\"start\""), "\(events.stderr)")
            // Real events with garbage around them.
            let input = "not json\n" + events.stdout + "{\"Type\":\"container\"}\n\n{]\n"
            let file = netkeep.stateDirectory + ".events"
            try input.write(toFile: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let r = run(["/bin/sh", "-c", "exec \"$0\" hook -v --state-dir \"$1\" < \"$2\"", Testbed.netkeepBinary, netkeep.stateDirectory, file])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("line 1: not a Docker event"), "\(r.stderr)")
            let lines = input.split(separator: "\n", omittingEmptySubsequences: false).count - 1
            #expect(r.stderr.contains("line \(lines): not a Docker event"), "\(r.stderr)")
            #expect(r.stderr.contains("create veth"), "\(r.stderr)")
            #expect(hasAddress(a, "\(net).10/24"))
            // The same stream again: nothing left to do.
            let again = run(["/bin/sh", "-c", "exec \"$0\" hook --state-dir \"$1\" < \"$2\"", Testbed.netkeepBinary, netkeep.stateDirectory, file])
            #expect(again.status == 0 && !again.stderr.contains("create veth"), "\(again.stderr)")
        }

        @Test func daemonRefusesAnUnreadableStateFile() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            try FileManager.default.createDirectory(atPath: netkeep.stateDirectory, withIntermediateDirectories: true)
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: netkeep.statePath))
            let r = run([Testbed.netkeepBinary, "daemon", "--state-dir", netkeep.stateDirectory])
            #expect(r.status == 3, "\(r.stderr)")
            #expect(r.stderr.contains("corrupt"))
            #expect(netkeep.stateBytes == Data("garbage".utf8))
        }
    }
}

extension IntegrationSuite {
    /// The short version of scripts/chaos: one round of every fault drill.
    @Suite struct ChaosTests {
        @Test func oneRoundOfEveryFaultLosesNothing() throws {
            try Testbed.check()
            let r = run([Testbed.packageRoot + "/scripts/chaos", "1"], environment: ["NETKEEP_BIN": Testbed.netkeepBinary])
            #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
            let rows = r.stdout.split(separator: "\n").filter { $0.range(of: #"\s+1\s+\d+\s+\d+$"#, options: .regularExpression) != nil }
            #expect(rows.count == 6, "\(r.stdout)")
            #expect(rows.allSatisfy { $0.hasSuffix(" 0") }, "\(r.stdout)")
        }
    }
}
