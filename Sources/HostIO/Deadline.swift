#if canImport(Glibc)
import Glibc
#endif

/// A point on the monotonic clock after which an operation gives up.
public struct Deadline: Sendable, Comparable {
    public let nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static var now: Deadline { Deadline(nanoseconds: monotonicNanoseconds()) }

    public static func after(seconds: Double) -> Deadline {
        Deadline(nanoseconds: monotonicNanoseconds() + UInt64(max(0, seconds) * 1e9))
    }

    public static let never = Deadline(nanoseconds: .max)

    public var hasPassed: Bool { monotonicNanoseconds() >= nanoseconds }

    /// Milliseconds left, rounded up; 0 once passed; capped for poll(2).
    public var remainingMilliseconds: Int {
        if nanoseconds == .max { return Int(Int32.max) }
        let now = monotonicNanoseconds()
        guard nanoseconds > now else { return 0 }
        return Int(min((nanoseconds - now + 999_999) / 1_000_000, UInt64(Int32.max)))
    }

    public static func < (a: Deadline, b: Deadline) -> Bool { a.nanoseconds < b.nanoseconds }
}

public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
