/// The DHCP client's lease states (RFC 2131 4.4) as pure functions of a
/// recorded lease and the time: which phase a lease is in, when it needs
/// attention, and what an exchange's answer makes of it. The lease keeper does
/// the I/O; the daemon's timer and `netkeep dhcp-renew` ask here what is due.
public enum LeaseLifecycle {
    public enum Phase: Equatable, Sendable {
        /// Granted and confirmed by a server, before T1.
        case bound
        /// Applied without a server's answer while still valid (after a
        /// reboot or a restart): INIT-REBOOT confirms it.
        case unconfirmed
        /// T1 to T2: unicast REQUEST to the server that granted it.
        case renewing
        /// T2 to expiry: broadcast REQUEST to any server.
        case rebinding
        /// Past the lease time: the address must go; the client starts over.
        case expired
    }

    /// The exchange a due lease calls for.
    public enum Due: Equatable, Sendable {
        /// INIT-REBOOT: the address was applied without a server's answer.
        case confirm
        /// RENEWING: unicast REQUEST to the server.
        case renew
        /// REBINDING: broadcast REQUEST.
        case rebind
        /// The lease ran out: the address must go; ask for it again.
        case expired
    }

    /// Boundaries belong to the later phase: at exactly T1 the lease renews,
    /// at exactly T2 it rebinds, at exactly the lease time it has expired.
    public static func phase(of lease: Lease, at now: Timestamp) -> Phase {
        if now >= lease.expiresAt { return .expired }
        if !lease.confirmed { return .unconfirmed }
        if now >= lease.rebindAt { return .rebinding }
        if now >= lease.renewAt { return .renewing }
        return .bound
    }

    /// What the lease needs now; nil while bound or while `retryAt` is ahead.
    public static func due(_ lease: Lease, at now: Timestamp) -> Due? {
        if let retry = lease.retryAt, now < retry { return nil }
        switch phase(of: lease, at: now) {
        case .bound: return nil
        case .unconfirmed: return .confirm
        case .renewing: return .renew
        case .rebinding: return .rebind
        case .expired: return .expired
        }
    }

    /// Every DHCP attachment that needs attention now.
    public static func due(in state: State, at now: Timestamp) -> [(Attachment, Due)] {
        state.attachments.compactMap { a in
            guard a.mode == .dhcp, a.status == .ready, let lease = a.lease, let due = due(lease, at: now) else { return nil }
            return (a, due)
        }
    }

    /// The earliest moment a lease needs attention, for the daemon's timer
    /// (a moment in the past: at once).
    /// A valid lease asked for out of turn (`dhcp-renew --all`): due at once,
    /// without the wait an earlier attempt left; nil when it has expired.
    public static func dueNow(_ lease: Lease, at now: Timestamp) -> Lease? {
        guard lease.isValid(at: now) else { return nil }
        var asked = lease
        asked.renewAt = min(lease.renewAt, now)
        asked.retryAt = nil
        return asked
    }

    public static func nextWake(of lease: Lease) -> Timestamp {
        // An unconfirmed lease is due from the start; a confirmed one at T1 (or expiry).
        let first = lease.confirmed ? min(lease.renewAt, lease.expiresAt) : lease.obtainedAt
        return lease.retryAt.map { max($0, first) } ?? first
    }

    public static func nextWake(in state: State) -> Timestamp? {
        let attachments = state.attachments.compactMap { a -> Timestamp? in
            guard a.mode == .dhcp, a.status == .ready, let lease = a.lease else { return nil }
            return nextWake(of: lease)
        }
        let endpoints = state.endpoints.compactMap { e -> Timestamp? in
            guard e.mode == .dhcp, e.status == .joined, let lease = e.lease else { return nil }
            return nextWake(of: lease)
        }
        let cni = state.cni.compactMap { a -> Timestamp? in
            guard a.status == .ready, let lease = a.lease else { return nil }
            return nextWake(of: lease)
        }
        // A kept lease wants the daemon when it is to be released.
        let kept = state.cniLeases.map { min($0.releaseAt, $0.lease.expiresAt) }
        return (attachments + endpoints + cni + kept).min()
    }

    /// Every netkeep-dhcp lease of a ready CNI attachment that needs attention now.
    public static func dueCNI(in state: State, at now: Timestamp) -> [(CNIAttachment, Due)] {
        state.cni.compactMap { a in
            guard a.status == .ready, let lease = a.lease, let due = due(lease, at: now) else { return nil }
            return (a, due)
        }
    }

    /// Every DHCP endpoint of a Docker network that needs attention now: only
    /// joined ones, whose interface is in a container (the daemon renews there).
    public static func dueEndpoints(in state: State, at now: Timestamp) -> [(Endpoint, Due)] {
        state.endpoints.compactMap { e in
            guard e.mode == .dhcp, e.status == .joined, let lease = e.lease, let due = due(lease, at: now) else { return nil }
            return (e, due)
        }
    }

    /// How long a due lease whose attempt changed nothing waits before the next.
    public static let retrySeconds: Int64 = 30
    /// RFC 2131 4.4.5: the shortest wait between unanswered renewals or rebinds.
    public static let shortestRetransmitSeconds: Int64 = 60

    /// The lease after a pass: an attempt that left it due is retried later
    /// (at the wait its exchange chose, if any, else after `retrySeconds`);
    /// one that moved it on clears the retry.
    public static func afterAttempt(_ lease: Lease, at now: Timestamp) -> Lease {
        var lease = lease
        let chosen = lease.retryAt.flatMap { $0 > now ? $0 : nil }
        lease.retryAt = nil
        if due(lease, at: now) != nil { lease.retryAt = chosen ?? now.adding(seconds: retrySeconds) }
        return lease
    }

    /// What was asked of the servers.
    public enum Exchange: Equatable, Sendable {
        /// INIT: DISCOVER, then REQUEST what was offered.
        case discover
        /// INIT-REBOOT: REQUEST for the recorded address, no server id.
        case initReboot
        case renew
        case rebind
    }

    /// How the servers answered.
    public enum Answer: Equatable, Sendable {
        /// DHCPACK: the lease as it is to be recorded.
        case granted(Lease)
        /// DHCPNAK.
        case refused
        /// Nothing usable arrived (or nothing could be sent).
        case silent
    }

    /// What to do with the interface's address.
    public enum AddressAction: Equatable, Sendable {
        /// Put the outcome's lease (address and router) on the interface.
        case apply
        /// Leave the interface as it is.
        case keep
        /// Remove the address: it is refused or its lease ran out.
        case clear
    }

    public struct Outcome: Equatable, Sendable {
        /// The lease to record. An expired one stays recorded only to ask for
        /// its address again; it is never applied.
        public var lease: Lease?
        public var address: AddressAction
        /// What is wrong, for a person; nil when the interface carries a lease
        /// a server granted or one that is still valid. After silence it
        /// follows the cause ("no DHCP server answered; ...").
        public var problem: String?
        /// Back to INIT: DISCOVER again (RFC 2131 3.1, 3.2: after a NAK).
        public var startOver: Bool

        public init(lease: Lease?, address: AddressAction, problem: String? = nil, startOver: Bool = false) {
            self.lease = lease
            self.address = address
            self.problem = problem
            self.startOver = startOver
        }
    }

    /// The decision after an exchange that started from `lease` (nil: none).
    /// A NAK in any state sends the client back to INIT: the address goes and
    /// DISCOVER follows. Silence keeps a valid lease: INIT-REBOOT keeps it
    /// unconfirmed and asks again after `retrySeconds`; RENEWING and REBINDING
    /// wait half the time left until T2 or expiry (at least a minute). An
    /// expired lease's address goes.
    public static func after(lease: Lease?, exchange: Exchange, answer: Answer, at now: Timestamp) -> Outcome {
        switch answer {
        case .granted(var granted):
            granted.retryAt = nil
            return Outcome(lease: granted, address: .apply)
        case .refused:
            let what = exchange == .discover || lease == nil ? "the address it had offered" : "\(lease!.address)"
            return Outcome(lease: nil, address: .clear, problem: "the DHCP server refused \(what)", startOver: true)
        case .silent:
            guard var lease else { return Outcome(lease: nil, address: .keep, problem: "no address is leased") }
            guard lease.isValid(at: now) else {
                lease.retryAt = now.adding(seconds: retrySeconds)
                return Outcome(lease: lease, address: .clear,
                               problem: "the lease of \(lease.address) expired at \(lease.expiresAt); the address was removed")
            }
            switch exchange {
            case .initReboot:
                lease.confirmed = false
                lease.retryAt = min(lease.expiresAt, now.adding(seconds: retrySeconds))
                return Outcome(lease: lease, address: .apply)
            case .renew where !lease.confirmed, .rebind where !lease.confirmed:
                // Asked out of turn (`dhcp-renew --all`): confirming stays as soon.
                lease.retryAt = min(lease.expiresAt, now.adding(seconds: retrySeconds))
            case .renew:
                lease.retryAt = halfway(from: now, to: lease.rebindAt)
            case .rebind:
                lease.retryAt = halfway(from: now, to: lease.expiresAt)
            case .discover:
                break
            }
            return Outcome(lease: lease, address: .keep)
        }
    }

    /// A lease a server refused, when no new lease replaced it: recorded as
    /// run out at `now` (its address is off the interface), only to ask for
    /// the address again after `retrySeconds`, and DISCOVER after that. The
    /// keeper of a sandbox's lease has no planner to ask for a missing one.
    public static func withdrawn(_ lease: Lease, at now: Timestamp) -> Lease {
        var out = lease
        let shift = now.secondsSinceEpoch - lease.expiresAt.secondsSinceEpoch
        out.obtainedAt = lease.obtainedAt.adding(seconds: shift)
        out.renewAt = lease.renewAt.adding(seconds: shift)
        out.rebindAt = lease.rebindAt.adding(seconds: shift)
        out.confirmed = false
        out.retryAt = now.adding(seconds: retrySeconds)
        return out
    }

    /// RFC 2131 4.4.5: half the time left until `end`, at least a minute, never past `end`.
    static func halfway(from now: Timestamp, to end: Timestamp) -> Timestamp {
        let left = end.secondsSinceEpoch - now.secondsSinceEpoch
        return min(end, now.adding(seconds: max(shortestRetransmitSeconds, left / 2)))
    }
}
