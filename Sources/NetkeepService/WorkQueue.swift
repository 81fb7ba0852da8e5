/// What the daemon has to do next. Requests coalesce: a burst of events for
/// one container is one repair; many resync requests are one pass.
enum Work: Equatable, Sendable {
    case full
    /// Repair (or collect) one container's attachments.
    case container(String, eventNano: Int64)
    /// The container stopped: its attachments are recorded as down.
    case containerDown(String, eventNano: Int64)
    /// Several containers' events, in one pass (what the queue hands out).
    case containers([ContainerEvent])
    case leases
    /// Write the time of the last event handled into the state file.
    case persistEventTime
    /// Nothing came within the wait: time to tell the watchdog the loop lives.
    case idle
}

/// The latest event of one container: `down` for a `die` or `stop`.
struct ContainerEvent: Equatable, Sendable {
    var id: String
    var down: Bool
    var nano: Int64
}

actor WorkQueue {
    private var full = false
    private var leases = false
    private var persist = false
    /// Containers in the order their first pending event arrived; the latest
    /// event decides what is done (a `die` then a `start` is one repair).
    private var containers: [(id: String, down: Bool, nano: Int64)] = []
    private var waiter: CheckedContinuation<Work?, Never>?
    private var waiterToken = 0
    private var closed = false

    func submit(_ work: Work) {
        guard !closed else { return }
        switch work {
        case .full: full = true
        case .leases: leases = true
        case .persistEventTime: persist = true
        case .idle: return
        case .containers(let events):
            for e in events { submit(e.down ? .containerDown(e.id, eventNano: e.nano) : .container(e.id, eventNano: e.nano)) }
            return
        case .container(let id, let nano), .containerDown(let id, let nano):
            let down: Bool
            if case .containerDown = work { down = true } else { down = false }
            if let i = containers.firstIndex(where: { $0.id == id }) {
                if nano >= containers[i].nano { containers[i].down = down }
                containers[i].nano = max(containers[i].nano, nano)
            } else {
                containers.append((id, down, nano))
            }
        }
        if let waiter, let next = take() {
            self.waiter = nil
            waiter.resume(returning: next)
        }
    }

    /// The next piece of work; nil once closed. Container repairs go first:
    /// they are what someone is waiting for.
    func next() async -> Work? {
        if let work = take() { return work }
        if closed { return nil }
        return await withCheckedContinuation { waiter = $0 }
    }

    /// As `next()`, but returns `.idle` when nothing comes within `seconds`.
    func next(within seconds: Double?) async -> Work? {
        guard let seconds else { return await next() }
        if let work = take() { return work }
        if closed { return nil }
        waiterToken += 1
        let token = waiterToken
        Task {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            self.expire(token)
        }
        return await withCheckedContinuation { waiter = $0 }
    }

    private func expire(_ token: Int) {
        guard token == waiterToken, let waiter else { return }
        self.waiter = nil
        waiter.resume(returning: .idle)
    }

    /// No more work is taken; a waiting `next()` returns nil.
    func close() {
        closed = true
        waiter?.resume(returning: nil)
        waiter = nil
    }

    var pendingCount: Int { containers.count + (full ? 1 : 0) + (leases ? 1 : 0) + (persist ? 1 : 0) }

    /// Container repairs taken since a full pass or a lease pass last ran.
    private var containersInARow = 0
    /// After this many container repairs in a row, a waiting full pass or
    /// lease pass goes first: a steady stream of events never starves them.
    static let fairness = 8
    /// Events waiting together are repaired in one pass, up to this many
    /// containers: 20 restarted at once cost one observation, not 20 in a row.
    static let batch = 64

    private func take() -> Work? {
        if (full || leases), containersInARow >= Self.fairness {
            containersInARow = 0
            if leases { leases = false; return .leases }
            full = false
            return .full
        }
        if !containers.isEmpty {
            containersInARow += 1
            let taken = containers.prefix(Self.batch)
            containers.removeFirst(taken.count)
            return .containers(taken.map { ContainerEvent(id: $0.id, down: $0.down, nano: $0.nano) })
        }
        containersInARow = 0
        if full { full = false; return .full }
        if leases { leases = false; return .leases }
        if persist { persist = false; return .persistEventTime }
        return nil
    }
}
