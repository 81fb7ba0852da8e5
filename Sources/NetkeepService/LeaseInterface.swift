import NetkeepCore
import Netlink

/// What a DHCP lease puts on its interface, whoever keeps the lease (a
/// container's attachment, a Docker endpoint, a CNI attachment): the leased
/// address as the interface's only IPv4 address, and the lease's router as
/// the default route, unless the container routes by another interface.
enum LeaseInterface {
    /// Makes `address` the only IPv4 address of `link` (nil: none) and
    /// `router` its default route: a default route of this link through
    /// another router is replaced (the address moved to another subnet, or
    /// the router changed); one that a change of address took away comes
    /// back. A default route through another interface is left as it is.
    static func apply(address: IPv4CIDR?, router: IPv4Address?, link: Link, session: NetlinkSession) throws(NetlinkError) {
        let name = link.name
        for existing in try session.addresses() where existing.index == link.index && existing.cidr != address {
            try session.deleteAddress(existing.cidr, index: link.index, name: name)
        }
        if let address, try !session.addresses().contains(InterfaceAddress(index: link.index, cidr: address)) {
            try session.addAddress(address, index: link.index, name: name)
        }
        guard address != nil, let router else { return }
        let defaults = try session.routes().filter(\.isDefault)
        let mine = defaults.filter { $0.outputIndex == link.index }
        guard !mine.contains(where: { $0.gateway == router }) else { return }
        for gateway in mine.compactMap(\.gateway) { try session.deleteDefaultRoute(via: gateway, index: link.index, name: name) }
        if defaults.allSatisfy({ $0.outputIndex == link.index }) {
            try session.addDefaultRoute(via: router, index: link.index, name: name)
        }
    }
}
