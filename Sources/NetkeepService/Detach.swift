import DHCP
import DockerEngine
import Logging
import NetkeepCore
import NetkeepState
import Netlink
import OVSDB

/// `netkeep detach`: removes the port, the veth, the netns link and the
/// record. Works when the container, the veth or the port is already gone.
public struct Detach {
    public let environment: HostEnvironment
    public let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    /// Returns the attachments that were removed.
    public func run(container reference: String, ifname: String?) throws(Failure) -> [Attachment] {
        let context = "detach \(reference)\(ifname.map { " \($0)" } ?? "")"
        let lock = try environment.lockState(logger: logger)
        defer { lock.release() }
        var state = try environment.loadState()

        // Docker names the container if it still exists; otherwise the record does.
        var container: Container?
        do { container = try environment.docker.inspect(reference) } catch {
            switch error {
            case .noSuchContainer: container = nil
            case .unreachable: logger.warning("\(context): \(error); detaching by the recorded name or id")
            default: throw Failure.component(context, error)
            }
        }
        var targets = state.attachments.filter { a in
            container.map { a.containerID == $0.id } ?? a.matchesContainer(reference)
        }
        if targets.isEmpty, container != nil {
            targets = state.attachments.filter { $0.matchesContainer(reference) }
        }
        if let ifname { targets = targets.filter { $0.ifname == ifname } }
        guard !targets.isEmpty else {
            throw Failure.badInput("\(context): container \(quoted(reference)) has no attachment\(ifname.map { " named \($0)" } ?? "")")
        }
        let containerIDs = Set(targets.map(\.containerID))
        guard containerIDs.count == 1 else {
            throw Failure.badInput("\(context): \(quoted(reference)) matches attachments of \(containerIDs.count) containers; use the full container id")
        }
        let running = container.flatMap { $0.id == targets[0].containerID && $0.running ? $0 : nil }

        // Intent first: a crash from here on is finished by reconcile.
        for var target in targets {
            target.status = .removing
            state.upsert(target)
        }
        try environment.saveState(state)
        FaultPoint.detachMarked.check()

        // Give the addresses back before the interfaces go.
        if let running {
            let releases = targets.compactMap { a -> LeaseKeeper.Job? in
                guard a.mode == .dhcp, let lease = a.lease, lease.isValid(at: HostEnvironment.now()) else { return nil }
                return LeaseKeeper.Job(attachment: a, pid: running.pid, goal: .release(address: lease.address.address, server: lease.serverID))
            }
            for result in LeaseKeeper(logger: logger).run(releases, now: HostEnvironment.now()) {
                let a = result.attachment
                if let error = result.error {
                    logger.warning("\(context): DHCPRELEASE of \(a.ifname) not sent: \(error)")
                } else {
                    environment.audit.record(AuditEvent(kind: .leaseReleased, message: "\(a.containerName) \(a.ifname): DHCP lease of \(a.lease!.address) released",
                                                        attachment: a, ip: a.lease!.address.description))
                }
            }
        }

        let vswitch = try environment.vswitch()
        defer { vswitch.close() }
        if running == nil, targets.contains(where: { $0.mode == .dhcp }) {
            // The container is gone, and its namespace with it: the leases leave from netkeep's own station.
            let userspace = Set((try? vswitch.snapshot())?.bridges.filter(\.isUserspace).map(\.name) ?? [])
            ReleaseStation(logger: logger, audit: environment.audit)
                .run(targets, vswitch: vswitch, userspaceBridges: userspace, now: HostEnvironment.now())
        }
        do {
            let names = targets.map(\.hostIfname)
            let result = try vswitch.deletePorts(named: names, comment: "netkeep: detach \(reference)")
            _ = try vswitch.waitApplied(result.nextConfig)
        } catch {
            throw Failure.component(context, error)
        }
        FaultPoint.detachPortsDeleted.check()

        do {
            let host = try NetlinkSession.open()
            for target in targets {
                if try !host.deleteLink(named: target.hostIfname), let running {
                    try deleteInside(target, pid: running.pid)
                }
            }
        } catch {
            throw Failure.component(context, error)
        }
        FaultPoint.detachLinksDeleted.check()

        for target in targets { state.remove(id: target.id) }
        let stillAttached = state.attachments.contains { containerIDs.contains($0.containerID) }
        if !stillAttached, let link = targets.compactMap(\.netnsLink).first {
            environment.netnsLinks.remove(link, ifPointsAt: running?.pid)
        }
        try environment.saveState(state)
        environment.audit.record(targets.map { a in
            AuditEvent(kind: .detach, message: "\(a.containerName) \(a.ifname): detached from \(a.bridge) (port and veth \(a.hostIfname) removed)", attachment: a)
        })
        return targets
    }

    /// The host end was already gone: remove a leftover container end that
    /// carries the recorded MAC (deleting one end of a veth removes both).
    private func deleteInside(_ attachment: Attachment, pid: Int32) throws {
        let namespace = try NetworkNamespace(pid: pid)
        let inside = try NetlinkSession.open(in: namespace)
        if let link = try inside.link(named: attachment.ifname), link.mac == attachment.mac {
            try inside.deleteLink(named: attachment.ifname)
        }
    }

}
