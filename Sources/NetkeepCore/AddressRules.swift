/// Which addresses and leases netkeep puts on an interface and records. The
/// same rules refuse a command-line value, an adopted address and a DHCP
/// reply, and check the state file when it is loaded and saved (rule 6).
public enum AddressRules {
    /// A lease shorter than this is refused: renewing it would keep the
    /// daemon busy (dnsmasq's own minimum is two minutes).
    public static let minimumLeaseSeconds: Int64 = 60
    /// Renewals never come sooner than this after a lease is obtained,
    /// whatever T1 the server sent (a T1 of 0 would mean a renewal loop).
    public static let minimumRenewSeconds: Int64 = 30
    /// Prefixes shorter than this are refused for leases: no DHCP server hands out a /7.
    public static let shortestLeasePrefix = 8

    /// An address that may go on an interface: not in 0/8, 127/8 or 224/3,
    /// and not the network or broadcast address of its subnet (for /1-/30).
    public static func check(_ cidr: IPv4CIDR, role: String) throws(InputError) {
        // Runs on every load and save of the state: the message is made only for a refusal.
        func refusal(_ cause: String) -> InputError { InputError(object: "\(role) \(cidr)", cause: cause) }
        let first = cidr.address.value >> 24
        if first == 0 || first == 127 || first >= 224 { throw refusal("is not a unicast host address") }
        if cidr.prefixLength <= 30 {
            if cidr.address == cidr.network { throw refusal("is the network address of its subnet") }
            if cidr.address == cidr.broadcast { throw refusal("is the broadcast address of its subnet") }
        }
    }

    /// Why a DHCP server's offer or acknowledgement is refused; nil when it is acceptable.
    public static func leaseRefusal(address: IPv4CIDR, leaseSeconds: Int64) -> String? {
        do { try check(address, role: "offered address") } catch { return error.description }
        if address.prefixLength < shortestLeasePrefix {
            return "offered prefix /\(address.prefixLength) is shorter than /\(shortestLeasePrefix)"
        }
        if leaseSeconds < minimumLeaseSeconds {
            return "offered lease time \(leaseSeconds) s is shorter than netkeep's minimum of \(minimumLeaseSeconds) s"
        }
        return nil
    }

    /// T1 and T2 as netkeep uses them: the server's, or RFC 2131 4.4.5's
    /// defaults (1/2 and 7/8 of the lease) when absent or out of order; then
    /// T1 at least `minimumRenewSeconds` (a T1 of 0 is no renewal loop) and
    /// T1 <= T2 <= lease.
    public static func renewalTimes(lease: Int64, t1: Int64?, t2: Int64?) -> (t1: Int64, t2: Int64) {
        var t2 = t2.flatMap { $0 > lease ? nil : $0 } ?? lease * 7 / 8
        var t1 = t1.flatMap { $0 > t2 ? nil : $0 } ?? (t2 == lease * 7 / 8 ? lease / 2 : t2 / 2)
        t1 = min(max(t1, minimumRenewSeconds), lease)
        t2 = max(t2, t1)
        return (t1, t2)
    }
}

extension Lease {
    /// What a recorded lease must satisfy; the first problem is thrown. The
    /// timing minimums of AddressRules apply where a lease enters (a server's
    /// reply), not here: a state file written by an older netkeep still loads.
    public func check() throws(InputError) {
        try AddressRules.check(address, role: "lease address")
        guard address.prefixLength >= AddressRules.shortestLeasePrefix else {
            throw InputError(object: "lease of \(address)", cause: "prefix /\(address.prefixLength) is shorter than /\(AddressRules.shortestLeasePrefix)")
        }
        if let router, !address.contains(router) || router == address.address {
            throw InputError(object: "lease router \(router)", cause: "is not another address of \(address.network)/\(address.prefixLength)")
        }
        guard renewSeconds >= 0, renewSeconds <= rebindSeconds, rebindSeconds <= leaseSeconds else {
            throw InputError(object: "lease of \(address)", cause: "T1 \(renewSeconds) s and T2 \(rebindSeconds) s do not fit the lease time \(leaseSeconds) s")
        }
    }
}
