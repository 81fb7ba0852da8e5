#if canImport(Glibc)
import Glibc
#endif
import HostIO
import Logging

/// Log lines for a person at a terminal: `netkeep: warning: message key=value`,
/// on standard error.
public struct ConsoleLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]

    public init(level: Logger.Level) { logLevel = level }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let fields = all.keys.sorted().map { " \($0)=\(all[$0]!)" }.joined()
        let level = event.level >= .warning ? "\(event.level): " : ""
        let line = "netkeep: \(level)\(event.message)\(fields)\n"
        writeToStandardError(line)
    }
}
