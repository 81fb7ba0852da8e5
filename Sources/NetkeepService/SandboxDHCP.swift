import DHCP
import NetkeepCore
import Netlink

/// One DHCP client's exchanges from inside a sandbox that netkeep did not
/// make (a Docker endpoint's, a CNI runtime's namespace): one socket, one
/// exchange with `LeaseKeeper`'s retransmissions. Shared by the Docker
/// plugin's endpoints and netkeep-dhcp's CNI attachments.
enum SandboxDHCP {
    /// Why an exchange gave no lease, for a person.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        /// The server answered DHCPNAK: the address is not to be used.
        var refused = false
    }

    /// One exchange of the client `mac` for `goal`; the lease as granted.
    /// `policy` replaces LeaseKeeper's retransmissions for the goal.
    static func exchange(_ goal: ClientMachine.Goal, mac: MACAddress, on socket: DHCPSocket, addressInPlace: Bool,
                         bridge: String, policy given: RetransmitPolicy? = nil) throws(Failure) -> LeaseGrant {
        var rng = SystemRandomNumberGenerator()
        let policy = given ?? LeaseKeeper.policy(for: goal)
        let machine = ClientMachine(goal: goal, mac: mac, xid: UInt32.random(in: 1...UInt32.max, using: &rng), policy: policy,
                                    jitter: (0..<8).map { _ in Double.random(in: -1...1, using: &rng) }, addressInPlace: addressInPlace)
        let loop = ExchangeLoop()
        loop.add(ExchangeLoop.Session(id: "client", socket: socket, machine: machine))
        let budget = (1...policy.attempts).reduce(0) { $0 + policy.delay(attempt: $1, jitter: 1) }
        switch loop.run(until: ExchangeLoop.now() + budget + 1)["client"] {
        case .success(.bound(let grant))?:
            return grant
        case .success(.nak)?:
            throw Failure(description: "the DHCP server refused (DHCPNAK)", refused: true)
        case .failure(let error)?:
            throw Failure(description: "DHCP: \(error)")
        default:
            throw Failure(description: "no DHCP server answered on bridge \(bridge) within \(Int(budget)) s")
        }
    }

    /// The exchange a due lease calls for.
    static func goal(for lease: Lease, due: LeaseLifecycle.Due) -> ClientMachine.Goal {
        switch due {
        case .renew: return .renew(address: lease.address.address, server: lease.serverID)
        case .rebind: return .rebind(address: lease.address.address)
        case .confirm, .expired: return .initReboot(lease.address.address)
        }
    }

    /// Renews (or rebinds, or confirms) `lease` from inside the namespace at
    /// `path`, on the interface named `ifname` or, when nil, the one that
    /// carries `mac`. When the server moved the address, the interface
    /// follows. Returns the lease as granted.
    static func renew(_ lease: Lease, due: LeaseLifecycle.Due, namespacePath path: String, ifname: String?, mac: MACAddress,
                      bridge: String, now: Timestamp) throws(Failure) -> Lease {
        do {
            let namespace = try NetworkNamespace(path: path)
            if let own = NetworkNamespace.ownID, namespace.id == own {
                throw Failure(description: "\(path) is the host's own namespace")
            }
            let session = try NetlinkSession.open(in: namespace)
            let found = try ifname.map { name in try session.link(named: name) } ?? session.links().first(where: { $0.mac == mac })
            guard let link = found, link.mac == mac else {
                throw Failure(description: "no interface \(ifname ?? "") with MAC \(mac) in \(path)")
            }
            let name = link.name
            let socket = try NamespaceThread.run(in: namespace) { try DHCPSocket(interface: name) }
            let renewed = LeaseKeeper.lease(from: try exchange(goal(for: lease, due: due), mac: mac, on: socket, addressInPlace: true, bridge: bridge),
                                            now: now)
            if renewed.address != lease.address {
                try session.deleteAddress(lease.address, index: link.index, name: name)
                try session.addAddress(renewed.address, index: link.index, name: name)
            }
            return renewed
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure(description: "\(error)")
        }
    }
}
