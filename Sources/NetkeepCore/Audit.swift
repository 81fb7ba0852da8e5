/// One change to the host, as the audit trail records it: one journald entry
/// with a MESSAGE_ID per kind and NETKEEP_* fields (written by the Systemd module).
public struct AuditEvent: Equatable, Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        /// `netkeep attach` made an attachment.
        case create
        /// An attachment was made whole again (one entry per attachment and pass).
        case repair
        /// Something whose container is gone was removed.
        case garbageCollect = "gc"
        /// `netkeep detach` removed an attachment.
        case detach
        case adopt
        case leaseObtained = "lease-obtained"
        case leaseRenewed = "lease-renewed"
        case leaseChanged = "lease-changed"
        case leaseReleased = "lease-released"
        case leaseExpired = "lease-expired"
        /// `netkeep accept-engine` recorded a new Docker engine identity.
        case engineAccepted = "engine-accepted"
        /// A container's netkeep labels are refused: nothing of it is attached.
        case labelsRefused = "labels-refused"

        /// Fixed for good: operators and the catalog (units/netkeep.catalog) key on them.
        public var messageID: String {
            switch self {
            case .create: return "fcfb7d7742594c47860f9edd0a1c2c15"
            case .repair: return "e6d9ac74df984b5785e49376b3132f19"
            case .garbageCollect: return "30a8ce98e98e45e49b717b67ae19f77f"
            case .detach: return "399f5c45f1ea4530823dfc53aa7825e1"
            case .adopt: return "65c0b379118944068297a626da2510f3"
            case .leaseObtained: return "7afc5e72f5fd4fdbb3c0e32fd252f612"
            case .leaseRenewed: return "045f3b10d8bd4f3fa17491cd20dace80"
            case .leaseChanged: return "2caca8fa75074a70924379f9f532080e"
            case .leaseReleased: return "25531a55da22497b919696c36ee68d0b"
            case .leaseExpired: return "a962ff609d784ac8905790fb6f938b4d"
            case .engineAccepted: return "261da2d9692d4c409565a111342040b4"
            case .labelsRefused: return "11fbf1b69dd74994a660593fadc0514c"
            }
        }

        /// syslog priority: changes of address and expiries are warnings.
        public var priority: Int {
            switch self {
            case .leaseChanged, .leaseExpired, .engineAccepted, .labelsRefused: return 4
            case .repair, .garbageCollect: return 5
            default: return 6
            }
        }
    }

    public var kind: Kind
    public var message: String
    public var reason: String?
    public var containerID: String?
    public var containerName: String?
    public var ifname: String?
    public var bridge: String?
    public var port: String?
    public var mac: String?
    public var ip: String?
    /// For a repair: the steps taken, in order (create-veth, replace-port, ...).
    public var steps: [String]
    /// For refused labels: the first bad label's key.
    public var label: String?

    public init(kind: Kind, message: String, reason: String? = nil, attachment a: Attachment? = nil,
                port: String? = nil, bridge: String? = nil, ip: String? = nil, steps: [String] = []) {
        self.kind = kind
        self.message = message
        self.reason = reason
        self.containerID = a?.containerID
        self.containerName = a?.containerName
        self.ifname = a?.ifname
        self.bridge = bridge ?? a?.bridge
        self.port = port ?? a?.hostIfname
        self.mac = a?.mac.description
        self.ip = ip ?? a?.address?.description
        self.steps = steps
    }

    /// The journald fields, in a fixed order.
    public var fields: [(String, String)] {
        var f: [(String, String)] = [
            ("MESSAGE", message), ("MESSAGE_ID", kind.messageID), ("PRIORITY", String(kind.priority)),
            ("SYSLOG_IDENTIFIER", "netkeep"), ("NETKEEP_ACTION", kind.rawValue),
        ]
        func add(_ name: String, _ value: String?) { if let value, !value.isEmpty { f.append((name, value)) } }
        add("NETKEEP_REASON", reason)
        add("NETKEEP_CONTAINER_ID", containerID)
        add("NETKEEP_CONTAINER_NAME", containerName)
        add("NETKEEP_IFNAME", ifname)
        add("NETKEEP_BRIDGE", bridge)
        add("NETKEEP_PORT", port)
        add("NETKEEP_MAC", mac)
        add("NETKEEP_IP", ip)
        add("NETKEEP_STEPS", steps.isEmpty ? nil : steps.joined(separator: ","))
        add("NETKEEP_LABEL", label)
        return f
    }

    /// "; recreated: container OLD -> NEW ..." for an attachment that took over a predecessor's identity.
    public static func recreated(_ a: Attachment) -> String {
        guard let from = a.recreatedFrom else { return "" }
        return "; recreated: container \(from.prefix(12)) -> \(a.shortContainerID), same MAC\(a.lease.map { " and DHCP lease of \($0.address)" } ?? "")"
    }

    /// The one warning about a container whose labels are refused; the
    /// message names every bad label (at most five spelled out) and its cause.
    public static func labelsRefused(containerID: String, containerName: String, problems: [LabelProblem]) -> AuditEvent {
        let shown = problems.prefix(5).map(\.description).joined(separator: "; ")
        let more = problems.count > 5 ? "; and \(problems.count - 5) more" : ""
        var event = AuditEvent(kind: .labelsRefused, message: "container \(containerName): labels refused, nothing attached: \(shown)\(more)",
                               reason: "labels-refused")
        event.containerID = containerID
        event.containerName = containerName
        event.label = problems.first.map { quoted($0.key) }
        return event
    }
}

extension AuditEvent {
    /// The audit entries of one reconcile pass: one `repair` per attachment
    /// whose host side was changed (its steps listed, its first reason kept,
    /// which tells a restart from a reboot), one `gc` per removal, one lease
    /// entry per DHCP exchange. State-only actions (mark-ready, mark-down) are
    /// not host changes.
    public static func of(reconciled actions: [Action], succeeded: (Int) -> Bool,
                          leaseBefore: (String) -> IPv4CIDR?, recorded: (String) -> Attachment?) -> [AuditEvent] {
        var events: [AuditEvent] = []
        var repairs: [String: (Attachment, [String], Reason)] = [:]
        var order: [String] = []
        for (i, action) in actions.enumerated() where succeeded(i) {
            switch action {
            case .createVeth(let a, _, let r), .recreateVeth(let a, _, let r), .configureInterface(let a, _, _, let r),
                 .addPort(let a, let r), .replacePort(let a, let r), .setVLAN(let a, let r), .linkNetns(let a, _, let r):
                if repairs[a.id] == nil { order.append(a.id); repairs[a.id] = (a, [], r) }
                repairs[a.id]!.1.append(action.kind)
            case .obtainLease(let a, _, let r):
                guard let now = recorded(a.id), let lease = now.lease else { continue }
                let before = leaseBefore(a.id)
                let changed = before != nil && before != lease.address
                events.append(AuditEvent(
                    kind: changed ? .leaseChanged : .leaseObtained,
                    message: changed
                        ? "\(a.containerName) \(a.ifname): DHCP address changed from \(before!) to \(lease.address) (the server refused the old one)"
                        : "\(a.containerName) \(a.ifname): DHCP lease of \(lease.address) from \(lease.serverID) until \(lease.expiresAt)",
                    reason: r.code, attachment: now, ip: lease.address.description))
            case .removeAttachment(let a, let r):
                events.append(AuditEvent(kind: .garbageCollect, message: "\(a.containerName) \(a.ifname): removed port and veth \(a.hostIfname) from \(a.bridge) and forgot the attachment: \(r)",
                                         reason: r.code, attachment: a))
            case .retainAttachment(let a, let until, let r):
                events.append(AuditEvent(kind: .garbageCollect, message: "\(a.containerName) \(a.ifname): removed port and veth \(a.hostIfname) from \(a.bridge): \(r); MAC \(a.mac)\(a.lease.map { " and the DHCP lease of \($0.address)" } ?? "") kept until \(until) for a container recreated as \(a.containerName)",
                                         reason: r.code, attachment: a))
            case .removePort(let name, let bridge, let r):
                events.append(AuditEvent(kind: .garbageCollect, message: "removed port \(name) from \(bridge): \(r)", reason: r.code, port: name, bridge: bridge))
            case .removeNetnsLink(let name, _, let r):
                events.append(AuditEvent(kind: .garbageCollect, message: "removed /var/run/netns/\(name): \(r)", reason: r.code))
            case .renewLease(let a, _, _, let r):
                guard let before = a.lease, let now = recorded(a.id), let after = now.lease else { continue }
                if after.address != before.address {
                    events.append(AuditEvent(kind: .leaseChanged, message: "\(a.containerName) \(a.ifname): DHCP address changed from \(before.address) to \(after.address)",
                                             reason: r.code, attachment: now, ip: after.address.description))
                } else if after.obtainedAt != before.obtainedAt {
                    events.append(AuditEvent(kind: .leaseRenewed, message: "\(a.containerName) \(a.ifname): DHCP lease of \(after.address) renewed until \(after.expiresAt)",
                                             reason: r.code, attachment: now, ip: after.address.description))
                }
            case .releaseLease(let a, let pid, let r):
                // The release station writes its own entries.
                guard pid != nil, let lease = a.lease else { continue }
                events.append(AuditEvent(kind: .leaseReleased, message: "\(a.containerName) \(a.ifname): DHCP lease of \(lease.address) released",
                                         reason: r.code, attachment: a, ip: lease.address.description))
            case .markReady, .markDown, .unplugPort, .claimPort:
                continue
            }
        }
        let repairEvents = order.map { id -> AuditEvent in
            let (a, steps, reason) = repairs[id]!
            if reason == .declaredByLabels {
                // Made for the first time: the entry `netkeep attach` writes, with this reason.
                let made = recorded(a.id) ?? a
                return AuditEvent(kind: .create, message: "\(made.containerName) \(made.ifname): attached to \(made.bridge) as \(made.hostIfname) (mac \(made.mac), \(made.address.map(\.description) ?? "no address")), as its labels declare\(recreated(made))",
                                  reason: reason.code, attachment: made, steps: steps)
            }
            return AuditEvent(kind: .repair, message: "\(a.containerName) \(a.ifname): repaired (\(steps.joined(separator: ", "))) after: \(reason)",
                              reason: reason.code, attachment: recorded(a.id) ?? a, steps: steps)
        }
        return repairEvents + events
    }
}
