#if canImport(Glibc)
import Glibc
#endif
import DHCP
import HostIO
import NetkeepCore
@testable import NetkeepService
import Testing

/// The metrics' text, the status screen, the listen address and the
/// daemon's liveness: logic only (the integration suite runs them for real).
@Suite struct StatusMetricsUnitTests {
    static let t0 = Timestamp(secondsSinceEpoch: 1_796_300_000)

    static func attachment(_ name: String, status: AttachmentStatus, leaseUntil: Int64? = nil) throws -> NetkeepCore.Attachment {
        var a = NetkeepCore.Attachment(containerID: String(repeating: name.first.map(String.init) ?? "a", count: 64), containerName: name, ifname: "eth1",
                           bridge: "br0", mac: try MACAddress(parsing: "02:00:00:00:00:01"), mtu: 1500, vlan: nil,
                           mode: leaseUntil == nil ? .static : .dhcp, address: nil, gateway: nil, netnsLink: nil, status: status, createdAt: t0)
        if let leaseUntil {
            a.lease = Lease(address: try IPv4CIDR(parsing: "10.1.2.\(name.count + 100)/24"), router: nil, serverID: IPv4Address(10, 1, 2, 1),
                            leaseSeconds: leaseUntil, renewSeconds: leaseUntil / 2, rebindSeconds: leaseUntil * 7 / 8, obtainedAt: t0,
                            renewAt: t0.adding(seconds: leaseUntil / 2), rebindAt: t0.adding(seconds: leaseUntil * 7 / 8))
        }
        return a
    }

    /// The lines of `text` that are samples of `name` (no HELP/TYPE).
    static func samples(_ text: String, _ name: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
    }

    @Test func theTextHasEveryFamilyWithHelpAndTypeAndCountsWhatWasRecorded() throws {
        let m = DaemonMetrics(version: "1.2.3", commit: "abc", startTime: 100)
        m.reconcile(trigger: "start", result: "ok", seconds: 0.2)
        m.reconcile(trigger: "event", result: "failed", seconds: 0.003)
        let a = try Self.attachment("web", status: .ready)
        m.actions([ActionResult(action: .addPort(a, reason: .portMissing), error: nil),
                   ActionResult(action: .addPort(a, reason: .portMissing), error: nil),
                   ActionResult(action: .createVeth(a, pid: 7, reason: .vethMissing), error: "no such process"),
                   ActionResult(action: .removeAttachment(a, reason: .containerRemoved), error: nil),
                   ActionResult(action: .retainAttachment(a, until: Self.t0, reason: .containerRemoved), error: nil),
                   ActionResult(action: .releaseLease(a, pid: nil, reason: .detachRequested), error: nil)])
        m.exchange(ExchangeRecord(kind: .renew, result: .acked, seconds: 0.004))
        m.eventStreamReconnected()
        let text = m.render()
        for (name, type) in [("netkeep_build_info", "gauge"), ("netkeep_reconcile_total", "counter"),
                             ("netkeep_reconcile_duration_seconds", "histogram"), ("netkeep_repairs_total", "counter"),
                             ("netkeep_garbage_collections_total", "counter"), ("netkeep_repair_failures_total", "counter"),
                             ("netkeep_attachments", "gauge"), ("netkeep_dhcp_exchanges_total", "counter"),
                             ("netkeep_dhcp_exchange_duration_seconds", "histogram"), ("netkeep_docker_event_stream_reconnects_total", "counter")] {
            #expect(text.contains("# TYPE \(name) \(type)\n"), "\(name)")
            #expect(text.contains("# HELP \(name) "), "\(name)")
        }
        #expect(Self.samples(text, "netkeep_build_info") == [#"netkeep_build_info{commit="abc",version="1.2.3"} 1.0"#])
        #expect(Self.samples(text, "netkeep_reconcile_total").contains(#"netkeep_reconcile_total{result="ok",trigger="start"} 1"#))
        #expect(Self.samples(text, "netkeep_reconcile_total").contains(#"netkeep_reconcile_total{result="failed",trigger="event"} 1"#))
        // Every trigger and result exists from the start, at zero.
        #expect(Self.samples(text, "netkeep_reconcile_total").count == DaemonMetrics.triggers.count * DaemonMetrics.results.count)
        #expect(Self.samples(text, "netkeep_repairs_total") == [#"netkeep_repairs_total{reason="port-missing"} 2"#])
        // A retained record's port and veth are collected too, as the journal's gc entry has it.
        // And a lease given back.
        #expect(Self.samples(text, "netkeep_garbage_collections_total").sorted() == [
            #"netkeep_garbage_collections_total{reason="container-removed"} 2"#,
            #"netkeep_garbage_collections_total{reason="detach-requested"} 1"#,
        ])
        #expect(Self.samples(text, "netkeep_repair_failures_total") == [#"netkeep_repair_failures_total{reason="veth-missing"} 1"#])
        #expect(text.contains(#"netkeep_reconcile_duration_seconds_bucket{trigger="event",le="0.01"} 1"#))
        #expect(text.contains(#"netkeep_reconcile_duration_seconds_bucket{trigger="start",le="0.1"} 0"#))
        #expect(text.contains(#"netkeep_reconcile_duration_seconds_bucket{trigger="start",le="0.25"} 1"#))
        #expect(text.contains(#"netkeep_dhcp_exchanges_total{kind="renew",result="acked"} 1"#))
        #expect(Self.samples(text, "netkeep_docker_event_stream_reconnects_total") == ["netkeep_docker_event_stream_reconnects_total 1"])
    }

    @Test func attachmentsCountEveryStatusAndLeaseGaugesFollowTheRecords() throws {
        let m = DaemonMetrics(version: "1", commit: "c", startTime: 0)
        var state = State(attachments: [try Self.attachment("web", status: .ready, leaseUntil: 3600),
                                        try Self.attachment("db", status: .down, leaseUntil: 600),
                                        try Self.attachment("x", status: .ready)])
        m.attachments(in: state, refused: 2)
        var text = m.render()
        #expect(text.contains(#"netkeep_attachments{kind="container",status="ready"} 2.0"#))
        #expect(text.contains(#"netkeep_attachments{kind="container",status="down"} 1.0"#))
        #expect(text.contains(#"netkeep_attachments{kind="container",status="pending"} 0.0"#))
        #expect(text.contains(#"netkeep_attachments{kind="container",status="refused"} 2.0"#))
        #expect(text.contains(#"netkeep_attachments{kind="endpoint",status="joined"} 0.0"#))
        #expect(text.contains(#"netkeep_attachments{kind="cni",status="ready"} 0.0"#))
        let web = #"netkeep_lease_expiry_timestamp_seconds{ifname="eth1",kind="container",owner="web"} "#
        #expect(Self.samples(text, "netkeep_lease_expiry_timestamp_seconds").sorted() == [
            #"netkeep_lease_expiry_timestamp_seconds{ifname="eth1",kind="container",owner="db"} 1796300600.0"#,
            web + "1796303600.0",
        ])
        // db is removed: its lease's series goes, not left at its last value.
        state.attachments.remove(at: 1)
        m.attachments(in: state, refused: 0)
        text = m.render()
        #expect(Self.samples(text, "netkeep_lease_expiry_timestamp_seconds") == [web + "1796303600.0"])
        #expect(text.contains(#"netkeep_attachments{kind="container",status="down"} 0.0"#))
    }

    @Test func exchangeRecordsNameWhatWasAskedFor() {
        #expect(ExchangeRecord.Kind.allCases.map(\.rawValue) == ["discover", "reboot", "renew", "rebind", "release", "decline"])
        #expect(ExchangeRecord.Result.noAnswer.rawValue == "no-answer")
    }

    @Test func listenAddressesParseAndBadOnesAreRefusedNamingTheValue() throws {
        #expect(try MetricsService.parse("127.0.0.1:9590") == ("127.0.0.1", 9590))
        #expect(try MetricsService.parse(":9590") == ("0.0.0.0", 9590))
        #expect(try MetricsService.parse("[::1]:9590") == ("::1", 9590))
        #expect(try MetricsService.parse("localhost:0") == ("localhost", 0))
        for bad in ["9590", "127.0.0.1", "127.0.0.1:99999", "::1:9590", "[::1]9590", "host:port", "a b:1", ":"] {
            #expect {
                _ = try MetricsService.parse(bad)
            } throws: { error in
                guard case .badInput(let message) = error as? Failure else { return false }
                return message.contains("--metrics-listen \(bad)")
            }
        }
        #expect(MetricsService.address("::1", 80) == "[::1]:80")
    }

    @Test func metricsAreServedAtSlashMetricsOnly() {
        let m = DaemonMetrics(version: "1", commit: "c", startTime: 0)
        let ok = MetricsService.respond(method: "GET", path: "/metrics?x=1", metrics: m)
        #expect(ok.status == 200 && ok.contentType == DaemonMetrics.contentType)
        #expect(String(decoding: ok.body, as: UTF8.self).contains("netkeep_build_info"))
        #expect(MetricsService.respond(method: "GET", path: "/", metrics: m).status == 404)
        #expect(MetricsService.respond(method: "POST", path: "/metrics", metrics: m).status == 405)
    }

    static func published(pid: Int32, start: UInt64?, boot: String?, stoppedAt: Timestamp? = nil) -> DaemonStatus {
        DaemonStatus(pid: pid, processStart: start, bootID: boot, version: "1", commit: "c", startedAt: t0, readyAt: t0, stoppedAt: stoppedAt,
                     updatedAt: t0.adding(seconds: 60), docker: "connected", ovsdb: "connected", engine: nil, lastFullPass: nil,
                     repairsSinceStart: 3, collectedSinceStart: 1, refused: [], problems: [], metricsTextfile: nil, metricsListen: nil)
    }

    @Test func aDaemonIsRunningOnlyWithTheSameBootPidAndStartTime() {
        let me = getpid()
        let start = DaemonStatus.processStart(of: me)
        #expect(start != nil, "field 22 of /proc/self/stat")
        #expect(Self.published(pid: me, start: start, boot: "b1").liveness(bootID: "b1") == .running)
        #expect(Self.published(pid: me, start: start, boot: "b1").liveness(bootID: "b2") == .gone(lastSeen: Self.t0.adding(seconds: 60), why: "the host rebooted since"))
        // The PID taken by another process since.
        let other = Self.published(pid: me, start: (start ?? 0) + 1, boot: "b1").liveness(bootID: "b1")
        #expect(other == .gone(lastSeen: Self.t0.adding(seconds: 60), why: "process \(me) is another program now"))
        #expect(Self.published(pid: me, start: start, boot: "b1", stoppedAt: Self.t0).liveness(bootID: "b1") == .stopped(Self.t0))
        // A hostile file: PID 0 or -1 would name process groups.
        for pid: Int32 in [0, -1] {
            #expect(Self.published(pid: pid, start: nil, boot: "b1").liveness(bootID: "b1") == .gone(lastSeen: Self.t0.adding(seconds: 60), why: "the status names no process (pid \(pid))"))
        }
        // A PID beyond pid_max is never alive.
        #expect(Self.published(pid: 4_999_999, start: 1, boot: "b1").liveness(bootID: "b1") == .gone(lastSeen: Self.t0.adding(seconds: 60), why: "process 4999999 is gone"))
    }

    @Test func procStatFieldsCountFromTheLastParenthesisOfTheCommandName() {
        let line = "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10"
        #expect(ProcessStat.parse(Array(line.utf8)) == ProcessStat(state: "S", startTime: 987654))
        #expect(ProcessStat.parse(Array("4242 (zombie) Z 1".utf8)) == ProcessStat(state: "Z", startTime: nil))
        #expect(ProcessStat.parse(Array("garbage".utf8)) == ProcessStat(state: nil, startTime: nil))
        let me = ProcessStat.read(getpid())
        #expect(me?.state.map { "RSD".contains($0) } == true && me?.startTime != nil, "\(String(describing: me))")
        #expect(ProcessStat.read(4_999_999) == nil)
    }

    @Test func theDirectoryOfAPath() {
        #expect(Files.directory(of: "/var/lib/x.prom") == "/var/lib")
        #expect(Files.directory(of: "/x.prom") == "/")
        #expect(Files.directory(of: "x.prom") == ".")
        #expect(Files.directory(of: "a/b") == "a")
    }

    @Test func publishedStatusReadsBackAndAMalformedOneIsAnErrorNamingTheFile() throws {
        let dir = "/tmp/nk-status-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        try Files.makeDirectories(dir)
        defer { _ = try? Files.replace(dir + "/daemon.json", with: []); unlink(dir + "/daemon.json"); rmdir(dir) }
        #expect(try DaemonStatus.read(stateDirectory: dir) == nil)
        let s = Self.published(pid: 42, start: 7, boot: "b")
        try Files.replace(DaemonStatus.path(in: dir), with: s.encoded())
        #expect(try DaemonStatus.read(stateDirectory: dir) == s)
        try Files.replace(DaemonStatus.path(in: dir), with: Array("{\"pid\": 1".utf8))
        #expect {
            _ = try DaemonStatus.read(stateDirectory: dir)
        } throws: { error in
            "\(error)".contains(dir + "/daemon.json")
        }
    }

    @Test func theScreenSaysWhenTheDaemonIsDownAndWhatTheStateFileHolds() throws {
        let now = Self.t0.adding(seconds: 120)
        var report = StatusReport(
            daemon: .init(state: "gone", detail: "process 42 is gone", published: Self.published(pid: 42, start: 1, boot: "b")),
            docker: .init(reachable: true, detail: "engine X"), ovsdb: .init(reachable: false, detail: "connect: no such file"),
            stateFile: .init(path: "/var/lib/netkeep/state.json", error: nil, exitCode: nil, engine: nil),
            attachments: ["ready": 2, "down": 1, "pending": 0, "retained": 0, "removing": 0], total: 3,
            leases: [.init(kind: "container", owner: "web", ifname: "eth1", address: "10.1.2.3/24",
                           renewAt: Self.t0.adding(seconds: 1800), expiresAt: Self.t0.adding(seconds: 3600))],
            generatedAt: now)
        var text = report.text()
        #expect(text.contains("Daemon:      not running: process 42 is gone, last seen 2026-12-03T12:14:20Z (60 s ago)"), "\(text)")
        #expect(text.contains("OVSDB:       unreachable: connect: no such file"))
        #expect(text.contains("Attachments: 3 (2 ready, 1 down, 0 pending, 0 retained, 0 removing) in /var/lib/netkeep/state.json"), "\(text)")
        #expect(text.contains("web eth1 10.1.2.3/24: renew 2026-12-03T12:43:20Z (in 28 min), expires"), "\(text)")
        #expect(!text.contains("Since start"), "a gone daemon's counters are not current")

        report.daemon = .init(state: "running", detail: nil, published: Self.published(pid: 42, start: 1, boot: "b"))
        report.daemon.published?.refused = [.init(container: "bad", problems: ["netkeep.bridge: empty"])]
        report.attachments["refused"] = 1
        text = report.text()
        #expect(text.contains("Daemon:      running since 2026-12-03T12:13:20Z (2 min ago), pid 42"), "\(text)")
        #expect(text.contains("1 refused)"), "\(text)")
        #expect(text.contains("Refused:     bad: netkeep.bridge: empty"))
        #expect(text.contains("Since start: 3 repairs, 1 collected"))

        report.stateFile.error = "state.json is corrupt: unexpected end"
        report.stateFile.exitCode = 3
        text = report.text()
        #expect(text.contains("State file:  UNUSABLE: state.json is corrupt: unexpected end"), "\(text)")
        #expect(!text.contains("Attachments:"))
        report.stateFile.error = "open state.json: Permission denied"
        report.stateFile.exitCode = 6
        #expect(report.text().contains("State file:  cannot be read: open state.json: Permission denied"))
    }
}
