import DHCP
import NetkeepCore
import Netlink

/// One DHCP client's exchanges from inside a sandbox that netkeep did not
/// make (a Docker endpoint's, a CNI runtime's namespace): one socket, one
/// exchange with `LeaseKeeper`'s retransmissions. Shared by the Docker
/// plugin's endpoints and netkeep-dhcp's CNI attachments.
enum SandboxDHCP {
    /// Why an exchange gave no lease, for a person.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        /// The server answered DHCPNAK: the address is not to be used.
        var refused = false
    }

    /// One exchange of the client `mac` for `goal`; the lease as granted.
    /// `policy` replaces LeaseKeeper's retransmissions for the goal.
    static func exchange(_ goal: ClientMachine.Goal, mac: MACAddress, on socket: DHCPSocket, addressInPlace: Bool,
                         bridge: String, policy given: RetransmitPolicy? = nil) throws(Failure) -> LeaseGrant {
        var rng = SystemRandomNumberGenerator()
        let policy = given ?? LeaseKeeper.policy(for: goal)
        let machine = ClientMachine(goal: goal, mac: mac, xid: UInt32.random(in: 1...UInt32.max, using: &rng), policy: policy,
                                    jitter: (0..<8).map { _ in Double.random(in: -1...1, using: &rng) }, addressInPlace: addressInPlace)
        let loop = ExchangeLoop()
        loop.add(ExchangeLoop.Session(id: "client", socket: socket, machine: machine))
        let budget = (1...policy.attempts).reduce(0) { $0 + policy.delay(attempt: $1, jitter: 1) }
        switch loop.run(until: ExchangeLoop.now() + budget + 1)["client"] {
        case .success(.bound(let grant))?:
            return grant
        case .success(.nak)?:
            throw Failure(description: "the DHCP server refused (DHCPNAK)", refused: true)
        case .failure(let error)?:
            throw Failure(description: "DHCP: \(error)")
        default:
            throw Failure(description: "no DHCP server answered on bridge \(bridge) within \(Int(budget)) s")
        }
    }

    /// A message that expects no answer (DHCPDECLINE, DHCPRELEASE), sent
    /// and drained from the socket.
    static func tell(_ goal: ClientMachine.Goal, mac: MACAddress, on socket: DHCPSocket) throws(Failure) {
        var rng = SystemRandomNumberGenerator()
        let machine = ClientMachine(goal: goal, mac: mac, xid: UInt32.random(in: 1...UInt32.max, using: &rng), policy: LeaseKeeper.renewPolicy, jitter: [0])
        let loop = ExchangeLoop()
        loop.add(ExchangeLoop.Session(id: "client", socket: socket, machine: machine))
        switch loop.run(until: ExchangeLoop.now() + ExchangeLoop.releaseDrain + 1)["client"] {
        case .success(.declined)?, .success(.released)?: return
        case .failure(let error)?: throw Failure(description: "DHCP: \(error)")
        default: throw Failure(description: "not sent")
        }
    }

    /// The exchange a due lease calls for.
    static func goal(for lease: Lease, due: LeaseLifecycle.Due) -> ClientMachine.Goal {
        switch due {
        case .renew: return .renew(address: lease.address.address, server: lease.serverID)
        case .rebind: return .rebind(address: lease.address.address)
        case .confirm, .expired: return .initReboot(lease.address.address)
        }
    }

    /// How a due lease of a sandbox's interface ended.
    struct Renewal: Sendable {
        /// The lease to record: the granted one, the old one while it is
        /// valid, an expired one (kept only to ask for its address again), or
        /// nil after a NAK that no new lease followed.
        var lease: Lease?
        /// The outcome's address and router are on the interface, or it
        /// carries none (a lease refused or run out). False: the interface
        /// could not be changed, or not even looked at, and is as it was.
        var applied: Bool
        /// What went wrong, for a person; nil when the interface carries a
        /// lease a server granted or one that is still valid.
        var problem: String?
    }

    /// Renews (or rebinds, or confirms) `lease` from inside the namespace at
    /// `path`, on the interface named `ifname` or, when nil, the one that
    /// carries `mac`, and does to the interface what LeaseLifecycle decides,
    /// as the container path does: a granted lease goes on it (address and
    /// default route, wherever the address moved), a NAK takes the address
    /// away and one DISCOVER follows, an expired lease's address and route go.
    static func renew(_ lease: Lease, due: LeaseLifecycle.Due, namespacePath path: String, ifname: String?, mac: MACAddress,
                      bridge: String, now: Timestamp) -> Renewal {
        let namespace: NetworkNamespace, session: NetlinkSession, link: Link, socket: DHCPSocket
        do {
            namespace = try NetworkNamespace(path: path)
            if let own = NetworkNamespace.ownID, namespace.id == own {
                throw Failure(description: "\(path) is the host's own namespace")
            }
            session = try NetlinkSession.open(in: namespace)
            let found = try ifname.map { name in try session.link(named: name) } ?? session.links().first(where: { $0.mac == mac })
            guard let found, found.mac == mac else { throw Failure(description: "no interface \(ifname ?? "") with MAC \(mac) in \(path)") }
            link = found
            let name = link.name
            socket = try NamespaceThread.run(in: namespace) { try DHCPSocket(interface: name) }
        } catch {
            // Nothing was asked: the lease waits as after silence.
            return Renewal(lease: LeaseLifecycle.afterAttempt(lease, at: now), applied: false, problem: "\(error)")
        }
        var (outcome, silence) = ask(goal(for: lease, due: due), exchange: Self.exchange(for: due), lease: lease, mac: mac, socket: socket,
                                     bridge: bridge, now: now)
        var refusal: String?
        if outcome.startOver {
            // The refused address is not used a moment longer; then INIT once.
            refusal = outcome.problem
            try? LeaseInterface.apply(address: nil, router: nil, link: link, session: session)
            (outcome, silence) = ask(.discover, exchange: .discover, lease: nil, mac: mac, socket: socket, bridge: bridge, now: now)
            if outcome.address == .clear { outcome.address = .keep }
        }
        var problems = outcome.problem.map { [refusal, silence, $0].compactMap { $0 } } ?? []
        // A new address is probed before it is used; one another host answers for is declined.
        if outcome.address == .apply, let granted = outcome.lease, granted.address != lease.address,
           let conflict = AddressConflict.check(granted, mac: mac, ifname: link.name, in: namespace) {
            outcome = LeaseLifecycle.Outcome(lease: LeaseLifecycle.withdrawn(lease, at: now), address: .clear, problem: conflict)
            problems = [refusal, conflict].compactMap { $0 }
        }
        var applied = true
        do {
            switch outcome.address {
            case .apply: try LeaseInterface.apply(address: outcome.lease?.address, router: outcome.lease?.router, link: link, session: session)
            case .clear: try LeaseInterface.apply(address: nil, router: nil, link: link, session: session)
            case .keep: break
            }
        } catch {
            applied = false
            problems.append("\(link.name): \(error)")
        }
        // A silent renewal left the lease due: the next try waits. A refused
        // one that nothing replaced is kept as run out, to be asked for again.
        let kept = outcome.lease ?? (refusal != nil ? LeaseLifecycle.withdrawn(lease, at: now) : nil)
        let recorded = kept.map { LeaseLifecycle.afterAttempt($0, at: now) }
        return Renewal(lease: recorded, applied: applied, problem: problems.isEmpty ? nil : problems.joined(separator: "; "))
    }

    /// One exchange and LeaseLifecycle's decision on its answer; with the
    /// silence's cause when no server's answer counted.
    private static func ask(_ goal: ClientMachine.Goal, exchange: LeaseLifecycle.Exchange, lease: Lease?, mac: MACAddress, socket: DHCPSocket,
                            bridge: String, now: Timestamp) -> (LeaseLifecycle.Outcome, String?) {
        let answer: LeaseLifecycle.Answer
        var silence: String?
        do {
            // The address is on the interface while its lease is valid: a unicast answer reaches it.
            let inPlace = lease.map { $0.isValid(at: now) } ?? false
            answer = .granted(LeaseKeeper.lease(from: try Self.exchange(goal, mac: mac, on: socket, addressInPlace: inPlace, bridge: bridge), now: now))
        } catch where error.refused {
            answer = .refused
        } catch {
            answer = .silent
            silence = error.description
        }
        return (LeaseLifecycle.after(lease: lease, exchange: exchange, answer: answer, at: now), silence)
    }

    static func exchange(for due: LeaseLifecycle.Due) -> LeaseLifecycle.Exchange {
        switch due {
        case .renew: return .renew
        case .rebind: return .rebind
        case .confirm, .expired: return .initReboot
        }
    }
}
