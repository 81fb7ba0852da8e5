#if canImport(Glibc)
import Glibc
#endif
import HostIO
import NetkeepCore
import Synchronization

/// Runs many DHCP exchanges at once on one thread: one poll() over every
/// socket, woken by the earliest timer. The daemon drives the same loop.
public final class ExchangeLoop {
    public struct Session {
        public let id: String
        public let socket: DHCPSocket
        public var machine: ClientMachine
        public var wakeAt: Double?
        public var outcome: ClientMachine.Outcome?
        public var error: String?
        /// When its first message went out (monotonic seconds).
        public var startedAt: Double?
        /// When it ended (an answer, an error); nil while it runs.
        public var endedAt: Double?
        /// Datagrams on its socket that are no DHCP message, and why the last was not.
        public var unreadable = 0
        public var lastUnreadable: String?

        public init(id: String, socket: DHCPSocket, machine: ClientMachine) {
            self.id = id
            self.socket = socket
            self.machine = machine
        }
    }

    public private(set) var sessions: [Session] = []
    /// Called with every packet sent and received, for tests and tracing.
    public var trace: ((String, Bool, [UInt8]) -> Void)?

    public static func now() -> Double { Double(monotonicNanoseconds()) / 1e9 }

    /// At most this many exchanges are under way at once; the others start
    /// as those end. Every first request of an INIT-REBOOT or DISCOVER is a
    /// broadcast that OVS floods to every port of the bridge: 200 at once
    /// overflow the server's and ovs-vswitchd's socket buffers, and the lost
    /// packets come back as retransmissions, flooded again.
    public var window: Int

    private var started = 0

    public init(window: Int = Int.max) { self.window = max(1, window) }

    /// Queues an exchange; it starts (sends its first message) in `run`.
    public func add(_ session: Session) {
        sessions.append(session)
    }

    private func startQueued() {
        let open = sessions[..<started].filter { $0.outcome == nil && $0.error == nil }.count
        var room = window - open
        while room > 0, started < sessions.count {
            sessions[started].startedAt = Self.now()
            apply(sessions[started].machine.start(now: Self.now()), to: &sessions[started])
            // One that could not send at all takes no room.
            if sessions[started].outcome == nil && sessions[started].error == nil { room -= 1 }
            started += 1
        }
    }

    /// While a server keeps answering (an answer within this many seconds),
    /// no request is sent again: it is working through a queue that a
    /// repetition would only lengthen, and each repetition costs it another
    /// lease-file write. After a reboot, 200 confirmations reach dnsmasq
    /// together; it answers about one every 3 ms (it rewrites and fsyncs its
    /// lease file for each), and ovs-vswitchd, busy with 200 new ports,
    /// delivers the answers in bursts about 100 ms apart.
    public static let busyWindow = 0.15

    /// The longest wait for sent RELEASEs to leave their sockets (ARP
    /// resolves in milliseconds; three unanswered ARP probes take 3 s).
    public static let releaseDrain = 1.0

    /// Runs until every exchange has ended or `deadline` passes; returns the
    /// outcome (or error) of each, by id. Retransmissions wait while answers
    /// keep arriving (`busyWindow`).
    public func run(until deadline: Double) -> [String: Result<ClientMachine.Outcome, ExchangeError>] {
        var lastAnswer = -Double.infinity
        startQueued()
        while sessions.contains(where: { $0.outcome == nil && $0.error == nil }) {
            let now = Self.now()
            if now >= deadline || Interruption.isRequested { break }
            let open = sessions.indices[..<started].filter { sessions[$0].outcome == nil && sessions[$0].error == nil }
            let busyUntil = lastAnswer + Self.busyWindow
            let wake = open.compactMap { sessions[$0].wakeAt.map { max($0, busyUntil) } }.min() ?? deadline
            let timeout = max(0, min(wake, deadline) - now)
            var fds = open.map { pollfd(fd: sessions[$0].socket.fd, events: Int16(POLLIN), revents: 0) }
            // At most 250 ms per wait, so that a shutdown is noticed soon.
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(timeout * 1000, 250).rounded(.up)))
            if ready < 0 && errno != EINTR { break }
            let later = Self.now()
            for (k, i) in open.enumerated() {
                if fds[k].revents & Int16(POLLIN) != 0 {
                    while sessions[i].outcome == nil, let bytes = sessions[i].socket.receive() {
                        trace?(sessions[i].id, false, bytes)
                        let message: DHCPMessage
                        do { message = try DHCPMessage.decode(bytes) } catch {
                            sessions[i].unreadable += 1
                            sessions[i].lastUnreadable = error.description
                            continue
                        }
                        guard let step = sessions[i].machine.receive(message, now: later) else { continue }
                        lastAnswer = later
                        apply(step, to: &sessions[i])
                    }
                }
            }
            let busy = later < lastAnswer + Self.busyWindow
            for i in open {
                if !busy, sessions[i].outcome == nil, sessions[i].error == nil, let at = sessions[i].wakeAt, at <= later {
                    apply(sessions[i].machine.timeout(now: later), to: &sessions[i])
                }
            }
            startQueued()
        }
        // A RELEASE is unicast and ends the exchange as soon as it is sent,
        // but the kernel may still be resolving the server's hardware address
        // (the datagram waits in the neighbour queue), and a detach deletes
        // the interface right after: the RELEASE would be dropped with it.
        // A datagram counts against its socket until it has left; wait for that.
        let releases = sessions.filter { $0.outcome == .released || $0.outcome == .declined }
        let drained = min(deadline, Self.now() + Self.releaseDrain)
        while releases.contains(where: { !$0.socket.allSent }), Self.now() < drained, !Interruption.isRequested { usleep(1000) }
        var results: [String: Result<ClientMachine.Outcome, ExchangeError>] = [:]
        let ended = Self.now()
        let observer = Self.observer.withLock { $0 }
        for s in sessions {
            let result: ExchangeRecord.Result
            if let refusal = s.machine.refusal, s.outcome == nil || s.outcome == .noAnswer {
                // Answered, but with nothing netkeep may record.
                results[s.id] = .failure(ExchangeError("no acceptable DHCP answer: \(refusal)"))
                result = .refused
            } else if s.unreadable > 0, s.outcome == nil || s.outcome == .noAnswer {
                // Something answered, but not in DHCP's words: not "no server".
                let last = s.lastUnreadable.map { " (the last: \($0))" } ?? ""
                results[s.id] = .failure(ExchangeError("no usable DHCP answer: \(s.unreadable) malformed repl\(s.unreadable == 1 ? "y" : "ies")\(last)"))
                result = .refused
            } else if let outcome = s.outcome {
                results[s.id] = .success(outcome)
                switch outcome {
                case .bound: result = .acked
                case .nak: result = .nak
                case .noAnswer: result = .noAnswer
                case .released: result = .released
                case .declined: result = .declined
                }
            } else {
                results[s.id] = .failure(ExchangeError(s.error ?? "no answer before the deadline"))
                result = s.error == nil ? .noAnswer : .failed
            }
            if let observer, let startedAt = s.startedAt {
                observer(ExchangeRecord(kind: ExchangeRecord.Kind(s.machine.goal), result: result, seconds: max(0, (s.endedAt ?? ended) - startedAt)))
            }
        }
        return results
    }

    /// Told about every exchange that ended, in every loop of the process
    /// (the daemon's metrics); nil: nobody listens.
    public static let observer = Mutex<(@Sendable (ExchangeRecord) -> Void)?>(nil)

    private func apply(_ step: ClientMachine.Step, to session: inout Session) {
        if let message = step.send {
            let bytes = message.encode()
            let target: IPv4Address
            switch step.destination {
            case .broadcast: target = IPv4Address(255, 255, 255, 255)
            case .server(let server): target = server
            }
            do {
                try session.socket.send(bytes, to: target)
                trace?(session.id, true, bytes)
            } catch {
                // A lost send is retried by the timer like a lost packet,
                // unless nothing can be sent at all.
                if error.errno != EAGAIN && error.errno != ENOBUFS && error.errno != ENETUNREACH { session.error = error.description }
            }
        }
        session.wakeAt = step.wakeAt
        if let outcome = step.outcome { session.outcome = outcome }
        if session.endedAt == nil && (session.outcome != nil || session.error != nil) { session.endedAt = Self.now() }
    }
}

public struct ExchangeError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One ended exchange, for metrics: what it asked for, how it ended and how
/// long it took from its first message to its end (or to the loop's end,
/// when it got no answer).
public struct ExchangeRecord: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case discover, reboot, renew, rebind, release, decline

        init(_ goal: ClientMachine.Goal) {
            switch goal {
            case .discover: self = .discover
            case .initReboot: self = .reboot
            case .renew: self = .renew
            case .rebind: self = .rebind
            case .release: self = .release
            case .decline: self = .decline
            }
        }
    }

    public enum Result: String, Sendable, CaseIterable {
        case acked, nak, released, declined, refused
        case noAnswer = "no-answer"
        case failed
    }

    public var kind: Kind
    public var result: Result
    public var seconds: Double

    public init(kind: Kind, result: Result, seconds: Double) {
        self.kind = kind
        self.result = result
        self.seconds = seconds
    }
}
