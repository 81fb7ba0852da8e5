#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NetkeepCore
@testable import Systemd
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

@Suite struct JournalFieldTests {
    @Test(arguments: [("netkeep_action", "NETKEEP_ACTION"), ("_PID", "PID"), ("__x", "X"), ("a-b.c", "A_B_C"), ("9lives", "F9LIVES"),
                      ("", "F"), ("é", "F"), (String(repeating: "a", count: 80), String(repeating: "A", count: 64))])
    func fieldNamesCannotForgeTrustedFields(_ raw: String, _ expected: String) {
        #expect(Journal.fieldName(raw) == expected)
    }

    @Test func auditEventsCarryTheirFields() {
        let a = NetkeepCore.Attachment(
            containerID: String(repeating: "c", count: 64), containerName: "web", ifname: "eth1", bridge: "br0",
            mac: MACAddress(bytes: [2, 0, 0, 0, 0, 1])!, mtu: 1500, vlan: nil, mode: .static,
            address: try! IPv4CIDR(parsing: "10.0.0.2/24"), gateway: nil, netnsLink: "web", status: .ready,
            createdAt: Timestamp(secondsSinceEpoch: 0))
        let event = AuditEvent(kind: .repair, message: "m", reason: "container-restarted", attachment: a, steps: ["create-veth", "replace-port"])
        let fields = Dictionary(event.fields, uniquingKeysWith: { a, _ in a })
        #expect(fields["MESSAGE_ID"] == AuditEvent.Kind.repair.messageID)
        #expect(fields["NETKEEP_ACTION"] == "repair")
        #expect(fields["NETKEEP_REASON"] == "container-restarted")
        #expect(fields["NETKEEP_CONTAINER_ID"] == a.containerID && fields["NETKEEP_CONTAINER_NAME"] == "web")
        #expect(fields["NETKEEP_IFNAME"] == "eth1" && fields["NETKEEP_BRIDGE"] == "br0" && fields["NETKEEP_PORT"] == a.hostIfname)
        #expect(fields["NETKEEP_MAC"] == "02:00:00:00:00:01" && fields["NETKEEP_IP"] == "10.0.0.2/24")
        #expect(fields["NETKEEP_STEPS"] == "create-veth,replace-port")
        #expect(fields["PRIORITY"] == "5")
    }

    @Test func oneRepairEntryPerAttachmentAndPass() {
        var w = NetkeepCore.State()
        let a = NetkeepCore.Attachment(
            containerID: String(repeating: "d", count: 64), containerName: "db", ifname: "eth1", bridge: "br0",
            mac: MACAddress(bytes: [2, 0, 0, 0, 0, 2])!, mtu: 1500, vlan: nil, mode: .static,
            address: try! IPv4CIDR(parsing: "10.0.0.3/24"), gateway: nil, netnsLink: "db", status: .ready,
            createdAt: Timestamp(secondsSinceEpoch: 0), containerPID: 1)
        w.upsert(a)
        let actions: [Action] = [.createVeth(a, pid: 2, reason: .vethMissingAfterReboot), .replacePort(a, reason: .portStale),
                                 .linkNetns(a, pid: 2, reason: .netnsLinkMissing), .markReady(a, pid: 2, reason: .containerRestarted(oldPID: 1, newPID: 2)),
                                 .removeNetnsLink(name: "old", pid: 9, reason: .danglingNetnsLink(pid: 9))]
        let events = AuditEvent.of(reconciled: actions, succeeded: { $0 != 2 }, leaseBefore: { _ in nil }, recorded: { id in w.attachments.first { $0.id == id } })
        #expect(events.map(\.kind) == [.repair, .garbageCollect])
        #expect(events[0].reason == "veth-missing-after-reboot")
        #expect(events[0].steps == ["create-veth", "replace-port"])
    }
}

@Suite struct DeclaredAuditTests {
    @Test func anInterfaceDeclaredByLabelsIsACreateEntryWithItsReason() {
        var a = NetkeepCore.Attachment(
            containerID: String(repeating: "e", count: 64), containerName: "web", ifname: "eth1", bridge: "br0",
            mac: MACAddress(bytes: [2, 0, 0, 0, 0, 3])!, mtu: 1500, vlan: nil, mode: .static,
            address: try! IPv4CIDR(parsing: "10.0.0.4/24"), gateway: nil, netnsLink: "web", status: .pending,
            createdAt: Timestamp(secondsSinceEpoch: 0))
        a.declaredBy = .labels
        let actions: [Action] = [.createVeth(a, pid: 2, reason: .declaredByLabels), .addPort(a, reason: .portMissing),
                                 .markReady(a, pid: 2, reason: .declaredByLabels)]
        let events = AuditEvent.of(reconciled: actions, succeeded: { _ in true }, leaseBefore: { _ in nil }, recorded: { _ in a })
        #expect(events.map(\.kind) == [.create])
        #expect(events[0].reason == "declared-by-labels" && events[0].steps == ["create-veth", "add-port"])
        #expect(events[0].message.contains("as its labels declare") && events[0].message.contains("10.0.0.4/24"), "\(events[0].message)")
    }

    @Test func refusedLabelsAreOneWarningNamingTheContainerTheLabelAndTheCause() {
        let problems = (0..<7).map { LabelProblem(key: "netkeep.eth\($0).brige", cause: "unknown key \"brige\"") }
        let event = AuditEvent.labelsRefused(containerID: String(repeating: "f", count: 64), containerName: "bad", problems: problems)
        let fields = Dictionary(event.fields, uniquingKeysWith: { a, _ in a })
        #expect(fields["PRIORITY"] == "4" && fields["NETKEEP_ACTION"] == "labels-refused")
        #expect(fields["NETKEEP_CONTAINER_NAME"] == "bad" && fields["NETKEEP_LABEL"] == "\"netkeep.eth0.brige\"")
        #expect(event.message.hasPrefix("container bad: labels refused, nothing attached: label \"netkeep.eth0.brige\": unknown key"))
        #expect(event.message.hasSuffix("; and 2 more") && !event.message.contains("eth5"), "\(event.message)")
    }
}

@Suite struct CatalogTests {
    static let catalog = (try? String(contentsOfFile: repositoryRoot + "/units/netkeep.catalog", encoding: .utf8)) ?? ""

    @Test func everyMessageIDHasAnEntryWithSubjectAndDefinedBy() {
        for kind in AuditEvent.Kind.allCases {
            guard let start = Self.catalog.range(of: "-- \(kind.messageID)\n") else {
                Issue.record("no catalog entry for \(kind) (\(kind.messageID))")
                continue
            }
            let entry = Self.catalog[start.upperBound...].prefix { _ in true }.components(separatedBy: "\n-- ")[0]
            #expect(entry.contains("Subject: "), "\(kind)")
            #expect(entry.contains("Defined-By: netkeep"), "\(kind)")
            #expect(entry.contains("Documentation: "), "\(kind)")
        }
        let ids = AuditEvent.Kind.allCases.map(\.messageID)
        #expect(Set(ids).count == ids.count, "MESSAGE_IDs must differ")
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) && $0 == $0.lowercased() })
        let entries = Self.catalog.components(separatedBy: "\n").filter { $0.hasPrefix("-- ") }.map { String($0.dropFirst(3)) }
        #expect(Set(entries) == Set(ids), "catalog entries without a kind in the code: \(Set(entries).subtracting(ids))")
    }

    @Test func journalctlParsesTheCatalog() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/journalctl") || FileManager.default.isExecutableFile(atPath: "/bin/journalctl") else {
            #expect(ProcessInfo.processInfo.environment["NETKEEP_TESTBED"] != "1", "journalctl is missing")
            return
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("nkcat-\(UUID().uuidString.prefix(6))").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/usr/lib/systemd/catalog", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: repositoryRoot + "/units/netkeep.catalog", toPath: root + "/usr/lib/systemd/catalog/netkeep.catalog")
        #expect(shell(["journalctl", "--root=\(root)", "--update-catalog"]).status == 0)
        let listed = shell(["journalctl", "--root=\(root)", "--list-catalog"]).output
        for kind in AuditEvent.Kind.allCases { #expect(listed.contains(kind.messageID), "\(kind) not in \(listed)") }
    }
}

/// A receiver for sd_notify: an AF_UNIX datagram socket of the test's own.
final class NotifyReceiver {
    let path: String
    let fd: Int32

    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("nknotify-\(UUID().uuidString.prefix(6)).sock").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    }

    /// Messages received within `seconds`.
    func receive(within seconds: Double) -> [String] {
        var out: [String] = []
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { out.append(String(decoding: buffer[..<n], as: UTF8.self)) }
        }
        return out
    }

    deinit {
        close(fd)
        unlink(path)
    }
}

@Suite(.serialized) struct NotifierTests {
    @Test func silentWithoutNotifySocketAndWritesWithOne() {
        unsetenv("NOTIFY_SOCKET")
        #expect(!Notifier().isSupervised)
        Notifier().ready()
        let receiver = NotifyReceiver()
        setenv("NOTIFY_SOCKET", receiver.path, 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        Notifier().ready(status: "ready")
        Notifier().status("2 attachments\nand a newline")
        Notifier().watchdog()
        Notifier().stopping()
        let messages = receiver.receive(within: 0.3)
        #expect(messages == ["READY=1\nSTATUS=ready", "STATUS=2 attachments and a newline", "WATCHDOG=1", "STOPPING=1\nSTATUS=stopping"])
    }

    @Test func watchdogIntervalIsHalfOfWatchdogUsec() {
        setenv("WATCHDOG_USEC", "200000", 1)
        setenv("WATCHDOG_PID", String(getpid()), 1)
        defer { unsetenv("WATCHDOG_USEC"); unsetenv("WATCHDOG_PID") }
        #expect(Notifier().watchdogInterval == 0.1)
        unsetenv("WATCHDOG_USEC")
        #expect(Notifier().watchdogInterval == nil)
    }
}

func shell(_ arguments: [String]) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try? process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
