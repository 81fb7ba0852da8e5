#if canImport(Glibc)
import Glibc
#endif
import DockerEngine
import Foundation
import NetkeepCore
import NetkeepState
import OVSDB

/// `netkeep status`: one view of the daemon, its sources and the records,
/// from the state file, what the daemon published (`DaemonStatus`) and a
/// look at Docker and OVSDB of its own. It works with the daemon down and
/// with a state file that does not read: each part says what it could not learn.
public struct StatusReport: Codable, Equatable, Sendable {
    public struct Daemon: Codable, Equatable, Sendable {
        /// running, stopped (on its own), gone (crashed, killed, rebooted), never-started.
        public var state: String
        /// Why it counts as gone.
        public var detail: String?
        public var published: DaemonStatus?
    }

    public struct Source: Codable, Equatable, Sendable {
        public var reachable: Bool
        public var detail: String
    }

    public struct StateFile: Codable, Equatable, Sendable {
        public var path: String
        /// nil when it reads; otherwise why not (nothing is shown from it then).
        public var error: String?
        /// The exit code that goes with `error`: 3 a file netkeep will not use
        /// (corrupt, truncated, newer), 6 one it could not read (permissions, I/O).
        public var exitCode: Int32?
        public var engine: EngineIdentity?
    }

    public struct LeaseDue: Codable, Equatable, Sendable {
        public var kind: String
        public var owner: String
        public var ifname: String
        public var address: String
        public var renewAt: Timestamp
        public var expiresAt: Timestamp
    }

    public var daemon: Daemon
    public var docker: Source
    public var ovsdb: Source
    public var stateFile: StateFile
    /// Every status of the records by count (containers, endpoints, CNI),
    /// and `refused` for containers whose labels the daemon refused.
    public var attachments: [String: Int]
    public var total: Int
    /// The leases that expire first, soonest first.
    public var leases: [LeaseDue]
    public var generatedAt: Timestamp

    /// How many leases the view lists.
    static let shownLeases = 5

    public static func gather(environment: HostEnvironment, probeTimeout: Double = 2) -> StatusReport {
        let now = HostEnvironment.now()
        var stateFile = StateFile(path: environment.store.statePath, error: nil, exitCode: nil, engine: nil)
        var state: State?
        do { state = try environment.store.load() } catch {
            stateFile.error = "\(error)"
            stateFile.exitCode = Failure.from(error).exitCode
        }
        stateFile.engine = state?.engine

        var daemon = Daemon(state: "never-started", detail: nil, published: nil)
        do {
            if let published = try DaemonStatus.read(stateDirectory: environment.stateDirectory) {
                daemon.published = published
                switch published.liveness(bootID: HostEnvironment.bootID()) {
                case .running: daemon.state = "running"
                case .stopped: daemon.state = "stopped"
                case .gone(_, let why):
                    daemon.state = "gone"
                    daemon.detail = why
                }
            }
        } catch {
            daemon.state = "unknown"
            daemon.detail = "\(error)"
        }

        let docker: Source
        do {
            let engine = try DockerClient(socketPath: environment.dockerSocket, timeout: probeTimeout).engine()
            let matches = state?.engine.map { $0 == engine ? ", the engine of the records" : ", NOT the engine of the records (\($0))" } ?? ""
            docker = Source(reachable: true, detail: "engine \(engine)\(matches)")
        } catch {
            docker = Source(reachable: false, detail: "\(error)")
        }
        let ovsdb: Source
        do {
            let client = try VSwitchClient(socketPath: environment.ovsdbSocket, timeout: probeTimeout)
            defer { client.close() }
            let snapshot = try client.snapshot()
            ovsdb = Source(reachable: true, detail: "\(snapshot.bridges.count) bridges, \(snapshot.ports.count) ports")
        } catch {
            ovsdb = Source(reachable: false, detail: "\(error)")
        }

        var counts: [String: Int] = [:]
        var leases: [LeaseDue] = []
        if let state {
            counts = state.countsByStatus.merging(["ready": 0, "down": 0, "pending": 0, "retained": 0, "removing": 0]) { n, _ in n }
            leases = state.ownedLeases.map(LeaseDue.init)
        }
        let total = state?.recordCount ?? 0
        if daemon.state == "running", let refused = daemon.published?.refused.count { counts["refused"] = refused }
        leases.sort { ($0.expiresAt, $0.owner, $0.ifname) < ($1.expiresAt, $1.owner, $1.ifname) }
        return StatusReport(daemon: daemon, docker: docker, ovsdb: ovsdb, stateFile: stateFile, attachments: counts, total: total,
                            leases: Array(leases.prefix(shownLeases)), generatedAt: now)
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// The screen for people: daemon, sources, records, last pass, leases, problems.
    public func text() -> String {
        var lines: [String] = []
        func ago(_ t: Timestamp) -> String { "\(t) (\(Self.span(generatedAt.secondsSinceEpoch - t.secondsSinceEpoch)) ago)" }
        func ahead(_ t: Timestamp) -> String {
            let d = t.secondsSinceEpoch - generatedAt.secondsSinceEpoch
            return d >= 0 ? "\(t) (in \(Self.span(d)))" : "\(t) (\(Self.span(-d)) ago)"
        }
        let p = daemon.published
        switch daemon.state {
        case "running":
            lines.append("Daemon:      running since \(ago(p!.startedAt)), pid \(p!.pid), netkeep \(p!.version) (commit \(p!.commit))")
            if p!.readyAt == nil { lines.append("             first reconcile under way (not ready yet)") }
        case "stopped":
            lines.append("Daemon:      not running: stopped at \(ago(p!.stoppedAt!)); what follows is from the state file")
        case "gone":
            lines.append("Daemon:      not running: \(daemon.detail ?? "gone"), last seen \(ago(p!.updatedAt)); what follows is from the state file")
        case "unknown":
            lines.append("Daemon:      unknown: \(daemon.detail ?? "")")
        default:
            lines.append("Daemon:      not running: it has never published a status in this state directory")
        }
        lines.append("Docker:      \(docker.reachable ? "reachable" : "unreachable"): \(docker.detail)")
        lines.append("OVSDB:       \(ovsdb.reachable ? "reachable" : "unreachable"): \(ovsdb.detail)")
        if let error = stateFile.error, stateFile.exitCode == Failure.stateIO("").exitCode {
            lines.append("State file:  cannot be read: \(error)")
            lines.append("             (netkeep status needs the rights of the daemon: root)")
        } else if let error = stateFile.error {
            lines.append("State file:  UNUSABLE: \(error)")
            lines.append("             the daemon refuses to start on it and nothing touches it; see README, \"The state file\"")
        } else {
            let order = ["ready", "down", "pending", "retained", "removing", "refused"]
            let parts = order.compactMap { k in attachments[k].map { "\($0) \(k)" } }
            lines.append("Attachments: \(total) (\(parts.joined(separator: ", "))) in \(stateFile.path)")
        }
        if daemon.state == "running", let p {
            if let pass = p.lastFullPass {
                lines.append("Last pass:   \(ago(pass.endedAt)), \(pass.trigger), \(Self.duration(pass.seconds)): \(pass.actions) actions, "
                    + "\(pass.repairs) repairs, \(pass.collected) collected, \(pass.failed) failed\(pass.unreachable ? ", a source unreachable (nothing removed)" : "")")
            } else {
                lines.append("Last pass:   none yet")
            }
            lines.append("Since start: \(p.repairsSinceStart) repairs, \(p.collectedSinceStart) collected")
            for r in p.refused { lines.append("Refused:     \(r.container): \(r.problems.joined(separator: "; "))") }
            if let path = p.metricsTextfile { lines.append("Metrics:     textfile \(path)") }
            if let listen = p.metricsListen { lines.append("Metrics:     http://\(listen)/metrics") }
        } else if let pass = p?.lastFullPass {
            lines.append("Last pass:   \(ago(pass.endedAt)) (by the daemon that stopped): \(pass.repairs) repairs, \(pass.failed) failed")
        }
        if !leases.isEmpty {
            lines.append("Leases:      expiring next")
            for l in leases {
                lines.append("             \(l.owner) \(l.ifname) \(l.address): renew \(ahead(l.renewAt)), expires \(ahead(l.expiresAt))")
            }
        }
        if let problems = p?.problems, !problems.isEmpty {
            lines.append("Last problems:")
            for problem in problems.suffix(5) { lines.append("             \(problem.at) \(problem.level): \(problem.message)") }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func span(_ seconds: Int64) -> String {
        switch seconds {
        case ..<120: return "\(seconds) s"
        case ..<7200: return "\(seconds / 60) min"
        case ..<172_800: return "\(seconds / 3600) h"
        default: return "\(seconds / 86_400) d"
        }
    }

    static func duration(_ seconds: Double) -> String { seconds < 1 ? "\(Int(seconds * 1000)) ms" : String(format: "%.1f s", seconds) }
}

extension StatusReport.LeaseDue {
    init(_ owned: State.OwnedLease) {
        self.init(kind: owned.kind, owner: owned.owner, ifname: owned.ifname, address: "\(owned.lease.address)",
                  renewAt: owned.lease.renewAt, expiresAt: owned.lease.expiresAt)
    }
}
