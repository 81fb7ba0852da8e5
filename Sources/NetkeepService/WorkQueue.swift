/// What the daemon has to do next. Requests coalesce: a burst of events for
/// one container is one repair; many resync requests are one pass.
enum Work: Equatable, Sendable {
    case full
    case container(String, eventNano: Int64)
    case leases
}

actor WorkQueue {
    private var full = false
    private var leases = false
    /// Containers in the order their first pending event arrived, with the latest event time.
    private var containers: [(String, Int64)] = []
    private var waiter: CheckedContinuation<Work?, Never>?
    private var closed = false

    func submit(_ work: Work) {
        guard !closed else { return }
        switch work {
        case .full: full = true
        case .leases: leases = true
        case .container(let id, let nano):
            if let i = containers.firstIndex(where: { $0.0 == id }) { containers[i].1 = max(containers[i].1, nano) } else { containers.append((id, nano)) }
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

    /// No more work is taken; a waiting `next()` returns nil.
    func close() {
        closed = true
        waiter?.resume(returning: nil)
        waiter = nil
    }

    var pendingCount: Int { containers.count + (full ? 1 : 0) + (leases ? 1 : 0) }

    private func take() -> Work? {
        if !containers.isEmpty {
            let (id, nano) = containers.removeFirst()
            return .container(id, eventNano: nano)
        }
        if full { full = false; return .full }
        if leases { leases = false; return .leases }
        return nil
    }
}
