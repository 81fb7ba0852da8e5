/// One change to the host (or to the state file), with its reason.
public enum Action: Hashable, Sendable {
    /// Create the veth (peer inside the container with its name, MAC, MTU),
    /// bring it up and set the address and route.
    case createVeth(Attachment, pid: Int32, reason: Reason)
    /// Delete a stale veth of the same name first, then as `createVeth`.
    case recreateVeth(Attachment, pid: Int32, reason: Reason)
    case configureInterface(Attachment, pid: Int32, fixes: [InterfaceFix], reason: Reason)
    /// DHCP: INIT-REBOOT for the recorded address, or DISCOVER; then apply the lease.
    case obtainLease(Attachment, pid: Int32, reason: Reason)
    /// DHCP, a lease that is due (`LeaseLifecycle.due`): REQUEST unicast to its
    /// server (renew), broadcast (rebind), or INIT-REBOOT to confirm an
    /// address applied without an answer.
    case renewLease(Attachment, pid: Int32, due: LeaseLifecycle.Due, reason: Reason)
    case addPort(Attachment, reason: Reason)
    /// Delete the row in one transaction and add it in a later one.
    case replacePort(Attachment, reason: Reason)
    case setVLAN(Attachment, reason: Reason)
    /// Mark an existing port (an adopted ovs-docker one) as this attachment's:
    /// its interface gets netkeep's external id.
    case claimPort(Attachment, reason: Reason)
    case linkNetns(Attachment, pid: Int32, reason: Reason)
    /// Port, veth and record (the netns link is a `removeNetnsLink` of its own).
    case removeAttachment(Attachment, reason: Reason)
    /// Port and veth of a removed container; the record stays as `retained`
    /// until `until`, with its MAC and lease (nothing is released), for a
    /// recreated container of the same name, bridge and interface.
    case retainAttachment(Attachment, until: Timestamp, reason: Reason)
    /// A port (and a host link of the same name) that no record claims.
    case removePort(name: String, bridge: String, reason: Reason)
    /// Only if it is still a symlink to /proc/`pid`/ns/net.
    case removeNetnsLink(name: String, pid: Int32, reason: Reason)
    /// Record the attachment as made for this container process.
    case markReady(Attachment, pid: Int32, reason: Reason)
    /// Record that the container is stopped (nothing is removed).
    case markDown(Attachment, reason: Reason)
    /// DHCPRELEASE of the recorded lease before the attachment goes: from
    /// inside the container (`pid`), or from netkeep's release station when
    /// the container is gone (nil).
    case releaseLease(Attachment, pid: Int32?, reason: Reason)
    /// Delete the OVS row of a stopped container whose veth went with its
    /// namespace; the record stays, and the next start adds the port in one step.
    case unplugPort(Attachment, reason: Reason)

    public var reason: Reason {
        switch self {
        case .createVeth(_, _, let r), .recreateVeth(_, _, let r), .configureInterface(_, _, _, let r), .obtainLease(_, _, let r), .renewLease(_, _, _, let r),
             .addPort(_, let r), .replacePort(_, let r), .setVLAN(_, let r), .claimPort(_, let r), .linkNetns(_, _, let r),
             .removeAttachment(_, let r), .removePort(_, _, let r), .removeNetnsLink(_, _, let r), .markReady(_, _, let r), .markDown(_, let r),
             .releaseLease(_, _, let r), .unplugPort(_, let r), .retainAttachment(_, _, let r):
            return r
        }
    }

    public var attachment: Attachment? {
        switch self {
        case .createVeth(let a, _, _), .recreateVeth(let a, _, _), .configureInterface(let a, _, _, _), .obtainLease(let a, _, _),
             .renewLease(let a, _, _, _), .addPort(let a, _), .replacePort(let a, _), .setVLAN(let a, _), .claimPort(let a, _), .linkNetns(let a, _, _), .removeAttachment(let a, _), .markReady(let a, _, _),
             .markDown(let a, _), .releaseLease(let a, _, _), .unplugPort(let a, _), .retainAttachment(let a, _, _):
            return a
        case .removePort, .removeNetnsLink:
            return nil
        }
    }

    /// A stable name for the kind of action (JSON `action`, journald NETKEEP_ACTION).
    public var kind: String {
        switch self {
        case .createVeth: return "create-veth"
        case .recreateVeth: return "recreate-veth"
        case .configureInterface: return "configure-interface"
        case .obtainLease: return "obtain-lease"
        case .renewLease: return "renew-lease"
        case .addPort: return "add-port"
        case .replacePort: return "replace-port"
        case .setVLAN: return "set-vlan"
        case .claimPort: return "claim-port"
        case .linkNetns: return "link-netns"
        case .removeAttachment: return "remove-attachment"
        case .retainAttachment: return "retain-attachment"
        case .removePort: return "remove-port"
        case .removeNetnsLink: return "remove-netns-link"
        case .markReady: return "mark-ready"
        case .markDown: return "mark-down"
        case .releaseLease: return "release-lease"
        case .unplugPort: return "unplug-port"
        }
    }

    /// Whether the action deletes something from the host.
    public var removes: Bool {
        switch self {
        case .removeAttachment, .removePort, .removeNetnsLink, .retainAttachment: return true
        default: return false
        }
    }

    /// The OVS port / host veth the action is about.
    public var port: String? {
        switch self {
        case .removePort(let name, _, _): return name
        case .removeNetnsLink: return nil
        default: return attachment?.hostIfname
        }
    }

    /// One line for people: `web1 eth1: create veth nk0123 (container restarted ...)`.
    public var summary: String {
        let subject: String
        let what: String
        switch self {
        case .removePort(let name, let bridge, _):
            subject = "port \(name)"
            what = "remove from \(bridge) with its veth"
        case .removeNetnsLink(let name, _, _):
            subject = "/var/run/netns/\(name)"
            what = "remove"
        default:
            let a = attachment!
            subject = "\(a.containerName) \(a.ifname)"
            switch self {
            case .createVeth: what = "create veth \(a.hostIfname)"
            case .recreateVeth: what = "recreate veth \(a.hostIfname)"
            case .configureInterface(_, _, let fixes, _): what = "configure \(a.ifname) (\(fixes.count) fix\(fixes.count == 1 ? "" : "es"))"
            case .obtainLease: what = a.lease.map { "ask DHCP for \($0.address.address) again" } ?? "obtain a DHCP lease"
            case .renewLease(_, _, let due, _):
                let verb = due == .rebind ? "rebind" : due == .confirm ? "confirm" : "renew"
                what = "\(verb) DHCP lease\(a.lease.map { " of \($0.address.address)" } ?? "")"
            case .addPort: what = "add port \(a.hostIfname) to \(a.bridge)"
            case .replacePort: what = "replace port \(a.hostIfname) on \(a.bridge)"
            case .setVLAN: what = "set VLAN tag \(a.vlan.map(String.init) ?? "none") on \(a.hostIfname)"
            case .claimPort: what = "mark port \(a.hostIfname) as netkeep's"
            case .linkNetns: what = "link /var/run/netns/\(a.netnsLink ?? "")"
            case .removeAttachment: what = "remove port and veth \(a.hostIfname) and the record"
            case .retainAttachment(_, let until, _):
                what = "remove port and veth \(a.hostIfname); keep MAC \(a.mac)\(a.lease.map { " and lease of \($0.address.address)" } ?? "") for a recreate until \(until)"
            case .markReady: what = "record as ready"
            case .markDown: what = "record as down"
            case .releaseLease(_, let pid, _):
                what = "release DHCP lease \(a.lease.map { "of \($0.address.address) " } ?? "")\(pid == nil ? "from the release station" : "from inside the container")"
            case .unplugPort: what = "unplug port \(a.hostIfname) from \(a.bridge)"
            default: what = kind
            }
        }
        return "\(subject): \(what) (\(reason))"
    }
}

/// Something the plan cannot do, or chose not to, and why.
public struct Notice: Hashable, Sendable, CustomStringConvertible {
    public enum Severity: String, Sendable { case info, error }
    public var severity: Severity
    public var message: String

    public init(_ severity: Severity, _ message: String) {
        self.severity = severity
        self.message = message
    }

    public var description: String { message }
}

public struct Plan: Equatable, Sendable {
    public var actions: [Action]
    public var notices: [Notice]
    /// Stopped or removed containers whose OVS row (and, removed, whose
    /// record) stays only because their veth still exists (the kernel has not
    /// torn the namespace down yet): a look a moment later unplugs or collects it.
    public var awaitingTeardown: Set<String>

    public init(actions: [Action] = [], notices: [Notice] = [], awaitingTeardown: Set<String> = []) {
        self.actions = actions
        self.notices = notices
        self.awaitingTeardown = awaitingTeardown
    }

    public var hasErrors: Bool { notices.contains { $0.severity == .error } }
}
