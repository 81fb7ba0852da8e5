#if canImport(Glibc)
import Glibc
#endif
import DockerEngine
import Logging
import NetkeepCore
import NetkeepState
import Netlink
import OVSDB

/// `netkeep attach`: checks everything first, records the attachment as
/// pending, changes the host, then records it as ready. A failure after the
/// checks undoes what was done; a crash leaves the pending record for reconcile.
public struct Attach {
    public let environment: HostEnvironment
    public let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    public func run(_ request: AttachRequest) throws(Failure) -> Attachment {
        let context = "attach \(request.container) \(request.ifname)"
        let lock = try environment.lockState(logger: logger)
        defer { lock.release() }
        var state = try environment.loadState()

        // Checks: nothing is changed before all of them pass.
        let container: Container
        do { container = try environment.docker.inspect(request.container) } catch {
            if case .noSuchContainer = error { throw Failure.badInput("\(context): container \(quoted(request.container)) does not exist") }
            throw Failure.component(context, error)
        }
        guard container.running, container.pid > 0 else {
            throw Failure.badInput("\(context): container \(container.name) is not running (\(container.status))")
        }
        do { _ = try Names.containerName(container.name) } catch { throw Failure.badInput("\(context): \(error)") }
        if let shared = container.sharedNamespace {
            throw Failure.badInput("\(context): container \(container.name) uses \(shared); netkeep attaches only containers with a network namespace of their own")
        }
        // Asked now, checked after the other checks, which hide its 11 ms.
        let docker = environment.docker
        let engineLookup = Pending { try? docker.engine() }
        if let existing = state.attachment(containerID: container.id, ifname: request.ifname) {
            throw Failure.badInput("\(context): container \(container.name) already has \(request.ifname) attached to \(existing.bridge) (\(existing.status.rawValue)); detach it first")
        }
        let hostName = Names.hostInterface(containerID: container.id, ifname: request.ifname)
        let vswitch = try environment.vswitch()
        defer { vswitch.close() }
        let snapshot: VSwitchSnapshot
        do { snapshot = try vswitch.snapshot() } catch { throw Failure.component(context, error) }
        guard let bridge = snapshot.bridge(named: request.bridge) else {
            throw Failure.badInput("\(context): bridge \(quoted(request.bridge)) does not exist (ovsdb)")
        }
        if snapshot.port(named: hostName) != nil || snapshot.interface(named: hostName) != nil {
            throw Failure.badInput("\(context): OVS already has a port \(hostName), left by an interrupted attach; run `netkeep reconcile`")
        }
        let links: LinkMaker
        do {
            links = try LinkMaker(container: container)
            if try links.inside.link(named: request.ifname) != nil {
                throw Failure.badInput("\(context): interface \(request.ifname) already exists in container \(container.name)")
            }
            if request.gateway != nil, let route = try links.inside.routes().first(where: \.isDefault) {
                throw Failure.badInput("\(context): container \(container.name) already has a default route\(route.gateway.map { " via \($0)" } ?? ""); attach without --gateway")
            }
            if try links.host.link(named: hostName) != nil {
                throw Failure.badInput("\(context): host interface \(hostName) already exists, left by an interrupted attach; run `netkeep reconcile`")
            }
        } catch {
            throw Failure.component(context, error)
        }

        // The records are made with one engine; another one on the socket is not mixed in.
        if let engine = engineLookup.value, engine.isUsable {
            if let recorded = state.engine, engine != recorded {
                throw Failure.badInput("\(context): the Docker socket answers for engine \(engine), not \(recorded) that the records were made with; run `netkeep accept-engine` if the engine really changed")
            }
            state.engine = engine
        }

        var generator = SystemRandomNumberGenerator()
        var attachment = Attachment(
            containerID: container.id, containerName: container.name, ifname: request.ifname, bridge: bridge.name,
            mac: request.mac ?? MACAddress.randomLocal(using: &generator), mtu: request.mtu, vlan: request.vlan,
            mode: request.dhcp ? .dhcp : .static, address: request.address, gateway: request.gateway, netnsLink: container.name,
            status: .pending, createdAt: HostEnvironment.now())

        // Intent first. The file as it was is kept aside: an attach that fails
        // after this point puts it back, so reconcile never finishes an attach
        // that was reported as failed (a crash, unreported, it does finish).
        let undo: StateUndo
        do { undo = try environment.store.keepForUndo() } catch { throw Failure.from(error, context: context) }
        state.upsert(attachment)
        do { try environment.saveState(state) } catch {
            environment.store.discard(undo)
            throw error
        }
        FaultPoint.attachPendingWritten.check()

        var portAdded = false
        do {
            try links.create(attachment, userspaceBridge: bridge.isUserspace)
            FaultPoint.attachVethCreated.check()
            let nextConfig = try vswitch.addPorts([PortSpec.forAttachment(attachment)],
                                                  comment: "netkeep: attach \(container.name) \(attachment.ifname)")
            portAdded = true
            FaultPoint.attachPortAdded.check()
            if try !vswitch.waitApplied(nextConfig) {
                logger.warning("\(context): ovs-vswitchd has not applied the new port yet (is it running?); it will when it runs")
            }
            if request.dhcp {
                let result = LeaseKeeper(logger: logger).run([.init(attachment: attachment, pid: container.pid, goal: .discover)],
                                                             now: HostEnvironment.now())[0]
                if let error = result.error { throw Failure.failed("\(context): no lease on bridge \(bridge.name): \(error)") }
                attachment = result.attachment
            }
        } catch {
            rollBack(attachment, host: links.host, vswitch: vswitch, portAdded: portAdded)
            restore(undo, context: context)
            throw Failure.component(context, error)
        }

        var linkMade = false
        switch linkNamespace(attachment.netnsLink!, pid: container.pid) {
        case .created, .replaced: linkMade = true
        case .unchanged: break
        case .skipped(let reason):
            logger.warning("\(context): netns link not made: \(reason)")
            attachment.netnsLink = nil
        }
        attachment.status = .ready
        attachment.containerPID = container.pid
        state.upsert(attachment)
        do { try environment.saveState(state) } catch {
            // Reported as failed: nothing of it may stay, on the host or in the record.
            logger.error("\(context): \(error); undoing the attach")
            release(attachment, pid: container.pid, namespace: links.namespace.id)
            rollBack(attachment, host: links.host, vswitch: vswitch, portAdded: portAdded)
            if linkMade, let link = attachment.netnsLink { _ = environment.netnsLinks.remove(link, ifPointsAt: container.pid) }
            restore(undo, context: context)
            throw Failure.failed("\(context): the attachment could not be recorded (\(error)); everything it made was undone")
        }
        environment.store.discard(undo)
        var events = [AuditEvent(kind: .create, message: "\(attachment.containerName) \(attachment.ifname): attached to \(attachment.bridge) as \(attachment.hostIfname) (mac \(attachment.mac), \(attachment.address.map(\.description) ?? "no address"))",
                                 attachment: attachment)]
        if let lease = attachment.lease {
            events.append(AuditEvent(kind: .leaseObtained, message: "\(attachment.containerName) \(attachment.ifname): DHCP lease of \(lease.address) from \(lease.serverID) until \(lease.expiresAt)",
                                     attachment: attachment, ip: lease.address.description))
        }
        environment.audit.record(events)
        return attachment
    }

    /// The state file as it was before the attach; said loudly when even that fails.
    private func restore(_ undo: StateUndo, context: String) {
        do { try environment.store.restore(undo) } catch {
            logger.critical("\(context): the state file could not be put back (\(error)); its pending record is finished or removed by the next reconcile")
        }
    }

    /// A lease obtained for an attach that is undone goes back to the server.
    private func release(_ a: Attachment, pid: Int32, namespace: NamespaceID) {
        guard let lease = a.lease else { return }
        let job = LeaseKeeper.Job(attachment: a, pid: pid, goal: .release(address: lease.address.address, server: lease.serverID), namespace: namespace)
        if let error = LeaseKeeper(logger: logger).run([job], now: HostEnvironment.now()).first?.error {
            logger.warning("undo: DHCPRELEASE of \(lease.address) not sent: \(error)")
        }
    }

    private func linkNamespace(_ name: String, pid: Int32) -> NetnsLinks.Outcome {
        do { return try environment.netnsLinks.link(name, pid: pid) } catch {
            return .skipped(reason: "\(error)")
        }
    }

    /// Undoes a failed attach: the veth (both ends go with the host end) and
    /// the port. Errors here are logged; reconcile finishes what is left.
    private func rollBack(_ attachment: Attachment, host: NetlinkSession, vswitch: VSwitchClient, portAdded: Bool) {
        do { try host.deleteLink(named: attachment.hostIfname) } catch {
            logger.error("undo: could not delete \(attachment.hostIfname): \(error)")
        }
        if portAdded {
            do { try vswitch.deletePorts(named: [attachment.hostIfname], comment: "netkeep: undo attach") } catch {
                logger.error("undo: could not delete port \(attachment.hostIfname): \(error)")
            }
        }
    }

}

extension PortSpec {
    /// netkeep's own id plus the two ids `ovs-docker` uses, so that
    /// `ovs-docker del-port BRIDGE IF CONTAINER_ID` still finds the port.
    public static func forAttachment(_ attachment: Attachment) -> PortSpec {
        PortSpec(bridge: attachment.bridge, name: attachment.hostIfname, tag: attachment.vlan, interfaceExternalIDs: [
            "netkeep-attachment": attachment.id,
            "container_id": attachment.containerID,
            "container_iface": attachment.ifname,
        ])
    }
}
