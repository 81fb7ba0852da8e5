#if canImport(Glibc)
import Glibc
#endif
import CLinux
import HostIO
import NetkeepCore

/// Who is changing which container. A pass holds a claim on each container
/// it may change for as long as it talks to the network (DHCP, OVSDB,
/// netlink), while the state lock is held only to read and write records
/// (DESIGN.md rule 7): passes for different containers run at once, two for
/// the same container one after the other.
///
/// A claim is a one-byte open-file-description lock in `claims.lock` at an
/// offset derived from the container id. The kernel drops it when netkeep
/// dies, so no claim outlives its holder. Two ids that hash alike only wait
/// for each other.
public final class ContainerClaims: @unchecked Sendable {
    public let path: String
    private var fd: Int32
    public private(set) var claimed: Set<String> = []

    public init(directory: String) throws(StateFileError) {
        path = directory + "/claims.lock"
        do { try Files.makeDirectories(directory) } catch { throw .io(error) }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(SystemError("open", path, errno: errno)) }
        self.fd = fd
    }

    /// Takes the container's claim unless another holder has it.
    public func tryClaim(_ containerID: String) throws(StateFileError) -> Bool {
        if claimed.contains(containerID) { return true }
        while true {
            if nk_ofd_lock(fd, Self.offset(containerID), 0) == 0 {
                claimed.insert(containerID)
                return true
            }
            let err = errno
            // A signal is no holder: asked again, not taken for "busy".
            if err == EINTR { continue }
            guard err == EAGAIN || err == EACCES else { throw .io(SystemError("lock a byte of", path, errno: err)) }
            return false
        }
    }

    /// Takes the claims of `ids` in sorted order (two passes over the same
    /// containers never wait for each other in a circle), waiting up to
    /// `timeout` seconds for each.
    public func claim(_ ids: some Sequence<String>, timeout: Double, onWait: (String) -> Void = { _ in }) throws(StateFileError) {
        for id in Set(ids).sorted() {
            var waited = false
            var delay: UInt32 = 1_000
            let deadline = Deadline.after(seconds: timeout)
            while try !tryClaim(id) {
                if !waited { onWait(id); waited = true }
                if deadline.hasPassed || Interruption.isRequested { throw .claimed(path: path, container: id) }
                usleep(delay)
                delay = min(delay * 2, 20_000)
            }
        }
    }

    /// Gives every claim back.
    public func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
        claimed = []
    }

    deinit { release() }

    /// FNV-1a of the id, folded into 2^31 byte offsets.
    static func offset(_ id: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in id.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return Int64(hash & 0x7fff_ffff)
    }
}
