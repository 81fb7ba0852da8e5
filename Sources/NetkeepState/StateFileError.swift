import NetkeepCore

/// Why the state file cannot be used. A state file in any of these conditions
/// is never overwritten.
public enum StateFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not JSON, truncated, or with values that break the schema.
    case corrupt(path: String, detail: String)
    /// Written by a netkeep that knows a schema this one does not.
    case unknownVersion(path: String, version: Int)
    /// A state that would not load again was not written (DESIGN.md rule 6).
    case refused(path: String, detail: String)
    /// The file or its directory could not be read or written.
    case io(SystemError)
    /// Another netkeep holds the lock for longer than the wait allows.
    case locked(path: String, holder: String?)
    /// Another pass holds the container's claim for longer than the wait allows.
    case claimed(path: String, container: String)

    public var description: String {
        switch self {
        case .corrupt(let path, let detail):
            return "state file \(path) is corrupt: \(detail); it was left untouched (restore it from a backup or move it away)"
        case .unknownVersion(let path, let version):
            return "state file \(path) has version \(version), this netkeep knows only version \(State.currentVersion); it was left untouched"
        case .refused(let path, let detail):
            return "state file \(path) not written: \(detail) (a value that would not load again; the file was left as it was)"
        case .io(let error):
            return "state file: \(error)"
        case .locked(let path, let holder):
            return "state directory lock \(path) is held by another netkeep\(holder.map { " (pid \($0))" } ?? "")"
        case .claimed(let path, let container):
            return "\(ClaimKey.describe(container)) is being changed by another netkeep (its claim in \(path) is held)"
        }
    }
}
