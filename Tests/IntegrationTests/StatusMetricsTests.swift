#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `netkeep status` and the daemon's metrics, with the real daemon, Docker,
/// OVS and dnsmasq; the metrics read back with prometheus_client's parser.
extension IntegrationSuite {
    @Suite struct StatusMetricsTests {
        /// One sample: (name, labels, value).
        typealias Sample = (name: String, labels: [String: String], value: Double)

        /// The text format parsed by the Python reference parser: families
        /// (name → type) and every sample.
        static func parse(_ text: String) throws -> (types: [String: String], samples: [Sample]) {
            let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
            let r = run([python, Testbed.packageRoot + "/Tests/IntegrationTests/Tools/parse_metrics.py"], stdin: text)
            guard r.status == 0 else { throw Testbed.TestbedMissing("prometheus_client parser (exit \(r.status)): \(r.stderr)") }
            let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: [String: Any]] ?? [:]
            var types: [String: String] = [:]
            var samples: [Sample] = []
            for (family, body) in json {
                types[family] = body["type"] as? String
                for s in body["samples"] as? [[Any]] ?? [] {
                    samples.append((s[0] as? String ?? "", s[1] as? [String: String] ?? [:], (s[2] as? NSNumber)?.doubleValue ?? .nan))
                }
            }
            return (types, samples)
        }

        static func value(_ samples: [Sample], _ name: String, _ labels: [String: String] = [:]) -> Double? {
            samples.first { sample in sample.name == name && labels.allSatisfy { k, v in sample.labels[k] == v } }?.value
        }

        static func sum(_ samples: [Sample], _ name: String, where match: ([String: String]) -> Bool = { _ in true }) -> Double {
            samples.filter { $0.name == name && match($0.labels) }.map(\.value).reduce(0, +)
        }

        func status(_ netkeep: Netkeep) throws -> (code: Int32, json: [String: Any], text: String) {
            let j = netkeep("status", "--json")
            let t = netkeep("status")
            let json = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any] ?? [:]
            #expect(j.status == t.status, "status and status --json disagree: \(j.status) \(t.status)")
            return (j.status, json, t.stdout)
        }

        @Test func statusShowsARunningDaemonThenAStoppedOneAKilledOneAndACorruptStateFile() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try restartedAttachedContainer(netkeep)
            defer { netkeep("detach", c.name) }

            // Never started here.
            var s = try status(netkeep)
            #expect(s.code == 0)
            #expect((s.json["daemon"] as? [String: Any])?["state"] as? String == "never-started")
            #expect(s.text.contains("Daemon:      not running"), "\(s.text)")

            var daemon = try BackgroundProcess([Testbed.netkeepBinary, "daemon", "--foreground", "--plugin-socket", "none",
                                                "--state-dir", netkeep.stateDirectory])
            let published = netkeep.stateDirectory + "/daemon.json"
            #expect(eventually(within: 30) { (try? String(contentsOfFile: published, encoding: .utf8))?.contains("\"ready_at\"") == true }, "\(daemon.log)")
            s = try status(netkeep)
            let d = s.json["daemon"] as? [String: Any] ?? [:]
            let p = d["published"] as? [String: Any] ?? [:]
            #expect(s.code == 0)
            #expect(d["state"] as? String == "running", "\(s.text)")
            #expect((p["pid"] as? NSNumber)?.int32Value == daemon.pid)
            #expect((s.json["attachments"] as? [String: Int])?["ready"] == 1, "\(s.text)")
            #expect((s.json["docker"] as? [String: Any])?["reachable"] as? Bool == true)
            #expect((s.json["ovsdb"] as? [String: Any])?["reachable"] as? Bool == true)
            // The restart was repaired by the first pass: it says so.
            let pass = p["last_full_pass"] as? [String: Any] ?? [:]
            #expect(pass["trigger"] as? String == "start")
            #expect(((pass["repairs"] as? NSNumber)?.intValue ?? 0) >= 3, "\(pass)")
            #expect(s.text.contains("Daemon:      running since"), "\(s.text)")
            #expect(s.text.contains("Last pass:") && s.text.contains("start"), "\(s.text)")

            // Stopped on its own: says when, still shows the records.
            #expect(daemon.stop() == 0)
            s = try status(netkeep)
            #expect((s.json["daemon"] as? [String: Any])?["state"] as? String == "stopped", "\(s.text)")
            #expect(s.text.contains("not running: stopped at"), "\(s.text)")
            #expect((s.json["attachments"] as? [String: Int])?["ready"] == 1)

            // Killed: gone, last seen, the PID named.
            daemon = try BackgroundProcess([Testbed.netkeepBinary, "daemon", "--foreground", "--plugin-socket", "none",
                                            "--state-dir", netkeep.stateDirectory])
            let pid = daemon.pid
            #expect(eventually(within: 30) {
                (try? String(contentsOfFile: published, encoding: .utf8)).map { $0.contains("\"pid\" : \(pid)") && $0.contains("\"ready_at\"") } == true
            })
            daemon.stop(SIGKILL)
            s = try status(netkeep)
            #expect((s.json["daemon"] as? [String: Any])?["state"] as? String == "gone", "\(s.text)")
            #expect(s.text.contains("process \(pid) is gone, last seen"), "\(s.text)")

            // A corrupt state file: said so, exit 3, the daemon part still shown, nothing changed.
            let corrupt = Data("{\"version\": 1, \"attachments\": [ {\"id\": ".utf8)
            try corrupt.write(to: URL(fileURLWithPath: netkeep.statePath))
            s = try status(netkeep)
            #expect(s.code == 3, "\(s.text)")
            #expect(s.text.contains("State file:  UNUSABLE"), "\(s.text)")
            #expect(s.text.contains("Daemon:      not running"), "\(s.text)")
            #expect((s.json["state_file"] as? [String: Any])?["error"] as? String != nil)
            #expect(netkeep.stateBytes == corrupt)

            // Without root's rights (the unit makes the directory 0700): exit 6, and why.
            #expect(chmod(netkeep.stateDirectory, 0o700) == 0)
            // A copy of the binary that user can run wherever the checkout is.
            let binary = FileManager.default.temporaryDirectory.appendingPathComponent("nkstatus-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.copyItem(atPath: Testbed.netkeepBinary, toPath: binary)
            defer { try? FileManager.default.removeItem(atPath: binary) }
            #expect(chmod(binary, 0o755) == 0)
            let nobody = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", binary, "status",
                              "--state-dir", netkeep.stateDirectory])
            #expect(nobody.status == 6, "\(nobody.stdout) \(nobody.stderr)")
            #expect(nobody.stdout.contains("State file:  cannot be read:") && nobody.stdout.contains("Permission denied"), "\(nobody.stdout)")
        }

        @Test func everyMetricIsThereAfterARebootDrillWithTheValuesItImplies() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let kept = try TestContainer(restart: true)
            let removed = try TestContainer(restart: true)
            #expect(netkeep("attach", kept.name, "--bridge", Testbed.bridge, "--dhcp").status == 0)
            #expect(netkeep("attach", removed.name, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).10/24").status == 0)
            defer { netkeep("detach", kept.name) }
            let textfile = netkeep.stateDirectory + "/netkeep.prom"
            let drillStart = Date().timeIntervalSince1970
            let daemon = try BackgroundProcess([Testbed.netkeepBinary, "daemon", "--foreground", "-v", "--plugin-socket", "none", "--retention", "0",
                                                "--metrics-textfile", textfile, "--metrics-listen", "127.0.0.1:0",
                                                "--state-dir", netkeep.stateDirectory])
            defer { daemon.stop() }
            #expect(eventually(within: 30) { daemon.log.contains("following Docker events") }, "\(daemon.log)")

            // The reboot: Docker, containerd, OVS and every veth go; the containers come back with only lo.
            #expect(run([Testbed.packageRoot + "/scripts/testbed", "reboot"]).status == 0)
            #expect(eventually(within: 60) { kept.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" inet 10.1.2.") }, "\(daemon.log)")
            // Then one container is removed: collected by its destroy event
            // (retention 0; the resync is a minute away). A container Docker
            // failed to remove stays, stopped, and netkeep rightly keeps its
            // record: the test makes sure Docker did remove it.
            var removal = run(["docker", "rm", "-f", removed.name])
            #expect(eventually(within: 30) {
                if run(["docker", "inspect", "-f", "{{.Id}}", removed.name]).status != 0 { return true }
                removal = run(["docker", "rm", "-f", removed.name])
                return false
            }, "docker rm -f \(removed.name) did not remove it: \(removal.stderr)")
            #expect(eventually(within: 30) { ((try? netkeep.list()) ?? []).count == 1 },
                    "\(netkeep("list").stdout) \(run(["docker", "ps", "-a"]).stdout) \(daemon.log)")
            // The textfile follows the state after each piece of work.
            var text = ""
            #expect(eventually(within: 10) {
                text = (try? String(contentsOfFile: textfile, encoding: .utf8)) ?? ""
                return text.contains("reason=\"container-removed\"") && text.contains("netkeep_attachments{kind=\"container\",status=\"ready\"} 1.0")
            }, "\(text)")
            // Read once the lease in the records and the one in the file agree
            // (the daemon confirms a lease put back after a reboot right after).
            var leaseExpiry: Double?
            var (types, samples) = try Self.parse(text)
            #expect(eventually(within: 15) {
                let record = (try? netkeep.list())?.first { $0["container_name"] as? String == kept.name }
                leaseExpiry = (record?["lease_expires_at"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) }?.timeIntervalSince1970
                text = (try? String(contentsOfFile: textfile, encoding: .utf8)) ?? ""
                guard let parsed = try? Self.parse(text) else { return false }
                (types, samples) = parsed
                return leaseExpiry != nil && Self.value(samples, "netkeep_lease_expiry_timestamp_seconds", ["kind": "container", "owner": kept.name]) == leaseExpiry
            }, "lease expiry \(leaseExpiry.map { "\($0)" } ?? "none") in the records; the textfile: \(text)")

            // Every family, with its type.
            let expected: [String: String] = [
                "netkeep_build_info": "gauge", "netkeep_daemon_start_time_seconds": "gauge", "netkeep_reconcile": "counter",
                "netkeep_reconcile_duration_seconds": "histogram", "netkeep_last_full_reconcile_timestamp_seconds": "gauge",
                "netkeep_repairs": "counter", "netkeep_garbage_collections": "counter", "netkeep_attachments": "gauge",
                "netkeep_dhcp_exchanges": "counter", "netkeep_dhcp_exchange_duration_seconds": "histogram",
                "netkeep_lease_expiry_timestamp_seconds": "gauge", "netkeep_docker_event_stream_reconnects": "counter",
                "netkeep_source_up": "gauge",
            ]
            for (family, type) in expected { #expect(types[family] == type, "\(family): \(types[family] ?? "missing")") }
            // Nothing failed in the drill, so no failure was counted.
            #expect(Self.sum(samples, "netkeep_repair_failures_total") == 0)

            let version = run([Testbed.netkeepBinary, "--version"]).stdout.split(separator: " ").first.map(String.init) ?? "?"
            #expect(Self.value(samples, "netkeep_build_info", ["version": version]) == 1, "\(version)")
            let started = Self.value(samples, "netkeep_daemon_start_time_seconds") ?? 0
            #expect(started >= drillStart - 2 && started <= Date().timeIntervalSince1970)
            // The first pass at start, then at least one after the event stream came back.
            #expect(Self.value(samples, "netkeep_reconcile_total", ["trigger": "start", "result": "ok"]) == 1)
            #expect(Self.sum(samples, "netkeep_reconcile_total") { $0["trigger"] == "reconnect" } >= 1)
            #expect((Self.value(samples, "netkeep_docker_event_stream_reconnects_total") ?? 0) >= 1)
            #expect(Self.sum(samples, "netkeep_reconcile_total") { $0["trigger"] == "event" } >= 1)
            // Each pass is in its trigger's histogram.
            for trigger in ["start", "resync", "reconnect", "retry", "event"] {
                let passes = Self.sum(samples, "netkeep_reconcile_total") { $0["trigger"] == trigger }
                #expect(Self.value(samples, "netkeep_reconcile_duration_seconds_count", ["trigger": trigger]) == passes, "\(trigger)")
                #expect(Self.value(samples, "netkeep_reconcile_duration_seconds_bucket", ["trigger": trigger, "le": "+Inf"]) == passes)
            }
            let lastFull = Self.value(samples, "netkeep_last_full_reconcile_timestamp_seconds") ?? 0
            #expect(lastFull >= drillStart && lastFull <= Date().timeIntervalSince1970 + 1)
            // Both containers' veths were made again after the reboot; the removed one collected.
            #expect(Self.sum(samples, "netkeep_repairs_total") { ["container-restarted", "veth-missing", "veth-missing-after-reboot"].contains($0["reason"] ?? "") } >= 2)
            #expect((Self.value(samples, "netkeep_garbage_collections_total", ["reason": "container-removed"]) ?? 0) >= 1)
            #expect(Self.value(samples, "netkeep_attachments", ["kind": "container", "status": "ready"]) == 1)
            for status in ["pending", "down", "retained", "removing", "refused"] {
                #expect(Self.value(samples, "netkeep_attachments", ["kind": "container", "status": status]) == 0, "\(status)")
            }
            // The lease was asked for again (INIT-REBOOT, or DISCOVER) and acknowledged; its expiry is the record's.
            #expect(Self.sum(samples, "netkeep_dhcp_exchanges_total") { $0["result"] == "acked" } >= 1)
            #expect(Self.sum(samples, "netkeep_dhcp_exchange_duration_seconds_count") >= 1)
            #expect(samples.filter { $0.name == "netkeep_lease_expiry_timestamp_seconds" }.count == 1, "the removed container had no lease")
            #expect(Self.value(samples, "netkeep_source_up", ["source": "docker"]) == 1)
            #expect(Self.value(samples, "netkeep_source_up", ["source": "ovsdb"]) == 1)

            // The same over HTTP, with the text format's content type.
            let published = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: netkeep.stateDirectory + "/daemon.json"))) as? [String: Any]
            let listen = published?["metrics_listen"] as? String ?? ""
            #expect(listen.hasPrefix("127.0.0.1:") && !listen.hasSuffix(":0"), "\(listen)")
            let http = run(["curl", "-sS", "-D", "-", "http://\(listen)/metrics"])
            #expect(http.status == 0, "\(http.stderr)")
            #expect(http.stdout.lowercased().contains("content-type: text/plain; version=0.0.4"), "\(http.stdout.prefix(300))")
            let body = http.stdout.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
            let (httpTypes, httpSamples) = try Self.parse(body)
            #expect(httpTypes == types)
            #expect(Self.value(httpSamples, "netkeep_attachments", ["kind": "container", "status": "ready"]) == 1)
            #expect(run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://\(listen)/other"]).stdout == "404")

            // A second daemon of this instance stops at once, naming the first, before touching anything.
            let before = netkeep.stateBytes
            let twin = netkeep("daemon", "--foreground", "--plugin-socket", "none")
            #expect(twin.status == 5, "\(twin.stderr)")
            #expect(twin.stderr.contains("another netkeep daemon serves instance \"\(Testbed.instance)\"")
                    && twin.stderr.contains("pid \(daemon.pid)") && twin.stderr.contains(netkeep.stateDirectory), "\(twin.stderr)")
            // One of another instance gets past that, and stops on the taken port, naming the option.
            let other = ["NETKEEP_INSTANCE": Testbed.instance + "-2"]
            let second = netkeep("daemon", "--foreground", "--plugin-socket", "none", "--metrics-listen", listen, environment: other)
            #expect(second.status == 2, "\(second.stderr)")
            #expect(second.stderr.contains("--metrics-listen \(listen)"), "\(second.stderr)")
            #expect(netkeep.stateBytes == before)
            // A textfile in a directory that does not exist, an address that is not one: refused at the start.
            let noDirectory = netkeep("daemon", "--foreground", "--plugin-socket", "none", "--metrics-textfile", "/nonexistent-nk/netkeep.prom",
                                      environment: other)
            #expect(noDirectory.status == 2 && noDirectory.stderr.contains("--metrics-textfile /nonexistent-nk/netkeep.prom: its directory does not exist"),
                    "\(noDirectory.status) \(noDirectory.stderr)")
            let notAnAddress = netkeep("daemon", "--foreground", "--plugin-socket", "none", "--metrics-listen", "9590", environment: other)
            #expect(notAnAddress.status == 64 && notAnAddress.stderr.contains("--metrics-listen 9590"), "\(notAnAddress.status) \(notAnAddress.stderr)")
            #expect(netkeep.stateBytes == before)
        }
    }
}
