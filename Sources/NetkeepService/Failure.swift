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
    /// Another netkeep held the state lock for longer than the wait allows.
    case locked(String)
    /// The state file or its directory could not be read or written (I/O, permissions, a full disk).
    case stateIO(String)
    /// A step failed after checks passed; what was done was undone where possible.
    case failed(String)
    /// The command has already reported; exit with this code.
    case exit(Int32)

    public var description: String {
        switch self {
        case .badInput(let m), .state(let m), .unreachable(let m), .failed(let m), .locked(let m), .stateIO(let m): return m
        case .exit(let code): return "exit \(code)"
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .failed: return 1
        case .badInput: return 2
        case .state: return 3
        case .unreachable: return 4
        case .locked: return 5
        case .stateIO: return 6
        case .exit(let code): return code
        }
    }

    /// Exit 3 only for a file that cannot be used as it is (corrupt,
    /// truncated, newer): that is what `RestartPreventExitStatus=3` stops on.
    static func from(_ error: StateFileError, context: String? = nil) -> Failure {
        let message = context.map { "\($0): \(error)" } ?? error.description
        switch error {
        case .corrupt, .unknownVersion: return .state(message)
        case .locked, .claimed: return .locked(message)
        case .io: return .stateIO(message)
        case .refused: return .failed(message)
        }
    }

    /// A component's error, prefixed with what was being done.
    static func component(_ context: String, _ error: any Error) -> Failure {
        switch error {
        case let error as Failure: return error
        case let error as StateFileError: return .from(error, context: context)
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
