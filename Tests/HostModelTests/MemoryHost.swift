#if canImport(Glibc)
import Glibc
#endif
import DHCP
@testable import DockerEngine
import Foundation
import Logging
import NetkeepCore
@testable import NetkeepService
@testable import Netlink
@testable import OVSDB

/// An in-memory host: Docker's containers, their namespaces, the host's
/// links, OVSDB, a DHCP server and /var/run/netns, behind the same seams as
/// the real ones. A crash is modelled as a process that dies after `budget`
/// changes: every later call fails and changes nothing (the state file
/// included), as after a SIGKILL.
final class MemoryHost: @unchecked Sendable {
    struct InsideLink: Equatable {
        var index: Int32
        var mac: MACAddress
        var mtu: Int
        var up: Bool
        /// The host end of the veth; nil for `lo`.
        var hostPeer: String?
    }

    struct HostLink: Equatable {
        var index: Int32
        var mtu: Int
        var up: Bool
        /// The namespace and name of the peer.
        var peer: (ns: UInt64, name: String)?
        static func == (a: HostLink, b: HostLink) -> Bool {
            a.index == b.index && a.mtu == b.mtu && a.up == b.up && a.peer?.ns == b.peer?.ns && a.peer?.name == b.peer?.name
        }
    }

    struct Namespace: Equatable {
        var links: [String: InsideLink] = [:]
        var addresses: [String: [IPv4CIDR]] = [:]
        var defaultRoutes: [ContainerNetwork.DefaultRoute] = []
    }

    struct ContainerRow: Equatable {
        var id: String
        var name: String
        var running: Bool
        var pid: Int32
        var ns: UInt64
        var labels: [String: String] = [:]
    }

    struct Port: Equatable {
        var bridge: String
        var tag: Int?
        var externalIDs: [String: String]
    }

    enum NetnsTarget: Equatable { case proc(Int32), other }

    /// Everything, as one value: a test copies it to rewind the host.
    struct World: Equatable {
        var containers: [String: ContainerRow] = [:]
        var namespaces: [UInt64: Namespace] = [:]
        var hostLinks: [String: HostLink] = [:]
        var bridges: [String: String] = [:]
        var ports: [String: Port] = [:]
        var netns: [String: NetnsTarget] = [:]
        /// The DHCP server's leases by client MAC, and what it was given back.
        var leases: [MACAddress: IPv4CIDR] = [:]
        var released: [MACAddress] = []
        var nextPID: Int32 = 100
        var nextNS: UInt64 = 1
        var nextIndex: Int32 = 10
        var nextAddress: UInt32 = 10
        var config: Int64 = 1
        var now = Timestamp(secondsSinceEpoch: 1_800_000_000)
    }

    static let network = IPv4Address(10, 1, 2, 0)
    static let router = try! IPv4Address(parsing: "10.1.2.1")
    static let server = try! IPv4Address(parsing: "10.1.2.2")

    private let lock = NSLock()
    private var world = World()
    /// Changes allowed before the process "dies"; nil: no crash.
    private var budget: Int?
    private(set) var changes = 0
    private(set) var dead = false

    struct Died: Error, CustomStringConvertible { var description: String { "the process is gone (crash injected)" } }

    var snapshot: World {
        get { lock.withLock { world } }
        set { lock.withLock { world = newValue } }
    }

    /// Starts counting changes; the one after `budget` kills the process.
    func arm(crashAfter budget: Int?) {
        lock.withLock { self.budget = budget; changes = 0; dead = false }
    }

    /// One change to the world; refused (and the process dead) beyond the budget.
    func change<T>(_ body: (inout World) throws -> T) throws -> T {
        try lock.withLock {
            if dead { throw Died() }
            if let budget, changes >= budget { dead = true; throw Died() }
            changes += 1
            return try body(&world)
        }
    }

    func read<T>(_ body: (World) throws -> T) throws -> T {
        try lock.withLock {
            if dead { throw Died() }
            return try body(world)
        }
    }

    /// A dead process reads nothing; callers that cannot fail get `fallback`.
    func peek<T>(_ fallback: T, _ body: (World) -> T) -> T { lock.withLock { dead ? fallback : body(world) } }

    // MARK: The world's own events (Docker, not netkeep)

    @discardableResult
    func run(name: String, labels: [String: String] = [:]) -> String {
        lock.withLock {
            let id = (0..<4).map { _ in String(format: "%016llx", UInt64(world.nextPID) &* 0x9E3779B97F4A7C15 &+ UInt64(name.count)) }.joined()
            world.containers[id] = ContainerRow(id: id, name: name, running: false, pid: 0, ns: 0, labels: labels)
            start(id, in: &world)
            return id
        }
    }

    func restart(_ id: String) { lock.withLock { stop(id, in: &world); start(id, in: &world) } }
    func stop(_ id: String) { lock.withLock { stop(id, in: &world) } }
    func remove(_ id: String) { lock.withLock { stop(id, in: &world); world.containers[id] = nil } }

    private func start(_ id: String, in w: inout World) {
        guard var c = w.containers[id], !c.running else { return }
        c.running = true
        c.pid = w.nextPID
        w.nextPID += 1
        c.ns = w.nextNS
        w.nextNS += 1
        w.namespaces[c.ns] = Namespace(links: ["lo": InsideLink(index: 1, mac: try! MACAddress(parsing: "00:00:00:00:00:00"), mtu: 65536, up: true)])
        w.containers[id] = c
    }

    /// The namespace dies with the container's last process, and with it every veth that has an end inside.
    private func stop(_ id: String, in w: inout World) {
        guard var c = w.containers[id], c.running else { return }
        for (name, link) in w.hostLinks where link.peer?.ns == c.ns { w.hostLinks[name] = nil }
        w.namespaces[c.ns] = nil
        c.running = false
        c.pid = 0
        c.ns = 0
        w.containers[id] = c
    }

    // MARK: Seams

    var adapters: HostAdapters {
        HostAdapters(openVSwitch: { () throws(OVSDBError) in
                         do { try self.read { _ in } } catch { throw OVSDBError.unreachable(SystemError("connect", "ovsdb", errno: ECONNREFUSED)) }
                         return MemoryVSwitch(host: self)
                     },
                     docker: MemoryDocker(host: self),
                     openHostLinks: { () throws(NetlinkError) in
                         do { try self.read { _ in } } catch { throw NetlinkError(operation: "socket", errno: ESRCH) }
                         return MemoryHostLinks(host: self)
                     },
                     namespaces: MemoryNamespaces(host: self), dhcp: MemoryDHCP(host: self), netns: MemoryNetns(host: self),
                     now: { self.peek(Timestamp(secondsSinceEpoch: 0)) { $0.now } },
                     mayWriteState: { (try? self.change { _ in }) != nil },
                     parallel: false)
    }

    static func sandbox(_ ns: UInt64) -> String { "/memory/netns/\(ns)" }
    static func namespaceID(_ ns: UInt64) -> NamespaceID { NamespaceID(device: 7, inode: ns) }

    static func link(_ name: String, _ l: HostLink) -> Link {
        Link(index: l.index, name: name, mac: nil, mtu: l.mtu, flags: l.up ? 1 : 0, kind: "veth", peerIndex: nil, linkNetnsID: nil)
    }

    /// The lease the server gives `mac`: the one it holds, or the next free address.
    static func grant(_ mac: MACAddress, in w: inout World) -> IPv4CIDR {
        if let held = w.leases[mac] { return held }
        let cidr = try! IPv4CIDR(address: IPv4Address(network.value + w.nextAddress), prefixLength: 24)
        w.nextAddress += 1
        w.leases[mac] = cidr
        return cidr
    }
}

/// The container a PID belongs to, when it runs.
extension MemoryHost.World {
    func container(pid: Int32) -> MemoryHost.ContainerRow? { containers.values.first { $0.running && $0.pid == pid } }
}

final class MemoryVSwitch: VSwitchAccess {
    let host: MemoryHost
    init(host: MemoryHost) { self.host = host }

    private func died(_ op: String) -> OVSDBError { .unreachable(SystemError(op, "ovsdb", errno: ECONNRESET)) }

    func snapshot() throws(OVSDBError) -> VSwitchSnapshot {
        do {
            return try host.read { w in
                let bridges = w.bridges.keys.sorted().map { b in
                    BridgeRow(uuid: "b-\(b)", name: b, datapathType: w.bridges[b]!,
                              portUUIDs: w.ports.filter { $0.value.bridge == b }.keys.sorted().map { "p-\($0)" })
                }
                let ports = w.ports.keys.sorted().map { p in
                    PortRow(uuid: "p-\(p)", name: p, tag: w.ports[p]!.tag, interfaceUUIDs: ["i-\(p)"], externalIDs: [:])
                }
                // A row whose device is gone is in error, as after a reboot.
                let interfaces = w.ports.keys.sorted().map { p in
                    let alive = w.hostLinks[p] != nil
                    return InterfaceRow(uuid: "i-\(p)", name: p, type: "", ofport: alive ? 1 : -1,
                                        error: alive ? nil : "could not open network device \(p) (No such device)",
                                        externalIDs: w.ports[p]!.externalIDs)
                }
                return VSwitchSnapshot(bridges: bridges, ports: ports, interfaces: interfaces)
            }
        } catch { throw died("snapshot") }
    }

    func deletePorts(named names: [String], comment: String, in snapshot: VSwitchSnapshot?) throws(OVSDBError) -> (deleted: [String], nextConfig: Int64?) {
        do {
            return try host.change { w in
                let deleted = names.filter { w.ports[$0] != nil }
                for name in deleted { w.ports[name] = nil }
                w.config += 1
                return (deleted, w.config)
            }
        } catch { throw died("delete ports") }
    }

    func addPorts(_ specs: [PortSpec], retag: [(port: String, tag: Int?)], comment: String) throws(OVSDBError) -> Int64? {
        let result: Result<Int64, OVSDBError>
        do {
            result = try host.change { w in
                // One transaction: all or nothing, as OVSDB does it.
                for (i, spec) in specs.enumerated() {
                    if w.ports[spec.name] != nil { return .failure(.transaction(index: i, error: "constraint violation", details: "port \(spec.name) exists")) }
                    if w.bridges[spec.bridge] == nil { return .failure(.transaction(index: i, error: "referential integrity violation", details: spec.bridge)) }
                }
                for (i, r) in retag.enumerated() where w.ports[r.port] == nil {
                    return .failure(.transaction(index: specs.count + i, error: "no port", details: r.port))
                }
                for spec in specs { w.ports[spec.name] = MemoryHost.Port(bridge: spec.bridge, tag: spec.tag, externalIDs: spec.interfaceExternalIDs) }
                for r in retag { w.ports[r.port]!.tag = r.tag }
                w.config += 1
                return .success(w.config)
            }
        } catch { throw died("add ports") }
        return try result.get()
    }

    func addExternalIDs(_ items: [(interface: String, ids: [String: String])], comment: String) throws(OVSDBError) {
        do {
            try host.change { w in
                for item in items { w.ports[item.interface]?.externalIDs.merge(item.ids) { $1 } }
            }
        } catch { throw died("external ids") }
    }

    func waitApplied(_ nextConfig: Int64?, timeout: Double) throws(OVSDBError) -> Bool {
        do { try host.read { _ in } } catch { throw died("wait") }
        return true
    }

    func close() {}
}

struct MemoryDocker: DockerAccess {
    let host: MemoryHost

    private var died: DockerError { .unreachable(SystemError("connect", "docker.sock", errno: ECONNREFUSED)) }

    func list() throws(DockerError) -> [Container] {
        do {
            return try host.read { w in
                w.containers.values.sorted { $0.id < $1.id }.map { Container(id: $0.id, name: $0.name, running: $0.running, pid: 0, status: $0.running ? "running" : "exited", labels: $0.labels) }
            }
        } catch { throw died }
    }

    func inspect(_ reference: String) throws(DockerError) -> Container {
        guard Names.isContainerReference(reference) else { throw .invalidReference(reference) }
        let found: MemoryHost.ContainerRow?
        do {
            found = try host.read { w in
                w.containers.values.first { $0.id == reference || $0.name == reference || (reference.count >= 12 && $0.id.hasPrefix(reference)) }
            }
        } catch { throw died }
        guard let c = found else { throw .noSuchContainer(reference) }
        return Container(id: c.id, name: c.name, running: c.running, pid: c.pid, status: c.running ? "running" : "exited",
                         networkMode: "none", sandboxKey: c.running ? MemoryHost.sandbox(c.ns) : "", labels: c.labels)
    }

    func engine() throws(DockerError) -> EngineIdentity {
        do { try host.read { _ in } } catch { throw died }
        return EngineIdentity(id: "MEMORY:ENGINE", rootDir: "/var/lib/docker")
    }
}

struct MemoryHostLinks: LinkAccess {
    let host: MemoryHost

    private func died(_ op: String) -> NetlinkError { NetlinkError(operation: op, errno: ESRCH) }

    func links() throws(NetlinkError) -> [Link] {
        do { return try host.read { w in w.hostLinks.sorted { $0.key < $1.key }.map { MemoryHost.link($0.key, $0.value) } } } catch { throw died("ip link show") }
    }

    func link(named name: String) throws(NetlinkError) -> Link? {
        do { return try host.read { w in w.hostLinks[name].map { MemoryHost.link(name, $0) } } } catch { throw died("ip link show \(name)") }
    }

    @discardableResult
    func deleteLink(named name: String) throws(NetlinkError) -> Bool {
        do {
            return try host.change { w in
                guard let link = w.hostLinks.removeValue(forKey: name) else { return false }
                if let peer = link.peer { w.namespaces[peer.ns]?.links[peer.name] = nil; w.namespaces[peer.ns]?.addresses[peer.name] = nil
                    w.namespaces[peer.ns]?.defaultRoutes.removeAll { $0.ifname == peer.name } }
                return true
            }
        } catch { throw died("ip link del \(name)") }
    }

    func setUp(index: Int32, _ up: Bool, name: String) throws(NetlinkError) {
        let found: Bool
        do {
            found = try host.change { w in
                guard w.hostLinks[name]?.index == index else { return false }
                w.hostLinks[name]!.up = up
                return true
            }
        } catch { throw died("ip link set \(name) up") }
        if !found { throw NetlinkError(operation: "ip link set \(name) up", errno: ENODEV) }
    }
}

struct MemoryNamespaces: NamespaceAccess {
    let host: MemoryHost

    func enter(pid: Int32, expecting expected: NamespaceID?) throws -> any ContainerLinks {
        let ns = try host.read { w -> UInt64? in
            guard let c = w.container(pid: pid) else { return nil }
            return c.ns
        }
        guard let ns else { throw SystemError("open", "/proc/\(pid)/ns/net", errno: ENOENT) }
        if let expected, expected != MemoryHost.namespaceID(ns) {
            throw SystemError("open", "/proc/\(pid)/ns/net", errno: ESTALE, detail: "not the namespace observed")
        }
        return MemoryContainerLinks(host: host, ns: ns)
    }

    func namespaceID(ofSandbox path: String) -> NamespaceID? {
        guard path.hasPrefix("/memory/netns/"), let n = UInt64(path.dropFirst(14)) else { return nil }
        return MemoryHost.namespaceID(n)
    }

    func network(pid: Int32, sandbox: String?) -> Result<ContainerNetwork, SystemError> {
        let seen = try? host.read { w -> (UInt64, MemoryHost.Namespace)? in
            guard let c = w.container(pid: pid), let ns = w.namespaces[c.ns] else { return nil }
            return (c.ns, ns)
        }
        guard let (id, ns) = seen ?? nil else { return .failure(SystemError("open", "/proc/\(pid)/ns/net", errno: ENOENT)) }
        if let sandbox, let expected = namespaceID(ofSandbox: sandbox), expected != MemoryHost.namespaceID(id) {
            return .failure(SystemError("open", "/proc/\(pid)/ns/net", errno: ESTALE))
        }
        let links = ns.links.reduce(into: [String: ObservedLink]()) { out, item in
            out[item.key] = ObservedLink(name: item.key, index: item.value.index, kind: item.value.hostPeer == nil ? nil : "veth",
                                         mac: item.value.mac, mtu: item.value.mtu, isUp: item.value.up)
        }
        return .success(ContainerNetwork(links: links, addresses: ns.addresses, defaultRoutes: ns.defaultRoutes, namespace: MemoryHost.namespaceID(id)))
    }
}

/// What LinkMaker does, one change per netlink request it would send.
final class MemoryContainerLinks: ContainerLinks {
    let host: MemoryHost
    let ns: UInt64
    init(host: MemoryHost, ns: UInt64) { self.host = host; self.ns = ns }

    private func inNamespace<T>(_ w: inout MemoryHost.World, _ body: (inout MemoryHost.Namespace) throws -> T) throws -> T {
        guard var n = w.namespaces[ns] else { throw NetlinkError(operation: "netlink", errno: EINVAL) }
        defer { w.namespaces[ns] = n }
        return try body(&n)
    }

    func insideLink(named name: String) throws -> Link? {
        try host.read { w in
            w.namespaces[ns]?.links[name].map { Link(index: $0.index, name: name, mac: $0.mac, mtu: $0.mtu, flags: $0.up ? 1 : 0, kind: "veth", peerIndex: nil, linkNetnsID: nil) }
        }
    }

    func insideRoutes() throws -> [Route] {
        try host.read { w in
            (w.namespaces[ns]?.defaultRoutes ?? []).map { Route(destination: nil, prefixLength: 0, gateway: $0.gateway, outputIndex: w.namespaces[ns]?.links[$0.ifname]?.index) }
        }
    }

    func create(_ a: Attachment, userspaceBridge: Bool, hostUp: Bool) throws {
        try host.change { w in
            guard w.hostLinks[a.hostIfname] == nil else { throw NetlinkError(operation: "ip link add \(a.hostIfname)", errno: EEXIST) }
            let index = w.nextIndex
            try inNamespace(&w) { n in
                guard n.links[a.ifname] == nil else { throw NetlinkError(operation: "ip link add \(a.ifname)", errno: EEXIST) }
                n.links[a.ifname] = MemoryHost.InsideLink(index: index, mac: a.mac, mtu: a.mtu, up: false, hostPeer: a.hostIfname)
            }
            w.hostLinks[a.hostIfname] = MemoryHost.HostLink(index: w.nextIndex + 1, mtu: a.mtu, up: false, peer: (ns, a.ifname))
            w.nextIndex += 2
        }
        try configureInside(a, fixes: nil)
        if hostUp {
            let link = try MemoryHostLinks(host: host).link(named: a.hostIfname)
            guard let link else { throw NetlinkError(operation: "ip link show \(a.hostIfname)", errno: ENODEV) }
            try MemoryHostLinks(host: host).setUp(index: link.index, true, name: a.hostIfname)
        }
    }

    func delete(_ a: Attachment) throws {
        try MemoryHostLinks(host: host).deleteLink(named: a.hostIfname)
        if try insideLink(named: a.ifname)?.mac == a.mac {
            try host.change { w in try inNamespace(&w) { n in n.links[a.ifname] = nil; n.addresses[a.ifname] = nil; n.defaultRoutes.removeAll { $0.ifname == a.ifname } } }
        }
    }

    func configureInside(_ a: Attachment, fixes: [InterfaceFix]?) throws {
        guard try insideLink(named: a.ifname) != nil else { throw NetlinkError(operation: "ip link show \(a.ifname)", errno: ENODEV) }
        var all = fixes ?? [.containerUp]
        if fixes == nil, a.mode == .static {
            all += (a.address.map { [.address($0)] } ?? []) + (a.gateway.map { [.defaultRoute($0)] } ?? [])
        }
        for fix in all {
            try host.change { w in
                switch fix {
                case .containerMTU, .containerUp, .address, .defaultRoute:
                    try inNamespace(&w) { n in
                        guard n.links[a.ifname] != nil else { throw NetlinkError(operation: "ip link show \(a.ifname)", errno: ENODEV) }
                        switch fix {
                        case .containerMTU: n.links[a.ifname]!.mtu = a.mtu
                        case .containerUp: n.links[a.ifname]!.up = true
                        case .address(let cidr):
                            if n.addresses[a.ifname, default: []].contains(cidr) { throw NetlinkError(operation: "ip addr add \(cidr)", errno: EEXIST) }
                            n.addresses[a.ifname, default: []].append(cidr)
                        case .defaultRoute(let gw):
                            if !n.defaultRoutes.isEmpty { throw NetlinkError(operation: "ip route add default via \(gw)", errno: EEXIST) }
                            n.defaultRoutes.append(.init(gateway: gw, ifname: a.ifname))
                        default: break
                        }
                    }
                case .hostMTU, .hostUp:
                    guard w.hostLinks[a.hostIfname] != nil else { throw NetlinkError(operation: "ip link show \(a.hostIfname)", errno: ENODEV) }
                    if case .hostMTU = fix { w.hostLinks[a.hostIfname]!.mtu = a.mtu } else { w.hostLinks[a.hostIfname]!.up = true }
                }
            }
        }
    }
}

/// The DHCP server and LeaseKeeper's part of the exchanges: a lease per
/// MAC, the same address again for a known client.
struct MemoryDHCP: DHCPAccess {
    let host: MemoryHost
    static let leaseSeconds: Int64 = 3600

    /// LeaseKeeper.configure: the address as the interface's only one, and the default route.
    private func configure(_ a: Attachment, pid: Int32, address: IPv4CIDR?, router: IPv4Address?) -> String? {
        do {
            return try host.change { w -> String? in
                guard let c = w.container(pid: pid), var n = w.namespaces[c.ns] else { return "no such process" }
                guard n.links[a.ifname] != nil else { return "\(a.ifname) is missing" }
                n.addresses[a.ifname] = address.map { [$0] } ?? []
                if let router, !n.defaultRoutes.contains(where: { $0.ifname == a.ifname && $0.gateway == router }), n.defaultRoutes.isEmpty {
                    n.defaultRoutes.append(.init(gateway: router, ifname: a.ifname))
                }
                w.namespaces[c.ns] = n
                return nil
            }
        } catch { return "\(error)" }
    }

    func prepare(_ jobs: [LeaseKeeper.Job], now: Timestamp, logger: Logger) -> [LeaseKeeper.Job] {
        jobs.map { job in
            guard case .initReboot = job.goal, let lease = job.attachment.lease, lease.isValid(at: now) else { return job }
            var job = job
            job.addressInPlace = configure(job.attachment, pid: job.pid, address: lease.address, router: lease.router) == nil
            return job
        }
    }

    func run(_ jobs: [LeaseKeeper.Job], now: Timestamp, logger: Logger) -> [LeaseKeeper.Result] {
        jobs.map { job in
            var a = job.attachment
            if case .release = job.goal {
                do {
                    try host.change { w in
                        w.leases[a.mac] = nil
                        w.released.append(a.mac)
                    }
                    return LeaseKeeper.Result(attachment: a, error: nil)
                } catch { return LeaseKeeper.Result(attachment: a, error: "\(error)") }
            }
            // The exchange: the server records the lease, then the client applies it.
            let granted: IPv4CIDR
            do {
                granted = try host.change { w in
                    guard w.container(pid: job.pid) != nil else { throw SystemError("open", "/proc/\(job.pid)/ns/net", errno: ENOENT) }
                    return MemoryHost.grant(a.mac, in: &w)
                }
            } catch { return LeaseKeeper.Result(attachment: a, error: "DHCP socket in \(a.containerName) \(a.ifname): \(error)") }
            a.lease = Lease(address: granted, router: MemoryHost.router, serverID: MemoryHost.server, leaseSeconds: Self.leaseSeconds,
                            renewSeconds: Self.leaseSeconds / 2, rebindSeconds: Self.leaseSeconds * 7 / 8, obtainedAt: now,
                            renewAt: now.adding(seconds: Self.leaseSeconds / 2), rebindAt: now.adding(seconds: Self.leaseSeconds * 7 / 8),
                            dnsServers: [], confirmed: true)
            a.address = granted
            a.gateway = MemoryHost.router
            return LeaseKeeper.Result(attachment: a, error: configure(a, pid: job.pid, address: granted, router: MemoryHost.router))
        }
    }

    func release(_ attachments: [Attachment], vswitch: (any VSwitchAccess)?, userspaceBridges: Set<String>, now: Timestamp,
                 logger: Logger, audit: Audit) -> [ReleaseStation.Outcome] {
        let leased = attachments.filter { $0.mode == .dhcp && ($0.lease?.isValid(at: now) ?? false) }
        guard !leased.isEmpty else { return [] }
        do {
            try host.change { w in
                for a in leased { w.leases[a.mac] = nil; w.released.append(a.mac) }
            }
            return leased.map { ReleaseStation.Outcome(attachment: $0, confirmed: true, error: nil) }
        } catch {
            return leased.map { ReleaseStation.Outcome(attachment: $0, confirmed: false, error: "\(error)") }
        }
    }
}

struct MemoryNetns: NetnsAccess {
    let host: MemoryHost

    func path(_ name: String) -> String { "/memory/run/netns/\(name)" }

    func link(_ name: String, pid: Int32) throws(SystemError) -> NetnsLinks.Outcome {
        do {
            return try host.change { w in
                switch w.netns[name] {
                case .other?: return .skipped(reason: "\(name) is not a /proc link")
                case .proc(pid)?: return .unchanged
                case .proc(let old)?:
                    w.netns[name] = .proc(pid)
                    return .replaced(previous: NetnsLinks.target(pid: old))
                case nil:
                    w.netns[name] = .proc(pid)
                    return .created
                }
            }
        } catch { throw SystemError("symlink", path(name), errno: ESRCH) }
    }

    func linkedPID(_ name: String) -> Int32? {
        host.peek(nil) { w in if case .proc(let pid)? = w.netns[name] { return pid } else { return nil } }
    }

    func removeLink(_ name: String) -> Bool {
        (try? host.change { w in w.netns[name] = nil }) != nil
    }

    func exists(_ name: String) -> Bool { host.peek(false) { $0.netns[name] != nil } }

    func names() -> [String]? { host.peek(nil) { Array($0.netns.keys) } }

    func processExists(_ pid: Int32) -> Bool { host.peek(false) { $0.container(pid: pid) != nil } }
}
