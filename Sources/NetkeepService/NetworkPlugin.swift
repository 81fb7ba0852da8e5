#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import DHCP
import DockerPlugin
import Logging
import NetkeepCore
import Netlink
import NetkeepState
import OVSDB

/// netkeep as Docker's network driver (`docker network create -d netkeep`).
/// Every request is answered from the state file and the host, never the
/// Docker API (DESIGN.md, "The boot deadlock"): the network's options are
/// recorded at CreateNetwork. Records follow the attachments' rules: intent
/// first, under the state lock, written atomically, and the lock is never
/// held across a DHCP exchange or an OVSDB wait.
public final class NetworkPlugin: NetworkDriver {
    let environment: HostEnvironment
    let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    // MARK: Networks

    public func createNetwork(_ r: CreateNetworkRequest) throws(PluginError) {
        let options = try r.generic.get()
        if let v6 = r.IPv6Data, v6.contains(where: { ($0.Pool ?? "").isEmpty == false }) {
            throw PluginError("netkeep networks are IPv4 only: create the network without --ipv6 and an IPv6 subnet")
        }
        guard (r.IPv4Data?.count ?? 0) <= 1 else { throw PluginError("a netkeep network takes one IPv4 subnet, not \(r.IPv4Data?.count ?? 0)") }
        let v4 = r.IPv4Data?.first
        let network: DockerNetwork
        do {
            network = try DockerNetwork.parse(id: r.NetworkID, options: options, pool: v4?.Pool, gateway: v4?.Gateway, now: environment.now())
        } catch {
            throw PluginError("\(error)")
        }
        let snapshot = try self.vswitchSnapshot()
        guard snapshot.bridge(named: network.bridge) != nil else {
            throw PluginError("bridge \(quoted(network.bridge)) does not exist (ovsdb)")
        }
        try self.update { $0.upsert(network) }
        logger.notice("network \(network.id.prefix(12)): created on bridge \(network.bridge), \(network.mode == .dhcp ? "DHCP" : "subnet \(network.subnet.map(String.init(describing:)) ?? "")")")
    }

    public func deleteNetwork(_ r: NetworkRequest) throws(PluginError) {
        let id = try Self.networkID(r.NetworkID, in: "DeleteNetwork")
        let state = try self.load()
        guard state.network(id: id) != nil else {
            // Deleted already (a repeated request), or never netkeep's: nothing to do.
            logger.notice("network \(id.prefix(12)): DeleteNetwork of a network netkeep has no record of; nothing to delete")
            return
        }
        // Docker deletes a network only without endpoints; any left are
        // stale (an ungraceful stop): their ports go with the network.
        for endpoint in state.endpoints where endpoint.networkID == id {
            let held = try hold(endpoint.id)
            defer { held.release() }
            if let current = try self.load().endpoint(id: endpoint.id) { try self.removeEndpoint(current) }
        }
        try self.update { state in state.networks.removeAll { $0.id == id } }
        logger.notice("network \(id.prefix(12)): deleted")
    }

    // MARK: Endpoints

    public func createEndpoint(_ r: CreateEndpointRequest) throws(PluginError) -> CreateEndpointReply {
        var timings = PhaseTimings()
        let endpointID = try Self.endpointID(r.EndpointID, in: "CreateEndpoint")
        let networkID = try Self.networkID(r.NetworkID, in: "CreateEndpoint")
        // One request for an endpoint at a time: a racing CreateEndpoint with
        // the same ID waits, then gets the same answer.
        let held = try hold(endpointID)
        defer { held.release() }
        // Under the claim, a pending record is a CreateEndpoint that died: its pieces go first.
        if let dead = try self.load().endpoint(id: endpointID), dead.status == .pending || dead.status == .removing {
            try self.removeEndpoint(dead)
            logger.notice("endpoint \(dead.shortID): the pieces of a CreateEndpoint that did not finish were removed")
        }
        var answered: Endpoint?, intended: Endpoint?
        // The checks and the intent on one read of the records, under the lock.
        try timings.measure("intent") { () throws(PluginError) in
            try self.update { state throws(PluginError) in
                if let existing = state.endpoint(id: endpointID) {
                    guard existing.networkID == networkID else {
                        throw PluginError("endpoint \(existing.shortID) exists on network \(existing.networkID.prefix(12)), not \(networkID.prefix(12))")
                    }
                    answered = existing
                    return
                }
                let endpoint = try self.intent(r, state: state)
                state.upsert(endpoint)
                intended = endpoint
            }
        }
        if let answered { return Self.reply(for: answered) }  // asked again: the same answer
        guard var endpoint = intended else { throw PluginError("endpoint \(r.EndpointID.prefix(12)): no record was written") }
        do throws(PluginError) {
            try self.make(endpoint, timings: &timings)
            if endpoint.mode == .dhcp {
                let lease = try timings.measure("dhcp") { () throws(PluginError) in try self.obtainLease(endpoint) }
                endpoint.lease = lease
                endpoint.address = lease.address
                endpoint.gateway = lease.router
            }
            endpoint.status = .ready
            try timings.measure("record") { () throws(PluginError) in try self.update { $0.upsert(endpoint) } }
        } catch {
            // Undo what was made and the record: Docker gives up on the endpoint.
            try? self.removeEndpoint(endpoint)
            throw error
        }
        self.environment.audit.record(AuditEvent(kind: .create, message: "endpoint \(endpoint.shortID) on \(endpoint.bridge): port \(endpoint.hostIfname), MAC \(endpoint.mac)\(endpoint.address.map { ", \($0)" } ?? "")",
                                                 reason: "docker-create-endpoint", port: endpoint.hostIfname, bridge: endpoint.bridge,
                                                 ip: endpoint.address?.description))
        logger.info("endpoint \(endpoint.shortID): created (\(timings.summary))")
        return Self.reply(for: endpoint)
    }

    public func join(_ r: JoinRequest) throws(PluginError) -> JoinReply {
        let endpointID = try Self.endpointID(r.EndpointID, in: "Join")
        let networkID = try Self.networkID(r.NetworkID, in: "Join")
        guard Endpoint.isSandboxKey(r.SandboxKey) else {
            throw PluginError("Join \(endpointID.prefix(12)): sandbox key \(quoted(r.SandboxKey)) is not under /var/run/docker/netns")
        }
        let held = try hold(endpointID)
        defer { held.release() }
        FaultPoint.joinStarted.check()
        var joined: Endpoint?
        try self.update { state throws(PluginError) in
            guard var endpoint = state.endpoint(id: endpointID), endpoint.status != .pending, endpoint.status != .removing else {
                throw PluginError("endpoint \(endpointID.prefix(12)) is not known to netkeep (no CreateEndpoint was recorded for it)")
            }
            try Self.check(endpoint, isOn: networkID, in: "Join")
            endpoint.status = .joined
            endpoint.sandboxKey = r.SandboxKey
            state.upsert(endpoint)
            joined = endpoint
        }
        guard let endpoint = joined else { throw PluginError("endpoint \(endpointID.prefix(12)): the join was not recorded") }
        return JoinReply(SrcName: endpoint.peerIfname, DstPrefix: "eth", Gateway: endpoint.gateway?.description,
                         DisableGatewayService: endpoint.gateway == nil)
    }

    public func leave(_ r: EndpointRequest) throws(PluginError) {
        let endpointID = try Self.endpointID(r.EndpointID, in: "Leave")
        let networkID = try Self.networkID(r.NetworkID, in: "Leave")
        let held = try hold(endpointID)
        defer { held.release() }
        try self.update { state throws(PluginError) in
            guard var endpoint = state.endpoint(id: endpointID) else { return }
            try Self.check(endpoint, isOn: networkID, in: "Leave")
            endpoint.status = .ready
            endpoint.sandboxKey = nil
            state.upsert(endpoint)
        }
    }

    public func deleteEndpoint(_ r: EndpointRequest) throws(PluginError) {
        let endpointID = try Self.endpointID(r.EndpointID, in: "DeleteEndpoint")
        let networkID = try Self.networkID(r.NetworkID, in: "DeleteEndpoint")
        let held = try hold(endpointID)
        defer { held.release() }
        // Unknown: already deleted (a repeated request, or a record lost): nothing to do.
        guard let endpoint = try self.load().endpoint(id: endpointID) else { return }
        try Self.check(endpoint, isOn: networkID, in: "DeleteEndpoint")
        try self.removeEndpoint(endpoint)
        self.environment.audit.record(AuditEvent(kind: .detach, message: "endpoint \(endpoint.shortID): port \(endpoint.hostIfname) removed from \(endpoint.bridge)",
                                                 reason: "docker-delete-endpoint", port: endpoint.hostIfname, bridge: endpoint.bridge,
                                                 ip: endpoint.address?.description))
    }

    // MARK: Steps

    /// The record CreateEndpoint writes before it changes the host.
    /// Its ids were checked by `createEndpoint` (`endpointID`, `networkID`).
    func intent(_ r: CreateEndpointRequest, state: State) throws(PluginError) -> Endpoint {
        let short = r.EndpointID.prefix(12)
        guard let network = state.network(id: r.NetworkID) else {
            throw PluginError("network \(r.NetworkID.prefix(12)) is not known to netkeep: its record is missing (state file replaced?); remove the network and create it again")
        }
        let iface = r.Interface ?? EndpointInterface()
        var address: IPv4CIDR?
        if let text = iface.Address, !text.isEmpty {
            guard network.mode == .static else { throw PluginError("endpoint \(short): a DHCP network takes no address from Docker (use --ipam-driver null)") }
            do {
                let cidr = try IPv4CIDR(parsing: text)
                try AddressRules.check(cidr, role: "address")
                try network.checkEndpointAddress(cidr)
                address = cidr
            } catch { throw PluginError("endpoint \(short): \(error)") }
        } else if network.mode == .static {
            throw PluginError("endpoint \(short): Docker sent no IPv4 address for a network with a subnet")
        }
        if let v6 = iface.AddressIPv6, !v6.isEmpty { throw PluginError("endpoint \(short): netkeep networks are IPv4 only") }
        var mac: MACAddress
        let fromDocker = !(iface.MacAddress ?? "").isEmpty
        if fromDocker {
            do { mac = try MACAddress(parsing: iface.MacAddress!).validatedForInterface() } catch { throw PluginError("endpoint \(short): \(error)") }
        } else if let address {
            // As Docker's bridge driver does: the same address gives the same MAC
            // after a restart, so the neighbours' ARP entries stay right.
            mac = Endpoint.mac(for: address.address)
        } else {
            var rng = SystemRandomNumberGenerator()
            mac = MACAddress.randomLocal(using: &rng)
        }
        return Endpoint(id: r.EndpointID, network: network, mac: mac, macFromDocker: fromDocker, address: address, createdAt: environment.now())
    }

    /// The veth pair in the host's namespace (Docker moves the peer at Join)
    /// and the port, with netkeep's external_ids.
    func make(_ e: Endpoint, timings: inout PhaseTimings) throws(PluginError) {
        let snapshot = try timings.measure("ovsdb snapshot") { () throws(PluginError) in try vswitchSnapshot() }
        let started = DispatchTime.now().uptimeNanoseconds
        guard let bridge = snapshot.bridge(named: e.bridge) else { throw PluginError("bridge \(quoted(e.bridge)) does not exist (ovsdb)") }
        do {
            let host = try NetlinkSession.open()
            if try host.link(named: e.hostIfname) == nil {
                try host.createVeth(name: e.hostIfname, mtu: e.mtu, peerName: e.peerIfname, peerMAC: e.mac, peerMTU: e.mtu, peerNamespace: nil)
            }
            FaultPoint.endpointVethMade.check()
            if bridge.isUserspace {
                try Ethtool.setTxChecksum(false, interface: e.hostIfname, in: nil)
                try Ethtool.setTxChecksum(false, interface: e.peerIfname, in: nil)
            }
            for name in [e.hostIfname, e.peerIfname] {
                guard let link = try host.link(named: name) else { throw PluginError("veth \(name) vanished while it was set up") }
                try host.setUp(index: link.index, name: name)
            }
        } catch let error as PluginError {
            throw error
        } catch {
            throw PluginError("endpoint \(e.shortID): veth \(e.hostIfname): \(error)")
        }
        timings.add("veth", Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6)
        guard snapshot.port(named: e.hostIfname) == nil else { return }
        try addPort(e, timings: &timings)
    }

    /// The endpoint's port on its bridge, with netkeep's external_ids and the VLAN tag.
    func addPort(_ e: Endpoint, timings: inout PhaseTimings) throws(PluginError) {
        let spec = PortSpec(bridge: e.bridge, name: e.hostIfname, tag: e.vlan,
                            interfaceExternalIDs: [Endpoint.externalID: e.id, "netkeep-network": e.networkID])
        do {
            let client = try environment.vswitch()
            defer { client.close() }
            let next = try timings.measure("add port") { () throws(OVSDBError) in try client.addPorts([spec], comment: "netkeep: endpoint \(e.shortID)") }
            _ = try timings.measure("ovs-vswitchd") { () throws(OVSDBError) in try client.waitApplied(next) }
        } catch {
            throw PluginError("endpoint \(e.shortID): add port \(e.hostIfname) to \(e.bridge): \(error)")
        }
    }

    /// A lease for the container end while it is still in the host's
    /// namespace: the answer goes to Docker, which puts it on the interface.
    func obtainLease(_ e: Endpoint) throws(PluginError) -> Lease {
        let socket: DHCPSocket
        do { socket = try DHCPSocket(interface: e.peerIfname) } catch { throw PluginError("endpoint \(e.shortID): DHCP socket: \(error)") }
        let grant = try Self.exchange(.discover, for: e, on: socket, addressInPlace: false)
        return LeaseKeeper.lease(from: grant, now: environment.now())
    }

    /// One DHCP exchange of an endpoint's client (its MAC).
    static func exchange(_ goal: ClientMachine.Goal, for e: Endpoint, on socket: DHCPSocket, addressInPlace: Bool) throws(PluginError) -> LeaseGrant {
        do { return try SandboxDHCP.exchange(goal, mac: e.mac, on: socket, addressInPlace: addressInPlace, bridge: e.bridge) } catch {
            throw PluginError("endpoint \(e.shortID): \(error)")
        }
    }

    /// Marks the record `removing`, deletes the port and the veth (which takes
    /// its peer along), then the record.
    func removeEndpoint(_ e: Endpoint) throws(PluginError) {
        try update { state in
            guard var record = state.endpoint(id: e.id) else { return }
            record.status = .removing
            state.upsert(record)
        }
        do {
            let client = try environment.vswitch()
            defer { client.close() }
            _ = try client.deletePorts(named: [e.hostIfname], comment: "netkeep: endpoint \(e.shortID) deleted")
        } catch {
            throw PluginError("endpoint \(e.shortID): remove port \(e.hostIfname): \(error)")
        }
        do {
            let host = try NetlinkSession.open()
            _ = try host.deleteLink(named: e.hostIfname)
            // Docker moved the peer back under its own name after Leave; it went with the host end.
        } catch {
            throw PluginError("endpoint \(e.shortID): delete veth \(e.hostIfname): \(error)")
        }
        try update { state in state.endpoints.removeAll { $0.id == e.id } }
    }

    static func reply(for e: Endpoint) -> CreateEndpointReply {
        CreateEndpointReply(Interface: EndpointInterface(Address: e.mode == .dhcp ? e.address?.description : nil,
                                                         MacAddress: e.macFromDocker ? nil : e.mac.description))
    }

    // MARK: Requests' identities and claims

    /// Docker's endpoint ID: 64 hex digits, checked before it names anything.
    static func endpointID(_ text: String, in request: String) throws(PluginError) -> String {
        guard Names.isDockerID(text) else { throw PluginError("\(request): endpoint id \(quoted(text)) is not 64 hex digits") }
        return text
    }

    static func networkID(_ text: String, in request: String) throws(PluginError) -> String {
        guard Names.isDockerID(text) else { throw PluginError("\(request): network id \(quoted(text)) is not 64 hex digits") }
        return text
    }

    /// A request names the endpoint and its network: both must be the record's.
    static func check(_ endpoint: Endpoint, isOn networkID: String, in request: String) throws(PluginError) {
        guard endpoint.networkID == networkID else {
            throw PluginError("\(request): endpoint \(endpoint.shortID) is on network \(endpoint.networkID.prefix(12)), not \(networkID.prefix(12)); nothing done")
        }
    }

    /// The endpoint's claim, held while a request changes it (`ClaimKey`).
    func hold(_ endpointID: String) throws(PluginError) -> ContainerClaims {
        do { return try environment.hold([ClaimKey.endpoint(endpointID)], logger: logger) } catch {
            throw PluginError("endpoint \(endpointID.prefix(12)): another request for it is under way: \(error)")
        }
    }

    // MARK: Records and host

    func load() throws(PluginError) -> State {
        do { return try environment.loadState() } catch { throw PluginError("netkeep state: \(error)") }
    }

    func update(_ change: (inout State) throws(PluginError) -> Void) throws(PluginError) {
        var refusal: PluginError?
        do {
            _ = try environment.updateRecords(logger: logger) { state throws(Failure) in
                do throws(PluginError) { try change(&state) } catch {
                    refusal = error
                    throw Failure.badInput(error.message)
                }
            }
        } catch {
            throw refusal ?? PluginError("netkeep state: \(error)")
        }
    }

    func vswitchSnapshot() throws(PluginError) -> VSwitchSnapshot {
        do {
            let client = try environment.vswitch()
            defer { client.close() }
            return try client.snapshot()
        } catch {
            throw PluginError("Open vSwitch: \(error)")
        }
    }

}

extension Endpoint {
    /// The Interface external_id that marks an endpoint's port as netkeep's (DESIGN.md rule 2).
    public static let externalID = "netkeep-endpoint"
}
