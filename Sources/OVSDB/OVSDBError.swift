import NetkeepCore

/// What went wrong talking to ovsdb-server.
public enum OVSDBError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The socket could not be reached or the connection broke.
    case unreachable(SystemError)
    /// The server sent something that is not RFC 7047.
    case protocolViolation(String)
    /// The server answered a request with an error.
    case rpc(method: String, error: String)
    /// An operation of a transaction failed; `index` is its position.
    case transaction(index: Int, error: String, details: String?)

    public var description: String {
        switch self {
        case .unreachable(let error): return "OVSDB unreachable: \(error)"
        case .protocolViolation(let detail): return "OVSDB protocol error: \(detail)"
        case .rpc(let method, let error): return "OVSDB \(method) failed: \(error)"
        case .transaction(let index, let error, let details):
            return "OVSDB transaction failed at operation \(index): \(error)\(details.map { " (\($0))" } ?? "")"
        }
    }
}
