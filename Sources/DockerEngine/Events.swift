#if canImport(Glibc)
import Glibc
#endif
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
    /// Whether the container has a `netkeep.` label: Docker copies a
    /// container's labels into its events' attributes, so a `start` tells
    /// whether the container declares attachments without asking the engine.
    public var declares: Bool

    public init(type: String, action: String, actorID: String, name: String?, timeNano: Int64, declares: Bool = false) {
        self.type = type
        self.action = action
        self.actorID = actorID
        self.name = name
        self.timeNano = timeNano
        self.declares = declares
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
        var nano = wire.timeNano ?? 0
        if wire.timeNano == nil, let seconds = wire.time {
            let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
            guard !overflow else { throw DecodeError(description: "event time \(seconds) out of range") }
            nano = product
        }
        // Older engines put the container's status in `status` with no `Type`.
        let declares = wire.Actor?.Attributes?.keys.contains { $0.utf8.starts(with: LabelDeclaration.prefix.utf8) } ?? false
        return DockerEvent(type: wire.Type ?? "container", action: action, actorID: id,
                           name: wire.Actor?.Attributes?["name"], timeNano: nano, declares: declares)
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
    /// One endless chunked body: each line is bounded (LineSplitter), not the body.
    private var parser = HTTPResponseParser(maxBodySize: .max)
    private var lines = LineSplitter()

    /// Subscribes to container events since `sinceNano` (nil: from now).
    public init(client: DockerClient, sinceNano: Int64?) throws(DockerError) {
        do { socket = try UnixStreamSocket(path: client.socketPath) } catch { throw .unreachable(error) }
        let path = DockerClient.containerEventsPath(sinceNano: sinceNano, untilNano: nil)
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
            lines.append(try parser.takeBody())
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

    /// What `next(idleAfter:)` saw.
    public enum Item: Equatable, Sendable {
        case event(DockerEvent)
        /// Nothing arrived for the given time: the caller checks that the stream lives.
        case idle
        /// The engine ended the stream.
        case ended
    }

    /// The next event; nil when the engine ended the stream.
    public func next() throws(DockerError) -> DockerEvent? {
        while true {
            switch try next(idleAfter: nil) {
            case .event(let event): return event
            case .ended: return nil
            case .idle: continue
            }
        }
    }

    /// The next event, `.idle` when nothing arrives within `seconds`, `.ended`
    /// at the end. Malformed events are skipped (a stream must go on); a line
    /// longer than the bound is skipped up to its end.
    public func next(idleAfter seconds: Double?) throws(DockerError) -> Item {
        let deadline = seconds.map { Deadline.after(seconds: $0) } ?? .never
        while true {
            do {
                while let line = try lines.next() {
                    if line.allSatisfy({ $0 == 0x20 || $0 == 0x0d }) { continue }
                    if let event = try? DockerEvent.decode(line) { return .event(event) }
                }
            } catch {
                continue
            }
            let chunk: [UInt8]
            do { chunk = try socket.receive(deadline: deadline) } catch {
                if error.errno == ETIMEDOUT || error.errno == EAGAIN { return .idle }
                throw .unreachable(error)
            }
            if chunk.isEmpty { return .ended }
            parser.append(chunk)
            do { lines.append(try parser.takeBody()) } catch { throw .protocolViolation("events: \(error)") }
        }
    }

    /// Unblocks `next()` from another thread.
    public func close() { socket.shutdown() }
}

extension DockerClient {
    /// `GET /events` for container events, from and to the given moments
    /// (Docker takes seconds with a nine-digit fraction).
    static func containerEventsPath(sinceNano: Int64?, untilNano: Int64?) -> String {
        func seconds(_ nano: Int64) -> String {
            let fraction = String(nano % 1_000_000_000)
            return "\(nano / 1_000_000_000).\(String(repeating: "0", count: 9 - fraction.count))\(fraction)"
        }
        var path = "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D"
        if let sinceNano { path += "&since=\(seconds(sinceNano))" }
        if let untilNano { path += "&until=\(seconds(untilNano))" }
        return path
    }

    /// The container events between two moments, as a short request that the
    /// engine ends itself (`until`): the cheap check that a quiet stream is
    /// alive. At most `limit` events are read.
    public func containerEvents(sinceNano: Int64, untilNano: Int64, limit: Int = 1000) throws(DockerError) -> [DockerEvent] {
        let response = try get(Self.containerEventsPath(sinceNano: sinceNano, untilNano: untilNano))
        try Self.expectOK(response)
        var splitter = LineSplitter()
        splitter.append(response.body)
        var events: [DockerEvent] = []
        while events.count < limit {
            do {
                guard let line = try splitter.next() else { break }
                if let event = try? DockerEvent.decode(line) { events.append(event) }
            } catch {
                continue
            }
        }
        if events.count < limit, let last = splitter.finish(), let event = try? DockerEvent.decode(last) { events.append(event) }
        return events
    }
}
