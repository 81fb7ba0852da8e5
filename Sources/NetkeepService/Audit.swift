import NetkeepCore
import Systemd

/// Writes audit entries to journald, when there is one. The CLI and the
/// daemon write the same entries for the same changes.
public struct Audit: Sendable {
    public var enabled: Bool

    public init(enabled: Bool = Journal.isAvailable) { self.enabled = enabled }

    public func record(_ events: [AuditEvent]) {
        guard enabled else { return }
        for event in events { Journal.send(Journal.Entry(event.fields)) }
    }

    public func record(_ event: AuditEvent) { record([event]) }
}
