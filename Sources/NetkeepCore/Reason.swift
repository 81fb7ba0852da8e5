/// Why an action is in the plan. `code` is stable (JSON, journald
/// NETKEEP_REASON); `description` is a sentence fragment for people.
public enum Reason: Hashable, Sendable, CustomStringConvertible {
    case containerRestarted(oldPID: Int32?, newPID: Int32)
    case vethMissingAfterReboot
    case vethMissing
    /// The host end exists but its peer is not in the container (an old namespace kept alive).
    case vethStale
    case portMissing
    /// OVS reports the row's device as unusable.
    case portDead(String)
    /// The veth was (re)created: a same-name row passes no traffic until re-added.
    case portStale
    case portOnWrongBridge(String)
    case interfaceMisconfigured([InterfaceFix])
    case vlanDrifted(from: Int?, to: Int?)
    case netnsLinkMissing
    case netnsLinkStale(pid: Int32)
    case containerRemoved
    case orphanPort(owner: ObservedPort.Owner, container: String)
    case danglingNetnsLink(pid: Int32)
    /// The port of netkeep's DHCP release station, left by an interrupted release (its veth is gone).
    case releasePortLeft
    case interruptedAttach
    case interruptedRepair
    /// The container's labels declare the interface, and it has none yet.
    case declaredByLabels
    /// `netkeep detach` recorded the attachment as to be removed.
    case detachRequested
    /// A removed container's MAC and lease were kept this long and no recreate came.
    case retentionEnded
    /// A DHCP attachment without a lease yet (its attach was interrupted).
    case leaseMissing
    case leaseExpired
    /// The interface was made again: ask for the same address (INIT-REBOOT).
    case leaseReboot
    /// T1 passed: RENEWING.
    case leaseRenewal
    /// T2 passed: REBINDING.
    case leaseRebinding
    /// Applied without a server's answer (after a reboot), not yet confirmed.
    case leaseUnconfirmed
    /// The port has no netkeep id yet (adopted from ovs-docker).
    case portUnclaimed
    case containerStopped

    public var code: String {
        switch self {
        case .containerRestarted: return "container-restarted"
        case .vethMissingAfterReboot: return "veth-missing-after-reboot"
        case .vethMissing: return "veth-missing"
        case .vethStale: return "veth-stale"
        case .portMissing: return "port-missing"
        case .portDead: return "port-dead"
        case .portStale: return "port-stale"
        case .portOnWrongBridge: return "port-on-wrong-bridge"
        case .interfaceMisconfigured: return "interface-misconfigured"
        case .vlanDrifted: return "vlan-drifted"
        case .netnsLinkMissing: return "netns-link-missing"
        case .netnsLinkStale: return "netns-link-stale"
        case .containerRemoved: return "container-removed"
        case .orphanPort: return "orphan-port"
        case .danglingNetnsLink: return "dangling-netns-link"
        case .releasePortLeft: return "release-port-left"
        case .interruptedAttach: return "interrupted-attach"
        case .declaredByLabels: return "declared-by-labels"
        case .interruptedRepair: return "interrupted-repair"
        case .detachRequested: return "detach-requested"
        case .retentionEnded: return "retention-ended"
        case .leaseMissing: return "lease-missing"
        case .leaseExpired: return "lease-expired"
        case .leaseReboot: return "lease-reboot"
        case .leaseRenewal: return "lease-renewal"
        case .leaseRebinding: return "lease-rebinding"
        case .leaseUnconfirmed: return "lease-unconfirmed"
        case .portUnclaimed: return "port-unclaimed"
        case .containerStopped: return "container-stopped"
        }
    }

    public var description: String {
        switch self {
        case .containerRestarted(let old, let new):
            return "container restarted (pid \(old.map(String.init) ?? "?") → \(new))"
        case .vethMissingAfterReboot: return "veth missing after a reboot"
        case .vethMissing: return "veth missing"
        case .vethStale: return "host veth has no peer in the container (an old namespace kept it alive)"
        case .portMissing: return "OVS port missing"
        case .portDead(let error): return "OVS row dead (\(error))"
        case .portStale: return "veth recreated: the old OVS row passes no traffic"
        case .portOnWrongBridge(let bridge): return "OVS port is on bridge \(bridge)"
        case .interfaceMisconfigured(let fixes): return "interface misconfigured: " + fixes.map(\.description).joined(separator: ", ")
        case .vlanDrifted(let from, let to): return "VLAN tag drifted (\(from.map(String.init) ?? "none") → \(to.map(String.init) ?? "none"))"
        case .netnsLinkMissing: return "netns link missing"
        case .netnsLinkStale(let pid): return "netns link points at pid \(pid), not the container"
        case .containerRemoved: return "container removed (Docker answered 404)"
        case .orphanPort(let owner, let container): return "\(owner.rawValue) port of removed container \(container) (Docker answered 404)"
        case .danglingNetnsLink(let pid): return "netns link to dead pid \(pid)"
        case .releasePortLeft: return "DHCP release station left by an interrupted release"
        case .interruptedAttach: return "attach was interrupted"
        case .declaredByLabels: return "the container's labels declare it"
        case .interruptedRepair: return "an earlier repair was interrupted"
        case .detachRequested: return "detach requested"
        case .retentionEnded: return "kept for a recreate, none came in time"
        case .leaseMissing: return "no DHCP lease yet"
        case .leaseExpired: return "DHCP lease expired"
        case .leaseReboot: return "interface made again: ask for the same address (INIT-REBOOT)"
        case .leaseRenewal: return "lease past T1: renew with its server"
        case .leaseRebinding: return "lease past T2: rebind with any server"
        case .leaseUnconfirmed: return "lease applied without a server's answer: confirm it"
        case .portUnclaimed: return "the port does not carry netkeep's id yet"
        case .containerStopped: return "container stopped; its attachment is kept"
        }
    }
}

/// One thing wrong with an existing interface pair.
public enum InterfaceFix: Hashable, Sendable, CustomStringConvertible {
    case containerMTU(Int)
    case hostMTU(Int)
    case containerUp
    case hostUp
    case address(IPv4CIDR)
    case defaultRoute(IPv4Address)

    public var description: String {
        switch self {
        case .containerMTU(let seen): return "MTU \(seen) inside"
        case .hostMTU(let seen): return "host MTU \(seen)"
        case .containerUp: return "down inside"
        case .hostUp: return "host end down"
        case .address(let cidr): return "address \(cidr) missing"
        case .defaultRoute(let gw): return "default route via \(gw) missing"
        }
    }
}
