#if canImport(Glibc)
import Glibc
#endif
import CSystemd

/// sd_notify(3): tells the service manager that the daemon is ready, what it
/// is doing, that its working loop is alive, and that it is stopping. Outside
/// systemd (no NOTIFY_SOCKET) every call is a no-op.
public struct Notifier: Sendable {
    public init() {}

    public var isSupervised: Bool { getenv("NOTIFY_SOCKET") != nil }

    /// READY=1: send only once the daemon really serves.
    public func ready(status: String? = nil) { send("READY=1" + (status.map { "\nSTATUS=\(clean($0))" } ?? "")) }

    /// STATUS=: one line for `systemctl status`.
    public func status(_ text: String) { send("STATUS=\(clean(text))") }

    /// WATCHDOG=1: from the loop that does the work, never from a bare timer.
    public func watchdog() { send("WATCHDOG=1") }

    public func stopping() { send("STOPPING=1\nSTATUS=stopping") }

    /// Half of WATCHDOG_USEC (when the manager asks for pings, for this PID), in seconds.
    public var watchdogInterval: Double? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return Double(usec) / 2e6
    }

    private func send(_ state: String) {
        guard isSupervised else { return }
        _ = sd_notify(0, state)
    }

    /// STATUS= is one line.
    private func clean(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 }.prefix(200))
    }
}
