import Logging

/// swift-log to journald: MESSAGE, PRIORITY (from the level), CODE_* and each
/// metadata key as an upper-case field (sanitised, so no key can pose as a
/// trusted `_FIELD`).
public struct JournaldLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public let identifier: String

    public init(identifier: String, level: Logger.Level) {
        self.identifier = identifier
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [(String, String)] = [
            ("MESSAGE", "\(event.message)"), ("PRIORITY", String(Self.priority(event.level))),
            ("SYSLOG_IDENTIFIER", identifier), ("CODE_FILE", event.file), ("CODE_LINE", String(event.line)),
            ("CODE_FUNC", event.function),
        ]
        let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for key in all.keys.sorted() { fields.append(("NETKEEP_" + key, "\(all[key]!)")) }
        Journal.send(Journal.Entry(fields))
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }
}
