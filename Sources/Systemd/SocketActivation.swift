import CSystemd

/// Sockets systemd opened for this process (`ListenStream=` of a .socket
/// unit): `LISTEN_PID`/`LISTEN_FDS`, descriptors from 3 on.
public enum SocketActivation {
    /// The passed descriptors; the variables are cleared so that no child inherits them.
    public static func listeningSockets() -> [Int32] {
        let count = sd_listen_fds(1)
        guard count > 0 else { return [] }
        return (0..<count).map { 3 + $0 }
    }

    /// Whether `fd` is a listening AF_UNIX stream socket (at any path).
    public static func isUnixStreamListener(_ fd: Int32) -> Bool {
        sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0
    }
}
