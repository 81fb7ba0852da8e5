#if canImport(Glibc)
import Glibc
#endif
import DockerEngine
import HostIO
import Logging
import NetkeepCore
import Netlink
import OVSDB

// The seams between netkeep's passes and the host: only the calls the
// observer, the executor and the commands make. The real types conform as
// they are; HostModelTests hands in an in-memory host instead.

/// OVSDB: one snapshot, the two transactions of a pass, port claims.
public protocol VSwitchAccess: AnyObject {
    func snapshot() throws(OVSDBError) -> VSwitchSnapshot
    func deletePorts(named names: [String], comment: String, in snapshot: VSwitchSnapshot?) throws(OVSDBError) -> (deleted: [String], nextConfig: Int64?)
    func addPorts(_ specs: [PortSpec], retag: [(port: String, tag: Int?)], comment: String) throws(OVSDBError) -> Int64?
    func addExternalIDs(_ items: [(interface: String, ids: [String: String])], comment: String) throws(OVSDBError)
    func waitApplied(_ nextConfig: Int64?, timeout: Double) throws(OVSDBError) -> Bool
    func close()
}

extension VSwitchAccess {
    func deletePorts(named names: [String], comment: String) throws(OVSDBError) -> (deleted: [String], nextConfig: Int64?) {
        try deletePorts(named: names, comment: comment, in: nil)
    }

    func addPorts(_ specs: [PortSpec], comment: String) throws(OVSDBError) -> Int64? {
        try addPorts(specs, retag: [], comment: comment)
    }

    func waitApplied(_ nextConfig: Int64?) throws(OVSDBError) -> Bool { try waitApplied(nextConfig, timeout: 5) }
}

extension VSwitchClient: VSwitchAccess {}

/// The Docker Engine API as a pass asks it.
public protocol DockerAccess: Sendable {
    func list() throws(DockerError) -> [Container]
    func inspect(_ reference: String) throws(DockerError) -> Container
    func engine() throws(DockerError) -> EngineIdentity
}

extension DockerClient: DockerAccess {}

/// The host namespace's links.
public protocol LinkAccess {
    func links() throws(NetlinkError) -> [Link]
    func link(named name: String) throws(NetlinkError) -> Link?
    @discardableResult func deleteLink(named name: String) throws(NetlinkError) -> Bool
    func setUp(index: Int32, _ up: Bool, name: String) throws(NetlinkError)
}

extension NetlinkSession: LinkAccess {}

/// One container's namespace, entered once: what `LinkMaker` does to an
/// attachment's veth, and what attach checks inside first.
protocol ContainerLinks: AnyObject {
    func insideLink(named name: String) throws -> Link?
    func insideRoutes() throws -> [Route]
    func create(_ a: Attachment, userspaceBridge: Bool, hostUp: Bool) throws
    func delete(_ a: Attachment) throws
    func configureInside(_ a: Attachment, fixes: [InterfaceFix]?) throws
}

extension LinkMaker: ContainerLinks {
    func insideLink(named name: String) throws -> Link? { try inside.link(named: name) }
    func insideRoutes() throws -> [Route] { try inside.routes() }
}

/// Containers' network namespaces: read (observer) and changed (executor, attach).
protocol NamespaceAccess: Sendable {
    /// Enters the namespace of `pid`, which must be `expected` when given.
    func enter(pid: Int32, expecting expected: NamespaceID?) throws -> any ContainerLinks
    /// The namespace behind Docker's SandboxKey.
    func namespaceID(ofSandbox path: String) -> NamespaceID?
    /// Links, addresses and routes inside, when the namespace of `pid` is the one behind `sandbox`.
    func network(pid: Int32, sandbox: String?) -> Result<ContainerNetwork, SystemError>
}

struct HostNamespaces: NamespaceAccess {
    func enter(pid: Int32, expecting expected: NamespaceID?) throws -> any ContainerLinks {
        try LinkMaker(pid: pid, expecting: expected)
    }

    func namespaceID(ofSandbox path: String) -> NamespaceID? { NetworkNamespace.id(ofPath: path) }

    func network(pid: Int32, sandbox: String?) -> Result<ContainerNetwork, SystemError> { Observer.network(pid: pid, sandbox: sandbox) }
}

/// The DHCP exchanges: LeaseKeeper's jobs inside containers, and the release
/// station for containers that are gone.
protocol DHCPAccess: Sendable {
    func prepare(_ jobs: [LeaseKeeper.Job], now: Timestamp, logger: Logger) -> [LeaseKeeper.Job]
    func run(_ jobs: [LeaseKeeper.Job], now: Timestamp, logger: Logger) -> [LeaseKeeper.Result]
    func release(_ attachments: [Attachment], vswitch: (any VSwitchAccess)?, userspaceBridges: Set<String>, now: Timestamp,
                 logger: Logger, audit: Audit) -> [ReleaseStation.Outcome]
}

struct HostDHCP: DHCPAccess {
    func prepare(_ jobs: [LeaseKeeper.Job], now: Timestamp, logger: Logger) -> [LeaseKeeper.Job] {
        LeaseKeeper(logger: logger).prepare(jobs, now: now)
    }

    func run(_ jobs: [LeaseKeeper.Job], now: Timestamp, logger: Logger) -> [LeaseKeeper.Result] {
        LeaseKeeper(logger: logger).run(jobs, now: now)
    }

    func release(_ attachments: [Attachment], vswitch: (any VSwitchAccess)?, userspaceBridges: Set<String>, now: Timestamp,
                 logger: Logger, audit: Audit) -> [ReleaseStation.Outcome] {
        ReleaseStation(logger: logger, audit: audit).run(attachments, vswitch: vswitch, userspaceBridges: userspaceBridges, now: now)
    }
}

/// /var/run/netns and the processes its links point at.
public protocol NetnsAccess: Sendable {
    func path(_ name: String) -> String
    func link(_ name: String, pid: Int32) throws(SystemError) -> NetnsLinks.Outcome
    func linkedPID(_ name: String) -> Int32?
    func removeLink(_ name: String) -> Bool
    /// Whether anything (a link, an `ip netns add` mount) has that name.
    func exists(_ name: String) -> Bool
    /// Every name in the directory; nil when it cannot be read.
    func names() -> [String]?
    func processExists(_ pid: Int32) -> Bool
}

extension NetnsLinks: NetnsAccess {
    public func exists(_ name: String) -> Bool { Files.kind(path(name)) != .missing }

    public func names() -> [String]? {
        guard let dir = opendir(directory) else { return errno == ENOENT ? [] : nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." || name.hasPrefix(".") { continue }
            names.append(name)
        }
        return names
    }

    public func processExists(_ pid: Int32) -> Bool { Self.processExists(pid) }
}

/// Everything a pass touches on the host, in one value.
public struct HostAdapters: Sendable {
    var openVSwitch: @Sendable () throws(OVSDBError) -> any VSwitchAccess
    var docker: any DockerAccess
    var openHostLinks: @Sendable () throws(NetlinkError) -> any LinkAccess
    var namespaces: any NamespaceAccess
    var dhcp: any DHCPAccess
    var netns: any NetnsAccess
    /// The wall clock (see HostEnvironment.now()).
    var now: @Sendable () -> Timestamp
    /// Asked before every state write; false: the process is gone (the
    /// in-memory host's crash, which SIGKILL is on a real one).
    var mayWriteState: @Sendable () -> Bool
    /// Link work of several containers on all cores; off for a host whose
    /// crash point must fall on the same call every run.
    var parallel = true

    /// The real host, at the environment's paths.
    static func real(_ environment: HostEnvironment) -> HostAdapters {
        let ovsdbSocket = environment.ovsdbSocket
        return HostAdapters(openVSwitch: { () throws(OVSDBError) in try VSwitchClient(socketPath: ovsdbSocket) },
                            docker: environment.docker, openHostLinks: { () throws(NetlinkError) in try NetlinkSession.open() },
                            namespaces: HostNamespaces(), dhcp: HostDHCP(), netns: environment.netnsLinks,
                            now: { HostEnvironment.now() }, mayWriteState: { true })
    }
}

extension LinkAccess {
    func setUp(index: Int32, name: String) throws(NetlinkError) { try setUp(index: index, true, name: name) }
}
