#if canImport(Glibc)
import Glibc
#endif
import CNI
import DHCP
import HostIO
import Logging
import NetkeepCore
import Netlink
import NetkeepState
import OVSDB

/// netkeep as a CNI plugin (`"type": "netkeep"`): one call of a runtime
/// (containerd, Podman, a kubelet's), with CNI_* in the environment and the
/// network config on stdin. Records follow the attachments' rules: intent
/// first, under the state lock, written atomically; the lock is never held
/// across IPAM or an OVSDB wait.
public struct CNIPlugin {
    let environment: HostEnvironment
    let logger: Logger
    /// The runtime's environment, passed on to the delegated IPAM plugin.
    let processEnvironment: [String: String]

    public init(environment: HostEnvironment, logger: Logger, processEnvironment: [String: String]) {
        self.environment = environment
        self.logger = logger
        self.processEnvironment = processEnvironment
    }

    /// What the call prints on stdout and its exit status.
    public func run(stdin: [UInt8]) -> (output: [UInt8], status: Int32) {
        // An error is written in the version the runtime asked for, even when its config is refused.
        var version = CNIConfig.requestedVersion(stdin).flatMap { CNIVersion.supported.contains($0) ? $0 : nil } ?? CNIVersion.current
        do throws(CNIError) {
            let parameters = try CNIParameters.parse(processEnvironment)
            if parameters.command == .version { return (Self.versionReply(stdin), 0) }
            let config = try CNIConfig.parse(stdin, args: parameters.args)
            version = config.cniVersion
            switch parameters.command {
            case .add: return (try add(config, parameters, stdin: stdin).encoded(for: version), 0)
            case .del: try del(config, parameters, stdin: stdin)
            case .check: try check(config, parameters, stdin: stdin)
            case .gc: try gc(config, parameters, stdin: stdin)
            case .status: try status(config)
            case .version: break
            }
            return ([], 0)
        } catch {
            logger.error("\(error)")
            return (error.json(version: version), 1)
        }
    }

    /// VERSION: the versions netkeep speaks, in the version the runtime asked in.
    static func versionReply(_ stdin: [UInt8]) -> [UInt8] {
        let asked = CNIConfig.requestedVersion(stdin) ?? CNIVersion.current
        let list = CNIVersion.supported.map { "\"\($0)\"" }.joined(separator: ",")
        return Array("{\"cniVersion\":\"\(CNIVersion.supported.contains(asked) ? asked : CNIVersion.current)\",\"supportedVersions\":[\(list)]}\n".utf8)
    }

    // MARK: ADD

    /// The interface a call is about, for its messages.
    static func describe(_ config: CNIConfig, _ p: CNIParameters) -> String {
        "network \(quoted(config.name)), container \(p.containerID.prefix(12)), \(p.ifname)"
    }

    func add(_ config: CNIConfig, _ p: CNIParameters, stdin: [UInt8]) throws(CNIError) -> CNIResult {
        let what = Self.describe(config, p)
        let namespace = try containerNamespace(p, what: what)
        // One ADD, DEL or CHECK of an interface at a time: a racing ADD waits,
        // then finds the interface made. A pending record found under the
        // claim is an ADD that died, never one under way.
        let held = try hold(ClaimKey.cni(network: config.name, containerID: p.containerID, ifname: p.ifname), what: what)
        defer { held.release() }
        let snapshot = try vswitchSnapshot()
        guard let bridge = snapshot.bridge(named: config.bridge) else {
            throw CNIError(CNIError.invalidConfig, "network \(quoted(config.name)): bridge \(quoted(config.bridge)) does not exist (ovsdb)")
        }
        let inside: NetlinkSession
        do { inside = try NetlinkSession.open(in: namespace) } catch {
            throw CNIError(CNIError.ioFailure, "\(what): netlink in \(p.netns): \(error)")
        }
        // An ADD that died half-way left a pending record; a reboot (or a
        // namespace deleted without DEL) left a ready one whose veth is gone,
        // and the runtime adds the interface again. Its port and addresses go
        // first (the interface in the namespace is its own); a DHCP lease is
        // kept for this ADD. A ready record whose veth lives, or that cannot
        // be looked at, is an interface that exists.
        if let existing = try load().cniAttachment(network: config.name, containerID: p.containerID, ifname: p.ifname) {
            var vethGone = false
            if existing.status == .ready {
                do { vethGone = try NetlinkSession.open().link(named: existing.hostIfname) == nil } catch { vethGone = false }
            }
            guard existing.status == .pending || vethGone else {
                throw CNIError(CNIError.interfaceExists, "\(what): already added (port \(existing.hostIfname)); DEL it first")
            }
            try removePieces(existing)
            if let type = existing.ipam, type != CNIRules.builtInDHCP { _ = try ipam(.del, type: type, path: p.path, stdin: stdin) }
            let now = environment.now()
            try update { state in
                state.cni.removeAll { $0.key == existing.key }
                if let lease = CNIRules.keep(existing, releaseAfter: config.releaseAfter, now: now) { state.keep(lease) }
            }
            logger.notice("CNI \(existing.key): \(vethGone ? "its veth \(existing.hostIfname) is gone (a reboot?): the record and port" : "the pieces of an ADD that did not finish") were removed")
        }
        if (try? inside.link(named: p.ifname)) ?? nil != nil {
            throw CNIError(CNIError.interfaceExists, "\(what): interface \(p.ifname) already exists in \(p.netns)")
        }
        let dhcp = config.ipamType == CNIRules.builtInDHCP
        var rng = SystemRandomNumberGenerator()
        // A DHCP client without a given MAC gets one that a restarted container gets again.
        let mac = config.mac ?? (dhcp ? CNIRules.derivedMAC(network: config.name, identity: config.podIdentity ?? p.containerID, ifname: p.ifname)
                                      : MACAddress.randomLocal(using: &rng))
        var record = CNIAttachment(network: config.name, containerID: p.containerID, ifname: p.ifname, netns: p.netns,
                                   bridge: config.bridge, mac: mac, mtu: config.mtu, vlan: config.vlan, ipam: config.ipamType,
                                   createdAt: environment.now())
        // The intent, before anything on the host changes; a lease kept for this client comes along.
        var kept: CNIKeptLease?
        try update { state throws(CNIError) in
            if state.cniAttachment(network: config.name, containerID: p.containerID, ifname: p.ifname) != nil {
                throw CNIError(CNIError.interfaceExists, "\(what): another ADD of the same interface is under way")
            }
            // Two sandboxes of one pod at once (an old one not yet DELeted): the second gets its container's own MAC.
            if dhcp, config.mac == nil, config.podIdentity != nil,
               state.cni.contains(where: { $0.network == record.network && $0.mac == record.mac }) {
                record.mac = CNIRules.derivedMAC(network: config.name, identity: p.containerID, ifname: p.ifname)
            }
            state.upsert(record)
            if dhcp, let found = CNIRules.keptLease(in: state.cniLeases, network: config.name, mac: record.mac, now: environment.now()) {
                kept = found
                state.cniLeases.removeAll { $0 == found }
            }
        }
        do throws(CNIError) {
            var result = CNIResult(cniVersion: config.cniVersion, interfaces: nil, ips: [], routes: nil, dns: nil)
            if let type = config.ipamType, !dhcp {
                guard let allocated = try ipam(.add, type: type, path: p.path, stdin: stdin) else {
                    throw CNIError(CNIError.ioFailure, "\(what): IPAM \(type) printed no result")
                }
                result = allocated
            }
            let addresses = try result.addresses()
            record.addresses = addresses.map(\.cidr)
            record.gateway = addresses.compactMap(\.gateway).first
            let defaultGateway = try Self.defaultGateway(result.routes ?? [], fallback: record.gateway)
            // The addresses are written with `ready`: a pending record is undone whole, IPAM's part by its DEL.
            let hostMAC = try makeLink(record, in: namespace, inside: inside, userspace: bridge.isUserspace, defaultGateway: defaultGateway)
            FaultPoint.cniLinkMade.check()
            // A row of that name is a dead one from an earlier life of this key: made again, with this config's tag.
            if snapshot.port(named: record.hostIfname) != nil { try deletePort(record, comment: "netkeep: CNI \(record.key), a dead row replaced") }
            try addPort(record)
            if dhcp {
                // The port passes packets now (addPort waited for ovs-vswitchd): the client asks.
                let lease = try obtainLease(for: record, kept: kept?.lease, in: namespace)
                record.lease = lease
                record.addresses = [lease.address]
                record.gateway = lease.router
                try configure(record, inside: inside)
                result.ips = [CNIResult.IP(address: lease.address.description, gateway: lease.router?.description, interface: 1)]
                result.routes = lease.router.map { [CNIResult.Route(dst: "0.0.0.0/0", gw: $0.description)] }
                if !lease.dnsServers.isEmpty { result.dns = CNIResult.DNS(nameservers: lease.dnsServers.map(\.description)) }
            }
            record.status = .ready
            try update { $0.upsert(record) }
            environment.audit.record(AuditEvent(kind: .create, message: "CNI \(record.key): port \(record.hostIfname), MAC \(record.mac)\(record.addresses.first.map { ", \($0)" } ?? "")",
                                                reason: "cni-add", port: record.hostIfname, bridge: record.bridge,
                                                ip: record.addresses.first?.description))
            result.interfaces = [CNIResult.Interface(name: record.hostIfname, mac: hostMAC?.description, sandbox: nil),
                                 CNIResult.Interface(name: record.ifname, mac: record.mac.description, mtu: record.mtu, sandbox: record.netns)]
            result.ips = (result.ips ?? []).map { ip in
                var ip = ip
                ip.interface = 1
                return ip
            }
            return result
        } catch {
            // Undo all of it: to the runtime a failed ADD made nothing. A
            // lease it holds is kept for the client's next ADD, as DEL keeps one.
            try? removePieces(record)
            if let type = config.ipamType, !dhcp { _ = try? ipam(.del, type: type, path: p.path, stdin: stdin) }
            var holding = record
            holding.lease = record.lease ?? kept?.lease
            let keep = CNIRules.keep(holding, releaseAfter: config.releaseAfter, now: environment.now())
            try? update { state in
                state.cni.removeAll { $0.key == record.key }
                if let keep { state.keep(keep) }
            }
            throw error
        }
    }

    /// netkeep-dhcp's lease for the new interface: the kept one confirmed in
    /// one round trip (INIT-REBOOT), or a new one (DISCOVER). A kept lease
    /// the server does not answer for is used while it is valid, unconfirmed:
    /// the daemon confirms it. One the server refuses is asked for anew.
    func obtainLease(for record: CNIAttachment, kept: Lease?, in namespace: NetworkNamespace) throws(CNIError) -> Lease {
        let socket: DHCPSocket
        do {
            let ifname = record.ifname
            socket = try NamespaceThread.run(in: namespace) { try DHCPSocket(interface: ifname) }
        } catch {
            throw CNIError(CNIError.ioFailure, "\(record.key): DHCP socket on \(record.ifname): \(error)")
        }
        if let kept {
            do throws(SandboxDHCP.Failure) {
                let grant = try SandboxDHCP.exchange(.initReboot(kept.address.address), mac: record.mac, on: socket, addressInPlace: false,
                                                     bridge: record.bridge, policy: LeaseKeeper.freshPortPolicy)
                return LeaseKeeper.lease(from: grant, now: environment.now())
            } catch let error where !error.refused && kept.isValid(at: environment.now()) {
                logger.warning("CNI \(record.key): \(error); \(kept.address) is used unconfirmed until \(kept.expiresAt)")
                var unconfirmed = kept
                unconfirmed.confirmed = false
                return unconfirmed
            } catch {
                logger.notice("CNI \(record.key): \(kept.address) again: \(error); asking for a new lease")
            }
        }
        let lease: Lease
        do {
            lease = LeaseKeeper.lease(from: try SandboxDHCP.exchange(.discover, mac: record.mac, on: socket, addressInPlace: false, bridge: record.bridge),
                                      now: environment.now())
        } catch {
            throw CNIError(CNIError.ioFailure, "\(record.key): \(error)")
        }
        // Another address than the client had: probed before it is used (RFC 5227).
        if let kept, kept.address != lease.address,
           let conflict = AddressConflict.check(lease, mac: record.mac, ifname: record.ifname, in: namespace, skipped: { logger.warning("CNI \(record.key): \($0)") }) {
            throw CNIError(CNIError.ioFailure, "\(record.key): \(conflict)")
        }
        return lease
    }

    /// A lease's address on the interface, and the default route through its router.
    func configure(_ record: CNIAttachment, inside: NetlinkSession) throws(CNIError) {
        do {
            guard let link = try inside.link(named: record.ifname) else { throw CNIError(CNIError.linkFailure, "\(record.key): \(record.ifname) vanished") }
            for address in record.addresses { try inside.addAddress(address, index: link.index, name: record.ifname) }
            if let gateway = record.gateway { try inside.addDefaultRoute(via: gateway, index: link.index, name: record.ifname) }
        } catch let error as CNIError {
            throw error
        } catch {
            throw CNIError(CNIError.linkFailure, "\(record.key): address on \(record.ifname): \(error)")
        }
    }

    /// The gateway of the default route: a route to 0.0.0.0/0 (its `gw`, or
    /// the address's gateway). Other routes are not netkeep's to make (yet).
    static func defaultGateway(_ routes: [CNIResult.Route], fallback: IPv4Address?) throws(CNIError) -> IPv4Address? {
        var gateway: IPv4Address?
        for route in routes {
            guard route.dst == "0.0.0.0/0" else {
                if route.dst.contains(":") { continue }  // IPv6: refused with its address
                throw CNIError(CNIError.unsupportedField, "route to \(route.dst): netkeep makes only the default route (0.0.0.0/0)")
            }
            do { gateway = try route.gw.map { text throws(InputError) in try IPv4Address(parsing: text) } ?? fallback } catch {
                throw CNIError(CNIError.invalidConfig, "default route: \(error)")
            }
        }
        return gateway
    }

    /// The veth pair with its container end made inside the namespace under
    /// its final name, MAC and MTU; addresses and the default route; both up.
    /// Returns the host end's MAC (for the result).
    func makeLink(_ a: CNIAttachment, in namespace: NetworkNamespace, inside: NetlinkSession, userspace: Bool,
                  defaultGateway: IPv4Address?) throws(CNIError) -> MACAddress? {
        do {
            let host = try NetlinkSession.open()
            try host.createVeth(name: a.hostIfname, mtu: a.mtu, peerName: a.ifname, peerMAC: a.mac, peerMTU: a.mtu, peerNamespace: namespace)
            if userspace {
                try Ethtool.setTxChecksum(false, interface: a.hostIfname, in: nil)
                try Ethtool.setTxChecksum(false, interface: a.ifname, in: namespace)
            }
            guard let link = try inside.link(named: a.ifname) else { throw CNIError(CNIError.linkFailure, "\(a.key): \(a.ifname) vanished while it was made") }
            try inside.setUp(index: link.index, name: a.ifname)
            for address in a.addresses { try inside.addAddress(address, index: link.index, name: a.ifname) }
            if let defaultGateway { try inside.addDefaultRoute(via: defaultGateway, index: link.index, name: a.ifname) }
            guard let hostLink = try host.link(named: a.hostIfname) else { throw CNIError(CNIError.linkFailure, "\(a.key): \(a.hostIfname) vanished while it was made") }
            try host.setUp(index: hostLink.index, name: a.hostIfname)
            return hostLink.mac
        } catch let error as CNIError {
            throw error
        } catch {
            throw CNIError(CNIError.linkFailure, "\(a.key): veth \(a.hostIfname): \(error)")
        }
    }

    func addPort(_ a: CNIAttachment) throws(CNIError) {
        let spec = PortSpec(bridge: a.bridge, name: a.hostIfname, tag: a.vlan,
                            interfaceExternalIDs: [CNIAttachment.externalID: a.key, "netkeep-network": a.network])
        do {
            let client = try environment.vswitch()
            defer { client.close() }
            let next = try client.addPorts([spec], comment: "netkeep: CNI \(a.key)")
            _ = try client.waitApplied(next)
        } catch {
            throw CNIError(CNIError.vswitchFailure, "\(a.key): add port \(a.hostIfname) to \(a.bridge): \(error)")
        }
    }

    // MARK: DEL, CHECK, GC, STATUS

    /// DEL: whatever is there goes; nothing there is success (SPEC.md: DEL is
    /// idempotent and succeeds when the namespace is gone).
    func del(_ config: CNIConfig, _ p: CNIParameters, stdin: [UInt8]) throws(CNIError) {
        let held = try hold(ClaimKey.cni(network: config.name, containerID: p.containerID, ifname: p.ifname), what: Self.describe(config, p))
        defer { held.release() }
        let record = try load().cniAttachment(network: config.name, containerID: p.containerID, ifname: p.ifname)
        if let record { try remove(record, reason: "cni-del", releaseAfter: config.releaseAfter) }
        if let type = config.ipamType, type != CNIRules.builtInDHCP { _ = try ipam(.del, type: type, path: p.path, stdin: stdin) }
    }

    /// CHECK: the interface is as ADD made it and as prevResult says.
    func check(_ config: CNIConfig, _ p: CNIParameters, stdin: [UInt8]) throws(CNIError) {
        let what = Self.describe(config, p)
        guard let prev = config.prevResult else { throw CNIError(CNIError.invalidConfig, "\(what): CHECK needs prevResult") }
        let held = try hold(ClaimKey.cni(network: config.name, containerID: p.containerID, ifname: p.ifname), what: what)
        defer { held.release() }
        guard let record = try load().cniAttachment(network: config.name, containerID: p.containerID, ifname: p.ifname),
              record.status == .ready else {
            throw CNIError(CNIError.unknownContainer, "\(what): netkeep has no record of an ADD")
        }
        if let type = config.ipamType, type != CNIRules.builtInDHCP { _ = try ipam(.check, type: type, path: p.path, stdin: stdin) }
        if let lease = record.lease, !lease.isValid(at: environment.now()) {
            throw CNIError(CNIError.ioFailure, "\(what): the DHCP lease of \(lease.address) expired at \(lease.expiresAt)")
        }
        guard try vswitchSnapshot().port(named: record.hostIfname) != nil else {
            throw CNIError(CNIError.vswitchFailure, "\(what): port \(record.hostIfname) is missing from bridge \(record.bridge)")
        }
        let namespace = try containerNamespace(p, what: what)
        do {
            let inside = try NetlinkSession.open(in: namespace)
            guard let link = try inside.link(named: p.ifname) else { throw CNIError(CNIError.linkFailure, "\(what): \(p.ifname) is missing in \(p.netns)") }
            guard link.mac == record.mac else {
                throw CNIError(CNIError.linkFailure, "\(what): \(p.ifname) has MAC \(link.mac?.description ?? "none"), not \(record.mac)")
            }
            guard link.mtu == record.mtu else { throw CNIError(CNIError.linkFailure, "\(what): \(p.ifname) has MTU \(link.mtu), not \(record.mtu)") }
            guard link.isUp else { throw CNIError(CNIError.linkFailure, "\(what): \(p.ifname) is down") }
            let present = Set(try inside.addresses().filter { $0.index == link.index }.map(\.cidr))
            for (cidr, _) in try prev.addresses() where !present.contains(cidr) {
                throw CNIError(CNIError.linkFailure, "\(what): \(p.ifname) lacks \(cidr) of prevResult")
            }
        } catch let error as CNIError {
            throw error
        } catch {
            throw CNIError(CNIError.linkFailure, "\(what): \(error)")
        }
    }

    /// GC: the records of this network that are not valid attachments go, as
    /// DEL would take them. Nothing of another network, of Docker or foreign.
    /// Without the list of valid attachments nothing is known to be garbage
    /// (DESIGN.md rule 1): refused. A record that a call holds is left to it.
    func gc(_ config: CNIConfig, _ p: CNIParameters, stdin: [UInt8]) throws(CNIError) {
        guard let valid = config.validAttachments else {
            throw CNIError(CNIError.invalidConfig,
                           "network \(quoted(config.name)): GC without cni.dev/valid-attachments (missing or null): nothing is collected without the list of what is valid")
        }
        let garbage = CNIRules.garbage(in: try load().cni, network: config.name, valid: valid)
        for candidate in garbage {
            let held: ContainerClaims
            do { held = try environment.claims() } catch { throw CNIError(CNIError.ioFailure, "netkeep claims: \(error)") }
            defer { held.release() }
            let free: Bool
            do { free = try held.tryClaim(candidate.claimKey) } catch { throw CNIError(CNIError.ioFailure, "netkeep claims: \(error)") }
            // Read again under the claim: a call that held it may have changed or removed it.
            guard free, let record = try load().cniAttachment(network: candidate.network, containerID: candidate.containerID, ifname: candidate.ifname),
                  record.createdAt == candidate.createdAt else {
                logger.notice("CNI \(candidate.key): left to the call under way")
                continue
            }
            try remove(record, reason: "cni-gc", releaseAfter: config.releaseAfter)
            if let type = config.ipamType, type != CNIRules.builtInDHCP {
                var env = processEnvironment
                env["CNI_CONTAINERID"] = record.containerID
                env["CNI_IFNAME"] = record.ifname
                env["CNI_NETNS"] = record.netns
                _ = try ipam(.del, type: type, path: p.path, stdin: stdin, environment: env)
            }
        }
    }

    /// STATUS: ready for ADD when OVSDB answers and the bridge exists.
    func status(_ config: CNIConfig) throws(CNIError) {
        let snapshot: VSwitchSnapshot
        do { snapshot = try vswitchSnapshot() } catch {
            throw CNIError(CNIError.notAvailable, "Open vSwitch does not answer", details: error.msg)
        }
        guard snapshot.bridge(named: config.bridge) != nil else {
            throw CNIError(CNIError.notAvailable, "network \(quoted(config.name)): bridge \(quoted(config.bridge)) does not exist (ovsdb)")
        }
    }

    /// Marks the record `removing`, takes its pieces down, then the record;
    /// its DHCP lease is kept for `releaseAfter` seconds for the client's next ADD.
    func remove(_ record: CNIAttachment, reason: String, releaseAfter: Int64) throws(CNIError) {
        try update { state in
            guard var r = state.cniAttachment(network: record.network, containerID: record.containerID, ifname: record.ifname) else { return }
            r.status = .removing
            state.upsert(r)
        }
        try removePieces(record)
        // The lease as the state has it now: the daemon may have renewed it meanwhile.
        var keep: CNIKeptLease?
        let now = environment.now()
        try update { state in
            keep = CNIRules.keep(state.cniAttachment(network: record.network, containerID: record.containerID, ifname: record.ifname) ?? record,
                                 releaseAfter: releaseAfter, now: now)
            state.cni.removeAll { $0.key == record.key }
            if let keep { state.keep(keep) }
        }
        let kept = keep.map { "; lease of \($0.lease.address) kept until \($0.releaseAt)" } ?? ""
        environment.audit.record(AuditEvent(kind: .detach, message: "CNI \(record.key): port \(record.hostIfname) removed from \(record.bridge)\(kept)",
                                            reason: reason, port: record.hostIfname, bridge: record.bridge,
                                            ip: record.addresses.first?.description))
    }

    /// The port and the veth (deleting the host end takes the container end).
    func removePieces(_ record: CNIAttachment) throws(CNIError) {
        try deletePort(record, comment: "netkeep: CNI \(record.key) deleted")
        do { _ = try NetlinkSession.open().deleteLink(named: record.hostIfname) } catch {
            throw CNIError(CNIError.linkFailure, "\(record.key): delete veth \(record.hostIfname): \(error)")
        }
    }

    /// The attachment's port row, when there is one.
    func deletePort(_ record: CNIAttachment, comment: String) throws(CNIError) {
        do {
            let client = try environment.vswitch()
            defer { client.close() }
            _ = try client.deletePorts(named: [record.hostIfname], comment: comment)
        } catch {
            throw CNIError(CNIError.vswitchFailure, "\(record.key): remove port \(record.hostIfname): \(error)")
        }
    }

    // MARK: Namespaces and claims

    /// The runtime's namespace for the interface: opened without blocking
    /// (a FIFO or a device at CNI_NETNS would hang `open`), a network
    /// namespace, and not the one netkeep runs in, by identity (device and
    /// inode), whatever path names it.
    func containerNamespace(_ p: CNIParameters, what: String) throws(CNIError) -> NetworkNamespace {
        let namespace: NetworkNamespace
        do { namespace = try NetworkNamespace(path: p.netns) } catch {
            throw CNIError(CNIError.unknownContainer, "\(what): network namespace \(p.netns) cannot be opened", details: "\(error)")
        }
        if let own = NetworkNamespace.ownID, namespace.id == own {
            throw CNIError(CNIError.invalidEnvironment, "\(what): CNI_NETNS \(p.netns) is the host's own network namespace; netkeep attaches only a container's")
        }
        return namespace
    }

    /// The claim of `key`, waited for; a call that holds it too long is the runtime's to retry.
    func hold(_ key: String, what: String) throws(CNIError) -> ContainerClaims {
        do { return try environment.hold([key], logger: logger) } catch {
            throw CNIError(error.exitCode == 5 ? CNIError.tryAgainLater : CNIError.ioFailure,
                           "\(what): another ADD, DEL or CHECK of this interface is under way", details: "\(error)")
        }
    }

    // MARK: IPAM, records, OVSDB

    /// Runs the IPAM plugin `type` from `path` (CNI_PATH) with the same config,
    /// as the spec delegates; its error comes back as it said it.
    func ipam(_ command: CNICommand, type: String, path dirs: [String], stdin: [UInt8],
              environment env: [String: String]? = nil) throws(CNIError) -> CNIResult? {
        let candidates: [String] = dirs.map { "\($0)/\(type)" }
        guard let program = candidates.first(where: { (path: String) -> Bool in access(path, X_OK) == 0 }) else {
            throw CNIError(CNIError.invalidConfig, "IPAM plugin \(quoted(type)) is not in CNI_PATH (\(dirs.joined(separator: ":")))")
        }
        var env = env ?? processEnvironment
        env["CNI_COMMAND"] = command.rawValue
        var outcome: Subprocess.Outcome
        do {
            outcome = try Subprocess.run(program, environment: env, stdin: stdin)
            // An IPAM plugin of spec 1.0.0 (Debian 12's) refuses 1.1.0, whose
            // ADD, DEL and CHECK are 1.0.0's: it is asked again in 1.0.0.
            if outcome.status != 0, CNIError.decode(outcome.stdout)?.code == CNIError.incompatibleVersion,
               CNIConfig.requestedVersion(stdin) == "1.1.0", [.add, .del, .check].contains(command),
               let older = CNIConfig.replacingVersion(stdin, with: "1.0.0") {
                outcome = try Subprocess.run(program, environment: env, stdin: older)
            }
        } catch {
            throw CNIError(CNIError.ioFailure, "IPAM \(type): \(error)")
        }
        guard outcome.status == 0 else {
            if var error = CNIError.decode(outcome.stdout) {
                error.msg = "IPAM \(type) \(command.rawValue): \(error.msg)"
                throw error
            }
            throw CNIError(CNIError.ioFailure, "IPAM \(type) \(command.rawValue) exited with \(outcome.status)")
        }
        guard command == .add else { return nil }
        return CNIResult.decode(outcome.stdout)
    }

    func load() throws(CNIError) -> State {
        do { return try environment.loadState() } catch { throw CNIError(CNIError.ioFailure, "netkeep state: \(error)") }
    }

    func update(_ change: (inout State) throws(CNIError) -> Void) throws(CNIError) {
        var refusal: CNIError?
        do {
            _ = try environment.updateRecords(logger: logger) { state throws(Failure) in
                do throws(CNIError) { try change(&state) } catch {
                    refusal = error
                    throw Failure.badInput(error.msg)
                }
            }
        } catch {
            throw refusal ?? CNIError(error.exitCode == 5 ? CNIError.tryAgainLater : CNIError.ioFailure, "netkeep state: \(error)")
        }
    }

    func vswitchSnapshot() throws(CNIError) -> VSwitchSnapshot {
        do {
            let client = try environment.vswitch()
            defer { client.close() }
            return try client.snapshot()
        } catch {
            throw CNIError(CNIError.tryAgainLater, "Open vSwitch: \(error)")
        }
    }
}

extension CNIAttachment {
    /// The Interface external_id that marks a CNI attachment's port as netkeep's (DESIGN.md rule 2).
    public static let externalID = "netkeep-cni"
}
