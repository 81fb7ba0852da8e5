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
