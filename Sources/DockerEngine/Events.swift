import FoundationEssentials
import HostIO
import NetkeepCore

/// One Docker event, as `GET /events` streams it and as
/// `docker events --format '{{json .}}'` prints it.
public struct DockerEvent: Equatable, Sendable {
    public var type: String
    public var action: String
    /// The container id for container events.
    public var actorID: String
    public var name: String?
    /// Nanoseconds since the epoch.
    public var timeNano: Int64

    public init(type: String, action: String, actorID: String, name: String?, timeNano: Int64) {
        self.type = type
        self.action = action
        self.actorID = actorID
        self.name = name
        self.timeNano = timeNano
    }

    struct Wire: Decodable {
        struct Actor: Decodable {
            var ID: String?
            var Attributes: [String: String]?
        }
        var `Type`: String?
        var Action: String?
        var status: String?
        var id: String?
        var Actor: Actor?
        var time: Int64?
        var timeNano: Int64?
    }

    public struct DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Decodes one event object (a line of `docker events --format '{{json .}}'`).
    public static func decode(_ bytes: some Collection<UInt8>) throws(DecodeError) -> DockerEvent {
        let wire: Wire
        do { wire = try JSONDecoder().decode(Wire.self, from: Data(bytes)) } catch {
            throw DecodeError(description: "not a Docker event: \(Self.reason(error))")
        }
        guard let action = wire.Action ?? wire.status, !action.isEmpty else { throw DecodeError(description: "event without an Action") }
        guard let id = wire.Actor?.ID ?? wire.id, !id.isEmpty else { throw DecodeError(description: "event without an Actor.ID") }
        let nano = wire.timeNano ?? (wire.time.map { $0 * 1_000_000_000 } ?? 0)
        // Older engines put the container's status in `status` with no `Type`.
        return DockerEvent(type: wire.Type ?? "container", action: action, actorID: id,
                           name: wire.Actor?.Attributes?["name"], timeNano: nano)
    }

    static func reason(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case .dataCorrupted: return "invalid JSON"
        case .keyNotFound(let key, _): return "missing \(key.stringValue)"
        case .typeMismatch(_, let context): return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case .valueNotFound(_, let context): return "null at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        @unknown default: return "\(error)"
        }
    }
}

/// A live `GET /events` stream of container events. `next()` blocks until an
/// event arrives; `close()` from another thread ends it.
public final class DockerEventStream: @unchecked Sendable {
    private let socket: UnixStreamSocket
    private var parser = HTTPResponseParser()
    private var pending: [UInt8] = []

    /// Subscribes to container events since `sinceNano` (nil: from now).
    public init(client: DockerClient, sinceNano: Int64?) throws(DockerError) {
        do { socket = try UnixStreamSocket(path: client.socketPath) } catch { throw .unreachable(error) }
        var path = "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D"
        if let since = sinceNano {
            let fraction = String(since % 1_000_000_000)
            path += "&since=\(since / 1_000_000_000).\(String(repeating: "0", count: 9 - fraction.count))\(fraction)"
        }
        let request = "GET \(path) HTTP/1.1\r\nHost: docker\r\nUser-Agent: netkeep\r\n\r\n"
        do {
            try socket.send(Array(request.utf8), deadline: .after(seconds: client.timeout))
            let deadline = Deadline.after(seconds: client.timeout)
            while try parser.parseHead() == nil {
                let chunk = try socket.receive(deadline: deadline)
                if chunk.isEmpty { throw DockerError.protocolViolation("events: connection closed before a response") }
                parser.append(chunk)
            }
            guard parser.head!.status == 200 else {
                throw DockerError.api(status: parser.head!.status, message: DockerClient.errorMessage(try parser.takeBody()))
            }
            pending += try parser.takeBody()
        } catch let error as DockerError {
            socket.close()
            throw error
        } catch let error as SystemError {
            socket.close()
            throw .unreachable(error)
        } catch {
            socket.close()
            throw .protocolViolation("events: \(error)")
        }
    }

    /// The next event; nil when the engine ended the stream. Malformed events
    /// are skipped (the engine wrote them, not an attacker, but a stream must go on).
    public func next() throws(DockerError) -> DockerEvent? {
        while true {
            if let newline = pending.firstIndex(of: 0x0a) {
                let line = pending[..<newline]
                pending.removeFirst(newline + 1)
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x0d }) { continue }
                if let event = try? DockerEvent.decode(line) { return event }
                continue
            }
            let chunk: [UInt8]
            do { chunk = try socket.receive(deadline: .never) } catch { throw .unreachable(error) }
            if chunk.isEmpty { return nil }
            parser.append(chunk)
            do { pending += try parser.takeBody() } catch { throw .protocolViolation("events: \(error)") }
        }
    }

    /// Unblocks `next()` from another thread.
    public func close() { socket.shutdown() }
}
