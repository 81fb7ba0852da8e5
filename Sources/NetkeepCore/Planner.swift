/// Compares the desired state with the observed host and returns what to do.
/// Pure and total: no I/O, no clock, no randomness; the same input always
/// gives the same plan. The rules of DESIGN.md live here.
///
/// `retention`: seconds a removed container's MAC and lease are kept for a
/// container recreated with its name (0: given back at once); commands and
/// the daemon pass the configured one (24 h unless told otherwise).
public func plan(desired: State, observed: ObservedHost, retention: Int64 = 0) -> Plan {
    var planner = Planner(desired: desired, observed: observed, retention: retention)
    return planner.run()
}

struct Planner {
    let desired: State
    let observed: ObservedHost
    let retention: Int64
    var actions: [Action] = []
    var notices: [Notice] = []
    var awaitingTeardown = Set<String>()
    /// netns links that attachments (re)make or remove: garbage collection leaves them to that.
    var claimedLinks = Set<String>()
    /// netns links already planned by an earlier attachment of the same container.
    var linked = Set<String>()

    /// Why the engine that answered cannot vouch for the records; nil when it can.
    let engineDoubt: String?

    init(desired: State, observed: ObservedHost, retention: Int64 = 0) {
        self.desired = desired
        self.observed = observed
        self.retention = max(0, retention)
        self.engineDoubt = Self.engineDoubt(desired: desired, observed: observed)
    }

    mutating func run() -> Plan {
        if case .unreachable(let why) = observed.docker {
            notices.append(Notice(.error, "Docker unreachable (\(why)): containers not repaired, nothing removed"))
        }
        if observed.ovs == nil {
            notices.append(Notice(.error, "OVSDB unreachable (\(observed.ovsError ?? "no answer")): ports not repaired, nothing removed"))
        }
        if observed.hostLinks == nil { notices.append(Notice(.error, "host links could not be read: nothing repaired or removed")) }
        if observed.netns == nil { notices.append(Notice(.error, "/var/run/netns could not be read: nothing removed")) }
        // Said only where it matters: some reference has a 404 that does not count.
        if case .answered(_, let removed) = observed.docker, !removed.isEmpty, let why = engineDoubt {
            notices.append(Notice(.error, "\(why): no container counts as removed, nothing removed"))
        }
        let all = desired.attachments.sorted(by: { $0.id < $1.id })
        for a in all where observed.busyContainers.contains(a.containerID) {
            if let link = a.netnsLink { claimedLinks.insert(link) }
        }
        let busy = Set(all.filter { observed.busyContainers.contains($0.containerID) }.map(\.containerID))
        for id in busy.sorted() {
            notices.append(Notice(.info, "container \(id.prefix(12)): another netkeep is changing it; left to that pass"))
        }
        // Kept for a recreate: nothing on the host is theirs; when the time
        // is up, the lease goes back and the record goes.
        for a in all where a.status == .retained && !busy.contains(a.containerID) && !(a.retainedUntil.map { $0 > observed.now } ?? false) {
            planRelease(a, reason: .retentionEnded)
            actions.append(.removeAttachment(a, reason: .retentionEnded))
        }
        let sorted = all.filter { !busy.contains($0.containerID) && $0.status != .retained }
        // A detach needs only OVSDB and the host's links; a removed container also Docker's word and /var/run/netns.
        let removing = Set(sorted.filter { a in
            guard isToBeRemoved(a) else { return false }
            return a.status == .removing ? observed.ovs != nil && observed.hostLinks != nil : observed.isComplete
        }.map(\.id))
        for attachment in sorted {
            if attachment.status != .removing, isRemoved(attachment.containerID), hasLiveVeth(attachment.hostIfname) {
                // Gone by Docker's word, yet its veth lives: some namespace still holds the peer.
                notices.append(Notice(.info, "\(attachment.containerName) \(attachment.ifname): Docker says the container is gone but \(attachment.hostIfname) still exists (its peer lives in some namespace); kept"))
                // Most often the kernel has not torn the namespace down yet: the daemon looks again.
                awaitingTeardown.insert(attachment.containerID)
                continue
            }
            if isToBeRemoved(attachment) {
                if let link = attachment.netnsLink { claimedLinks.insert(link) }
                if removing.contains(attachment.id) { planRemoval(attachment, keeping: sorted.filter { !removing.contains($0.id) }) }
            } else {
                planAttachment(attachment)
            }
        }
        if observed.isComplete {
            collectOrphanPorts()
            collectDanglingLinks()
        }
        return Plan(actions: actions, notices: notices, awaitingTeardown: awaitingTeardown)
    }

    /// Detach interrupted, or the container is gone: Docker said 404 for it
    /// (DESIGN.md rule 5) and its host veth is gone with its namespace.
    func isToBeRemoved(_ a: Attachment) -> Bool {
        a.status == .removing || (isRemoved(a.containerID) && !hasLiveVeth(a.hostIfname))
    }

    /// A host veth that exists has a live peer in some namespace (rule 5).
    func hasLiveVeth(_ name: String) -> Bool { observed.hostLinks?[name] != nil }

    /// A state file without a recorded engine (older netkeep, first contact)
    /// takes the one that answers, which is then recorded.
    static func engineDoubt(desired: State, observed: ObservedHost) -> String? {
        guard let engine = observed.engine, engine.isUsable else {
            return "the Docker engine did not say who it is (\(observed.engineError ?? "no usable ID in GET /info"))"
        }
        if let recorded = desired.engine, recorded != engine {
            return "the Docker socket answers for engine \(engine), not \(recorded) that the records were made with (run `netkeep accept-engine` if the engine really changed)"
        }
        return nil
    }

    /// Positive evidence that `reference` is gone: a well-formed reference,
    /// a 404 saying so, from the engine the records were made with.
    func isRemoved(_ reference: String) -> Bool {
        Names.isContainerReference(reference) && engineDoubt == nil && observed.docker.isRemoved(reference)
    }

    /// Port, veth and record; the netns link too when no other attachment of
    /// the container keeps it and it points at the container or a dead process.
    mutating func planRemoval(_ a: Attachment, keeping: [Attachment]) {
        let reason: Reason = a.status == .removing ? .detachRequested : .containerRemoved
        if reason == .containerRemoved, retention > 0, a.status == .ready || a.status == .down {
            // Compose, `docker run --rm` and upgrades recreate containers under
            // the same name: the next one gets this MAC, hence this lease.
            actions.append(.retainAttachment(a, until: observed.now.adding(seconds: retention), reason: reason))
        } else {
            planRelease(a, reason: reason)
            actions.append(.removeAttachment(a, reason: reason))
        }
        guard let link = a.netnsLink, !keeping.contains(where: { $0.containerID == a.containerID && $0.netnsLink == link }),
              !actions.contains(where: { if case .removeNetnsLink(link, _, _) = $0 { return true } else { return false } }),
              case .procLink(let pid, let alive)? = observed.netns?[link]?.kind else { return }
        let containerPID = observed.docker.container(a.containerID).flatMap { $0.running ? $0.pid : nil }
        if !alive || pid == containerPID {
            actions.append(.removeNetnsLink(name: link, pid: pid, reason: reason))
        }
    }

    /// The lease goes back to the server before its interface does: from
    /// inside a running container, from the release station for one that
    /// Docker says is gone (or stopped: its namespace went with it). Without
    /// Docker's word, nothing is sent: the station must not wear the MAC of a
    /// container that may still run.
    mutating func planRelease(_ a: Attachment, reason: Reason) {
        guard a.mode == .dhcp, let lease = a.lease, lease.isValid(at: observed.now) else { return }
        if let container = observed.docker.container(a.containerID), container.running, container.pid > 0 {
            guard observed.containerNetworks[container.id] != nil else { return }
            actions.append(.releaseLease(a, pid: container.pid, reason: reason))
        } else if isRemoved(a.containerID) || observed.docker.container(a.containerID)?.running == false {
            actions.append(.releaseLease(a, pid: nil, reason: reason))
        } else if a.status == .removing {
            notices.append(Notice(.info, "\(a.containerName) \(a.ifname): DHCP lease of \(lease.address.address) not released (Docker did not say whether the container runs); it expires at \(lease.expiresAt)"))
        }
    }

    mutating func planAttachment(_ a: Attachment) {
        let name = "\(a.containerName) \(a.ifname)"
        guard case .answered = observed.docker, let hostLinks = observed.hostLinks else { return }
        guard let container = observed.docker.container(a.containerID) else {
            notices.append(Notice(.info, "\(name): container \(a.shortContainerID) not listed by Docker; left as it is"))
            return
        }
        guard container.running, container.pid > 0 else {
            // Its veth went with its namespace: a row left would only report "could not open network device".
            if observed.ovs?.ports[a.hostIfname] != nil {
                if hasLiveVeth(a.hostIfname) { awaitingTeardown.insert(a.containerID) } else { actions.append(.unplugPort(a, reason: .containerStopped)) }
            }
            if a.status == .ready { actions.append(.markDown(a, reason: .containerStopped)) }
            return
        }
        if let shared = container.sharedNamespace {
            notices.append(Notice(.error, "\(name): the container uses \(shared), not a namespace of its own; not repaired"))
            return
        }
        guard let network = observed.containerNetworks[container.id] else {
            let why = observed.unreadableNetworks[container.id] ?? "it could not be read (permissions?)"
            notices.append(Notice(.error, "\(name): the namespace of the running container was not looked into: \(why); not repaired"))
            return
        }
        if let link = a.netnsLink { claimedLinks.insert(link) }
        let pid = container.pid
        let host = hostLinks[a.hostIfname]
        let inside = network.links[a.ifname]
        if let inside, inside.mac != a.mac {
            notices.append(Notice(.error, "\(name): the container has another \(a.ifname) (MAC \(inside.mac.map(\.description) ?? "none")); not touched"))
            return
        }

        // The veth pair, then what is inside.
        var vethMade = false
        if host == nil && inside == nil {
            let reason: Reason
            if a.status == .pending, a.containerPID == nil, a.declaredBy == .labels {
                reason = .declaredByLabels
            } else if let recorded = a.containerPID, recorded != pid {
                reason = .containerRestarted(oldPID: recorded, newPID: pid)
            } else if let was = desired.bootID, let now = observed.bootID, was != now {
                reason = .vethMissingAfterReboot
            } else {
                reason = .vethMissing
            }
            actions.append(.createVeth(a, pid: pid, reason: reason))
            vethMade = true
        } else if let host, let inside {
            let fixes = Self.fixes(a, host: host, inside: inside, network: network, now: observed.now)
            if !fixes.isEmpty { actions.append(.configureInterface(a, pid: pid, fixes: fixes, reason: .interfaceMisconfigured(fixes))) }
        } else {
            actions.append(.recreateVeth(a, pid: pid, reason: .vethStale))
            vethMade = true
        }

        planPort(a, vethMade: vethMade)
        if a.mode == .dhcp {
            if vethMade, a.lease != nil {
                actions.append(.obtainLease(a, pid: pid, reason: .leaseReboot))
            } else if a.lease == nil {
                actions.append(.obtainLease(a, pid: pid, reason: .leaseMissing))
            } else if let lease = a.lease, !lease.isValid(at: observed.now) {
                actions.append(.obtainLease(a, pid: pid, reason: .leaseExpired))
            } else if let lease = a.lease, let due = LeaseLifecycle.due(lease, at: observed.now), due != .expired {
                let reason: Reason = due == .rebind ? .leaseRebinding : due == .confirm ? .leaseUnconfirmed : .leaseRenewal
                actions.append(.renewLease(a, pid: pid, due: due, reason: reason))
            }
        }

        if let link = a.netnsLink, let entries = observed.netns, !linked.contains(link) {
            linked.insert(link)
            switch entries[link]?.kind {
            case nil: actions.append(.linkNetns(a, pid: pid, reason: .netnsLinkMissing))
            case .procLink(let linked, _) where linked != pid: actions.append(.linkNetns(a, pid: pid, reason: .netnsLinkStale(pid: linked)))
            case .procLink: break
            case .other: notices.append(Notice(.info, "\(name): /var/run/netns/\(link) is not a link netkeep made; left alone"))
            }
        }
        if a.status != .ready || a.containerPID != pid {
            let reason: Reason
            switch a.status {
            case .pending where a.containerPID == nil: reason = a.declaredBy == .labels ? .declaredByLabels : .interruptedAttach
            case .pending: reason = .interruptedRepair
            default: reason = .containerRestarted(oldPID: a.containerPID, newPID: pid)
            }
            actions.append(.markReady(a, pid: pid, reason: reason))
        }
    }

    mutating func planPort(_ a: Attachment, vethMade: Bool) {
        guard let ovs = observed.ovs else { return }
        guard ovs.bridges[a.bridge] != nil else {
            notices.append(Notice(.error, "\(a.containerName) \(a.ifname): bridge \(a.bridge) does not exist (ovsdb); port not added"))
            return
        }
        guard let port = ovs.ports[a.hostIfname] else {
            actions.append(.addPort(a, reason: .portMissing))
            return
        }
        if vethMade {
            actions.append(.replacePort(a, reason: .portStale))
        } else if a.status == .pending {
            actions.append(.replacePort(a, reason: .interruptedRepair))
        } else if port.bridge != a.bridge {
            actions.append(.replacePort(a, reason: .portOnWrongBridge(port.bridge)))
        } else if port.isInError {
            actions.append(.replacePort(a, reason: .portDead(port.error ?? "ofport -1")))
        } else {
            if port.tag != a.vlan { actions.append(.setVLAN(a, reason: .vlanDrifted(from: port.tag, to: a.vlan))) }
            if port.externalIDs["netkeep-attachment"] != a.id { actions.append(.claimPort(a, reason: .portUnclaimed)) }
        }
    }

    static func fixes(_ a: Attachment, host: ObservedLink, inside: ObservedLink, network: ContainerNetwork, now: Timestamp) -> [InterfaceFix] {
        var fixes: [InterfaceFix] = []
        if inside.mtu != a.mtu { fixes.append(.containerMTU(inside.mtu)) }
        if host.mtu != a.mtu { fixes.append(.hostMTU(host.mtu)) }
        if !inside.isUp { fixes.append(.containerUp) }
        if !host.isUp { fixes.append(.hostUp) }
        if let address = a.expectedAddress(at: now), !(network.addresses[a.ifname] ?? []).contains(address) { fixes.append(.address(address)) }
        // A lease's router is made the default route only where the container has
        // none (LeaseKeeper): one on another interface is not this one's fault.
        if let gateway = a.expectedGateway(at: now), !network.defaultRoutes.contains(.init(gateway: gateway, ifname: a.ifname)),
           a.mode == .static || !network.defaultRoutes.contains(where: { $0.ifname != a.ifname }) {
            fixes.append(.defaultRoute(gateway))
        }
        return fixes
    }

    /// Ports of netkeep or ovs-docker that no record claims, whose container
    /// Docker says is gone. Anything else on a bridge is never touched.
    mutating func collectOrphanPorts() {
        guard let ovs = observed.ovs else { return }
        let tracked = Set(desired.attachments.map(\.hostIfname))
        for port in ovs.ports.values.sorted(by: { $0.name < $1.name }) where !tracked.contains(port.name) {
            if port.isReleaseStation {
                // Its veth lives only while a release runs; a row without one was left by a crash.
                if !hasLiveVeth(port.name) { actions.append(.removePort(name: port.name, bridge: port.bridge, reason: .releasePortLeft)) }
                continue
            }
            guard let owner = port.owner, let container = port.externalIDs["container_id"] else { continue }
            if isRemoved(container) {
                if hasLiveVeth(port.name) {
                    notices.append(Notice(.info, "port \(port.name): no container \(quoted(container)) (renamed?) but its veth lives; left alone"))
                } else {
                    actions.append(.removePort(name: port.name, bridge: port.bridge, reason: .orphanPort(owner: owner, container: container)))
                }
            } else if owner == .netkeep {
                notices.append(Notice(.info, "port \(port.name) is netkeep's but not in this state file (container \(container.prefix(12))); left alone"))
            }
        }
    }

    /// Symlinks into /proc whose process is gone. Mounts and other entries,
    /// and links an attachment manages, are never touched here.
    mutating func collectDanglingLinks() {
        guard let entries = observed.netns else { return }
        for entry in entries.values.sorted(by: { $0.name < $1.name }) where !claimedLinks.contains(entry.name) {
            if case .procLink(let pid, false) = entry.kind {
                actions.append(.removeNetnsLink(name: entry.name, pid: pid, reason: .danglingNetnsLink(pid: pid)))
            }
        }
    }
}
