#if canImport(Glibc)
import Glibc
#endif
import DockerEngine
import Logging
import NetkeepCore

/// `netkeep hook`: the daemon's per-container repair, driven by
/// `docker events --format '{{json .}}'` lines on standard input. Lines that
/// arrive together are one batch: a container named several times in it is
/// repaired once. A malformed line is a warning with its number; the hook
/// goes on until the input ends.
public struct Hook {
    public let environment: HostEnvironment
    public let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    public struct Summary: Sendable {
        public var lines = 0
        public var malformed = 0
        public var repairs = 0
        public var failures = 0
    }

    public func run(input: Int32 = 0) -> Summary {
        var summary = Summary()
        let index = AttachmentIndex(store: environment.store)
        var buffer = LineSplitter()
        var chunk = [UInt8](repeating: 0, count: 65536)
        var ended = false
        while !ended {
            // Block for the first bytes, then take whatever else is already there.
            var waitMilliseconds: Int32 = -1
            repeat {
                var pfd = pollfd(fd: input, events: Int16(POLLIN), revents: 0)
                let ready = poll(&pfd, 1, waitMilliseconds)
                if ready < 0 && errno == EINTR { continue }
                if ready <= 0 { break }
                let n = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { ended = true; break }
                buffer.append(chunk[..<n])
                waitMilliseconds = 0
            } while true
            // Linear in the input, whatever its shape; an endless line is skipped, not buffered.
            var lines: [Result<[UInt8], LineSplitter.TooLong>] = []
            while true {
                do {
                    guard let line = try buffer.next() else { break }
                    lines.append(.success(line))
                } catch {
                    lines.append(.failure(error))
                }
            }
            if ended, let last = buffer.finish() { lines.append(.success(last)) }
            handle(lines, index: index, summary: &summary)
        }
        return summary
    }

    private func handle(_ lines: [Result<[UInt8], LineSplitter.TooLong>], index: AttachmentIndex, summary: inout Summary) {
        var containers: [String] = []
        for read in lines {
            summary.lines += 1
            let line: [UInt8]
            switch read {
            case .success(let bytes): line = bytes
            case .failure(let tooLong):
                summary.malformed += 1
                logger.warning("line \(summary.lines): \(tooLong); skipped")
                continue
            }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { continue }
            let event: DockerEvent
            do { event = try DockerEvent.decode(line) } catch {
                summary.malformed += 1
                logger.warning("line \(summary.lines): \(error); skipped")
                continue
            }
            guard event.type == "container", Names.isContainerReference(event.actorID), index.contains(event.actorID),
                  !containers.contains(event.actorID) else { continue }
            containers.append(event.actorID)
        }
        for id in containers {
            do {
                let report = try Reconcile(environment: environment, logger: logger).run(dryRun: false, scope: .container(id), verify: false)
                for result in report.results ?? [] {
                    if let error = result.error {
                        summary.failures += 1
                        logger.error("\(result.action.summary): failed: \(error)")
                    } else {
                        summary.repairs += 1
                        logger.notice("\(result.action.summary)")
                    }
                }
            } catch {
                summary.failures += 1
                logger.error("repair of container \(id.prefix(12)): \(error)")
            }
        }
    }
}
