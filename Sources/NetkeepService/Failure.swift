import DockerEngine
import NetkeepCore
import NetkeepState
import Netlink
import OVSDB

/// Why a command failed, grouped by what the operator does about it. Each case
/// has its own exit code (documented in `netkeep --help`).
public enum Failure: Error, Sendable, CustomStringConvertible {
    /// Bad input or a request that does not fit the host: nothing was changed.
    case badInput(String)
    /// The state file cannot be used: nothing was changed.
    case state(String)
    /// Docker or OVSDB could not be reached: nothing was removed.
    case unreachable(String)
    /// A step failed after checks passed; what was done was undone where possible.
    case failed(String)
    /// The command has already reported; exit with this code.
    case exit(Int32)

    public var description: String {
        switch self {
        case .badInput(let m), .state(let m), .unreachable(let m), .failed(let m): return m
        case .exit(let code): return "exit \(code)"
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .failed: return 1
        case .badInput: return 2
        case .state: return 3
        case .unreachable: return 4
        case .exit(let code): return code
        }
    }

    static func from(_ error: StateFileError) -> Failure { .state(error.description) }

    /// A component's error, prefixed with what was being done.
    static func component(_ context: String, _ error: any Error) -> Failure {
        switch error {
        case let error as Failure: return error
        case let error as StateFileError: return .state("\(context): \(error)")
        case let error as DockerError:
            if case .unreachable = error { return .unreachable("\(context): \(error)") }
            return .failed("\(context): \(error)")
        case let error as OVSDBError:
            if case .unreachable = error { return .unreachable("\(context): \(error)") }
            return .failed("\(context): \(error)")
        default:
            return .failed("\(context): \(error)")
        }
    }
}
