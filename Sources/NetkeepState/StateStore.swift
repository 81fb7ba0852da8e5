#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HostIO
import NetkeepCore

/// The state directory: `state.json` (versioned JSON, see state/schema.json)
/// and `state.lock`.
public struct StateStore: Sendable {
    public static let defaultDirectory = "/var/lib/netkeep"

    public let directory: String
    public var statePath: String { directory + "/state.json" }
    public var lockPath: String { directory + "/state.lock" }

    public init(directory: String) {
        self.directory = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
    }

    /// Creates the directory if needed and takes the exclusive lock.
    public func lock(timeout: Double = 120, onWait: (String?) -> Void = { _ in }) throws(StateFileError) -> StateLock {
        try makeDirectory()
        return try StateLock(path: lockPath, timeout: timeout, onWait: onWait)
    }

    /// Reads the state. A missing file is an empty state; anything unreadable throws.
    public func load() throws(StateFileError) -> State {
        guard let bytes = try readFile(statePath) else { return State() }
        return try StateCodec.decode(bytes, path: statePath)
    }

    /// Writes the state atomically: a temporary file in the same directory,
    /// fsync, rename over state.json, fsync of the directory. On any failure
    /// the previous file is left as it was and the temporary file removed.
    public func save(_ state: State) throws(StateFileError) {
        // What is written must load again (DESIGN.md rule 6): the same checks as `load`.
        if let problem = state.problems().first { throw .refused(path: statePath, detail: problem) }
        let bytes = StateCodec.encode(state)
        try makeDirectory()
        let temp = "\(directory)/.state.json.\(getpid()).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(SystemError("create", temp, errno: errno)) }
        var failure = Files.writeAll(fd: fd, bytes, path: temp)
        if failure == nil, fsync(fd) != 0 { failure = SystemError("fsync", temp, errno: errno) }
        if close(fd) != 0, failure == nil { failure = SystemError("close", temp, errno: errno) }
        if failure == nil, rename(temp, statePath) != 0 { failure = SystemError("rename to \(statePath)", temp, errno: errno) }
        if let failure {
            unlink(temp)
            throw .io(failure)
        }
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            defer { close(dirfd) }
            if fsync(dirfd) != 0 { throw .io(SystemError("fsync", directory, errno: errno)) }
        }
    }

    /// The state file as it is now, kept aside (a hard link: no data is
    /// copied, so it works on a full disk) until `restore` or `discard`.
    /// Only under the lock.
    public func keepForUndo() throws(StateFileError) -> StateUndo {
        let path = "\(directory)/.state.json.undo"
        unlink(path)
        if link(statePath, path) == 0 { return StateUndo(path: path, existed: true) }
        if errno == ENOENT { return StateUndo(path: path, existed: false) }
        throw .io(SystemError("link", statePath, errno: errno))
    }

    /// Puts the kept file back (a rename, or removing a file that did not
    /// exist before), so that nothing of the undone change stays recorded.
    public func restore(_ undo: StateUndo) throws(StateFileError) {
        if undo.existed {
            guard rename(undo.path, statePath) == 0 else { throw .io(SystemError("rename to \(statePath)", undo.path, errno: errno)) }
        } else if unlink(statePath) != 0, errno != ENOENT {
            throw .io(SystemError("unlink", statePath, errno: errno))
        }
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
    }

    public func discard(_ undo: StateUndo) { unlink(undo.path) }

    private func makeDirectory() throws(StateFileError) {
        do { try Files.makeDirectories(directory) } catch { throw .io(error) }
    }

    private func readFile(_ path: String) throws(StateFileError) -> [UInt8]? {
        do { return try Files.read(path) } catch { throw .io(error) }
    }
}

/// The state file before a change, kept by `StateStore.keepForUndo`.
public struct StateUndo: Sendable {
    let path: String
    let existed: Bool
}

/// JSON encoding of the state, kept apart from I/O so that it is tested on bytes.
public enum StateCodec {
    private struct VersionProbe: Decodable { var version: Int? }

    /// The hand-written writer covers attachments; a state with networks of the
    /// Docker driver (a few records) goes through JSONEncoder, which the writer copies.
    public static func encode(_ state: State) -> [UInt8] {
        state.networks.isEmpty && state.endpoints.isEmpty && state.cni.isEmpty && state.cniLeases.isEmpty ? StateJSONWriter.write(state) : encodeWithFoundation(state)
    }

    /// What `encode` must produce byte for byte (StateJSONTests).
    static func encodeWithFoundation(_ state: State) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding plain value types cannot fail.
        return Array(try! encoder.encode(state)) + [0x0a]
    }

    /// The hand-written reader first; whatever it declines goes to Foundation,
    /// whose errors and edge cases stay the ones people see.
    public static func decode(_ bytes: [UInt8], path: String) throws(StateFileError) -> State {
        guard let state = StateJSONReader.read(bytes) else { return try decodeWithFoundation(bytes, path: path) }
        if let problem = state.problems().first { throw .corrupt(path: path, detail: problem) }
        return state
    }

    static func decodeWithFoundation(_ bytes: [UInt8], path: String) throws(StateFileError) -> State {
        if bytes.isEmpty { throw .corrupt(path: path, detail: "the file is empty") }
        let data = Data(bytes)
        let decoder = JSONDecoder()
        let probe: VersionProbe
        do { probe = try decoder.decode(VersionProbe.self, from: data) } catch {
            throw .corrupt(path: path, detail: describe(error, bytes: bytes))
        }
        guard let version = probe.version else { throw .corrupt(path: path, detail: "it has no \"version\" field") }
        guard version == State.currentVersion else { throw .unknownVersion(path: path, version: version) }
        let state: State
        do { state = try decoder.decode(State.self, from: data) } catch {
            throw .corrupt(path: path, detail: describe(error, bytes: bytes))
        }
        if let problem = state.problems().first { throw .corrupt(path: path, detail: problem) }
        return state
    }

    static func describe(_ error: any Error, bytes: [UInt8]) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return "not valid JSON (\(bytes.count) bytes\(bytes.last == 0x0a || bytes.last == 0x7d ? "" : ", possibly truncated")): \(underlying(context))"
        case .dataCorrupted(let context):
            return "at \(path(context.codingPath)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            return "at \(path(context.codingPath + [key])): required field is missing"
        case .typeMismatch(let type, let context):
            return "at \(path(context.codingPath)): expected \(type)"
        case .valueNotFound(let type, let context):
            return "at \(path(context.codingPath)): expected \(type), found null"
        @unknown default:
            return "\(error)"
        }
    }

    private static func underlying(_ context: DecodingError.Context) -> String {
        if let inner = context.underlyingError { return "\(inner)" }
        return context.debugDescription
    }

    static func path(_ keys: [any CodingKey]) -> String {
        var out = ""
        for key in keys {
            if let index = key.intValue { out += "[\(index)]" } else { out += (out.isEmpty ? "" : ".") + key.stringValue }
        }
        return out.isEmpty ? "top level" : out
    }
}
