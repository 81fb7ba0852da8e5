/// What a caller claims while it changes a record's pieces (`ContainerClaims`
/// in NetkeepState): a command, a plugin request, a CNI call, a renewal or a
/// sweep holds the claim of each record it works on, so that no other caller
/// takes those pieces for garbage or makes them a second time meanwhile. A
/// record whose claim is free and that is still `pending` was left by a
/// caller that died. Containers' attachments are claimed by container id.
public enum ClaimKey {
    /// A Docker network endpoint, by its endpoint ID.
    public static func endpoint(_ id: String) -> String { "endpoint/" + id }

    /// A CNI attachment, by the spec's key (network, container id, ifname).
    public static func cni(network: String, containerID: String, ifname: String) -> String {
        "cni/\(network)/\(containerID)/\(ifname)"
    }

    /// The claimed thing, for a person: `container 0123456789ab`,
    /// `endpoint 0123456789ab`, `CNI attachment net1/ctr/eth0`.
    public static func describe(_ key: String) -> String {
        if key.hasPrefix("endpoint/") { return "endpoint \(key.dropFirst(9).prefix(12))" }
        if key.hasPrefix("cni/") { return "CNI attachment \(quoted(String(key.dropFirst(4))))" }
        return "container \(key.prefix(12))"
    }
}

extension Endpoint {
    public var claimKey: String { ClaimKey.endpoint(id) }
}

extension CNIAttachment {
    public var claimKey: String { ClaimKey.cni(network: network, containerID: containerID, ifname: ifname) }
}
