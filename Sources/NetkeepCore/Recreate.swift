/// A container recreated under the same name (Compose, `docker run --rm`,
/// an image upgrade) takes over the identity its predecessor had on the same
/// bridge and interface: the MAC, hence the same DHCP address by INIT-REBOOT,
/// and the lease itself while it is valid. Pure rules; the intent writers
/// (`netkeep attach`, labels) apply them under the state lock.
public enum Recreate {
    /// The record whose identity `intent` may take: one of another container
    /// with the same name, bridge, interface and address mode that is either
    /// `retained` (its container removed, its time not up) or belongs to a
    /// container Docker says is stopped or gone (`stopped`: Compose starts the
    /// new container before it removes the old, renamed one). A running
    /// predecessor keeps what it has. An explicit MAC that differs wins: then
    /// nothing is taken. The latest of several is chosen.
    public static func donor(for intent: Attachment, requestedMAC: MACAddress?, in state: State, stopped: Set<String>,
                             now: Timestamp) -> Attachment? {
        state.attachments.filter { a in
            guard a.containerID != intent.containerID, a.containerName == intent.containerName, a.bridge == intent.bridge,
                  a.ifname == intent.ifname, a.mode == intent.mode else { return false }
            if let requestedMAC, requestedMAC != a.mac { return false }
            switch a.status {
            case .retained: return a.retainedUntil.map { $0 > now } ?? false
            case .ready, .down: return stopped.contains(a.containerID)
            case .pending, .removing: return false
            }
        }.max { ($0.retainedUntil ?? $0.createdAt, $0.id) < ($1.retainedUntil ?? $1.createdAt, $1.id) }
    }

    /// Candidates whose container must be asked about (`stopped` of `donor`).
    public static func candidates(for intent: Attachment, in state: State) -> [Attachment] {
        state.attachments.filter {
            $0.containerID != intent.containerID && $0.containerName == intent.containerName && $0.bridge == intent.bridge
                && $0.ifname == intent.ifname && ($0.status == .ready || $0.status == .down)
        }
    }

    /// `intent` with the donor's MAC and, while valid, its lease; and what
    /// becomes of the donor: a retained record is gone (nil), a stopped
    /// container's record is to be removed without its lease (it moved) and
    /// so without a DHCPRELEASE.
    public static func inherit(_ intent: Attachment, from donor: Attachment, now: Timestamp) -> (attachment: Attachment, donor: Attachment?) {
        var a = intent
        a.mac = donor.mac
        a.recreatedFrom = donor.containerID
        if a.mode == .dhcp, let lease = donor.lease, lease.isValid(at: now) {
            a.lease = lease
            a.address = lease.address
            a.gateway = lease.router
        }
        guard donor.status != .retained else { return (a, nil) }
        var left = donor
        left.status = .removing
        left.lease = nil
        return (a, left)
    }
}
