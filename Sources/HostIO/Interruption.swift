import Synchronization

/// Set once when the daemon begins its graceful shutdown: long waits (the
/// state lock, DHCP exchanges) end early, so that SIGTERM is answered well
/// inside systemd's TimeoutStopSec. Nothing is torn down because of it.
public enum Interruption {
    private static let flag = Atomic<Bool>(false)

    public static var isRequested: Bool { flag.load(ordering: .relaxed) }

    public static func request() { flag.store(true, ordering: .relaxed) }
}
