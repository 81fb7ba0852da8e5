import DHCP
import NetkeepCore
import Netlink

/// RFC 5227 before a DHCP address that differs from the one the client
/// had goes on its interface (a NAK followed by a new lease, a kept lease
/// the server refused): ARP probes for it from the interface; when another
/// host answers, the server is told (DHCPDECLINE) and the address is not
/// used. A first lease is the server's to check (dnsmasq pings an address
/// before it offers it).
enum AddressConflict {
    /// Why `lease` must not be used; nil when nobody else answered for its
    /// address (or the probe could not run: said in `skipped`).
    static func check(_ lease: Lease, mac: MACAddress, ifname: String, in namespace: NetworkNamespace,
                      skipped: (String) -> Void = { _ in }) -> String? {
        let outcome: ARPProbe.Outcome
        do {
            let socket = try NamespaceThread.run(in: namespace) { try ARPSocket(interface: ifname) }
            outcome = try ARPProbe.run(lease.address.address, mac: mac, on: socket)
        } catch {
            skipped("\(ifname): the address \(lease.address.address) was not probed for a conflict: \(error)")
            return nil
        }
        guard case .inUse(let other) = outcome else { return nil }
        var problem = "\(lease.address.address) is in use by \(other) (it answered an ARP probe); not used"
        do {
            let dhcp = try NamespaceThread.run(in: namespace) { try DHCPSocket(interface: ifname) }
            try SandboxDHCP.tell(.decline(address: lease.address.address, server: lease.serverID), mac: mac, on: dhcp)
            problem += ", declined to \(lease.serverID)"
        } catch {
            problem += "; the DHCPDECLINE was not sent: \(error)"
        }
        return problem
    }
}
