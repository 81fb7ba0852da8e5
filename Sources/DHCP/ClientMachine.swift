import NetkeepCore

/// What a server granted: the address with its prefix, router, server, times.
public struct LeaseGrant: Equatable, Sendable {
    public var address: IPv4CIDR
    public var router: IPv4Address?
    public var serverID: IPv4Address
    public var leaseSeconds: UInt32
    public var renewSeconds: UInt32
    public var rebindSeconds: UInt32
    public var dnsServers: [IPv4Address]
}

/// Retransmission (RFC 2131 4.1): the k-th wait is `initial * 2^(k-1)`, capped
/// at `maximum`, plus a uniform jitter of up to ±`jitter` seconds (RFC: 4 s
/// and ±1 s); `attempts` sends in all.
public struct RetransmitPolicy: Equatable, Sendable {
    public var initial: Double
    public var maximum: Double
    public var attempts: Int
    public var jitter: Double

    public init(initial: Double = 4, maximum: Double = 64, attempts: Int, jitter: Double = 1) {
        self.initial = initial
        self.maximum = maximum
        self.attempts = attempts
        self.jitter = jitter
    }

    /// For `count` exchanges started together: the first wait grows by
    /// `perExchange` for each exchange beyond the first (a server answers them
    /// one by one), and the attempts are as many as fit in `budget` seconds of
    /// waiting without jitter, at least 3.
    public func forBatch(_ count: Int, perExchange: Double, budget: Double) -> RetransmitPolicy {
        var policy = self
        policy.initial += perExchange * Double(max(0, count - 1))
        var total = 0.0
        var fit = 0
        while fit < 16 {
            total += policy.delay(attempt: fit + 1, jitter: 0)
            if total > budget + 1e-9 { break }
            fit += 1
        }
        policy.attempts = max(3, fit)
        return policy
    }

    /// `random` is a uniform value in -1...1. Never less than 10 ms.
    public func delay(attempt: Int, jitter random: Double) -> Double {
        max(0.01, min(initial * Double(1 << min(attempt - 1, 16)), maximum) + random * jitter)
    }
}

/// One DHCP exchange as a pure state machine: it is told the time and what
/// arrived, and answers with what to send, when to wake it, and how it ended.
/// Randomness (xid, jitter) comes from outside, so tests are exact.
public struct ClientMachine: Sendable {
    public enum Goal: Equatable, Sendable {
        /// INIT: DISCOVER, OFFER, REQUEST, ACK.
        case discover
        /// INIT-REBOOT (RFC 2131 4.3.2): REQUEST for a known address, broadcast, no
        /// server id. The reply is asked for by broadcast unless `addressInPlace`.
        case initReboot(IPv4Address)
        /// RENEWING at T1: REQUEST unicast to the server that granted the lease.
        case renew(address: IPv4Address, server: IPv4Address)
        /// REBINDING at T2: REQUEST broadcast to any server.
        case rebind(address: IPv4Address)
        /// DHCPRELEASE, unicast, no answer expected.
        case release(address: IPv4Address, server: IPv4Address)
        /// DHCPDECLINE, broadcast, no answer expected: another host uses the
        /// address the server gave (RFC 2131 4.4.1, RFC 5227).
        case decline(address: IPv4Address, server: IPv4Address)
    }

    public enum Destination: Equatable, Sendable { case broadcast, server(IPv4Address) }

    public enum Outcome: Equatable, Sendable {
        case bound(LeaseGrant)
        case nak(server: IPv4Address?)
        case noAnswer
        case released
        case declined
    }

    public struct Step: Equatable, Sendable {
        public var send: DHCPMessage?
        public var destination: Destination = .broadcast
        /// Monotonic seconds at which `timeout` must be called.
        public var wakeAt: Double?
        public var outcome: Outcome?
    }

    enum Phase: Equatable, Sendable { case idle, selecting, requesting, waiting, done }

    public let goal: Goal
    public let mac: MACAddress
    public let xid: UInt32
    public let policy: RetransmitPolicy
    private var jitter: [Double]
    private var phase = Phase.idle
    private var attempt = 0
    private var current: DHCPMessage?
    private var destination = Destination.broadcast
    private var started = 0.0

    /// `jitter` supplies the random part of each wait (values in -1...1), cycled.
    /// The address asked for by INIT-REBOOT is already on the interface (an
    /// unexpired lease): the client can take a unicast ACK, so it does not ask
    /// for a broadcast one (RFC 2131 4.1: the BROADCAST bit is for clients that
    /// cannot), and the server's replies reach this client only. A NAK is
    /// broadcast all the same.
    public let addressInPlace: Bool

    public init(goal: Goal, mac: MACAddress, xid: UInt32, policy: RetransmitPolicy, jitter: [Double], addressInPlace: Bool = false) {
        self.goal = goal
        self.mac = mac
        self.xid = xid
        self.policy = policy
        self.jitter = jitter.isEmpty ? [0] : jitter
        self.addressInPlace = addressInPlace
    }

    public var isDone: Bool { phase == .done }

    /// The last reply that was for this exchange but refused (a broadcast
    /// address offered, a lease time of 0, ...), so that "no answer" can say why.
    public private(set) var refusal: String?

    public mutating func start(now: Double) -> Step {
        started = now
        switch goal {
        case .discover:
            phase = .selecting
            return send(request(.discover, broadcast: true), to: .broadcast, now: now)
        case .initReboot(let address):
            var m = request(.request, broadcast: !addressInPlace)
            m.options.requestedAddress = address
            phase = .waiting
            return send(m, to: .broadcast, now: now)
        case .renew(let address, let server):
            var m = request(.request, broadcast: false)
            m.ciaddr = address
            phase = .waiting
            return send(m, to: .server(server), now: now)
        case .rebind(let address):
            var m = request(.request, broadcast: false)
            m.ciaddr = address
            phase = .waiting
            return send(m, to: .broadcast, now: now)
        case .release(let address, let server):
            var m = request(.release, broadcast: false)
            m.ciaddr = address
            m.options.serverID = server
            m.options.parameterRequestList = []
            phase = .done
            return Step(send: m, destination: .server(server), wakeAt: nil, outcome: .released)
        case .decline(let address, let server):
            var m = request(.decline, broadcast: false)
            m.options.requestedAddress = address
            m.options.serverID = server
            m.options.parameterRequestList = []
            phase = .done
            return Step(send: m, destination: .broadcast, wakeAt: nil, outcome: .declined)
        }
    }

    /// A received message; nil when it is not for this exchange (another
    /// xid or chaddr, a request, an unexpected type): it is ignored.
    public mutating func receive(_ m: DHCPMessage, now: Double) -> Step? {
        guard phase != .done, phase != .idle, m.op == DHCPMessage.bootReply, m.xid == xid, m.chaddr == mac else { return nil }
        switch (phase, m.messageType) {
        case (.selecting, .offer?):
            guard let server = m.options.serverID, m.yiaddr.value != 0 else { return nil }
            // An offer that could never be recorded is not taken: another server may offer better.
            if case .failure(let why) = Self.grant(from: m, fallbackServer: server) {
                refusal = "\(why) (offer from \(server))"
                return nil
            }
            var r = request(.request, broadcast: true)
            r.options.requestedAddress = m.yiaddr
            r.options.serverID = server
            phase = .requesting
            attempt = 0
            return send(r, to: .broadcast, now: now)
        case (.requesting, .ack?), (.waiting, .ack?):
            let from = m.options.serverID.map(\.description) ?? "an unnamed server"
            // Only the server asked, for the address asked for: any other ACK
            // is another client's, or a rogue server's (two containers would
            // share an address).
            if let why = unexpected(from: m.options.serverID, address: m.yiaddr) {
                refusal = "acknowledgement from \(from) \(why)"
                return nil
            }
            let grant: LeaseGrant
            switch Self.grant(from: m, fallbackServer: expectedServer) {
            case .success(let g): grant = g
            case .failure(let why):
                refusal = "\(why) (acknowledgement from \(from))"
                return nil
            }
            phase = .done
            return Step(send: nil, wakeAt: nil, outcome: .bound(grant))
        case (.requesting, .nak?), (.waiting, .nak?):
            // A NAK counts from the server asked; INIT-REBOOT and REBINDING asked none.
            if let expected = expectedServer, m.options.serverID != expected {
                refusal = "DHCPNAK from \(m.options.serverID.map(\.description) ?? "an unnamed server"), not from \(expected) that was asked"
                return nil
            }
            phase = .done
            return Step(send: nil, wakeAt: nil, outcome: .nak(server: m.options.serverID))
        default:
            return nil
        }
    }

    /// The server the current REQUEST is for: the one whose OFFER was taken,
    /// or the lease's own when renewing; nil when any may answer.
    var expectedServer: IPv4Address? {
        switch goal {
        case .renew(_, let server): return server
        case .discover: return current?.options.serverID
        case .initReboot, .rebind, .release, .decline: return nil
        }
    }

    /// The address the current REQUEST asks for.
    var requestedAddress: IPv4Address? {
        switch goal {
        case .discover, .initReboot: return current?.options.requestedAddress
        case .renew(let address, _), .rebind(let address): return address
        case .release, .decline: return nil
        }
    }

    /// Why an ACK is not the answer to this REQUEST; nil when it is.
    func unexpected(from server: IPv4Address?, address: IPv4Address) -> String? {
        if let expected = expectedServer, let server, server != expected { return "is not from \(expected) that was asked" }
        if let requested = requestedAddress, address != requested { return "is for \(address), not \(requested) that was asked for" }
        return nil
    }

    /// The wait ran out: send again, or give up after `policy.attempts` sends.
    public mutating func timeout(now: Double) -> Step {
        guard phase != .done, let current else { return Step(send: nil, wakeAt: nil, outcome: nil) }
        guard attempt < policy.attempts else {
            phase = .done
            return Step(send: nil, wakeAt: nil, outcome: .noAnswer)
        }
        var again = current
        again.secs = UInt16(clamping: Int(now - started))
        return send(again, to: destination, now: now)
    }

    private mutating func send(_ m: DHCPMessage, to destination: Destination, now: Double) -> Step {
        attempt += 1
        current = m
        self.destination = destination
        let wait = policy.delay(attempt: attempt, jitter: jitter[(attempt - 1) % jitter.count])
        return Step(send: m, destination: destination, wakeAt: now + wait, outcome: nil)
    }

    private func request(_ type: DHCPMessage.MessageType, broadcast: Bool) -> DHCPMessage {
        var options = DHCPOptions()
        options.messageType = type
        options.clientID = [1] + mac.bytes
        options.parameterRequestList = [DHCPOptions.Code.subnetMask, DHCPOptions.Code.router, DHCPOptions.Code.dns,
                                        DHCPOptions.Code.leaseTime, DHCPOptions.Code.serverID,
                                        DHCPOptions.Code.renewalTime, DHCPOptions.Code.rebindingTime]
        var m = DHCPMessage(op: DHCPMessage.bootRequest, xid: xid, chaddr: mac, options: options)
        // Without an address the client cannot take unicast replies: ask for broadcast.
        if broadcast { m.flags = DHCPMessage.broadcastFlag }
        return m
    }

    /// Why a reply's lease is refused (AddressRules), as the error of `grant`.
    public struct Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// The lease in an OFFER or ACK; T1 and T2 default to 1/2 and 7/8 of the
    /// lease (RFC 2131 4.4.5) and a T1 sooner than AddressRules allows is moved
    /// later. A lease netkeep could not record is refused here, where it enters.
    static func grant(from ack: DHCPMessage, fallbackServer: IPv4Address?) -> Result<LeaseGrant, Refusal> {
        guard ack.yiaddr.value != 0 else { return .failure(Refusal(description: "reply without an address")) }
        guard let server = ack.options.serverID ?? fallbackServer, server.value != 0 else {
            return .failure(Refusal(description: "reply without a server identifier"))
        }
        let lease = ack.options.leaseTime ?? 3600
        guard let mask = ack.options.subnetMask ?? Optional(IPv4Address(UInt32.max)), let prefix = prefixLength(mask) else {
            return .failure(Refusal(description: "subnet mask \(ack.options.subnetMask.map(\.description) ?? "?") is not contiguous"))
        }
        guard let cidr = try? IPv4CIDR(address: ack.yiaddr, prefixLength: prefix) else {
            return .failure(Refusal(description: "offered prefix /\(prefix) is not usable"))
        }
        // An infinite lease (0xffffffff) stays as large as it is.
        let seconds = Int64(lease)
        if let why = AddressRules.leaseRefusal(address: cidr, leaseSeconds: seconds) {
            return .failure(Refusal(description: why))
        }
        let (t1, t2) = AddressRules.renewalTimes(lease: seconds, t1: ack.options.renewalTime.map(Int64.init),
                                                 t2: ack.options.rebindingTime.map(Int64.init))
        let router = ack.options.routers.first.flatMap { cidr.contains($0) && $0 != ack.yiaddr ? $0 : nil }
        return .success(LeaseGrant(address: cidr, router: router, serverID: server, leaseSeconds: lease,
                                   renewSeconds: UInt32(t1), rebindSeconds: UInt32(t2), dnsServers: ack.options.dnsServers))
    }

    /// The prefix length of a contiguous netmask; nil for a non-contiguous one.
    static func prefixLength(_ mask: IPv4Address) -> Int? {
        let ones = mask.value.leadingZeroBitCount == 0 ? (~mask.value).leadingZeroBitCount : 0
        guard ones > 0, ones <= 32, mask.value == (ones == 32 ? UInt32.max : ~(UInt32.max >> ones)) else { return nil }
        return ones
    }
}
