/// What the daemon has to do next. Requests coalesce: a burst of events for
/// one container is one repair; many resync requests are one pass.
enum Work: Equatable, Sendable {
    case full
    /// Repair (or collect) one container's attachments.
    case container(String, eventNano: Int64)
    /// The container stopped: record its attachments as down, nothing else.
    case containerDown(String, eventNano: Int64)
    case leases
    /// Write the time of the last event handled into the state file.
    case persistEventTime
    /// Nothing came within the wait: time to tell the watchdog the loop lives.
    case idle
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

    private func take() -> Work? {
        if (full || leases), containersInARow >= Self.fairness {
            containersInARow = 0
            if leases { leases = false; return .leases }
            full = false
            return .full
        }
        if !containers.isEmpty {
            containersInARow += 1
            let next = containers.removeFirst()
            return next.down ? .containerDown(next.id, eventNano: next.nano) : .container(next.id, eventNano: next.nano)
        }
        containersInARow = 0
        if full { full = false; return .full }
        if leases { leases = false; return .leases }
        if persist { persist = false; return .persistEventTime }
        return nil
    }
}
