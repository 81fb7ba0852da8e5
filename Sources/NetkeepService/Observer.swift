#if canImport(Glibc)
import Glibc
#endif
import DockerEngine
import HostIO
import NetkeepCore
import Netlink
import OVSDB

/// One look at the host: Docker (list + inspect), OVSDB (one snapshot),
/// netlink (host links, then every attached container's links, addresses and
/// routes), /var/run/netns. A source that fails is reported as unknown, never
/// as empty.
public struct Observation: Sendable {
    public var host: ObservedHost
    public var snapshot: VSwitchSnapshot?
}

/// What one pass looks at: the whole host, or one container's attachments
/// (the daemon's answer to a Docker event).
public enum ReconcileScope: Equatable, Sendable {
    case host
    /// These containers' attachments only (only their own things can be
    /// collected). `stopped` ones are known to be stopped from their `die`
    /// event and are not asked about, unless a recorded process still runs.
    case containers(Set<String>, stopped: Set<String> = [])

    public static func container(_ id: String) -> ReconcileScope { .containers([id]) }

    var containerIDs: Set<String>? {
        if case .containers(let ids, _) = self { return ids }
        return nil
    }
}

struct Observer {
    let environment: HostEnvironment

    var adapters: HostAdapters { environment.adapters }

    func observe(_ state: State, scope: ReconcileScope = .host, vswitch: (any VSwitchAccess)?, timings: inout PhaseTimings) -> Observation {
        // One moment for the whole look: what is skipped as not yet due is not due for the planner either.
        let now = environment.now()
        var snapshot: VSwitchSnapshot?
        var ovsError: String?
        timings.measure("observe ovsdb") {
            guard let vswitch else { ovsError = "could not connect"; return }
            do { snapshot = try vswitch.snapshot() } catch { ovsError = "\(error)" }
        }
        let ovs = snapshot.map(Self.view)
        var engine: EngineIdentity?
        var engineError: String?
        var sandboxes: [String: String] = [:]
        var docker = timings.measure("observe docker") { () -> DockerView in
            let view: DockerView
            var removals = false
            if case .containers(let ids, let stopped) = scope {
                (view, sandboxes) = observeContainers(ids, stopped: stopped, state: state)
                if case .answered(_, let removed) = view { removals = !removed.isEmpty }
            } else {
                (view, sandboxes) = observeDocker(state, ovs: ovs, now: now)
                removals = true
            }
            // Who answered matters only where a 404 may remove something.
            if removals, case .answered = view {
                do { engine = try adapters.docker.engine() } catch { engineError = "\(error)" }
            }
            return view
        }
        var hostLinks: [String: ObservedLink]?
        var networks: [String: ContainerNetwork] = [:]
        var unreadable: [String: String] = [:]
        timings.measure("observe netlink") {
            if scope.containerIDs != nil {
                // Only the attachments' own host ends: a GETLINK each instead of a dump.
                // And the untracked ports of the same container, which the pass may collect.
                let tracked = Set(state.attachments.map(\.hostIfname))
                let ports = ovs?.ports.values.filter { !tracked.contains($0.name) && $0.owner != nil }.map(\.name) ?? []
                hostLinks = try? {
                    let session = try adapters.openHostLinks()
                    var links: [String: ObservedLink] = [:]
                    for name in state.attachments.map(\.hostIfname) + ports {
                        if let link = try session.link(named: name) { links[link.name] = Self.observed(link) }
                    }
                    return links
                }()
            } else {
                hostLinks = try? adapters.openHostLinks().links().reduce(into: [:]) { $0[$1.name] = Self.observed($1) }
            }
            if case .answered(let containers, _) = docker {
                // A detached DHCP attachment still needs its namespace: the lease is released from inside.
                let wanted = Set(state.attachments.filter { $0.status != .removing || ($0.mode == .dhcp && $0.lease != nil) }.map(\.containerID))
                let running = containers.values.filter { wanted.contains($0.id) && $0.running && $0.pid > 0 }.sorted { $0.id < $1.id }
                let keys = sandboxes
                let namespaces = adapters.namespaces
                let looked = concurrentMap(running) { container in
                    (container.id, namespaces.network(pid: container.pid, sandbox: keys[container.id]))
                }
                var exited = Set<String>()
                for (container, (id, network)) in zip(running, looked) {
                    switch network {
                    case .success(let network): networks[id] = network
                    case .failure(let why):
                        if !adapters.netns.processExists(container.pid) { exited.insert(id) } else { unreadable[id] = why.description }
                    }
                }
                // Stopped between Docker's answer and this look (a stop or a
                // restart right behind the event): it counts as not running,
                // and the event that follows brings it back.
                if !exited.isEmpty, case .answered(var containers, let removed) = docker {
                    for id in exited { containers[id]?.running = false }
                    docker = .answered(containers: containers, removed: removed)
                }
            }
        }
        let netns = timings.measure("observe netns") { () -> [String: NetnsEntry]? in
            if scope.containerIDs != nil { return observeNetns(names: Set(state.attachments.compactMap(\.netnsLink))) }
            return observeNetns()
        }
        return Observation(
            host: ObservedHost(docker: docker, ovs: ovs, ovsError: ovsError, hostLinks: hostLinks, containerNetworks: networks,
                               netns: netns, bootID: HostEnvironment.bootID(), now: now,
                               engine: engine, engineError: engineError, unreadableNetworks: unreadable),
            snapshot: snapshot)
    }

    /// Lists every container, inspects the running ones netkeep needs (for
    /// their PID and namespace), and asks about every other reference it may
    /// collect: only a 404 that says "no such container" puts a reference in
    /// `removed`, and only a well-formed reference is asked about at all.
    /// Also returns each inspected container's SandboxKey.
    func observeDocker(_ state: State, ovs: OVSView?, now: Timestamp) -> (DockerView, [String: String]) {
        let client = adapters.docker
        let listed: [Container]
        do { listed = try client.list() } catch { return (.unreachable(error.description), [:]) }
        let byID = Dictionary(listed.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let names = Set(listed.map(\.name))
        var references = Set<String>()
        var toInspect = Set<String>()
        for a in state.attachments {
            // Kept for a recreate, its container long gone: Docker's word is needed only once its time is up.
            if a.status == .retained, let until = a.retainedUntil, until > now { continue }
            if let c = byID[a.containerID] {
                if c.running { toInspect.insert(a.containerID) }
            } else if Names.isContainerReference(a.containerID) {
                references.insert(a.containerID)
            }
        }
        let tracked = Set(state.attachments.map(\.hostIfname))
        for port in ovs?.ports.values ?? [:].values where !tracked.contains(port.name) && port.owner != nil {
            guard let ref = port.externalIDs["container_id"], byID[ref] == nil, !names.contains(ref), Names.isContainerReference(ref) else { continue }
            references.insert(ref)
        }
        let answers = concurrentMap(Array(toInspect.union(references)).sorted()) { ref -> (String, Result<Container, DockerError>) in
            (ref, Result { () throws(DockerError) in try client.inspect(ref) })
        }
        var containers: [String: ObservedContainer] = [:]
        var sandboxes: [String: String] = [:]
        for c in listed { containers[c.id] = ObservedContainer(id: c.id, name: c.name, running: c.running, pid: 0) }
        var removed = Set<String>()
        for (ref, answer) in answers {
            switch answer {
            case .success(let c):
                containers[c.id] = Self.observed(c)
                sandboxes[c.id] = c.sandboxKey
            case .failure(.noSuchContainer): removed.insert(ref)
            case .failure(.unreachable(let e)): return (.unreachable(e.description), [:])
            case .failure: break
            }
        }
        return (.answered(containers: containers, removed: removed), sandboxes)
    }

    /// Some containers: an inspect each (a 404 is the evidence for a
    /// removal), none for a stopped one whose recorded processes are gone.
    func observeContainers(_ ids: Set<String>, stopped: Set<String>, state: State) -> (DockerView, [String: String]) {
        let answers = concurrentMap(ids.sorted()) { id -> Result<(ObservedContainer, String?)?, DockerError> in
            let records = state.attachments.filter { $0.containerID == id }
            if stopped.contains(id), let name = records.first?.containerName,
               !records.contains(where: { $0.containerPID.map(adapters.netns.processExists) ?? false }) {
                return .success((ObservedContainer(id: id, name: name, running: false, pid: 0), nil))
            }
            do throws(DockerError) {
                let c = try adapters.docker.inspect(id)
                return .success((Self.observed(c), c.sandboxKey))
            } catch {
                if case .noSuchContainer = error { return .success(nil) }
                return .failure(error)
            }
        }
        var containers: [String: ObservedContainer] = [:]
        var sandboxes: [String: String] = [:]
        var removed = Set<String>()
        for (id, answer) in zip(ids.sorted(), answers) {
            switch answer {
            case .success(let seen?):
                containers[seen.0.id] = seen.0
                sandboxes[seen.0.id] = seen.1
            case .success(nil): removed.insert(id)
            case .failure(.unreachable(let e)): return (.unreachable(e.description), [:])
            case .failure: break
            }
        }
        return (.answered(containers: containers, removed: removed), sandboxes)
    }

    static func observed(_ c: Container) -> ObservedContainer {
        ObservedContainer(id: c.id, name: c.name, running: c.running, pid: c.pid, sharedNamespace: c.sharedNamespace)
    }

    /// Links, addresses and routes inside the container, read through the
    /// namespace of `pid` only when it is the one Docker holds for the
    /// container (its SandboxKey) and not netkeep's own.
    static func network(pid: Int32, sandbox: String?) -> Result<ContainerNetwork, SystemError> {
        let namespace: NetworkNamespace
        do { namespace = try NetworkNamespace(pid: pid, expecting: sandbox.flatMap(NetworkNamespace.id(ofPath:))) } catch {
            return .failure(error)
        }
        guard let session = try? NetlinkSession.open(in: namespace),
              let links = try? session.links(), let addresses = try? session.addresses(), let routes = try? session.routes() else {
            return .failure(SystemError("read network namespace", namespace.path, errno: EACCES, detail: "netlink could not be read there (permissions?)"))
        }
        let names = Dictionary(links.map { ($0.index, $0.name) }, uniquingKeysWith: { a, _ in a })
        var byName: [String: [IPv4CIDR]] = [:]
        for address in addresses { if let name = names[address.index] { byName[name, default: []].append(address.cidr) } }
        let defaults = routes.filter(\.isDefault).compactMap { route in
            route.outputIndex.flatMap { names[$0] }.map { ContainerNetwork.DefaultRoute(gateway: route.gateway, ifname: $0) }
        }
        return .success(ContainerNetwork(links: links.reduce(into: [:]) { $0[$1.name] = observed($1) }, addresses: byName,
                                         defaultRoutes: defaults, namespace: namespace.id))
    }

    /// /var/run/netns, or only the given names of it.
    func observeNetns(names: Set<String>? = nil) -> [String: NetnsEntry]? {
        let links = adapters.netns
        func entry(_ name: String) -> NetnsEntry? {
            if let pid = links.linkedPID(name) {
                return NetnsEntry(name: name, kind: .procLink(pid: pid, alive: links.processExists(pid)))
            }
            return names == nil || links.exists(name) ? NetnsEntry(name: name, kind: .other) : nil
        }
        guard let listed = names.map(Array.init) ?? links.names() else { return nil }
        var entries: [String: NetnsEntry] = [:]
        for name in listed { entries[name] = entry(name) }
        return entries
    }

    static func observed(_ link: Link) -> ObservedLink {
        ObservedLink(name: link.name, index: link.index, kind: link.kind, mac: link.mac, mtu: link.mtu, isUp: link.isUp)
    }

    /// Ports with the interface of the same name, as netkeep and ovs-docker make them.
    static func view(_ snapshot: VSwitchSnapshot) -> OVSView {
        var ports: [String: ObservedPort] = [:]
        for port in snapshot.ports {
            guard let bridge = snapshot.bridge(holding: port) else { continue }
            let iface = snapshot.interfaces(of: port).first { $0.name == port.name } ?? snapshot.interfaces(of: port).first
            ports[port.name] = ObservedPort(name: port.name, bridge: bridge.name, tag: port.tag, ofport: iface?.ofport,
                                            error: iface?.error, type: iface?.type ?? "", externalIDs: iface?.externalIDs ?? [:])
        }
        return OVSView(bridges: snapshot.bridges.reduce(into: [:]) { $0[$1.name] = $1.datapathType }, ports: ports)
    }
}
