/// The fields of /proc/PID/stat that netkeep reads. The command name
/// (field 2) may hold spaces and parentheses, so the other fields count from
/// its last ')'.
public struct ProcessStat: Equatable, Sendable {
    /// Field 3: R, S, D, Z (zombie), X (dead), ...
    public var state: Character?
    /// Field 22: when the process started, in clock ticks since boot; a later
    /// process with the same PID has another.
    public var startTime: UInt64?

    public init(state: Character?, startTime: UInt64?) {
        self.state = state
        self.startTime = startTime
    }

    /// nil when the process does not exist (or /proc cannot be read).
    public static func read(_ pid: Int32) -> ProcessStat? {
        guard let bytes = try? Files.read("/proc/\(pid)/stat") else { return nil }
        return parse(bytes)
    }

    public static func parse(_ bytes: [UInt8]) -> ProcessStat {
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return ProcessStat(state: nil, startTime: nil) }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        // After ')': field 3 is fields[0], field 22 is fields[19].
        let state = fields.first.flatMap { $0.first }.map { Character(Unicode.Scalar($0)) }
        let start = fields.count > 19 ? UInt64(String(decoding: fields[19], as: UTF8.self)) : nil
        return ProcessStat(state: state, startTime: start)
    }
}
