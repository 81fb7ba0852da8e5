import Dispatch
import Synchronization

/// Runs `body` for every item on up to the machine's cores at once and
/// returns the results in order. Netlink and namespace work is kernel-bound;
/// more threads than cores only queue on rtnl_lock.
func concurrentMap<T: Sendable, R: Sendable>(_ items: [T], _ body: @Sendable (T) -> R) -> [R] {
    guard items.count > 1 else { return items.map(body) }
    let results = Mutex<[R?]>(Array(repeating: nil, count: items.count))
    DispatchQueue.concurrentPerform(iterations: items.count) { i in
        let value = body(items[i])
        results.withLock { $0[i] = value }
    }
    return results.withLock { $0.map { $0! } }
}

/// A value computed on another thread while the caller goes on; `value`
/// waits for it. For a slow lookup that other checks can hide (GET /info
/// takes about 11 ms on dockerd 20.10).
final class Pending<T: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: T?

    init(_ body: @escaping @Sendable () -> T) {
        DispatchQueue.global().async {
            self.result = body()
            self.done.signal()
        }
    }

    var value: T {
        done.wait()
        done.signal()
        return result!
    }
}

/// Elapsed wall time of phases, in milliseconds, for the report.
public struct PhaseTimings: Sendable, Equatable {
    public var values: [(String, Double)] = []

    public init() {}

    public static func == (a: PhaseTimings, b: PhaseTimings) -> Bool { a.values.map(\.0) == b.values.map(\.0) }

    public mutating func measure<T, E: Error>(_ phase: String, _ body: () throws(E) -> T) throws(E) -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { add(phase, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) }
        return try body()
    }

    public mutating func add(_ phase: String, _ milliseconds: Double) {
        if let i = values.firstIndex(where: { $0.0 == phase }) { values[i].1 += milliseconds } else { values.append((phase, milliseconds)) }
    }

    public var summary: String {
        values.map { "\($0.0) \(formatMilliseconds($0.1))" }.joined(separator: ", ")
    }
}

func formatMilliseconds(_ ms: Double) -> String {
    ms >= 100 ? "\(Int(ms.rounded())) ms" : "\(Double(Int(ms * 10)) / 10) ms"
}
