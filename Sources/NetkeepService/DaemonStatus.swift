#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HostIO
import Logging
import NetkeepCore
import Synchronization

/// What a running daemon publishes about itself for `netkeep status`:
/// `daemon.json` next to the state file, replaced in one step after each
/// piece of work. The state file holds the records; this holds what only
/// the daemon knows (since when it runs, what its sources answered, its
/// last pass, the labels it refused, its last problems).
public struct DaemonStatus: Codable, Equatable, Sendable {
    public struct Pass: Codable, Equatable, Sendable {
        public var trigger: String
        public var endedAt: Timestamp
        public var seconds: Double
        public var actions: Int
        public var repairs: Int
        public var collected: Int
        public var failed: Int
        /// Docker or OVSDB could not be asked: nothing was removed.
        public var unreachable: Bool

        enum CodingKeys: String, CodingKey {
            case trigger, seconds, actions, repairs, collected, failed, unreachable
            case endedAt = "ended_at"
        }
    }

    public struct Refusal: Codable, Equatable, Sendable {
        public var container: String
        public var problems: [String]
    }

    public struct Problem: Codable, Equatable, Sendable {
        public var at: Timestamp
        public var level: String
        public var message: String
    }

    public var pid: Int32
    /// The process's start time (field 22 of /proc/PID/stat): a later
    /// process with the same PID is not this daemon.
    public var processStart: UInt64?
    public var bootID: String?
    public var version: String
    public var commit: String
    public var startedAt: Timestamp
    public var readyAt: Timestamp?
    /// Set when the daemon stopped on its own (SIGTERM); a crash leaves it nil.
    public var stoppedAt: Timestamp?
    public var updatedAt: Timestamp
    /// The event stream's state: connecting, connected, reachable (asked, not yet subscribed), unreachable.
    public var docker: String
    public var ovsdb: String
    /// The engine that answered the last full pass (`EngineIdentity`'s description).
    public var engine: String?
    public var lastFullPass: Pass?
    public var repairsSinceStart: Int
    public var collectedSinceStart: Int
    public var refused: [Refusal]
    /// The last warnings and errors it logged, oldest first.
    public var problems: [Problem]
    public var metricsTextfile: String?
    public var metricsListen: String?

    enum CodingKeys: String, CodingKey {
        case pid, version, commit, docker, ovsdb, engine, refused, problems
        case processStart = "process_start", bootID = "boot_id", startedAt = "started_at", readyAt = "ready_at"
        case stoppedAt = "stopped_at", updatedAt = "updated_at", lastFullPass = "last_full_pass"
        case repairsSinceStart = "repairs_since_start", collectedSinceStart = "collected_since_start"
        case metricsTextfile = "metrics_textfile", metricsListen = "metrics_listen"
    }

    public static func path(in stateDirectory: String) -> String { stateDirectory + "/daemon.json" }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    /// The published status, nil when there is none; a file that does not
    /// read is an error naming it (it is never written in part).
    public static func read(stateDirectory: String) throws(Failure) -> DaemonStatus? {
        let path = path(in: stateDirectory)
        let bytes: [UInt8]?
        do { bytes = try Files.read(path) } catch { throw Failure.stateIO("\(error)") }
        guard let bytes else { return nil }
        let decoder = JSONDecoder()
        do { return try decoder.decode(DaemonStatus.self, from: Data(bytes)) } catch {
            throw Failure.badInput("\(path): not a status netkeep wrote (\(error))")
        }
    }

    public enum Liveness: Equatable, Sendable {
        case running
        /// Stopped on its own at that time.
        case stopped(Timestamp)
        /// Gone without saying so (a crash, a kill, a reboot): last seen then.
        case gone(lastSeen: Timestamp, why: String)
    }

    /// Whether the process that wrote this still runs: same boot, the PID
    /// alive and started when the publisher said.
    public func liveness(bootID currentBoot: String?, processStart start: (Int32) -> UInt64? = DaemonStatus.processStart(of:)) -> Liveness {
        if let stoppedAt { return .stopped(stoppedAt) }
        if let bootID, let currentBoot, bootID != currentBoot { return .gone(lastSeen: updatedAt, why: "the host rebooted since") }
        // kill(0) and kill(-1) would ask about process groups: a file with such a PID names no daemon.
        guard pid > 1 else { return .gone(lastSeen: updatedAt, why: "the status names no process (pid \(pid))") }
        guard kill(pid, 0) == 0 || errno == EPERM else { return .gone(lastSeen: updatedAt, why: "process \(pid) is gone") }
        if let processStart, let now = start(pid), now != processStart {
            return .gone(lastSeen: updatedAt, why: "process \(pid) is another program now")
        }
        return .running
    }

    /// Field 22 (starttime) of /proc/PID/stat.
    public static func processStart(of pid: Int32) -> UInt64? { ProcessStat.read(pid)?.startTime }
}

/// The daemon's side of `DaemonStatus`: what it knows, kept up to date, and
/// written out (with the metrics textfile) when asked to publish.
final class StatusPublisher: Sendable {
    private let path: String
    private let status: Mutex<DaemonStatus>
    private let logger: Logger

    /// How many problems are kept.
    static let keptProblems = 10

    init(stateDirectory: String, version: String, commit: String, metricsTextfile: String?, metricsListen: String?, logger: Logger) {
        path = DaemonStatus.path(in: stateDirectory)
        self.logger = logger
        let now = HostEnvironment.now()
        status = Mutex(DaemonStatus(
            pid: getpid(), processStart: DaemonStatus.processStart(of: getpid()), bootID: HostEnvironment.bootID(),
            version: version, commit: commit, startedAt: now, readyAt: nil, stoppedAt: nil, updatedAt: now,
            docker: "connecting", ovsdb: "connecting", engine: nil, lastFullPass: nil, repairsSinceStart: 0,
            collectedSinceStart: 0, refused: [], problems: [], metricsTextfile: metricsTextfile, metricsListen: metricsListen))
    }

    func update(_ body: (inout DaemonStatus) -> Void) { status.withLock { body(&$0) } }

    var current: DaemonStatus { status.withLock { $0 } }

    func problem(level: Logger.Level, message: String) {
        status.withLock { s in
            s.problems.append(DaemonStatus.Problem(at: HostEnvironment.now(), level: level.rawValue, message: message))
            if s.problems.count > Self.keptProblems { s.problems.removeFirst(s.problems.count - Self.keptProblems) }
        }
    }

    /// Writes the status (0600, as the unit's UMask wants; `netkeep status`
    /// reads it as root) and, when there is a textfile, `metricsText` to it
    /// (0644, for node_exporter). A failure is logged once per file and
    /// cause, never thrown: the daemon's work does not depend on either.
    func publish(metricsText: String? = nil) {
        let (bytes, textfile) = status.withLock { s in
            s.updatedAt = HostEnvironment.now()
            return (s.encoded(), s.metricsTextfile)
        }
        write(bytes, to: path, mode: 0o600, failing: "status not published")
        if let textfile, let metricsText { write(Array(metricsText.utf8), to: textfile, mode: 0o644, failing: "metrics textfile not written") }
    }

    /// The last failure of each file written, so that one that keeps failing is said once.
    private let failures = Mutex<[String: String]>([:])

    private func write(_ bytes: [UInt8], to file: String, mode: mode_t, failing what: String) {
        do {
            try Files.replace(file, with: bytes, mode: mode)
            failures.withLock { $0[file] = nil }
        } catch {
            let cause = "\(error)"
            guard failures.withLock({ f in defer { f[file] = cause }; return f[file] != cause }) else { return }
            logger.warning("\(what): \(cause)")
            problem(level: .warning, message: "\(what): \(cause)")
        }
    }
}

/// Passes every message on, and keeps the warnings and errors for the
/// published status.
struct ProblemRecordingLogHandler: LogHandler {
    var inner: any LogHandler
    let publisher: StatusPublisher

    func log(event: LogEvent) {
        if event.level >= .warning { publisher.problem(level: event.level, message: "\(event.message)") }
        inner.log(event: event)
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }
}
