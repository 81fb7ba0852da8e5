import HostIO
import NetkeepCore

/// One JSON-RPC 1.0 session with ovsdb-server over its unix socket (RFC 7047).
/// Requests are answered in order; `echo` from the server is answered inline and
/// `update` notifications are queued for `nextNotification`. Not thread-safe:
/// one connection per user.
public final class OVSDBConnection {
    public let socketPath: String
    private let socket: UnixStreamSocket
    private var framer = JSONStreamFramer()
    private var nextID: Int64 = 0
    private var notifications: [JSON] = []
    /// Deadline for a single request; ovsdb-server answers in microseconds
    /// unless it is stuck.
    public var timeout: Double

    public init(socketPath: String, timeout: Double = 10) throws(OVSDBError) {
        self.socketPath = socketPath
        self.timeout = timeout
        do { socket = try UnixStreamSocket(path: socketPath) } catch { throw .unreachable(error) }
    }

    /// Sends a request and waits for its response's `result`.
    public func call(_ method: String, _ params: [JSON]) throws(OVSDBError) -> JSON {
        nextID += 1
        let id = JSON.int(nextID)
        let request: JSON = ["method": .string(method), "params": .array(params), "id": id]
        let deadline = Deadline.after(seconds: timeout)
        try send(request, deadline: deadline)
        while true {
            let message = try receive(deadline: deadline)
            if message["id"] == id, message["method"] == nil {
                if let error = message["error"], error != .null {
                    throw .rpc(method: method, error: Self.describe(error))
                }
                return message["result"] ?? .null
            }
            try handleUnsolicited(message, deadline: deadline)
        }
    }

    /// `transact` on `database`; returns one result per operation, or throws
    /// naming the first operation that failed.
    public func transact(_ database: String, _ operations: [JSON]) throws(OVSDBError) -> [JSON] {
        let result = try call("transact", [.string(database)] + operations)
        guard let results = result.arrayValue else { throw .protocolViolation("transact result is not an array") }
        for (index, item) in results.enumerated() {
            if let error = item["error"], error != .null {
                throw .transaction(index: index, error: Self.describe(error), details: item["details"]?.stringValue)
            }
        }
        guard results.count >= operations.count else {
            throw .protocolViolation("transact returned \(results.count) results for \(operations.count) operations")
        }
        return results
    }

    /// The next `update` notification's params, waiting until `deadline`.
    public func nextNotification(deadline: Deadline) throws(OVSDBError) -> JSON {
        while notifications.isEmpty {
            let message = try receive(deadline: deadline)
            try handleUnsolicited(message, deadline: deadline)
        }
        return notifications.removeFirst()
    }

    private func handleUnsolicited(_ message: JSON, deadline: Deadline) throws(OVSDBError) {
        switch message["method"]?.stringValue {
        case "echo":
            try send(["id": message["id"] ?? .null, "result": message["params"] ?? .array([]), "error": .null], deadline: deadline)
        case "update", "update2", "update3":
            notifications.append(message["params"] ?? .null)
        default:
            break
        }
    }

    private func send(_ message: JSON, deadline: Deadline) throws(OVSDBError) {
        do { try socket.send(message.bytes, deadline: deadline) } catch { throw .unreachable(error) }
    }

    private func receive(deadline: Deadline) throws(OVSDBError) -> JSON {
        while true {
            do {
                if let bytes = try framer.next() { return try JSON.parse(bytes) }
            } catch {
                throw .protocolViolation(error.description)
            }
            let chunk: [UInt8]
            do { chunk = try socket.receive(deadline: deadline) } catch { throw .unreachable(error) }
            guard !chunk.isEmpty else { throw .unreachable(SystemError("receive from", socketPath, errno: 104 /* ECONNRESET */)) }
            framer.append(chunk)
        }
    }

    static func describe(_ error: JSON) -> String {
        if let text = error.stringValue { return text }
        if let text = error["error"]?.stringValue {
            return text + (error["details"]?.stringValue.map { ": \($0)" } ?? "")
        }
        return error.description
    }

    public func close() { socket.close() }
}
