#if canImport(Glibc)
import Glibc
#endif
import CLinux
import NetkeepCore

/// The one ethtool setting netkeep needs: tx checksum offload. OVS's userspace
/// datapath forwards veth packets with unfinished checksums, which receivers drop.
public enum Ethtool {
    /// `ethtool -K NAME tx off` (or on) in `namespace` (nil: the calling thread's).
    public static func setTxChecksum(_ on: Bool, interface name: String, in namespace: NetworkNamespace?) throws(SystemError) {
        try withControlSocket(in: namespace) { sock throws(SystemError) in try setTxChecksum(on, interface: name, socket: sock) }
    }

    /// The same through `socket`, an AF_INET socket of the interface's namespace.
    public static func setTxChecksum(_ on: Bool, interface name: String, socket sock: Int32) throws(SystemError) {
        if nk_ethtool_set_tx_csum(sock, name, on ? 1 : 0) != 0 {
            throw SystemError("ethtool -K \(name) tx \(on ? "on" : "off")", "", errno: errno)
        }
    }

    /// An AF_INET datagram socket of the calling thread's namespace, for ioctls.
    public static func controlSocket() throws(SystemError) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket(AF_INET)", "", errno: errno) }
        return fd
    }

    /// `ethtool -k NAME | grep tx-checksumming`.
    public static func txChecksum(interface name: String, in namespace: NetworkNamespace?) throws(SystemError) -> Bool {
        try withControlSocket(in: namespace) { sock throws(SystemError) in
            let value = nk_ethtool_get_tx_csum(sock, name)
            if value < 0 { throw SystemError("ethtool -k", name, errno: errno) }
            return value == 1
        }
    }

    private static func withControlSocket<T>(in namespace: NetworkNamespace?, _ body: (Int32) throws(SystemError) -> T) throws(SystemError) -> T {
        let sock: Int32
        if let namespace {
            do {
                sock = try NamespaceThread.run(in: namespace) { () throws(SystemError) -> Int32 in
                    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                    guard fd >= 0 else { throw SystemError("socket(AF_INET)", namespace.path, errno: errno) }
                    return fd
                }
            } catch let error as SystemError {
                throw error
            } catch {
                throw SystemError("enter namespace", namespace.path, errno: EINVAL)
            }
        } else {
            sock = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard sock >= 0 else { throw SystemError("socket(AF_INET)", "", errno: errno) }
        }
        defer { close(sock) }
        return try body(sock)
    }
}
