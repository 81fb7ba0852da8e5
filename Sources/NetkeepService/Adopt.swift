import DockerEngine
import Logging
import NetkeepCore
import Netlink
import OVSDB

/// `netkeep adopt`: records ports made by `ovs-docker add-port` for running
/// containers, read from the live system, so that reconcile keeps them from
/// then on. The port keeps its name; its Interface gains netkeep's id.
public struct Adopt {
    public let environment: HostEnvironment
    public let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    public struct Outcome: Sendable {
        public var adopted: [Attachment] = []
        /// Ports seen but not adopted, with the reason.
        public var skipped: [String] = []
    }

    /// Reads the live ports without the lock, then claims their containers,
    /// records them (the intent) and runs one pass over them, which marks the
    /// ports as netkeep's (`claim-port`) and makes the netns links. `ports`
    /// (when not empty): only these, each of which must be ovs-docker's.
    public func run(bridge: String?, ports: [String] = []) throws(Failure) -> Outcome {
        let state = try environment.loadState()
        let vswitch = try environment.vswitch()
        defer { vswitch.close() }
        let snapshot: VSwitchSnapshot
        do { snapshot = try vswitch.snapshot() } catch { throw Failure.component("adopt", error) }
        if let bridge, snapshot.bridge(named: bridge) == nil {
            throw Failure.badInput("adopt: bridge \(quoted(bridge)) does not exist (ovsdb)")
        }
        let view = Observer.view(snapshot)
        let tracked = Set(state.attachments.map(\.hostIfname))
        var outcome = Outcome()
        for name in Set(ports).sorted() {
            // One adopted already is netkeep's now: nothing to do for it.
            if let port = view.ports[name], port.owner == .ovsDocker || tracked.contains(name) { continue }
            outcome.skipped.append("port \(quoted(name)): \(view.ports[name] == nil ? "no such port" : "not made by ovs-docker (no container_id and container_iface)")")
        }
        var found: [Attachment] = []
        for port in view.ports.values.sorted(by: { $0.name < $1.name }) where port.owner == .ovsDocker && !tracked.contains(port.name) {
            if let bridge, port.bridge != bridge { continue }
            if !ports.isEmpty, !ports.contains(port.name) { continue }
            let ref = port.externalIDs["container_id"]!, ifname = port.externalIDs["container_iface"]!
            do {
                guard let attachment = try adoptable(port, reference: ref, ifname: ifname, state: state) else { continue }
                found.append(attachment)
            } catch {
                outcome.skipped.append("port \(port.name) (\(ref) \(ifname)): \(error)")
            }
        }
        guard !found.isEmpty else { return outcome }

        let claims = try environment.claims()
        defer { claims.release() }
        let ids = Set(found.map(\.containerID))
        try environment.claim(ids, in: claims, logger: logger)
        try environment.updateRecords(logger: logger) { state in
            for a in found {
                // Another netkeep may have recorded it meanwhile.
                if state.attachment(containerID: a.containerID, ifname: a.ifname) != nil || state.attachments.contains(where: { $0.hostIfname == a.hostIfname }) {
                    outcome.skipped.append("port \(a.hostIfname) (\(a.containerName) \(a.ifname)): recorded by another netkeep meanwhile")
                    continue
                }
                state.upsert(a)
                outcome.adopted.append(a)
            }
        }
        guard !outcome.adopted.isEmpty else { return outcome }
        environment.audit.record(outcome.adopted.map { a in
            AuditEvent(kind: .adopt, message: "\(a.containerName) \(a.ifname): ovs-docker port \(a.hostIfname) on \(a.bridge) adopted (mac \(a.mac), \(a.address.map(\.description) ?? "no address"))",
                       attachment: a)
        })
        let report = try Reconcile(environment: environment, logger: logger)
            .run(dryRun: false, scope: .containers(ids), verify: false, vswitch: vswitch, claims: claims)
        for failed in report.failed { logger.warning("adopt: \(failed.action.summary): \(failed.error ?? "")") }
        return outcome
    }

    /// The attachment as it lives now, or nil when it is not for adoption
    /// (container gone or stopped: reconcile collects or keeps it).
    private func adoptable(_ port: ObservedPort, reference: String, ifname: String, state: State) throws -> Attachment? {
        guard Names.isContainerReference(reference) else {
            throw AdoptError("container_id \(quoted(reference)) is not a Docker name or id; not asked")
        }
        var container: Container
        do { container = try environment.docker.inspect(reference) } catch {
            guard case .noSuchContainer = error else { throw error }
            // ovs-docker recorded the name the user typed; after `docker rename`
            // the container is found by the peer of the port's veth.
            guard let renamed = try findByPeer(of: port.name, ifname: ifname) else { return nil }
            logger.notice("adopt: port \(port.name) names container \(quoted(reference)), which is now \(renamed.name) (renamed)")
            container = renamed
        }
        guard container.running else { throw AdoptError("container \(container.name) is not running; adopt once it runs") }
        if let shared = container.sharedNamespace { throw AdoptError("container \(container.name) uses \(shared)") }
        guard state.attachment(containerID: container.id, ifname: ifname) == nil else {
            throw AdoptError("\(container.name) \(ifname) is already attached by netkeep")
        }
        let maker = try LinkMaker(container: container)
        guard try maker.host.link(named: port.name) != nil else { throw AdoptError("host end \(port.name) is missing") }
        guard let inside = try maker.inside.link(named: ifname), let mac = inside.mac else {
            throw AdoptError("\(ifname) is missing inside \(container.name)")
        }
        let addresses = try maker.inside.addresses().filter { $0.index == inside.index }.map(\.cidr)
        let gateway = try maker.inside.routes().first { $0.isDefault && $0.outputIndex == inside.index }?.gateway
        let hostName = try Names.interface(port.name, role: "port")
        let attachment = Attachment(
            containerID: container.id, containerName: container.name, ifname: ifname, bridge: port.bridge,
            mac: mac, mtu: inside.mtu, vlan: port.tag, mode: .static, address: addresses.first, gateway: gateway,
            netnsLink: container.name, status: .ready, createdAt: HostEnvironment.now(), containerPID: container.pid, hostIfname: hostName)
        // Refused where it enters: a record that would not load again (a /32
        // with an on-link gateway, a name too long for its netns link, ...).
        if let problem = attachment.problems().first {
            throw AdoptError("it cannot be recorded as it is (\(problem.drop { $0 == "." || $0 == ":" }.trimmingPrefix(" ")))")
        }
        return attachment
    }

    /// The running container whose `ifname` is the peer of host link `hostName`.
    private func findByPeer(of hostName: String, ifname: String) throws -> Container? {
        guard let host = try NetlinkSession.open().link(named: hostName), let peer = host.peerIndex else { return nil }
        for listed in try environment.docker.list() where listed.running {
            guard let c = try? environment.docker.inspect(listed.id), c.running, c.sharedNamespace == nil,
                  let ns = try? NetworkNamespace(pid: c.pid, expecting: NetworkNamespace.id(ofPath: c.sandboxKey)),
                  let link = try? NetlinkSession.open(in: ns).link(named: ifname) else { continue }
            if link.index == peer, link.peerIndex == host.index { return c }
        }
        return nil
    }
}

struct AdoptError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
