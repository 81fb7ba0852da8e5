#if canImport(Glibc)
import Glibc
#endif
import DHCP
import HostIO
import Logging
import NetkeepCore
import Netlink

/// Obtains, confirms, renews and releases the DHCP leases of attachments:
/// every exchange of one call runs together in one ExchangeLoop (one thread,
/// one poll), then each result is applied to its interface through netlink.
struct LeaseKeeper {
    let logger: Logger

    /// What to do for one attachment.
    struct Job: Sendable {
        var attachment: Attachment
        var pid: Int32
        var goal: ClientMachine.Goal
        /// The container's namespace as observed; nil: only "not the host's" is checked.
        var namespace: NamespaceID? = nil
        /// Set by `prepare`: the leased address is already on the interface.
        var addressInPlace = false
    }

    /// How one job ended, with the attachment as it must now be recorded.
    struct Result {
        var attachment: Attachment
        /// nil when the interface now carries what the record says.
        var error: String?
    }

    /// Retransmission budgets. DISCOVER follows RFC 2131 (4 s, 8 s, ... ±1 s) and
    /// outlasts dnsmasq's ping of a new address (about 3 s). INIT-REBOOT runs
    /// right after the port was plugged, when OVS may still flood the server's
    /// broadcast reply with a datapath flow cached before the port existed (seen
    /// on the test bed for about one restart in five; its revalidators catch up
    /// within milliseconds, and the server answers in 1-2 ms): it starts at
    /// 25 ms and doubles (25 ms, 50 ms, ... 3.2 s, ±5 ms: about 6.4 s in all),
    /// then, while the lease is valid, the recorded address is applied anyway.
    /// A duplicate REQUEST for the same address is harmless to the server.
    static let discoverPolicy = RetransmitPolicy(attempts: 4)
    static let confirmPolicy = RetransmitPolicy(initial: 0.025, maximum: 4, attempts: 8, jitter: 0.005)
    static let renewPolicy = RetransmitPolicy(attempts: 2)
    /// Exchanges under way at once (see ExchangeLoop.window).
    static let window = 32

    /// Before an INIT-REBOOT: an unexpired lease's address and route go on the
    /// interface at once, as they would if no server answered (RFC 2131 3.2
    /// lets a client use an unexpired lease): the container has its address
    /// without waiting for ovs-vswitchd and the server, and the ACK can come
    /// unicast instead of being flooded to every port of the bridge (after a
    /// reboot, 200 broadcast ACKs to 200 ports are 40,000 packets through
    /// OVS's userspace datapath). The exchange still confirms the lease; a NAK
    /// takes the address away before starting over.
    func prepare(_ jobs: [Job], now: Timestamp) -> [Job] {
        concurrentMap(jobs) { job in
            guard case .initReboot = job.goal, let lease = job.attachment.lease, lease.isValid(at: now) else { return job }
            var job = job
            job.addressInPlace = configure(job.attachment, pid: job.pid, namespace: job.namespace, address: lease.address, router: lease.router) == nil
            return job
        }
    }

    func run(_ jobs: [Job], now: Timestamp) -> [Result] {
        guard !jobs.isEmpty else { return [] }
        var goals = jobs.map(\.goal)
        var outcomes = exchange(jobs, goals: goals)
        // A NAK (or an expired lease that no server confirmed) starts over with DISCOVER.
        let again = jobs.indices.filter { i in
            if case .success(.nak)? = outcomes[i], goals[i] != .discover { return true }
            return false
        }
        if !again.isEmpty {
            // The refused address is not used a moment longer.
            for i in again where jobs[i].addressInPlace {
                if let error = configure(jobs[i].attachment, pid: jobs[i].pid, namespace: jobs[i].namespace, address: nil, router: nil) {
                    logger.warning("\(jobs[i].attachment.containerName) \(jobs[i].attachment.ifname): removing the refused address: \(error)")
                }
            }
            for i in again { goals[i] = .discover }
            let second = exchange(again.map { var job = jobs[$0]; job.addressInPlace = false; return job }, goals: again.map { _ in .discover })
            for (k, i) in again.enumerated() { outcomes[i] = second[k] }
        }
        let work = jobs.indices.map { i in (jobs[i], outcomes[i], again.contains(i)) }
        return concurrentMap(work) { job, outcome, refused in
            var job = job
            if refused {
                job.addressInPlace = false
                if case .success(.bound)? = outcome {} else {
                    // Refused, and no other address offered: the old lease is
                    // not kept; the next pass starts with DISCOVER.
                    var a = job.attachment
                    let old = a.lease.map { "\($0.address)" } ?? "the address"
                    a.lease = nil
                    a.address = nil
                    a.gateway = nil
                    return Result(attachment: a, error: "the DHCP server refused \(old) and offered no other address")
                }
            }
            return apply(outcome, to: job, now: now)
        }
    }

    private func exchange(_ jobs: [Job], goals: [ClientMachine.Goal]) -> [Swift.Result<ClientMachine.Outcome, ExchangeError>?] {
        let loop = ExchangeLoop(window: Self.window)
        if getenv("NETKEEP_DHCP_TRACE") != nil {
            // Debugging aid: every packet of the exchanges, with its time.
            let start = ExchangeLoop.now()
            loop.trace = { id, sent, bytes in
                let m = try? DHCPMessage.decode(bytes)
                let what = m.map { "\($0.messageType.map { "\($0)" } ?? "?") xid \(String($0.xid, radix: 16)) \($0.chaddr)" } ?? "\(bytes.count) bytes"
                writeToStandardError("dhcp \(Int((ExchangeLoop.now() - start) * 1e4) / 10) ms #\(id) \(sent ? "sent" : "received") \(what)\n")
            }
        }
        var rng = SystemRandomNumberGenerator()
        var opened: [Int: String] = [:]
        var longest = 0.0
        for (i, job) in jobs.enumerated() {
            do {
                let namespace = try NetworkNamespace(pid: job.pid, expecting: job.namespace)
                let ifname = job.attachment.ifname
                let socket = try NamespaceThread.run(in: namespace) { try DHCPSocket(interface: ifname) }
                let policy = Self.policy(for: goals[i], batch: min(jobs.count, Self.window))
                longest = max(longest, (1...policy.attempts).reduce(0) { $0 + policy.delay(attempt: $1, jitter: 1) })
                let machine = ClientMachine(goal: goals[i], mac: job.attachment.mac, xid: UInt32.random(in: 1...UInt32.max, using: &rng),
                                            policy: policy, jitter: (0..<8).map { _ in Double.random(in: -1...1, using: &rng) },
                                            addressInPlace: job.addressInPlace && goals[i] == job.goal)
                loop.add(ExchangeLoop.Session(id: String(i), socket: socket, machine: machine))
            } catch {
                opened[i] = "DHCP socket in \(job.attachment.containerName) \(job.attachment.ifname): \(error)"
            }
        }
        // Queued exchanges start as others end; 10 ms more per exchange covers
        // a server that answers. One that does not leaves the queued ones
        // unstarted at the deadline: an unexpired lease is kept and asked for
        // again by the lease timer, as when nothing answers.
        let results = loop.run(until: ExchangeLoop.now() + longest + 1 + 0.01 * Double(jobs.count))
        return jobs.indices.map { i in
            if let error = opened[i] { return .failure(ExchangeError(error)) }
            return results[String(i)]
        }
    }

    /// For INIT-REBOOT the first wait grows by 3 ms per exchange under way
    /// (dnsmasq answers one request in about that): 32 confirmations at once
    /// wait 118 ms before repeating themselves instead of multiplying the
    /// server's work; the whole budget stays about 6.4 s.
    static func policy(for goal: ClientMachine.Goal, batch: Int = 1) -> RetransmitPolicy {
        switch goal {
        case .discover: return discoverPolicy
        case .initReboot: return confirmPolicy.forBatch(batch, perExchange: 0.003, budget: 6.4)
        default: return renewPolicy
        }
    }

    private func apply(_ outcome: Swift.Result<ClientMachine.Outcome, ExchangeError>?, to job: Job, now: Timestamp) -> Result {
        var a = job.attachment
        let name = "\(a.containerName) \(a.ifname)"
        switch outcome {
        case .success(.bound(let grant))?:
            if let old = a.lease?.address, old != grant.address {
                logger.warning("\(name): DHCP address changed \(old) → \(grant.address) (the server refused the old one)")
            }
            let inPlace = job.addressInPlace && a.lease?.address == grant.address && a.lease?.router == grant.router
            a.lease = Self.lease(from: grant, now: now)
            a.address = grant.address
            a.gateway = grant.router
            if inPlace { return Result(attachment: a, error: nil) }
            return Result(attachment: a, error: configure(a, pid: job.pid, namespace: job.namespace, address: grant.address, router: grant.router))
        case .success(.released)?:
            return Result(attachment: a, error: nil)
        case .success(.nak)?:
            return Result(attachment: a, error: "the DHCP server refused the address and offered none")
        case .success(.noAnswer)?, .failure?, nil:
            let why: String
            if case .failure(let e)? = outcome { why = e.description } else { why = "no DHCP server answered" }
            guard var lease = a.lease else { return Result(attachment: a, error: why) }
            if lease.isValid(at: now) {
                // Keep the address while the lease lasts; ask again soon.
                switch job.goal {
                case .initReboot:
                    lease.confirmed = false
                    lease.renewAt = min(lease.expiresAt, now.adding(seconds: 30))
                    a.lease = lease
                    logger.warning("\(name): \(why); keeping \(lease.address) until \(lease.expiresAt) and asking again")
                    return Result(attachment: a, error: configure(a, pid: job.pid, namespace: job.namespace, address: lease.address, router: lease.router))
                case .renew:
                    // RFC 2131 4.4.5: try again after half the time left until T2 (at least a minute).
                    lease.renewAt = min(lease.rebindAt, now.adding(seconds: max(60, (lease.rebindAt.secondsSinceEpoch - now.secondsSinceEpoch) / 2)))
                case .rebind:
                    lease.rebindAt = min(lease.expiresAt, now.adding(seconds: max(60, (lease.expiresAt.secondsSinceEpoch - now.secondsSinceEpoch) / 2)))
                default:
                    break
                }
                a.lease = lease
                logger.warning("\(name): \(why); \(lease.address) stays until \(lease.expiresAt)")
                return Result(attachment: a, error: nil)
            }
            logger.warning("\(name): \(why) and the lease of \(lease.address) expired at \(lease.expiresAt); the interface is left without an address")
            _ = configure(a, pid: job.pid, namespace: job.namespace, address: nil, router: nil)
            return Result(attachment: a, error: "\(why); lease expired")
        }
    }

    /// The lease as recorded: T1 and T2 get up to 5 % jitter (at most 5 min),
    /// so leases obtained together do not renew together.
    static func lease(from grant: LeaseGrant, now: Timestamp) -> Lease {
        var rng = SystemRandomNumberGenerator()
        func jitter(_ seconds: UInt32) -> Int64 { Int64.random(in: 0...max(0, min(300, Int64(seconds) / 20)), using: &rng) }
        let t1 = Int64(grant.renewSeconds), t2 = Int64(grant.rebindSeconds)
        return Lease(address: grant.address, router: grant.router, serverID: grant.serverID, leaseSeconds: Int64(grant.leaseSeconds),
                     renewSeconds: t1, rebindSeconds: t2, obtainedAt: now,
                     renewAt: now.adding(seconds: min(t1 + jitter(grant.renewSeconds), t2)),
                     rebindAt: now.adding(seconds: min(t2 + jitter(grant.rebindSeconds), Int64(grant.leaseSeconds))),
                     dnsServers: grant.dnsServers, confirmed: true)
    }

    /// Makes `address` the interface's only IPv4 address and `router` its
    /// default route (nil: none).
    private func configure(_ a: Attachment, pid: Int32, namespace expected: NamespaceID?, address: IPv4CIDR?, router: IPv4Address?) -> String? {
        do {
            let namespace = try NetworkNamespace(pid: pid, expecting: expected)
            let session = try NetlinkSession.open(in: namespace)
            guard let link = try session.link(named: a.ifname) else { return "\(a.ifname) is missing" }
            for existing in try session.addresses() where existing.index == link.index && existing.cidr != address {
                try session.deleteAddress(existing.cidr, index: link.index, name: a.ifname)
            }
            if let address, try !session.addresses().contains(InterfaceAddress(index: link.index, cidr: address)) {
                try session.addAddress(address, index: link.index, name: a.ifname)
            }
            let defaults = try session.routes().filter { $0.isDefault && $0.outputIndex == link.index }
            if let router, !defaults.contains(where: { $0.gateway == router }) {
                if try session.routes().contains(where: \.isDefault) == false {
                    try session.addDefaultRoute(via: router, index: link.index, name: a.ifname)
                }
            }
            return nil
        } catch {
            return "\(error)"
        }
    }
}
