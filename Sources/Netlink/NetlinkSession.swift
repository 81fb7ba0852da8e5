#if canImport(Glibc)
import Glibc
#endif
import NetkeepCore

/// Requests over one netlink socket: sequence numbers, acks, dumps, errors.
/// Operations live in extensions, one file per object (links, addresses, routes).
public final class NetlinkSession {
    let socket: any NetlinkSocket
    private var sequence: UInt32 = 0
    static let dumpRetries = 5

    public init(socket: any NetlinkSocket) {
        self.socket = socket
    }

    /// A session on a new socket in `namespace` (nil: the calling thread's).
    public static func open(in namespace: NetworkNamespace? = nil) throws(NetlinkError) -> NetlinkSession {
        NetlinkSession(socket: try RouteSocket.open(in: namespace))
    }

    /// Sends a request that changes something and waits for its ack.
    func execute(_ builder: NetlinkMessageBuilder, operation: String) throws(NetlinkError) {
        _ = try exchange(builder, operation: operation, dump: false)
    }


    /// Sends a request that returns one object (or ENODEV and friends as errors).
    func fetch(_ builder: NetlinkMessageBuilder, operation: String) throws(NetlinkError) -> NetlinkMessage? {
        try exchange(builder, operation: operation, dump: false).replies.first
    }

    /// Dumps a table; retried when the kernel says the dump was interrupted.
    func dump(_ builder: NetlinkMessageBuilder, operation: String) throws(NetlinkError) -> [NetlinkMessage] {
        for _ in 0..<Self.dumpRetries {
            let result = try exchange(builder, operation: operation, dump: true)
            if !result.interrupted { return result.replies }
        }
        throw NetlinkError(operation: operation, errno: EINTR, kernelMessage: "dump interrupted \(Self.dumpRetries) times")
    }

    /// Sends one request and collects its replies up to the ack or NLMSG_DONE;
    /// `interrupted` tells that the kernel flagged a dump as inconsistent.
    private func exchange(_ builder: NetlinkMessageBuilder, operation: String, dump: Bool) throws(NetlinkError) -> (replies: [NetlinkMessage], interrupted: Bool) {
        sequence &+= 1
        let seq = sequence
        try socket.send(builder.finished(sequence: seq))
        var replies: [NetlinkMessage] = []
        var interrupted = false
        while true {
            let datagram = try socket.receive()
            let messages: [NetlinkMessage]
            do { messages = try NetlinkMessage.parseAll(datagram) } catch {
                throw NetlinkError(operation: operation, errno: EBADMSG, kernelMessage: error.reason)
            }
            for message in messages {
                // Replies to earlier requests that timed out, or notifications, are not ours.
                guard message.sequence == seq else { continue }
                if message.flags & RTNL.NLM_F_DUMP_INTR != 0 { interrupted = true }
                switch message.type {
                case RTNL.NLMSG_ERROR:
                    let (code, text) = Self.decodeError(message)
                    if code == 0 { return (replies, interrupted) }
                    throw NetlinkError(operation: operation, errno: -code, kernelMessage: text)
                case RTNL.NLMSG_DONE:
                    return (replies, interrupted)
                case RTNL.NLMSG_NOOP:
                    continue
                default:
                    replies.append(message)
                    if !dump && message.flags & RTNL.NLM_F_MULTI == 0 {
                        // A single reply to a GET comes without an ack unless asked for.
                        if builderFlags(builder) & RTNL.NLM_F_ACK == 0 { return (replies, interrupted) }
                    }
                }
            }
        }
    }

    private func builderFlags(_ builder: NetlinkMessageBuilder) -> UInt16 {
        UInt16(builder.bytes[6]) | UInt16(builder.bytes[7]) << 8
    }

    /// struct nlmsgerr: the negative errno, the request's header, then (with
    /// NLM_F_ACK_TLVS) attributes holding the kernel's message.
    static func decodeError(_ message: NetlinkMessage) -> (Int32, String?) {
        let payload = message.payload[...]
        guard payload.count >= 4 else { return (-EBADMSG, "short error message") }
        let code = Bytes.s32(payload, 0)
        guard message.flags & RTNL.NLM_F_ACK_TLVS != 0, payload.count >= 4 + RTNL.headerSize else { return (code, nil) }
        var offset = 4 + RTNL.headerSize
        if message.flags & RTNL.NLM_F_CAPPED == 0 {
            let originalLength = Int(Bytes.u32(payload, 4))
            offset = 4 + ((originalLength + 3) & ~3)
        }
        guard offset <= payload.count, let attributes = try? Attributes(payload[(payload.startIndex + offset)...]) else {
            return (code, nil)
        }
        return (code, attributes.string(RTNL.NLMSGERR_ATTR_MSG))
    }
}
