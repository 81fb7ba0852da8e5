#if canImport(Glibc)
import Glibc
#endif
import DHCP
import HostIO
import Logging
import NetkeepCore
import Netlink
import OVSDB

/// Gives back the DHCP leases of containers that are gone, so that a pool
/// does not fill up with them (dnsmasq keeps a lease for its whole lease time
/// otherwise). Their namespace went with them, so the DHCPRELEASE leaves from
/// a station of netkeep's own: a throw-away namespace whose veth is plugged
/// into the lease's bridge, with its VLAN tag, for as long as the releases
/// take. A DHCPINFORM sent after them and answered by the server confirms
/// they arrived (a server answers one client's packets in order).
struct ReleaseStation {
    let logger: Logger
    let audit: Audit

    /// What became of one lease: nil error when released (confirmed or not).
    struct Outcome {
        var attachment: Attachment
        var confirmed: Bool
        var error: String?
    }

    /// RELEASEs sent before each confirmation (as ExchangeLoop's window: a
    /// server's and ovs-vswitchd's socket buffers take that many at once).
    static let window = 32

    /// The station's port on one bridge and VLAN: the same name every time,
    /// so that one a crash left behind is found and replaced.
    static func portName(bridge: String, vlan: Int?) -> String {
        "nkrel" + String(Names.attachmentID(containerID: "release:" + bridge, ifname: vlan.map(String.init) ?? "-").prefix(10))
    }


    /// Releases the unexpired leases of `attachments` (whose containers are
    /// gone), logs what could not be, and records a `lease-released` entry each.
    @discardableResult
    func run(_ attachments: [Attachment], vswitch: (any VSwitchAccess)?, userspaceBridges: Set<String>, now: Timestamp) -> [Outcome] {
        let outcomes = release(attachments, vswitch: vswitch, userspaceBridges: userspaceBridges, now: now)
        var events: [AuditEvent] = []
        for o in outcomes {
            let a = o.attachment, address = a.lease!.address
            if let error = o.error {
                logger.warning("\(a.containerName) \(a.ifname): DHCPRELEASE of \(address) not sent: \(error)")
                continue
            }
            if !o.confirmed { logger.warning("\(a.containerName) \(a.ifname): DHCPRELEASE of \(address) sent, but the server did not confirm it") }
            events.append(AuditEvent(kind: .leaseReleased,
                                     message: "\(a.containerName) \(a.ifname): DHCP lease of \(address) released (the container is gone; sent from \(Self.portName(bridge: a.bridge, vlan: a.vlan)) on \(a.bridge)\(o.confirmed ? "" : ", not confirmed"))",
                                     reason: "container-removed", attachment: a, ip: address.description))
        }
        audit.record(events)
        return outcomes
    }

    /// Releases every unexpired lease of `attachments`, one station per bridge and VLAN.
    func release(_ attachments: [Attachment], vswitch: (any VSwitchAccess)?, userspaceBridges: Set<String>, now: Timestamp) -> [Outcome] {
        let leased = attachments.filter { $0.mode == .dhcp && ($0.lease?.isValid(at: now) ?? false) }
        guard !leased.isEmpty else { return [] }
        guard let vswitch else { return leased.map { Outcome(attachment: $0, confirmed: false, error: "OVSDB unreachable") } }
        let groups = Dictionary(grouping: leased) { "\($0.bridge)/\($0.vlan.map(String.init) ?? "-")" }
        return groups.keys.sorted().flatMap { key in
            let group = groups[key]!
            do {
                return try release(group, bridge: group[0].bridge, vlan: group[0].vlan, vswitch: vswitch,
                                   userspace: userspaceBridges.contains(group[0].bridge))
            } catch {
                return group.map { Outcome(attachment: $0, confirmed: false, error: "release station on \(key): \(error)") }
            }
        }
    }

    private func release(_ group: [Attachment], bridge: String, vlan: Int?, vswitch: any VSwitchAccess, userspace: Bool) throws -> [Outcome] {
        let name = Self.portName(bridge: bridge, vlan: vlan)
        let host = try NetlinkSession.open()
        // Whatever an interrupted run left: its veth died with its namespace, its row may remain.
        _ = try host.deleteLink(named: name)
        _ = try vswitch.deletePorts(named: [name], comment: "netkeep: release station left over")

        let namespace = try NamespaceThread.makeNamespace()
        let addresses = group.compactMap { $0.lease?.address }
        // The station wears the first container's MAC and address: the server's
        // ARP cache still points that address at that MAC, so its answer to the
        // confirmation reaches the station.
        let station = Attachment(containerID: "", containerName: "netkeep-release", ifname: "eth0", bridge: bridge, mac: group[0].mac,
                                 mtu: 1500, vlan: vlan, mode: .static, address: addresses[0], gateway: nil, netnsLink: nil,
                                 status: .ready, createdAt: Timestamp(secondsSinceEpoch: 0), hostIfname: name)
        defer {
            _ = try? vswitch.deletePorts(named: [name], comment: "netkeep: release station done")
            _ = try? host.deleteLink(named: name)
        }
        let maker = try LinkMaker(namespace: namespace)
        try maker.create(station, userspaceBridge: userspace)
        // One released address per subnet is enough to reach each server (the
        // kernel picks the source; a server goes by the RELEASE's ciaddr).
        var subnets: Set<String> = ["\(addresses[0].network)/\(addresses[0].prefixLength)"]
        if let inside = try maker.inside.link(named: "eth0") {
            for cidr in addresses.dropFirst() where subnets.insert("\(cidr.network)/\(cidr.prefixLength)").inserted {
                try maker.inside.addAddress(cidr, index: inside.index, name: "eth0")
            }
        }
        let config = try vswitch.addPorts([PortSpec(bridge: bridge, name: name, tag: vlan, interfaceExternalIDs: ["netkeep-release": "1"])],
                                          comment: "netkeep: release station")
        if try !vswitch.waitApplied(config) { logger.warning("release station \(name): ovs-vswitchd has not applied the port yet") }
        let socket = try NamespaceThread.run(in: namespace) { try DHCPSocket(interface: "eth0") }

        var outcomes = group.map { Outcome(attachment: $0, confirmed: false, error: nil) }
        var rng = SystemRandomNumberGenerator()
        // Per server; a group's first container (whose MAC the station wears) comes first.
        let byServer = Dictionary(grouping: outcomes.indices) { outcomes[$0].attachment.lease!.serverID }
        for (server, indices) in byServer.sorted(by: { $0.value[0] < $1.value[0] }) {
            let from = outcomes[indices[0]].attachment.lease!.address.address
            // A first DHCPINFORM resolves the server's address: no RELEASE then
            // waits in the kernel's neighbour queue, which holds only a few.
            _ = confirm(to: server, from: from, mac: group[0].mac, socket: socket, rng: &rng)
            // In windows of 32, each confirmed before the next, and sent again once if not.
            for start in stride(from: 0, to: indices.count, by: Self.window) {
                let part = indices[start..<min(start + Self.window, indices.count)]
                for _ in 0..<2 {
                    for i in part where outcomes[i].error == nil {
                        let a = outcomes[i].attachment, lease = a.lease!
                        var machine = ClientMachine(goal: .release(address: lease.address.address, server: server), mac: a.mac,
                                                    xid: UInt32.random(in: 1...UInt32.max, using: &rng), policy: RetransmitPolicy(attempts: 1),
                                                    jitter: [0])
                        do { try socket.send(machine.start(now: 0).send!.encode(), to: server) } catch { outcomes[i].error = "\(error)" }
                    }
                    if confirm(to: server, from: from, mac: group[0].mac, socket: socket, rng: &rng) {
                        for i in part where outcomes[i].error == nil { outcomes[i].confirmed = true }
                        break
                    }
                }
            }
        }
        return outcomes
    }

    /// A DHCPINFORM from `address`; true when the server answered within a second.
    private func confirm(to server: IPv4Address, from address: IPv4Address, mac: MACAddress, socket: DHCPSocket,
                         rng: inout SystemRandomNumberGenerator) -> Bool {
        var options = DHCPOptions()
        options.messageType = .inform
        options.clientID = [1] + mac.bytes
        let xid = UInt32.random(in: 1...UInt32.max, using: &rng)
        var inform = DHCPMessage(op: DHCPMessage.bootRequest, xid: xid, chaddr: mac, options: options)
        inform.ciaddr = address
        let deadline = Deadline.after(seconds: 1)
        for attempt in 0..<3 {
            guard (try? socket.send(inform.encode(), to: server)) != nil else { return false }
            let wait = Deadline.after(seconds: 0.15 * Double(1 << attempt))
            while !wait.hasPassed, !deadline.hasPassed {
                var pfd = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, Int32(clamping: min(wait.remainingMilliseconds, deadline.remainingMilliseconds))) > 0 else { continue }
                while let bytes = socket.receive() {
                    if let reply = try? DHCPMessage.decode(bytes), reply.op == DHCPMessage.bootReply, reply.xid == xid,
                       reply.chaddr == mac, reply.messageType == .ack {
                        return true
                    }
                }
            }
        }
        return false
    }
}
