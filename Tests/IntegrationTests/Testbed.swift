#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Access to the real test bed of scripts/testbed. With NETKEEP_TESTBED=1 a
/// missing piece fails the test; without it the suites are skipped.
enum Testbed {
    static let bridge = ProcessInfo.processInfo.environment["NETKEEP_TESTBED_BRIDGE"] ?? "nk-br0"
    static let image = "netkeep-test/busybox"
    static let enabled = ProcessInfo.processInfo.environment["NETKEEP_TESTBED"] == "1"
    static let skipReason: Comment = "needs root and the test bed: run scripts/test (sets NETKEEP_TESTBED=1)"

    /// This run's netkeep instance: every netkeep the tests start acts only
    /// on containers labelled `netkeep.instance` with it, so labelled
    /// containers of anyone else (the demo's, an earlier run's) are not the
    /// tests' business, nor the tests' containers theirs. scripts/test picks
    /// one per run.
    static let instance: String = {
        if let given = ProcessInfo.processInfo.environment["NETKEEP_INSTANCE"], !given.isEmpty { return given }
        return "test-\(UUID().uuidString.prefix(8).lowercased())"
    }()

    /// On every container the tests make: scripts/test removes what a run
    /// that crashed left by it.
    static let runLabel = "org.netkeep.test-run"

    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    static var netkeepBinary: String {
        ProcessInfo.processInfo.environment["NETKEEP_BIN"] ?? packageRoot + "/.build/debug/netkeep"
    }

    /// Throws (a test failure) when the test bed is not all there.
    static func check() throws {
        guard getuid() == 0 else { throw TestbedMissing("integration tests must run as root") }
        for path in ["/var/run/docker.sock", "/var/run/openvswitch/db.sock"] where !FileManager.default.fileExists(atPath: path) {
            throw TestbedMissing("\(path) is missing: run scripts/testbed up")
        }
        guard FileManager.default.isExecutableFile(atPath: netkeepBinary) else {
            throw TestbedMissing("\(netkeepBinary) is missing: run swift build first")
        }
        let bridge = run(["ovs-vsctl", "br-exists", Testbed.bridge])
        guard bridge.status == 0 else { throw TestbedMissing("bridge \(Testbed.bridge) is missing: run scripts/testbed up") }
    }

    struct TestbedMissing: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = "test bed: " + description }
    }
}

struct CommandResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// Runs a program with an argument array (no shell), output captured through
/// files so that a large output cannot block the child. posix_spawn with a
/// clean signal mask and default handlers (the test runner blocks signals that
/// children would otherwise inherit), and a plain waitpid.
@discardableResult
func run(_ arguments: [String], environment: [String: String] = [:], stdin input: String? = nil) -> CommandResult {
    switch spawn(arguments, environment: environment, stdin: input) {
    case .success(let child): return child.wait()
    case .failure(let failed): return failed.result
    }
}

/// Runs every command at once (all spawned before any is waited for), as
/// racing callers do; the results in the same order.
func runAtOnce(_ commands: [(arguments: [String], environment: [String: String], stdin: String?)]) -> [CommandResult] {
    let children = commands.map { spawn($0.arguments, environment: $0.environment, stdin: $0.stdin) }
    return children.map { child in
        switch child {
        case .success(let c): return c.wait()
        case .failure(let failed): return failed.result
        }
    }
}

struct SpawnFailure: Error { let result: CommandResult }

/// A spawned command; `wait` reaps it and reads what it wrote.
final class SpawnedCommand: @unchecked Sendable {
    let pid: pid_t
    let directory: String

    init(pid: pid_t, directory: String) {
        self.pid = pid
        self.directory = directory
    }

    func wait() -> CommandResult {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Exit code, or the signal number for a process killed by a signal.
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : status & 0x7f
        return CommandResult(status: code,
                             stdout: (try? String(contentsOfFile: directory + "/out", encoding: .utf8)) ?? "",
                             stderr: (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? "")
    }
}

func spawn(_ arguments: [String], environment: [String: String] = [:], stdin input: String? = nil) -> Result<SpawnedCommand, SpawnFailure> {
    func failure(_ why: String) -> Result<SpawnedCommand, SpawnFailure> {
        .failure(SpawnFailure(result: CommandResult(status: 127, stdout: "", stderr: "\(arguments.first ?? "?"): \(why)")))
    }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nkrun-\(UUID().uuidString)").path
    do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
        return failure("no directory for its output: \(error)")
    }
    let out = dir + "/out", err = dir + "/err"
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    let inputPath = dir + "/in"
    if let input {
        do { try Data(input.utf8).write(to: URL(fileURLWithPath: inputPath)) } catch {
            try? FileManager.default.removeItem(atPath: dir)
            return failure("its standard input could not be written: \(error)")
        }
    }
    posix_spawn_file_actions_addopen(&actions, 0, input == nil ? "/dev/null" : inputPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t(), all = sigset_t()
    sigemptyset(&empty)
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let env = childEnvironment(environment).map { "\($0)=\($1)" }
    func cStrings(_ items: [String]) -> [UnsafeMutablePointer<CChar>?] { items.map { strdup($0) } + [nil] }
    let argv = cStrings(arguments), envp = cStrings(env)
    defer { (argv + envp).forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
    guard rc == 0 else {
        try? FileManager.default.removeItem(atPath: dir)
        return failure("spawn failed: \(rc)")
    }
    return .success(SpawnedCommand(pid: pid, directory: dir))
}

/// The environment of a spawned command: the test's, `extra` on top.
/// netkeep gives a removed container's MAC and lease back at once
/// (NETKEEP_RETENTION=0) unless a test asks for a retention: the suites
/// that check garbage collection predate it, RetentionIntegrationTests test it.
func childEnvironment(_ extra: [String: String]) -> [String: String] {
    var env = ProcessInfo.processInfo.environment
    if env["NETKEEP_RETENTION"] == nil { env["NETKEEP_RETENTION"] = "0" }
    env["NETKEEP_INSTANCE"] = Testbed.instance
    // Daemons of parallel tests would compete for the plugin socket; the plugin tests name their own.
    if env["NETKEEP_PLUGIN_SOCKET"] == nil { env["NETKEEP_PLUGIN_SOCKET"] = "none" }
    return env.merging(extra) { _, new in new }
}

/// Polls `condition` until it holds or `seconds` pass; returns whether it held.
func eventually(within seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
        if condition() { return true }
        usleep(20_000)
    } while Date() < deadline
    return condition()
}

/// A temporary state directory and the netkeep binary bound to it.
final class Netkeep: @unchecked Sendable {
    let stateDirectory: String
    var statePath: String { stateDirectory + "/state.json" }

    init() {
        stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("nkstate-\(UUID().uuidString.prefix(8))").path
    }

    @discardableResult
    func callAsFunction(_ arguments: String..., environment: [String: String] = [:]) -> CommandResult {
        invoke(arguments, environment: environment)
    }

    func invoke(_ arguments: [String], environment: [String: String] = [:]) -> CommandResult {
        run([Testbed.netkeepBinary] + arguments + ["--state-dir", stateDirectory], environment: environment)
    }

    var stateBytes: Data? { FileManager.default.contents(atPath: statePath) }

    /// `netkeep list --json` decoded.
    func list() throws -> [[String: Any]] {
        let result = invoke(["list", "--json"])
        guard result.status == 0 else { throw Testbed.TestbedMissing("list failed: \(result.stderr)") }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
    }

    deinit { try? FileManager.default.removeItem(atPath: stateDirectory) }
}

/// A throw-away busybox container with no network but `lo`.
final class TestContainer: @unchecked Sendable {
    let name: String
    let id: String

    /// `labels` with `netkeep.` keys are for this run's instance unless they name one.
    init(prefix: String = "nkt", named: String? = nil, restart: Bool = false, labels: [String: String] = [:], network: String = "none",
         extra: [String] = []) throws {
        name = named ?? "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
        var args = ["docker", "run", "-d", "--net=\(network)", "--name", name] + extra
        if restart { args += ["--restart", "always"] }
        for (key, value) in Self.labels(labels).sorted(by: { $0.key < $1.key }) { args += ["--label", "\(key)=\(value)"] }
        let result = run(args + [Testbed.image, "sleep", "1000000"])
        guard result.status == 0 else { throw Testbed.TestbedMissing("docker run failed: \(result.stderr)") }
        id = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A container made elsewhere (through the Engine API), removed with this value.
    init(adopting name: String) throws {
        self.name = name
        id = run(["docker", "inspect", "-f", "{{.Id}}", name]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard id.count == 64 else { throw Testbed.TestbedMissing("no container \(name)") }
    }

    /// The labels a test container gets: the run's own, and `netkeep.` ones for the run's instance.
    static func labels(_ given: [String: String]) -> [String: String] {
        var labels = given
        labels[Testbed.runLabel] = Testbed.instance
        if labels["netkeep.instance"] == nil, given.keys.contains(where: { $0.hasPrefix("netkeep.") }) { labels["netkeep.instance"] = Testbed.instance }
        return labels
    }

    /// `docker run --label` arguments for `labels` (see `labels(_:)`).
    static func labelArguments(_ given: [String: String]) -> [String] {
        labels(given).sorted { $0.key < $1.key }.flatMap { ["--label", "\($0.key)=\($0.value)"] }
    }

    var pid: Int32 { Int32(run(["docker", "inspect", "-f", "{{.State.Pid}}", name]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 }

    func exec(_ arguments: String...) -> CommandResult { run(["docker", "exec", name] + arguments) }

    func remove() { run(["docker", "rm", "-f", name]) }

    deinit { remove() }
}

/// A container with a static attachment, restarted since: it came back with
/// only `lo`, so a daemon's first pass has its repair to make.
func restartedAttachedContainer(_ netkeep: Netkeep) throws -> TestContainer {
    let c = try TestContainer()
    #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).10/24").status == 0)
    #expect(run(["docker", "restart", "-t", "0", c.name]).status == 0)
    return c
}

/// A random /24 for static addresses, so runs never collide with each other
/// or with what an earlier run left on the bridge.
func randomSubnet() -> String { "10.\(Int.random(in: 100...199)).\(Int.random(in: 0...255))" }

/// Everything a failed command could have touched, for byte-for-byte comparison.
func hostFingerprint(containers: [TestContainer]) -> String {
    var parts: [String] = []
    parts.append(run(["ovs-vsctl", "--format=csv", "--columns=_uuid,name,tag,interfaces,external_ids", "list", "Port"]).stdout)
    parts.append(run(["ovs-vsctl", "--format=csv", "--columns=_uuid,name,type,external_ids", "list", "Interface"]).stdout)
    parts.append(run(["ip", "-o", "link", "show"]).lines.map { $0.replacingOccurrences(of: #"\s+(qdisc|state|mode|group|qlen)\s.*"#, with: "", options: .regularExpression) }.sorted().joined(separator: "\n"))
    parts.append(((try? FileManager.default.contentsOfDirectory(atPath: "/var/run/netns")) ?? []).sorted().map { "\($0) -> \((try? FileManager.default.destinationOfSymbolicLink(atPath: "/var/run/netns/\($0)")) ?? "")" }.joined(separator: "\n"))
    for c in containers {
        parts.append(c.exec("ip", "-o", "addr").stdout)
        parts.append(c.exec("ip", "-o", "link").stdout)
        parts.append(c.exec("ip", "route").stdout)
    }
    return parts.joined(separator: "\n----\n")
}

/// Every integration suite nests here: they share the host (bridge, netns
/// directory, Docker), so they run one at a time, and only with the test bed.
@Suite(.serialized, .enabled(if: Testbed.enabled, Testbed.skipReason))
enum IntegrationSuite {}

/// A process started in the background (the daemon), output to a file.
final class BackgroundProcess: @unchecked Sendable {
    let pid: pid_t
    let logPath: String

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent("nkbg-\(UUID().uuidString.prefix(8)).log").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let env = childEnvironment(environment).map { "\($0)=\($1)" }
        let argv = arguments.map { strdup($0) } + [nil], envp = env.map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard rc == 0 else { throw Testbed.TestbedMissing("spawn \(arguments[0]): \(rc)") }
        self.pid = pid
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    private var reaped: Int32?

    /// The exit status once the process has ended (reaped here), nil while it runs.
    var exitStatus: Int32? {
        if let reaped { return reaped }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        reaped = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return reaped
    }

    /// Waits for the process to end by itself; nil when it did not within `seconds`.
    func wait(within seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let status = exitStatus { return status }
            usleep(10_000)
        }
        return exitStatus
    }

    /// Sends `signal` and waits for the exit; returns the exit status (or 128+signal).
    @discardableResult
    func stop(_ signal: Int32 = SIGTERM, within seconds: Double = 20) -> Int32 {
        if let reaped { return reaped }
        kill(pid, signal)
        let deadline = Date().addingTimeInterval(seconds)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date() > deadline { kill(pid, SIGKILL); waitpid(pid, &status, 0); return -1 }
            usleep(10_000)
        }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    deinit {
        var status: Int32 = 0
        if reaped == nil, waitpid(pid, &status, WNOHANG) == 0 { kill(pid, SIGKILL); waitpid(pid, &status, 0) }
        try? FileManager.default.removeItem(atPath: logPath)
    }
}
