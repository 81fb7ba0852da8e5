import ArgumentParser
import CLinux
import ServiceLifecycle
import Systemd
import FoundationEssentials
import HostIO
import Logging
import NetkeepCore
import NetkeepService
import NetkeepState

#if canImport(Glibc)
import Glibc
#endif

struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Directory of state.json and state.lock (env NETKEEP_STATE_DIR).", valueName: "dir"))
    var stateDirectory: String?

    @Option(name: .customLong("docker-socket"), help: ArgumentHelp("Docker Engine API socket.", valueName: "path"))
    var dockerSocket: String = "/var/run/docker.sock"

    @Option(name: .customLong("ovsdb-socket"), help: ArgumentHelp("OVSDB server socket.", valueName: "path"))
    var ovsdbSocket: String = "/var/run/openvswitch/db.sock"

    @Option(name: .customLong("retention"), help: ArgumentHelp(
        "How long a removed container's MAC and DHCP lease are kept for a container recreated with its name, bridge and interface: 90s, 30m, 24h, 7d; 0 gives them back at once (env NETKEEP_RETENTION; default 24h).",
        valueName: "duration"))
    var retention: String?

    @Option(name: .customLong("instance"), help: ArgumentHelp(
        "Act on the containers labelled netkeep.instance=NAME (env NETKEEP_INSTANCE); the default instance takes those without the label. One daemon per instance runs on a host.",
        valueName: "name"))
    var instance: String?

    @Flag(name: [.short, .long], help: "Print what is being done.")
    var verbose = false

    /// The retention as given (flag, then environment), checked by `validate`.
    var retentionText: String { retention ?? getenv("NETKEEP_RETENTION").map { String(cString: $0) } ?? "24h" }

    /// The instance as given (flag, then environment), checked by `validate`.
    var instanceText: String? { instance ?? getenv("NETKEEP_INSTANCE").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } }

    mutating func validate() throws {
        do { _ = try Retention.seconds(parsing: retentionText) } catch {
            throw ValidationError("\(error)\(retention == nil ? " (from NETKEEP_RETENTION)" : "")")
        }
        if let instanceText {
            do { _ = try Instance(parsing: instanceText) } catch {
                throw ValidationError("\(error)\(instance == nil ? " (from NETKEEP_INSTANCE)" : "")")
            }
        }
    }

    var environment: HostEnvironment {
        let fromEnv = getenv("NETKEEP_STATE_DIR").map { String(cString: $0) }
        var environment = HostEnvironment(stateDirectory: stateDirectory ?? fromEnv ?? "/var/lib/netkeep",
                                          dockerSocket: dockerSocket, ovsdbSocket: ovsdbSocket)
        environment.retentionSeconds = (try? Retention.seconds(parsing: retentionText)) ?? Retention.defaultSeconds
        environment.instance = instanceText.flatMap { try? Instance(parsing: $0) } ?? .default
        return environment
    }

    var logger: Logger {
        let level: Logger.Level = verbose ? .info : .notice
        return Logger(label: "netkeep") { _ in ConsoleLogHandler(level: level) }
    }
}

/// Prints a failure as one line and exits with its code.
func runReporting(_ body: () throws(Failure) -> Void) throws {
    do { try body() } catch {
        if case .exit = error {} else { writeToStandardError("netkeep: \(error)\n") }
        throw ExitCode(error.exitCode)
    }
}

/// What `netkeep --version` prints: the release, and the commit it was built
/// from (stamped by Plugins/BuildCommit).
enum BuildInfo {
    /// The release: raised with each landed capability (the package's version too).
    static let version = "0.16.0"
    static var commit: String { buildCommit }
    static var line: String { "\(version) (commit \(commit))" }
}

@main
struct Netkeep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "netkeep",
        abstract: "Keeps Docker containers attached to Open vSwitch bridges across restarts, reboots and removal.",
        discussion: """
        Every attachment (veth pair, OVS port, interface name, MAC, MTU, VLAN, address, \
        /var/run/netns link) is recorded in STATE_DIR/state.json so that it can be made again.

        Exit codes:
          0   success
          1   a step failed after the checks passed; what was done was undone
          2   bad input: unknown or stopped container, missing bridge, taken name, bad value
          3   the state file is corrupt, truncated or of a newer version (it is left untouched)
          4   Docker or OVSDB could not be reached (nothing was removed)
          5   another netkeep held the state lock for longer than the wait (nothing was changed),
              or (daemon) another daemon of the same instance runs on this host
          6   the state file could not be read or written (I/O error, permissions, full disk)
          64  the command line could not be parsed
        """,
        version: BuildInfo.line,
        subcommands: [AttachCommand.self, DetachCommand.self, ListCommand.self, ReconcileCommand.self, AdoptCommand.self, AcceptEngineCommand.self, DHCPRenewCommand.self, StatusCommand.self, DaemonCommand.self, HookCommand.self]
    )

    /// A CNI runtime runs the same binary with CNI_COMMAND set (SPEC.md):
    /// then it is a plugin, with no command line of its own.
    static func main() async {
        if getenv("CNI_COMMAND") != nil { Glibc.exit(runAsCNIPlugin()) }
        await Self.main(nil)
    }
}

/// One CNI call: config on stdin, result or error on stdout, the exit status.
/// The state directory is NETKEEP_STATE_DIR's or /var/lib/netkeep, as for the commands.
func runAsCNIPlugin() -> Int32 {
    signal(SIGPIPE, SIG_IGN)
    let variables = ProcessInfo.processInfo.environment
    var environment = HostEnvironment(stateDirectory: variables["NETKEEP_STATE_DIR"] ?? "/var/lib/netkeep")
    if let socket = variables["NETKEEP_OVSDB_SOCKET"] { environment.ovsdbSocket = socket }
    let logger = Logger(label: "netkeep-cni") { _ in ConsoleLogHandler(level: .warning) }
    // Bounded: the plugin refuses a config over CNIRules.maxConfigBytes by its size.
    let input = (try? Files.readAll(fd: 0, limit: CNIRules.maxConfigBytes)) ?? []
    let (output, status) = CNIPlugin(environment: environment, logger: logger, processEnvironment: variables).run(stdin: input)
    writeAll(output, to: 1)
    return status
}

struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Attach a running container to an OVS bridge, with a static address or by DHCP.",
        discussion: """
        Creates a veth pair (host end nk<12 hex>, derived from the container id and IFNAME), \
        adds the host end to BRIDGE in one OVSDB transaction, creates the other end inside the \
        container as IFNAME with MAC and MTU, sets the address and default route, and points \
        /var/run/netns/<container name> at the container's namespace. Nothing is changed when \
        a check fails.

        With --dhcp the lease comes from netkeep's own DHCP client, from a socket inside the \
        container's namespace (client id 0x01+MAC); it is recorded, asked for again after a \
        restart or reboot (INIT-REBOOT) and renewed by `netkeep dhcp-renew` or the daemon.

        Examples:
          netkeep attach web1 --bridge br0 --ip 10.1.2.10/24 --gateway 10.1.2.1 --vlan 10
          netkeep attach web2 --bridge br0 --dhcp
        """
    )

    @Argument(help: "Container name or id.") var container: String
    @Option(help: ArgumentHelp("OVS bridge to attach to.", valueName: "bridge")) var bridge: String
    @Option(help: ArgumentHelp("Interface name inside the container.", valueName: "name")) var ifname: String = "eth1"
    @Option(help: ArgumentHelp("Static address with prefix length, e.g. 10.1.2.10/24.", valueName: "cidr")) var ip: String?
    @Flag(help: "Take the address, prefix and default route from a DHCP server instead of --ip.") var dhcp = false
    @Option(help: ArgumentHelp("Default gateway, inside the --ip subnet.", valueName: "ip")) var gateway: String?
    @Option(help: ArgumentHelp("MAC address (default: a random locally administered one, kept for good).", valueName: "mac")) var mac: String?
    @Option(help: ArgumentHelp("MTU of both veth ends (68-65535, default 1500).", valueName: "n")) var mtu: String?
    @Option(help: ArgumentHelp("VLAN tag of the OVS port (0-4094; 4095 is reserved).", valueName: "n")) var vlan: String?
    @OptionGroup var options: GlobalOptions

    func run() throws {
        try runReporting { () throws(Failure) in
            let request: AttachRequest
            do {
                request = try AttachRequest.parse(container: container, bridge: bridge, ifname: ifname, ip: ip, dhcp: dhcp,
                                                  gateway: gateway, mac: mac, mtu: mtu, vlan: vlan)
            } catch {
                throw Failure.badInput("attach \(container): \(error)")
            }
            let attachment = try Attach(environment: options.environment, logger: options.logger).run(request)
            let how = attachment.lease.map { "\($0.address) by DHCP from \($0.serverID) until \($0.expiresAt)" } ?? attachment.address.map(\.description) ?? "-"
            print("attached \(attachment.containerName) \(attachment.ifname) to \(attachment.bridge) as \(attachment.hostIfname) (\(how), mac \(attachment.mac))")
        }
    }
}

struct DetachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach",
        abstract: "Remove a container's attachments: OVS port, veth, netns link and record.",
        discussion: "Works when the container is already gone, or when the port or veth is already missing."
    )

    @Argument(help: "Container name or id (also of a removed container).") var container: String
    @Option(help: ArgumentHelp("Only this interface (default: every attachment of the container).", valueName: "name")) var ifname: String?
    @OptionGroup var options: GlobalOptions

    func run() throws {
        try runReporting { () throws(Failure) in
            do {
                _ = try Names.containerReference(container)
                if let ifname { _ = try Names.interface(ifname) }
            } catch {
                throw Failure.badInput("detach \(container): \(error)")
            }
            let removed = try Detach(environment: options.environment, logger: options.logger).run(container: container, ifname: ifname)
            for a in removed { print("detached \(a.containerName) \(a.ifname) from \(a.bridge) (\(a.hostIfname))") }
        }
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Show every recorded attachment, and what containers' labels declare.",
        discussion: """
        One row per recorded attachment (BY: attach, or labels when a container's netkeep.* labels \
        declared it). When Docker answers, running containers whose labels declare an interface \
        without a record add a row with STATUS "declared" (the daemon or `netkeep reconcile` makes \
        it), and containers with a bad label one row "refused" with every bad label and why; \
        nothing of a refused container is attached. Endpoints of netkeep Docker networks follow, \
        one row each (CONTAINER "NAME (endpoint <id>)", BY "network <id>"); no plugin request names \
        the container, so the name appears once the daemon (after its next full pass) or `netkeep \
        reconcile` has asked Docker. Interfaces that CNI runtimes added come last (CONTAINER \
        "cni <container id>", MODE the IPAM plugin, BY "cni <network>"; in JSON network_id is the \
        network's name and sandbox_key the runtime's namespace path).
        """)

    @Flag(help: "A JSON array instead of a table.") var json = false
    @OptionGroup var options: GlobalOptions

    func run() throws {
        try runReporting { () throws(Failure) in
            let state = try options.environment.loadState()
            var entries = state.attachments.map(ListEntry.init) + state.endpoints.map(ListEntry.init) + state.cni.map(ListEntry.init)
            // What labels declare and the records lack; without Docker, the records alone.
            do { entries += try ListEntry.declarations(environment: options.environment, in: state) } catch {
                options.logger.notice("labels not read: \(error)")
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                let data = (try? encoder.encode(entries)) ?? Data("[]".utf8)
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(ListEntry.table(entries), terminator: "")
            }
        }
    }
}

struct ReconcileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Make the host match the state: repair attachments, collect garbage.",
        discussion: """
        First, every running container whose netkeep.* labels declare an interface without a record \
        gets a pending record after the checks of `netkeep attach` (listed as "declare:"; with \
        --dry-run only listed); a container with a bad label is listed as refused and left alone. \
        Then it observes Docker, OVSDB, the host's and each container's links, and /var/run/netns; plans \
        every repair and removal with its reason; prints the plan (one line per action); then carries \
        it out unless --dry-run, and looks again. Repairs keep the recorded host veth name, MAC, MTU, \
        VLAN, address and gateway. Garbage (ports of netkeep or ovs-docker, /var/run/netns links to \
        dead processes) is removed only when Docker answered 404 for the container; when Docker or \
        OVSDB cannot be reached nothing is removed.

        Endpoints of netkeep Docker networks whose veth is gone and that Docker no longer lists \
        (a reboot or an ungraceful stop: Docker sends no DeleteEndpoint for them), and networks Docker \
        answers 404 for, are removed with their ports.

        Exit: 0 the host now matches the state; 1 something could not be repaired (see the lines \
        marked FAILED or error); 3 the state file cannot be used; 4 Docker or OVSDB unreachable.
        """
    )

    @Flag(help: "Only print the plan.") var dryRun = false
    @Flag(help: "Print the report as JSON.") var json = false
    @OptionGroup var options: GlobalOptions

    func run() throws {
        try runReporting { () throws(Failure) in
            // What labels declare becomes pending records first (with --dry-run: is listed); the pass makes them.
            // When Docker cannot be asked, the pass says so itself.
            let declared = try? Declare(environment: options.environment, logger: options.logger).run(dryRun: dryRun)
            var report = try Reconcile(environment: options.environment, logger: options.logger).run(dryRun: dryRun)
            report.declarations = declared?.lines ?? []
            print(json ? report.json : report.text, terminator: "")
            // The Docker plugin's records that Docker will never delete.
            let swept = report.unreachable ? [] : try SweepEndpoints(environment: options.environment, logger: options.logger)
                .run(inherited: nil, dryRun: dryRun)
            if !json {
                for action in swept {
                    switch action {
                    case .removeEndpoint(let e, let reason): print("\(dryRun ? "would remove" : "removed") endpoint \(e.shortID) (port \(e.hostIfname)): \(reason)")
                    case .addPort(let e, let reason): print("\(dryRun ? "would add" : "added") port \(e.hostIfname) of endpoint \(e.shortID) back to \(e.bridge): \(reason)")
                    case .removeNetwork(let n, let reason): print("\(dryRun ? "would remove" : "removed") the record of network \(n.id.prefix(12)): \(reason)")
                    }
                }
            }
            // CNI attachments' ports: added back, or removed once their veth is gone.
            let mended = report.unreachable ? [] : try SweepCNI(environment: options.environment, logger: options.logger).run(dryRun: dryRun)
            if !json {
                for action in mended {
                    switch action {
                    case .addPort(let a, let reason): print("\(dryRun ? "would add" : "added") port \(a.hostIfname) of CNI \(a.key) back to \(a.bridge): \(reason)")
                    case .removeDeadPort(let a, let reason): print("\(dryRun ? "would remove" : "removed") dead port \(a.hostIfname) of CNI \(a.key): \(reason)")
                    }
                }
            }
            if report.exitCode != 0 { throw Failure.exit(report.exitCode) }
        }
    }
}

struct AdoptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adopt",
        abstract: "Record ports made by `ovs-docker add-port` so that they survive reboots.",
        discussion: """
        For every port with ovs-docker's external_ids (container_id, container_iface) whose container \
        runs, records the bridge, interface, MAC, MTU, VLAN, address and gateway as they are now. The \
        port keeps its name. Ports of removed containers are left to `netkeep reconcile`. With --port, \
        only the ports named (each must be ovs-docker's); a port that was skipped makes the exit status 1.
        """
    )

    @Option(help: ArgumentHelp("Only ports of this bridge.", valueName: "bridge")) var bridge: String?
    @Option(name: .customLong("port"), help: ArgumentHelp("Only this port (repeatable).", valueName: "name")) var ports: [String] = []
    @OptionGroup var options: GlobalOptions

    func run() throws {
        try runReporting { () throws(Failure) in
            if let bridge {
                do { _ = try Names.bridge(bridge) } catch { throw Failure.badInput("adopt: \(error)") }
            }
            for port in ports {
                do { _ = try Names.interface(port, role: "port") } catch { throw Failure.badInput("adopt: \(error)") }
            }
            let outcome = try Adopt(environment: options.environment, logger: options.logger).run(bridge: bridge, ports: ports)
            for a in outcome.adopted {
                print("adopted \(a.containerName) \(a.ifname): port \(a.hostIfname) on \(a.bridge), mac \(a.mac), \(a.address.map(\.description) ?? "no address")")
            }
            for line in outcome.skipped { print("skipped \(line)") }
            if outcome.adopted.isEmpty && outcome.skipped.isEmpty { print("nothing to adopt") }
            if !outcome.skipped.isEmpty { throw Failure.exit(1) }
        }
    }
}

struct AcceptEngineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accept-engine",
        abstract: "Record the Docker engine that answers now as the one the attachments belong to.",
        discussion: """
        netkeep records the Docker engine's identity (ID and DockerRootDir from GET /info) with \
        its attachments. When the socket answers for another engine (another dockerd, a changed \
        data root, a proxy that knows no containers), reconcile and the daemon remove nothing and \
        say why. After a real change of engine, run this once: its answers count from then on.
        """
    )

    @Flag(help: "Only print the recorded and the current engine.") var dryRun = false
    @OptionGroup var options: GlobalOptions

    func run() throws {
        try runReporting { () throws(Failure) in
            let outcome = try AcceptEngine(environment: options.environment, logger: options.logger).run(dryRun: dryRun)
            print("recorded engine: \(outcome.previous.map(\.description) ?? "none")")
            print("current engine:  \(outcome.current)")
            if outcome.previous == outcome.current {
                print("nothing to do")
            } else {
                print(dryRun ? "not recorded (--dry-run)" : "recorded")
            }
        }
    }
}

struct DHCPRenewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dhcp-renew",
        abstract: "Renew the DHCP leases that are due (the daemon does this on its own).",
        discussion: """
        At T1 a lease is renewed with a unicast REQUEST to its server, at T2 rebound with a \
        broadcast REQUEST; an address applied without a server's answer is confirmed \
        (INIT-REBOOT); a refused address starts over with DISCOVER and the change is reported. \
        The leases of CNI's netkeep-dhcp and of netkeep Docker networks' DHCP endpoints are renewed \
        the same way, from inside the runtime's namespace or the container's sandbox, and the ones \
        DEL kept for a client that has not come back by ipam.releaseAfter are released. Exit 1 when \
        a lease could not be renewed and has expired.
        """
    )

    @Flag(help: "Renew every lease now, due or not.") var all = false
    @OptionGroup var options: GlobalOptions

    func run() throws {
        try runReporting { () throws(Failure) in
            // CNI's netkeep-dhcp first: it needs neither Docker nor the reconciler.
            let cni = CNILeases(environment: options.environment, logger: options.logger)
            let renewed = try cni.renew(all: all)
            for o in renewed {
                let lease = o.attachment.lease.map { "\($0.address) until \($0.expiresAt)" } ?? "no lease"
                print("CNI \(o.attachment.key) (\(o.due)): \(o.error.map { "FAILED: \($0)" } ?? lease)")
            }
            let released = try cni.releaseUnclaimed()
            for r in released {
                let what = r.error.map { "FAILED: \($0)" } ?? (r.confirmed ? "released" : "released, not confirmed")
                print("CNI \(r.lease.network) kept lease \(r.lease.lease.address) (MAC \(r.lease.mac)): \(what)")
            }
            let endpoints = try RenewEndpointLeases(environment: options.environment, logger: options.logger).run(all: all)
            for o in endpoints {
                let lease = o.endpoint.lease.map { "\($0.address) until \($0.expiresAt)" } ?? "no lease"
                print("endpoint \(o.endpoint.shortID) (\(o.due)): \(o.error.map { "FAILED: \($0)" } ?? lease)")
            }
            let outcomes = try RenewLeases(environment: options.environment, logger: options.logger).run(all: all)
            if outcomes.isEmpty && renewed.isEmpty && released.isEmpty && endpoints.isEmpty { print("no lease is due") }
            for o in outcomes {
                let a = o.attachment
                let lease = a.lease.map { "\($0.address) until \($0.expiresAt)" } ?? "no lease"
                print("\(a.containerName) \(a.ifname) (\(o.due)): \(o.error.map { "FAILED: \($0)" } ?? lease)")
            }
            if outcomes.contains(where: { $0.error != nil }) || renewed.contains(where: \.expired)
                || endpoints.contains(where: { $0.error != nil && $0.endpoint.address == nil }) {
                throw Failure.exit(1)
            }
        }
    }
}

struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Keep every attachment in place: Docker events, DHCP renewals, periodic resync.",
        discussion: """
        Starts with a full reconcile, then follows the Docker event stream: a container's `start` \
        repairs its attachments, `destroy` collects them, `die`/`stop` records it as down. The time of \
        the last event handled is kept in the state file, so a restarted daemon resumes from there; \
        after every (re)connect to Docker a full reconcile runs. DHCP leases are renewed at T1 and \
        rebound at T2; a full reconcile runs every --resync-interval seconds. When Docker or OVSDB \
        cannot be reached it keeps running, retries with capped backoff and removes nothing. \
        SIGTERM finishes the action in progress and exits 0; nothing is torn down.

        It also serves Docker's network plugin API (`docker network create -d netkeep -o bridge=BR \
        --subnet CIDR NAME`, or `-o dhcp=true --ipam-driver null`) on --plugin-socket; the driver's \
        name is the socket's file name without `.sock`. Under systemd, netkeep.socket makes that socket \
        before docker.service starts and passes it in (LISTEN_FDS), so dockerd never waits for netkeep.

        Under systemd (Type=notify) it sends READY=1 once the first reconcile is done, STATUS= \
        lines (the first says the first reconcile is under way; the one with READY=1 counts what it \
        left), WATCHDOG=1 from its working loop when WatchdogSec= is set, and STOPPING=1. It logs \
        to journald when journald runs, otherwise (or with --foreground) to standard error.

        After each piece of work it writes daemon.json next to the state file (what `netkeep status` \
        shows) and its metrics in Prometheus's text format: to --metrics-textfile for node_exporter's \
        textfile collector, and on --metrics-listen at /metrics (off unless given).

        One daemon per instance runs on a host: a second one of the same --instance exits 5 at once, \
        naming the first one's PID and state directory (the lock is /run/netkeep/daemon-INSTANCE.lock). \
        A daemon attaches only the containers labelled for its instance (netkeep.instance=NAME; no such \
        label: the default instance's).
        """
    )

    @Option(help: ArgumentHelp("Seconds between full reconciles.", valueName: "seconds")) var resyncInterval: Double = 60
    @Flag(help: "Log to standard error even when journald runs.") var foreground = false
    @Option(help: ArgumentHelp(
        "Socket of the Docker network plugin (env NETKEEP_PLUGIN_SOCKET); \"none\": no plugin. A socket passed by systemd wins.",
        valueName: "path"))
    var pluginSocket: String?
    @Option(help: ArgumentHelp(
        "Write the metrics to this file, replaced in one step after each piece of work (node_exporter's textfile collector: a .prom file in its directory, which must exist).",
        valueName: "path"))
    var metricsTextfile: String?
    @Option(help: ArgumentHelp(
        "Serve the metrics over HTTP at /metrics on HOST:PORT, [IPV6]:PORT or :PORT (every interface). Off unless given.",
        valueName: "addr"))
    var metricsListen: String?
    @OptionGroup var options: GlobalOptions

    static let defaultPluginSocket = "/run/docker/plugins/netkeep.sock"

    func run() async throws {
        guard resyncInterval >= 1 else { throw ValidationError("--resync-interval must be at least 1 second") }
        if let metricsListen {
            do { _ = try MetricsService.parse(metricsListen) } catch { throw ValidationError("\(error)") }
        }
        if let metricsTextfile {
            // Checked at the start, not found out at the first write.
            guard !metricsTextfile.hasSuffix("/"), Files.kind(Files.directory(of: metricsTextfile)) == .directory else {
                writeToStandardError("netkeep: daemon: --metrics-textfile \(metricsTextfile): its directory does not exist\n")
                throw ExitCode(2)
            }
            if !metricsTextfile.hasSuffix(".prom") {
                writeToStandardError("netkeep: daemon: --metrics-textfile \(metricsTextfile): node_exporter's textfile collector reads only *.prom files\n")
            }
        }
        // Before any socket is bound: a second daemon of the instance must not take the first one's.
        let instanceLock: DaemonLock
        do {
            instanceLock = try DaemonLock(runDirectory: options.environment.runDirectory, instance: options.environment.instance,
                                          stateDirectory: options.environment.stateDirectory)
        } catch {
            writeToStandardError("netkeep: daemon: \(error)\n")
            throw ExitCode(5)
        }
        defer { instanceLock.release() }
        // journald when it runs (under systemd, always), the terminal otherwise.
        let level: Logger.Level = options.verbose ? .info : .notice
        let logger = Journal.isAvailable && !foreground
            ? Logger(label: "netkeep") { _ in JournaldLogHandler(identifier: "netkeep", level: level) }
            : options.logger
        let notifier = Notifier()
        var hooks = Daemon.Hooks()
        hooks.ready = { notifier.ready(status: $0) }
        hooks.status = { notifier.status($0) }
        hooks.watchdog = { notifier.watchdog() }
        hooks.watchdogInterval = notifier.watchdogInterval
        hooks.stopping = { notifier.stopping() }
        var daemonOptions = Daemon.Options(resyncInterval: resyncInterval)
        daemonOptions.version = BuildInfo.version
        daemonOptions.commit = BuildInfo.commit
        daemonOptions.metricsTextfile = metricsTextfile
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        let metrics = DaemonMetrics(version: BuildInfo.version, commit: BuildInfo.commit, startTime: Double(HostEnvironment.now().secondsSinceEpoch))
        if let metricsListen {
            do {
                let service = try await MetricsService.start(listen: metricsListen, metrics: metrics, logger: logger)
                daemonOptions.metricsListen = service.address
                services.append(.init(service: service))
            } catch {
                writeToStandardError("netkeep: daemon: \(error)\n")
                throw ExitCode(error.exitCode)
            }
        }
        let socket = pluginSocket ?? getenv("NETKEEP_PLUGIN_SOCKET").map { String(cString: $0) } ?? Self.defaultPluginSocket
        let passed = SocketActivation.listeningSockets()
        if socket != "none" || !passed.isEmpty {
            do {
                // Read before the socket is served: no request of this process can be among them.
                daemonOptions.inheritedEndpoints = Set(((try? options.environment.loadState())?.endpoints ?? []).map(\.id))
                services.append(.init(service: try await PluginService.start(path: socket, passed: passed,
                                                                             environment: options.environment, logger: logger)))
            } catch {
                writeToStandardError("netkeep: daemon: \(error)\n")
                throw ExitCode(error.exitCode)
            }
        }
        let daemon = Daemon(environment: options.environment, logger: logger, options: daemonOptions, hooks: hooks, metrics: metrics)
        services.append(.init(service: daemon))
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch let error as Failure {
            writeToStandardError("netkeep: daemon: \(error)\n")
            throw ExitCode(error.exitCode)
        }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "One screen: the daemon, Docker, OVSDB, attachments by status, the last pass, leases, problems.",
        discussion: """
        Reads the state file and what the daemon publishes (daemon.json next to it), and asks Docker \
        (GET /info) and OVSDB itself, 2 seconds at most each. It works when the daemon is down and \
        says so ("not running: stopped at ...", or "process N is gone, last seen ..." after a crash or \
        a reboot); then the counts are the state file's alone. A state file that netkeep will not use \
        (corrupt, truncated, of a newer version) is shown as UNUSABLE with why, and the command exits 3 \
        (the daemon refuses to start on it); one it cannot read (permissions: run it as root) exits 6.

        Statuses: ready (in place), down (the container is stopped), pending (to be made), retained \
        (a removed container's MAC and lease kept for a recreate), removing, and refused (containers \
        whose netkeep.* labels the running daemon refused; nothing of theirs is attached). Docker \
        network endpoints count as ready once joined. --json prints the same as one object.
        """)

    @Flag(help: "One JSON object instead of the screen.") var json = false
    @OptionGroup var options: GlobalOptions

    func run() throws {
        let report = StatusReport.gather(environment: options.environment)
        print(json ? report.json() : report.text(), terminator: json ? "\n" : "")
        if let code = report.stateFile.exitCode { throw ExitCode(code) }
    }
}

struct HookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hook",
        abstract: "Repair containers named by Docker events read from standard input.",
        discussion: """
        For your own event pipeline: docker events --filter type=container --format '{{json .}}' | netkeep hook
        Each container event of an attached container repairs (or collects) that container's \
        attachments, as the daemon does. A malformed line gets a warning with its line number and is \
        skipped; the hook ends when its input does.
        """
    )

    @OptionGroup var options: GlobalOptions

    func run() throws {
        let summary = Hook(environment: options.environment, logger: options.logger).run()
        options.logger.info("hook: \(summary.lines) lines, \(summary.malformed) malformed, \(summary.repairs) actions, \(summary.failures) failed")
    }
}
