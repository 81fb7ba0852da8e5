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

    /// Retransmission budgets. A DISCOVER also runs right after its port was
    /// plugged, and its broadcast OFFER was lost to a flood flow cached before
    /// the port existed for about one new lease in ten on the test bed (the
    /// server logged the OFFER; RFC 2131's first repeat at 4 s ± 1 s then cost
    /// 3-5 s): it repeats after 1 s, then doubles (1, 2, 4, 8, 16, 16 s, ±0.25 s:
    /// about 47 s in all, outlasting dnsmasq's 3 s ping of a new address; a
    /// DISCOVER repeated meanwhile is answered with the same offer). INIT-REBOOT runs
    /// right after the port was plugged, when OVS may still flood the server's
    /// broadcast reply with a datapath flow cached before the port existed (seen
    /// on the test bed for about one restart in five; its revalidators catch up
    /// within milliseconds, and the server answers in 1-2 ms): it starts at
    /// 25 ms and doubles (25 ms, 50 ms, ... 3.2 s, ±5 ms: about 6.4 s in all),
    /// then, while the lease is valid, the recorded address is applied anyway.
    /// A duplicate REQUEST for the same address is harmless to the server.
    static let discoverPolicy = RetransmitPolicy(initial: 1, maximum: 16, attempts: 6, jitter: 0.25)
    static let confirmPolicy = RetransmitPolicy(initial: 0.025, maximum: 4, attempts: 8, jitter: 0.005)
    static let renewPolicy = RetransmitPolicy(attempts: 2)
    /// One client's INIT-REBOOT on a port plugged a moment ago (CNI ADD of a
    /// kept lease): the stale flood flow above loses the first ACK in about
    /// two of three DEL+ADD rounds on the test bed, and OVS has caught up
    /// 3 ms later; 10 ms, doubling (10 ms ... 2.56 s, about 5 s in all).
    static let freshPortPolicy = RetransmitPolicy(initial: 0.01, maximum: 4, attempts: 9, jitter: 0.002)
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
        let outcomes = exchange(jobs, goals: jobs.map(\.goal))
        let decided = jobs.indices.map { decide(jobs[$0], outcomes[$0], now: now) }
        // A NAK sends the client back to INIT, whatever was asked: INIT-REBOOT,
        // a renewal, or the REQUEST after an OFFER that the server had also
        // made to another client DISCOVERing at the same moment (dnsmasq does).
        // One more DISCOVER runs at once; after that, the next pass.
        let again = jobs.indices.filter { i in
            switch jobs[i].goal {
            case .release, .decline: return false
            default: break
            }
            return decided[i]?.outcome.startOver == true
        }
        var retried: [Int: Decision] = [:]
        if !again.isEmpty {
            // The refused address is not used a moment longer.
            for i in again { clear(jobs[i], because: "removing the refused address") }
            let fresh = again.map { i -> Job in
                var job = jobs[i]
                job.goal = .discover
                job.attachment.lease = nil
                job.addressInPlace = false
                return job
            }
            let second = exchange(fresh, goals: fresh.map(\.goal))
            for (k, i) in again.enumerated() {
                guard var decision = decide(fresh[k], second[k], now: now) else { continue }
                // Nothing was applied since the address was cleared above.
                if decision.outcome.address == .clear { decision.outcome.address = .keep }
                decision.refusal = decided[i]?.outcome.problem
                retried[i] = decision
            }
        }
        let work = jobs.indices.map { i in
            var job = jobs[i]
            if retried[i] != nil { job.addressInPlace = false }
            return (job, retried[i] ?? decided[i], outcomes[i])
        }
        return concurrentMap(work) { job, decision, outcome in
            guard let decision else {
                // A release: sent, or why not.
                switch outcome {
                case .success(.released)?: return Result(attachment: job.attachment, error: nil)
                case .failure(let error)?: return Result(attachment: job.attachment, error: error.description)
                default: return Result(attachment: job.attachment, error: "the DHCPRELEASE was not sent before the deadline")
                }
            }
            return record(decision, for: job)
        }
    }

    /// An exchange's result as LeaseLifecycle decides it; nil for a release.
    struct Decision: Sendable {
        var outcome: LeaseLifecycle.Outcome
        /// Why no server's answer counted (nil when one did).
        var silence: String?
        /// The NAK that this exchange followed, in its own words.
        var refusal: String?
    }

    private func decide(_ job: Job, _ result: Swift.Result<ClientMachine.Outcome, ExchangeError>?, now: Timestamp) -> Decision? {
        let exchange: LeaseLifecycle.Exchange
        switch job.goal {
        case .discover: exchange = .discover
        case .initReboot: exchange = .initReboot
        case .renew: exchange = .renew
        case .rebind: exchange = .rebind
        case .release, .decline: return nil
        }
        let answer: LeaseLifecycle.Answer
        var silence: String?
        switch result {
        case .success(.bound(let grant))?: answer = .granted(Self.lease(from: grant, now: now))
        case .success(.nak)?: answer = .refused
        case .failure(let error)?: answer = .silent; silence = error.description
        case .success(.noAnswer)?, .success(.released)?, .success(.declined)?, nil: answer = .silent; silence = "no DHCP server answered"
        }
        let outcome = LeaseLifecycle.after(lease: job.attachment.lease, exchange: exchange, answer: answer, at: now)
        return Decision(outcome: outcome, silence: silence)
    }

    /// Records the decision and carries out what it says for the interface.
    private func record(_ decision: Decision, for job: Job) -> Result {
        var a = job.attachment
        let name = "\(a.containerName) \(a.ifname)"
        let old = job.attachment.lease
        let outcome = decision.outcome
        a.lease = outcome.lease
        a.address = outcome.lease?.address
        a.gateway = outcome.lease?.router
        // A problem reads as what happened first: the NAK, the silence, the consequence.
        var problems = outcome.problem.map { [decision.refusal, decision.silence, $0].compactMap { $0 } } ?? []
        if let lease = outcome.lease, let why = decision.silence, outcome.problem == nil {
            logger.warning("\(name): \(why); keeping \(lease.address) until \(lease.expiresAt)\(lease.confirmed ? "" : ", unconfirmed")\(lease.retryAt.map { ", asking again at \($0)" } ?? "")")
        }
        switch outcome.address {
        case .apply:
            guard let lease = outcome.lease else { break }
            if let old = old?.address, old != lease.address {
                // Probed first (RFC 5227): another host that answers for it keeps it.
                if let namespace = try? NetworkNamespace(pid: job.pid, expecting: job.namespace),
                   let conflict = AddressConflict.check(lease, mac: a.mac, ifname: a.ifname, in: namespace, skipped: { logger.warning("\(name): \($0)") }) {
                    a.lease = nil
                    a.address = nil
                    a.gateway = nil
                    clear(job, because: "removing the refused address")
                    return Result(attachment: a, error: (problems + [conflict]).joined(separator: "; "))
                }
                logger.warning("\(name): DHCP address changed \(old) → \(lease.address)\(decision.refusal == nil ? "" : " (the server refused the old one)")")
            }
            let inPlace = job.addressInPlace && old?.address == lease.address && old?.router == lease.router
            if !inPlace, let failed = configure(a, pid: job.pid, namespace: job.namespace, address: lease.address, router: lease.router) {
                problems.append(failed)
            }
        case .clear:
            clear(job, because: "removing the address")
        case .keep:
            break
        }
        return Result(attachment: a, error: problems.isEmpty ? nil : problems.joined(separator: "; "))
    }

    /// Takes every IPv4 address off the job's interface.
    private func clear(_ job: Job, because what: String) {
        if let error = configure(job.attachment, pid: job.pid, namespace: job.namespace, address: nil, router: nil) {
            logger.warning("\(job.attachment.containerName) \(job.attachment.ifname): \(what): \(error)")
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
    /// default route (nil: none), as `LeaseInterface` does.
    private func configure(_ a: Attachment, pid: Int32, namespace expected: NamespaceID?, address: IPv4CIDR?, router: IPv4Address?) -> String? {
        do {
            let namespace = try NetworkNamespace(pid: pid, expecting: expected)
            let session = try NetlinkSession.open(in: namespace)
            guard let link = try session.link(named: a.ifname) else { return "\(a.ifname) is missing" }
            try LeaseInterface.apply(address: address, router: router, link: link, session: session)
            return nil
        } catch {
            return "\(error)"
        }
    }
}
