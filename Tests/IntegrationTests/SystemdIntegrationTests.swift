#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// journald audit, sd_notify, the unit file, with the test bed's journald.
extension IntegrationSuite {
    @Suite struct SystemdIntegrationTests {
        /// Entries of the journal since `since` (seconds) with `NETKEEP_ACTION=action`.
        func journal(action: String, since: Int) throws -> [[String: Any]] {
            let r = run(["journalctl", "-o", "json", "--no-pager", "--since=@\(since)", "NETKEEP_ACTION=\(action)"])
            guard r.status == 0 else { throw Testbed.TestbedMissing("journalctl: \(r.stderr)") }
            return r.lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        @Test func aRebootRepairedByTheDaemonLeavesOneRepairEntryPerAttachment() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let containers = try (0..<3).map { _ in try TestContainer(restart: true) }
            let net = randomSubnet()
            for (i, c) in containers.enumerated() {
                #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(net).\(10 + i)/24").status == 0)
            }
            defer { for c in containers { netkeep("detach", c.name) } }
            let since = Int(Date().timeIntervalSince1970) - 1
            let daemon = try BackgroundProcess([Testbed.netkeepBinary, "daemon", "--state-dir", netkeep.stateDirectory])
            defer { daemon.stop() }
            #expect(eventually(within: 20) { daemon.log.contains("following Docker events") || run(["journalctl", "--since=@\(since)", "-t", "netkeep", "--no-pager"]).stdout.contains("following Docker events") })
            #expect(run([Testbed.packageRoot + "/scripts/testbed", "reboot"]).status == 0)
            for (i, c) in containers.enumerated() {
                #expect(eventually(within: 60) { c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(net).\(10 + i)/24 ") }, "\(c.name) not repaired")
            }
            let ids = Set(containers.map(\.id))
            var repairs: [[String: Any]] = []
            #expect(eventually(within: 10) {
                repairs = ((try? journal(action: "repair", since: since)) ?? []).filter { ids.contains($0["NETKEEP_CONTAINER_ID"] as? String ?? "") }
                return repairs.count >= 3
            })
            #expect(repairs.count == 3, "\(repairs.map { $0["MESSAGE"] ?? "" })")
            #expect(Set(repairs.compactMap { $0["NETKEEP_CONTAINER_ID"] as? String }) == ids)
            for entry in repairs {
                #expect(entry["MESSAGE_ID"] as? String == "e6d9ac74df984b5785e49376b3132f19")
                #expect(entry["PRIORITY"] as? String == "5")
                #expect(entry["SYSLOG_IDENTIFIER"] as? String == "netkeep")
                #expect(["container-restarted", "veth-missing", "veth-missing-after-reboot"].contains(entry["NETKEEP_REASON"] as? String ?? ""), "\(entry)")
                #expect((entry["NETKEEP_STEPS"] as? String ?? "").contains("create-veth"))
                #expect(entry["NETKEEP_BRIDGE"] as? String == Testbed.bridge)
                #expect((entry["NETKEEP_PORT"] as? String ?? "").hasPrefix("nk"))
                #expect(entry["NETKEEP_MAC"] as? String != nil && entry["NETKEEP_IFNAME"] as? String == "eth1")
                #expect((entry["NETKEEP_IP"] as? String ?? "").hasPrefix(net))
                #expect(entry["NETKEEP_CONTAINER_NAME"] as? String != nil)
            }
            // The CLI writes the same kind of entries: a detach.
            let one = containers[0]
            #expect(netkeep("detach", one.name).status == 0)
            #expect(eventually { ((try? journal(action: "detach", since: since)) ?? []).contains { $0["NETKEEP_CONTAINER_ID"] as? String == one.id && $0["MESSAGE_ID"] as? String == "399f5c45f1ea4530823dfc53aa7825e1" } })
        }

        @Test func notifySocketSeesReadyAfterTheRepairThenStatusWatchdogAndStopping() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try restartedAttachedContainer(netkeep)
            defer { netkeep("detach", c.name) }
            let receiver = NotifySocket()
            let daemon = try BackgroundProcess([Testbed.netkeepBinary, "daemon", "--foreground", "--state-dir", netkeep.stateDirectory],
                                               environment: ["NOTIFY_SOCKET": receiver.path, "WATCHDOG_USEC": "200000"])
            defer { daemon.stop() }
            // At READY=1 the repair of the restarted container is already recorded.
            var messages: [(Date, String)] = []
            var recordedAtReady: Int32?
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline, !messages.contains(where: { $0.1.contains("READY=1") }) {
                for (at, m) in receiver.receive(within: 0.2, untilReady: true) {
                    messages.append((at, m))
                    if m.contains("READY=1") {
                        let state = try JSONSerialization.jsonObject(with: netkeep.stateBytes ?? Data()) as? [String: Any]
                        recordedAtReady = ((state?["attachments"] as? [[String: Any]])?.first?["container_pid"] as? NSNumber)?.int32Value
                    }
                }
            }
            #expect(messages.contains { $0.1.contains("READY=1") }, "no READY=1: \(messages.map(\.1)) \(daemon.log)")
            // STATUS= tells the truth from the first message: the first pass under
            // way, then with READY=1 what it left (not "0 attachments ... Docker connecting").
            let statuses = messages.map(\.1).filter { $0.contains("STATUS=") }
            #expect(statuses.first?.contains("STATUS=starting: first reconcile of 1 attachments") == true, "\(statuses)")
            let atReady = messages.map(\.1).first { $0.contains("READY=1") } ?? ""
            #expect(atReady.contains("STATUS=ready: 1 attachments (1 ready)"), "\(atReady)")
            #expect(!atReady.contains("0 repairs") && !atReady.contains("connecting"), "\(atReady)")
            #expect(recordedAtReady == c.pid, "READY=1 came before the repair was recorded")
            messages += receiver.receive(within: 1.2, untilReady: false)
            #expect(messages.contains { $0.1.hasPrefix("STATUS=") && $0.1.contains("attachments") }, "\(messages.map(\.1))")
            let pings = messages.filter { $0.1 == "WATCHDOG=1" }.map(\.0)
            #expect(pings.count >= 6, "WATCHDOG=1 \(pings.count) times in about 1.2 s with WATCHDOG_USEC=200000")
            let gaps = zip(pings.dropFirst(), pings).map { $0.timeIntervalSince($1) }
            #expect((gaps.max() ?? 1) < 0.35, "watchdog gaps \(gaps)")
            #expect(daemon.stop() == 0)
            #expect(receiver.receive(within: 0.5, untilReady: false).contains { $0.1.contains("STOPPING=1") } || messages.contains { $0.1.contains("STOPPING=1") })
        }

        @Test func theUnitsVerifyWithDockersWithoutACycleAndTheExposureIsAtMostThree() throws {
            try Testbed.check()
            // verify with the unit's ExecStart pointing at the binary built here,
            // together with the socket and Debian's docker.service: an ordering
            // cycle among them is reported on stderr.
            let unit = try String(contentsOfFile: Testbed.packageRoot + "/units/netkeep.service", encoding: .utf8)
            let socket = try String(contentsOfFile: Testbed.packageRoot + "/units/netkeep.socket", encoding: .utf8)
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nkunit-\(UUID().uuidString.prefix(6))").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try unit.replacingOccurrences(of: "/usr/local/bin/netkeep", with: Testbed.netkeepBinary)
                .write(toFile: dir + "/netkeep.service", atomically: true, encoding: .utf8)
            try socket.write(toFile: dir + "/netkeep.socket", atomically: true, encoding: .utf8)
            for name in ["docker.service", "docker.socket"] {
                try FileManager.default.copyItem(atPath: "/lib/systemd/system/" + name, toPath: dir + "/" + name)
            }
            let verify = run(["systemd-analyze", "verify", dir + "/netkeep.socket", dir + "/netkeep.service", dir + "/docker.service"])
            #expect(verify.status == 0 && verify.stderr.isEmpty, "\(verify.stdout) \(verify.stderr)")
            let security = run(["systemd-analyze", "security", "--offline=true", Testbed.packageRoot + "/units/netkeep.service"])
            let line = security.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") } ?? ""
            let score = Double(line.split(separator: ":").last?.split(separator: " ").first ?? "") ?? 99
            #expect(score <= 3.0, "\(line)")
            for required in ["Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectory=netkeep", "Requires=netkeep.socket",
                             "Wants=openvswitch-switch.service docker.service"] {
                #expect(unit.contains(required), "\(required)")
            }
            // dockerd calls the plugin while it starts: netkeep.service ordered
            // after docker.service would wait for it, a deadlock no verify shows.
            let after = unit.split(separator: "\n").filter { $0.hasPrefix("After=") }.joined(separator: " ")
            #expect(!after.contains("docker.service"), "\(after)")
            #expect(socket.contains("Before=docker.service") && socket.contains("ListenStream=/run/docker/plugins/netkeep.sock"))
        }

        @Test func theUnitsCapabilitiesAreEnough() throws {
            try Testbed.check()
            let bounding = "-all,+net_admin,+sys_admin,+sys_ptrace,+net_bind_service"
            let netkeep = Netkeep()
            let c = try TestContainer()
            defer { netkeep("detach", c.name) }
            func limited(_ arguments: [String], bounding: String) -> CommandResult {
                run(["setpriv", "--bounding-set=\(bounding)", "--inh-caps=-all", "--no-new-privs", Testbed.netkeepBinary]
                    + arguments + ["--state-dir", netkeep.stateDirectory])
            }
            let attach = limited(["attach", c.name, "--bridge", Testbed.bridge, "--dhcp"], bounding: bounding)
            #expect(attach.status == 0, "\(attach.stderr)")
            #expect(run(["docker", "restart", "-t", "0", c.name]).status == 0)
            let repair = limited(["reconcile"], bounding: bounding)
            #expect(repair.status == 0, "\(repair.stdout) \(repair.stderr)")
            #expect(c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains("inet 10.1.2."))
            // Without CAP_SYS_ADMIN nothing can enter the container: the check can fail.
            #expect(run(["docker", "restart", "-t", "0", c.name]).status == 0)
            let without = limited(["reconcile"], bounding: "-all,+net_admin,+sys_ptrace,+net_bind_service")
            #expect(without.status != 0, "\(without.stdout) \(without.stderr)")
            #expect(limited(["reconcile"], bounding: bounding).status == 0)
        }
    }
}

/// An sd_notify receiver: an AF_UNIX datagram socket of the test's own.
final class NotifySocket {
    let path: String
    let fd: Int32

    init() {
        path = "/tmp/nknotify-\(UUID().uuidString.prefix(6)).sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    }

    /// Messages received within `seconds`, each with the time it arrived;
    /// `untilReady` returns right after a READY=1.
    func receive(within seconds: Double, untilReady: Bool) -> [(Date, String)] {
        var out: [(Date, String)] = []
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { continue }
            let message = String(decoding: buffer[..<n], as: UTF8.self)
            out.append((Date(), message))
            if untilReady && message.contains("READY=1") { break }
        }
        return out
    }

    deinit {
        close(fd)
        unlink(path)
    }
}
