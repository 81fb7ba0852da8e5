#if canImport(Glibc)
import Glibc
#endif
import DockerEngine
import HostIO
import NetkeepCore
import NetkeepState
import OVSDB

/// Where netkeep finds the host's pieces. Every path can be changed, so tests
/// and unusual hosts can point it elsewhere.
public struct HostEnvironment: Sendable {
    public var stateDirectory: String
    public var dockerSocket: String
    public var ovsdbSocket: String
    public var netnsDirectory: String
    /// Where audit entries go (journald when it runs).
    public var audit = Audit()
    /// How long a command waits for the state lock (the daemon waits less:
    /// its watchdog and systemd's stop timeout must not run out meanwhile).
    public var lockTimeout: Double = 120
    /// Seconds a removed container's MAC and lease wait for a recreate (`Retention`).
    public var retentionSeconds: Int64 = Retention.defaultSeconds
    /// Which labelled containers are this netkeep's (`netkeep.instance`).
    public var instance: Instance = .default
    /// Where a daemon says that it serves its instance (`DaemonLock`).
    public var runDirectory = "/run/netkeep"
    /// Replaces the real host (HostModelTests); nil: the real one at the paths above.
    private var replacedAdapters: HostAdapters?

    public init(stateDirectory: String = StateStore.defaultDirectory,
                dockerSocket: String = DockerClient.defaultSocket,
                ovsdbSocket: String = VSwitchClient.defaultSocket,
                netnsDirectory: String = "/var/run/netns") {
        self.stateDirectory = stateDirectory
        self.dockerSocket = dockerSocket
        self.ovsdbSocket = ovsdbSocket
        self.netnsDirectory = netnsDirectory
    }

    public var store: StateStore { StateStore(directory: stateDirectory) }
    public var docker: DockerClient { DockerClient(socketPath: dockerSocket) }

    public func vswitch() throws(Failure) -> VSwitchClient {
        do { return try VSwitchClient(socketPath: ovsdbSocket) } catch { throw Failure.component("ovsdb", error) }
    }

    public var netnsLinks: NetnsLinks { NetnsLinks(directory: netnsDirectory) }

    /// What passes and commands talk to: the real host unless replaced.
    var adapters: HostAdapters {
        get { replacedAdapters ?? .real(self) }
        set { replacedAdapters = newValue }
    }

    /// The current time as the adapters tell it.
    func now() -> Timestamp { adapters.now() }

    /// The wall clock, read here and passed down: the core never reads it.
    /// NETKEEP_TIME_OFFSET (seconds) moves it, so tests can make a lease due
    /// without waiting for it.
    /// A test aid only: a release build ignores it.
    public static func now() -> Timestamp {
        #if DEBUG
        let offset = getenv("NETKEEP_TIME_OFFSET").flatMap { Int64(String(cString: $0)) } ?? 0
        #else
        let offset: Int64 = 0
        #endif
        return Timestamp(secondsSinceEpoch: Int64(time(nil)) + offset)
    }

    /// /proc/sys/kernel/random/boot_id: differs after every reboot.
    public static func bootID() -> String? {
        guard let bytes = try? Files.read("/proc/sys/kernel/random/boot_id") else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace }
        return text.isEmpty ? nil : text
    }
}

/// Named places where `NETKEEP_FAULT=<point>` kills the process with SIGKILL,
/// so tests can check that the next reconcile repairs a crash there.
public enum FaultPoint: String, CaseIterable, Sendable {
    case attachPendingWritten = "attach.pending-written"
    case detachMarked = "detach.marked"
    case reconcileIntentWritten = "reconcile.intent-written"
    case reconcilePortsDeleted = "reconcile.ports-deleted"
    case reconcileLinksRepaired = "reconcile.links-repaired"
    case reconcilePortsAdded = "reconcile.ports-added"
    /// CreateEndpoint: the pending record written, its veth made, no port yet.
    case endpointVethMade = "endpoint.veth-made"
    /// Join: before the record says joined.
    case joinStarted = "join.started"
    /// CNI ADD: the pending record written, the interface made, no port yet.
    case cniLinkMade = "cni.link-made"

    /// Does nothing in a release build: no environment variable can kill a production netkeep.
    public func check() {
        #if DEBUG
        guard let value = getenv("NETKEEP_FAULT"), String(cString: value) == rawValue else { return }
        kill(getpid(), SIGKILL)
        #endif
    }
}

import Logging

extension HostEnvironment {
    /// Takes the state directory's exclusive lock, saying so when it must wait.
    public func lockState(logger: Logger) throws(Failure) -> StateLock {
        do {
            return try store.lock(timeout: lockTimeout) { holder in
                logger.notice("waiting for the state lock held by \(holder.map { "pid \($0)" } ?? "another netkeep")")
            }
        } catch { throw Failure.from(error) }
    }

    public func loadState() throws(Failure) -> State {
        do { return try store.load() } catch { throw Failure.from(error) }
    }

    /// The one way records change: the lock, the file as it is now, the
    /// change, the write. The lock is held for no more than that (DESIGN.md
    /// rule 7); work on the network happens under container claims instead.
    /// Returns the state as written (or as read, when `change` kept it).
    @discardableResult
    public func updateRecords(logger: Logger, _ change: (inout State) throws(Failure) -> Void) throws(Failure) -> State {
        let lock = try lockState(logger: logger)
        defer { lock.release() }
        let before = try loadState()
        var state = before
        try change(&state)
        if state != before { try saveState(state) }
        return state
    }

    /// Claims of the containers a pass will change (see `ContainerClaims`).
    public func claims() throws(Failure) -> ContainerClaims {
        do { return try ContainerClaims(directory: stateDirectory) } catch { throw Failure.from(error) }
    }

    /// Takes the claims of `ids`, saying so when it must wait.
    public func claim(_ ids: some Sequence<String>, in claims: ContainerClaims, logger: Logger) throws(Failure) {
        do {
            try claims.claim(ids, timeout: lockTimeout) { id in
                logger.notice("waiting for \(ClaimKey.describe(id)): another netkeep is changing it")
            }
        } catch { throw Failure.from(error) }
    }

    /// The claims of `keys`, taken (waiting up to `lockTimeout` for each) and
    /// held until the value is released: what a plugin request or a CNI call
    /// holds while it changes a record's pieces.
    public func hold(_ keys: some Sequence<String>, logger: Logger) throws(Failure) -> ContainerClaims {
        let held = try claims()
        do { try claim(keys, in: held, logger: logger) } catch {
            held.release()
            throw error
        }
        return held
    }

    /// Saves the state, stamped with the current boot id.
    public func saveState(_ state: State) throws(Failure) {
        var state = state
        state.bootID = Self.bootID()
        guard adapters.mayWriteState() else { throw Failure.stateIO("state not written: the process is gone") }
        do { try store.save(state) } catch { throw Failure.from(error) }
    }
}
