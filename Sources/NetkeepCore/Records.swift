extension State {
    /// The state file after a pass that held the claims of `containers`:
    /// their records as the pass left them, everyone else's as the file has
    /// them now (other passes may have written theirs meanwhile). Order is
    /// the file's, with the pass's new records at the end.
    public func merging(_ pass: State, for containers: Set<String>) -> State {
        var merged = self
        let mine = pass.attachments.filter { containers.contains($0.containerID) }
        let byID = Dictionary(mine.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var seen = Set<String>()
        merged.attachments = attachments.compactMap { a in
            guard containers.contains(a.containerID) else { return a }
            seen.insert(a.id)
            return byID[a.id]
        }
        merged.attachments += mine.filter { !seen.contains($0.id) }
        if let engine = pass.engine, engine.isUsable { merged.engine = engine }
        if let nano = pass.lastEventNano, nano > (lastEventNano ?? 0) { merged.lastEventNano = nano }
        return merged
    }

    /// Only the records of `containers`.
    public func only(_ containers: Set<String>) -> State {
        var state = self
        state.attachments = attachments.filter { containers.contains($0.containerID) }
        return state
    }

    public var containerIDs: Set<String> { Set(attachments.map(\.containerID)) }
}

/// How long a removed container's MAC and DHCP lease are kept for a
/// container recreated with its name (`--retention`, `NETKEEP_RETENTION`).
public enum Retention {
    public static let defaultSeconds: Int64 = 24 * 3600
    /// Ten years: beyond that a typo, not a wish.
    public static let maximumSeconds: Int64 = 3650 * 24 * 3600

    /// `90`, `90s`, `30m`, `24h`, `7d`; `0` gives everything back at once.
    public static func seconds(parsing text: String) throws(InputError) -> Int64 {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var digits = Substring(text)
        var unit: Int64 = 1
        if let last = text.last, let factor = units[last] { unit = factor; digits = digits.dropLast() }
        guard !digits.isEmpty, digits.count <= 10, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(digits) else {
            throw InputError(object: "retention \(quoted(text))", cause: "is not a duration like 90s, 30m, 24h or 7d")
        }
        let (seconds, overflow) = value.multipliedReportingOverflow(by: unit)
        guard !overflow, seconds <= maximumSeconds else {
            throw InputError(object: "retention \(quoted(text))", cause: "is longer than 3650 days")
        }
        return seconds
    }
}
