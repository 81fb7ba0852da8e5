import DHCP
import Logging
import NetkeepCore
import Netlink
import OVSDB

/// What happened to one planned action.
public struct ActionResult: Sendable {
    public var action: Action
    /// nil when the action succeeded.
    public var error: String?
}

/// Carries a plan out, batched: every OVSDB deletion in one transaction,
/// netlink work per container on all cores, every OVSDB addition in a second
/// transaction (a same-name row only passes traffic again when it is deleted
/// and added in two), then netns links and the records in `state` (the
/// caller writes them, under the lock, for the containers it claimed). Each
/// step is idempotent; a crash anywhere is finished by the next pass.
struct Executor {
    let environment: HostEnvironment
    let logger: Logger

    /// `observed`: what the plan was made from; each container namespace is
    /// entered only if it is still the one observed (PIDs are reused).
    /// `confirmLater`: an unexpired lease whose address went on its interface
    /// is recorded unconfirmed instead of waiting for the server here; the
    /// lease timer confirms it at once, after the pass (the daemon's first
    /// pass, so that READY=1 does not wait for a slow server).
    func execute(_ plan: Plan, state: inout State, observed: ObservedHost, snapshot: VSwitchSnapshot?, vswitch: (any VSwitchAccess)?,
                 confirmLater: Bool = false, timings: inout PhaseTimings) -> [ActionResult] {
        let namespaces = observed.containerNetworks.compactMapValues(\.namespace)
        let adapters = environment.adapters
        var failures: [Int: String] = [:]
        let actions = plan.actions
        func fail(_ i: Int, _ message: String) { if failures[i] == nil { failures[i] = message } }

        // No intent write is needed here: a veth is only made again after its
        // old OVS row is gone (first transaction below), so a crash at any point
        // leaves either no row (added next time) or no veth (made next time),
        // never a stale row in front of a new veth.
        FaultPoint.reconcileIntentWritten.check()
        let userspace = Set(snapshot?.bridges.filter(\.isUserspace).map(\.name) ?? [])

        // Leases go back to their server first: while ovs-vswitchd is not yet
        // busy with the deletions below, it plugs the release station in
        // milliseconds (right after 64 deletions: 0.76 s). A crash after
        // this releases them again next time, which is harmless.
        let releases = actions.indices.compactMap { i -> (Int, Attachment, Int32?)? in
            guard case .releaseLease(let a, let pid, _) = actions[i] else { return nil }
            return (i, a, pid)
        }
        if !releases.isEmpty {
            timings.measure("execute dhcp") {
                let station = releases.filter { $0.2 == nil }
                if !station.isEmpty {
                    _ = adapters.dhcp.release(station.map(\.1), vswitch: vswitch, userspaceBridges: userspace, now: adapters.now(),
                                              logger: logger, audit: environment.audit)
                }
                let inside = releases.compactMap { (i, a, pid) -> (Int, LeaseKeeper.Job)? in
                    guard let pid, let lease = a.lease else { return nil }
                    return (i, LeaseKeeper.Job(attachment: a, pid: pid, goal: .release(address: lease.address.address, server: lease.serverID),
                                               namespace: namespaces[a.containerID]))
                }
                if !inside.isEmpty {
                    let results = adapters.dhcp.run(inside.map(\.1), now: adapters.now(), logger: logger)
                    for ((i, _), result) in zip(inside, results) {
                        if let error = result.error { fail(i, "DHCPRELEASE not sent: \(error)") }
                    }
                }
            }
        }

        // OVSDB, first transaction: rows to delete.
        let deletions = actions.indices.compactMap { i -> (Int, String)? in
            switch actions[i] {
            case .replacePort(let a, _), .removeAttachment(let a, _), .unplugPort(let a, _), .retainAttachment(let a, _, _): return (i, a.hostIfname)
            case .removePort(let name, _, _): return (i, name)
            default: return nil
            }
        }
        var deletionConfig: Int64?
        if !deletions.isEmpty {
            timings.measure("execute ovsdb") {
                guard let vswitch else { return deletions.forEach { fail($0.0, "OVSDB unreachable") } }
                do {
                    deletionConfig = try vswitch.deletePorts(named: deletions.map(\.1), comment: "netkeep: reconcile", in: snapshot).nextConfig
                } catch {
                    deletions.forEach { fail($0.0, "\(error)") }
                }
            }
        }
        FaultPoint.reconcilePortsDeleted.check()

        // Netlink, grouped by container, on all cores. A veth whose old OVS row
        // is being deleted stays down on the host side for now: ovs-vswitchd
        // restores the old device's flags by name when it lets the port go.
        let replaced = Set(deletions.map(\.1))
        let linkWork = Dictionary(grouping: actions.indices.filter { Self.isLinkWork(actions[$0]) }) { i in
            actions[i].attachment?.containerID ?? actions[i].port ?? ""
        }
        let groups = linkWork.keys.sorted().map { linkWork[$0]! }
        // A veth whose old row could not be deleted is not made again (see above).
        let rowsKept = Set(deletions.filter { failures[$0.0] != nil }.map(\.1))
        for i in actions.indices {
            switch actions[i] {
            case .createVeth(let a, _, _), .recreateVeth(let a, _, _):
                if rowsKept.contains(a.hostIfname) { fail(i, "the old OVS row of \(a.hostIfname) could not be deleted") }
            default: break
            }
        }
        let skip = failures
        let now = adapters.now()
        let outcomes = timings.measure("execute netlink") {
            let work: @Sendable ([Int]) -> [(Int, String)] = { group in
                Self.runLinkWork(group.filter { skip[$0] == nil }.map { ($0, actions[$0]) }, userspace: userspace, hostDown: replaced,
                                 namespaces: namespaces, adapters: adapters, now: now)
            }
            return adapters.parallel ? concurrentMap(groups, work) : groups.map(work)
        }
        for outcome in outcomes { for (i, message) in outcome { fail(i, message) } }
        let waiting = actions.indices.filter { i in
            guard failures[i] == nil, let a = actions[i].attachment, replaced.contains(a.hostIfname) else { return false }
            switch actions[i] {
            case .createVeth, .recreateVeth: return true
            default: return false
            }
        }
        if !waiting.isEmpty {
            timings.measure("wait vswitchd") {
                if let vswitch, (try? vswitch.waitApplied(deletionConfig)) != true {
                    logger.warning("ovs-vswitchd has not applied the port deletions yet (is it running?)")
                }
            }
            timings.measure("execute netlink") {
                if let host = try? adapters.openHostLinks() {
                    for i in waiting {
                        let a = actions[i].attachment!
                        do {
                            guard let link = try host.link(named: a.hostIfname) else { fail(i, "\(a.hostIfname) vanished"); continue }
                            try host.setUp(index: link.index, name: a.hostIfname)
                        } catch { fail(i, "\(error)") }
                    }
                }
            }
        }
        FaultPoint.reconcileLinksRepaired.check()

        // OVSDB, second transaction: rows to add, tags to set.
        let additions = actions.indices.compactMap { i -> (Int, PortSpec)? in
            switch actions[i] {
            case .addPort(let a, _), .replacePort(let a, _): return (i, PortSpec.forAttachment(a))
            default: return nil
            }
        }.filter { failures[$0.0] == nil }
        let retags = actions.indices.compactMap { i -> (Int, (port: String, tag: Int?))? in
            if case .setVLAN(let a, _) = actions[i] { return (i, (a.hostIfname, a.vlan)) }
            return nil
        }
        let claimed = actions.indices.compactMap { i -> (Int, Attachment)? in
            if case .claimPort(let a, _) = actions[i] { return (i, a) }
            return nil
        }
        if !claimed.isEmpty {
            timings.measure("execute ovsdb") {
                guard let vswitch else { return claimed.forEach { fail($0.0, "OVSDB unreachable") } }
                do { try vswitch.addExternalIDs(claimed.map { ($0.1.hostIfname, ["netkeep-attachment": $0.1.id]) }, comment: "netkeep: claim port") } catch {
                    claimed.forEach { fail($0.0, "\(error)") }
                }
            }
        }
        var nextConfig: Int64?
        if !additions.isEmpty || !retags.isEmpty {
            timings.measure("execute ovsdb") {
                guard let vswitch else { return (additions.map(\.0) + retags.map(\.0)).forEach { fail($0, "OVSDB unreachable") } }
                do {
                    nextConfig = try vswitch.addPorts(additions.map(\.1), retag: retags.map(\.1), comment: "netkeep: reconcile")
                } catch {
                    (additions.map(\.0) + retags.map(\.0)).forEach { fail($0, "\(error)") }
                }
            }
        }
        FaultPoint.reconcilePortsAdded.check()

        // DHCP: unexpired leases applied at once, then, once the ports pass
        // traffic, all exchanges together.
        let leaseJobs = actions.indices.compactMap { i -> (Int, LeaseKeeper.Job)? in
            guard case .obtainLease(let planned, let pid, _) = actions[i], failures[i] == nil,
                  let a = state.attachments.first(where: { $0.id == planned.id }) else { return nil }
            return (i, LeaseKeeper.Job(attachment: a, pid: pid, goal: a.lease.map { .initReboot($0.address.address) } ?? .discover,
                                       namespace: namespaces[a.containerID]))
        }
        let renewals = actions.indices.compactMap { i -> (Int, LeaseKeeper.Job)? in
            guard case .renewLease(let planned, let pid, let due, _) = actions[i], failures[i] == nil,
                  let a = state.attachments.first(where: { $0.id == planned.id }), let lease = a.lease else { return nil }
            let goal: ClientMachine.Goal
            switch due {
            case .renew: goal = .renew(address: lease.address.address, server: lease.serverID)
            case .rebind: goal = .rebind(address: lease.address.address)
            case .confirm, .expired: goal = .initReboot(lease.address.address)
            }
            return (i, LeaseKeeper.Job(attachment: a, pid: pid, goal: goal, namespace: namespaces[a.containerID]))
        }
        if !leaseJobs.isEmpty || !renewals.isEmpty {
            let now = adapters.now()
            // Unexpired leases go on the interfaces now; the exchanges confirm
            // them (a confirmation by the lease timer too: its address is then
            // in place, and the ACK comes unicast).
            let all = leaseJobs + renewals
            let prepared = timings.measure("execute dhcp") { adapters.dhcp.prepare(all.map(\.1), now: now, logger: logger) }
            let deferred = Set(confirmLater ? leaseJobs.indices.filter { prepared[$0].addressInPlace } : [])
            let exchanged = all.indices.filter { !deferred.contains($0) }
            if !leaseJobs.isEmpty {
                timings.measure("wait vswitchd") {
                    if let vswitch, let config = nextConfig, (try? vswitch.waitApplied(config)) == true { nextConfig = nil }
                }
            }
            var results = [Int: LeaseKeeper.Result]()
            if !exchanged.isEmpty {
                let outcomes = timings.measure("execute dhcp") { adapters.dhcp.run(exchanged.map { prepared[$0] }, now: now, logger: logger) }
                for (j, outcome) in zip(exchanged, outcomes) { results[j] = outcome }
            }
            for j in deferred {
                var a = prepared[j].attachment
                a.lease?.confirmed = false
                a.lease?.retryAt = nil
                results[j] = LeaseKeeper.Result(attachment: a, error: nil)
            }
            for (j, (i, _)) in all.enumerated() {
                guard let result = results[j] else { continue }
                var a = result.attachment
                // A renewal that changed nothing (no answer) is not tried again before `retrySeconds`.
                if case .renewLease = actions[i], let lease = a.lease { a.lease = LeaseLifecycle.afterAttempt(lease, at: now) }
                state.upsert(a)
                if let error = result.error { fail(i, error) }
            }
        }

        // netns links.
        let links = adapters.netns
        for (i, action) in actions.enumerated() {
            switch action {
            case .linkNetns(let a, let pid, _):
                do {
                    if case .skipped(let why) = try links.link(a.netnsLink!, pid: pid) { fail(i, why) }
                } catch { fail(i, "\(error)") }
            case .removeNetnsLink(let name, let pid, _):
                if links.linkedPID(name) == pid, !links.removeLink(name) { fail(i, "could not remove \(links.path(name))") }
            default: break
            }
        }

        // The record: only what fully succeeded is marked ready or forgotten.
        // A release that was not sent does not keep an attachment: the lease expires on its own.
        let failedAttachments = Set(failures.keys.compactMap { i -> String? in
            if case .releaseLease = actions[i] { return nil }
            return actions[i].attachment?.id
        })
        for (i, action) in actions.enumerated() {
            switch action {
            case .markReady(let planned, let pid, _):
                if failedAttachments.contains(planned.id) { fail(i, "an earlier step for this attachment failed") ; continue }
                guard var a = state.attachments.first(where: { $0.id == planned.id }) else { continue }
                a.status = .ready
                a.containerPID = pid
                state.upsert(a)
            case .removeAttachment(let a, _):
                if !failedAttachments.contains(a.id) { state.remove(id: a.id) }
            case .retainAttachment(let planned, let until, _):
                guard !failedAttachments.contains(planned.id), var a = state.attachments.first(where: { $0.id == planned.id }) else { continue }
                a.status = .retained
                a.retainedUntil = until
                a.containerPID = nil
                // Its netns link went with the container (a removeNetnsLink of its own).
                a.netnsLink = nil
                state.upsert(a)
            case .markDown(let planned, _):
                guard var a = state.attachments.first(where: { $0.id == planned.id }) else { continue }
                a.status = .down
                state.upsert(a)
            default: break
            }
        }
        if let vswitch, let nextConfig, (try? vswitch.waitApplied(nextConfig)) != true {
            logger.warning("ovs-vswitchd has not applied the reconcile yet (is it running?)")
        }
        return actions.enumerated().map { ActionResult(action: $1, error: failures[$0]) }
    }

    static func isLinkWork(_ action: Action) -> Bool {
        switch action {
        case .createVeth, .recreateVeth, .configureInterface, .removeAttachment, .removePort, .retainAttachment: return true
        default: return false
        }
    }

    static func touchesRecord(_ action: Action) -> Bool {
        switch action {
        case .markReady, .markDown, .removeAttachment, .retainAttachment: return true
        default: return false
        }
    }

    /// The netlink part of one container's actions (or of one orphan port).
    /// A DHCP interface made anew with an unexpired lease (a restart, a
    /// reboot, a recreate) gets the lease's address with the veth, as a static
    /// one does, instead of after the port is added; its route and the
    /// confirmation follow in the DHCP step (`LeaseKeeper.prepare`).
    static func runLinkWork(_ work: [(Int, Action)], userspace: Set<String>, hostDown: Set<String>,
                            namespaces: [String: NamespaceID], adapters: HostAdapters, now: Timestamp) -> [(Int, String)] {
        var errors: [(Int, String)] = []
        var maker: (pid: Int32, maker: any ContainerLinks)?
        func linkMaker(_ pid: Int32) throws -> any ContainerLinks {
            if let maker, maker.pid == pid { return maker.maker }
            let container = work.first?.1.attachment?.containerID
            let made = try adapters.namespaces.enter(pid: pid, expecting: container.flatMap { namespaces[$0] })
            maker = (pid, made)
            return made
        }
        for (i, action) in work {
            do {
                switch action {
                case .createVeth(let a, let pid, _), .recreateVeth(let a, let pid, _):
                    let m = try linkMaker(pid)
                    if case .recreateVeth = action { try m.delete(a) }
                    try m.create(a, userspaceBridge: userspace.contains(a.bridge), hostUp: !hostDown.contains(a.hostIfname))
                    if a.mode == .dhcp, let lease = a.lease, lease.isValid(at: now) { try m.configureInside(a, fixes: [.address(lease.address)]) }
                case .configureInterface(let a, let pid, let fixes, _):
                    try linkMaker(pid).configureInside(a, fixes: fixes)
                case .removeAttachment(let a, _), .retainAttachment(let a, _, _):
                    try adapters.openHostLinks().deleteLink(named: a.hostIfname)
                case .removePort(let name, _, _):
                    try adapters.openHostLinks().deleteLink(named: name)
                default:
                    break
                }
            } catch {
                errors.append((i, "\(error)"))
            }
        }
        return errors
    }
}
