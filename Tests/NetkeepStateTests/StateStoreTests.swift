#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NetkeepCore
@testable import NetkeepState
import Testing

/// The state/ directory of the repository: schema, example and corrupt files.
let stateFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("state").path

func temporaryDirectory() -> String {
    var template = Array("/tmp/netkeep-test-XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: path!)
}

func readBytes(_ path: String) -> [UInt8]? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    return Array(data)
}

func sample(_ ifname: String = "eth1") -> NetkeepCore.Attachment {
    NetkeepCore.Attachment(containerID: String(repeating: "b", count: 64), containerName: "web", ifname: ifname, bridge: "br0",
                           mac: try! MACAddress(parsing: "02:00:00:00:00:02"), mtu: 1500, vlan: nil, mode: .static,
                           address: try! IPv4CIDR(parsing: "10.1.2.6/24"), gateway: nil, netnsLink: "web",
                           status: .pending, createdAt: Timestamp(secondsSinceEpoch: 1_800_000_000))
}

@Suite struct StateStoreTests {
    @Test func missingFileIsAnEmptyState() throws {
        let store = StateStore(directory: temporaryDirectory() + "/not/yet")
        #expect(try store.load() == State())
    }

    @Test func saveThenLoadRoundTripsAndLeavesNoTemporaryFile() throws {
        let dir = temporaryDirectory()
        let store = StateStore(directory: dir)
        let state = State(bootID: "b00t", attachments: [sample(), sample("eth2")])
        try store.save(state)
        #expect(try store.load() == state)
        let entries = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(entries == ["state.json"])
        let text = String(decoding: try #require(readBytes(store.statePath), "cannot read \(store.statePath)"), as: UTF8.self)
        #expect(text.contains("\"version\" : 1"))
        #expect(text.hasSuffix("}\n"))
    }

    @Test func saveReplacesTheFileAtomicallyByRename() throws {
        let dir = temporaryDirectory()
        let store = StateStore(directory: dir)
        try store.save(State(attachments: [sample()]))
        var before = stat()
        stat(store.statePath, &before)
        try store.save(State())
        var after = stat()
        stat(store.statePath, &after)
        // A new inode: the old file was never written in place.
        #expect(before.st_ino != after.st_ino)
        #expect(try store.load().attachments.isEmpty)
    }

    @Test func failedSaveLeavesThePreviousFile() throws {
        let dir = temporaryDirectory()
        let store = StateStore(directory: dir)
        try store.save(State(attachments: [sample()]))
        let before = readBytes(store.statePath)
        // A directory where the temporary file would go makes the write fail.
        mkdir("\(dir)/.state.json.\(getpid()).tmp", 0o755)
        #expect(throws: StateFileError.self) { try store.save(State()) }
        #expect(readBytes(store.statePath) == before)
    }

    @Test func corruptFilesAreRefusedWithTheReasonAndLeftUntouched() throws {
        let corruptDir = stateFixtures + "/corrupt"
        let names = try FileManager.default.contentsOfDirectory(atPath: corruptDir).sorted()
        #expect(names.count >= 6)
        for name in names {
            let dir = temporaryDirectory()
            let original = readBytes("\(corruptDir)/\(name)")!
            _ = FileManager.default.createFile(atPath: "\(dir)/state.json", contents: Data(original))
            let store = StateStore(directory: dir)
            do {
                _ = try store.load()
                Issue.record("\(name) was accepted")
            } catch {
                let text = error.description
                #expect(text.contains("\(dir)/state.json"), "\(name): \(text)")
                if name == "unknown-version.json" {
                    #expect(error == .unknownVersion(path: store.statePath, version: 2), "\(name)")
                } else if case .corrupt = error {} else {
                    Issue.record("\(name): \(error)")
                }
            }
            #expect(readBytes(store.statePath) == original, "\(name) was modified")
        }
    }

    @Test func corruptMessagesSayWhere() throws {
        func message(_ text: String) -> String {
            do { _ = try StateCodec.decode(Array(text.utf8), path: "/s"); return "accepted" } catch { return error.description }
        }
        #expect(message("").contains("empty"))
        #expect(message("{\"version\": 1, \"attachments\": [").contains("not valid JSON"))
        #expect(message("{\"attachments\": []}").contains("no \"version\""))
        #expect(message("{\"version\": 1}").contains("attachments"))
        let example = String(decoding: try #require(readBytes(stateFixtures + "/example.json"), "cannot read \(stateFixtures + "/example.json")"), as: UTF8.self)
        let badMAC = example.replacingOccurrences(of: "02:42:0a:01:02:0a", with: "02:42:0a:01:02")
        #expect(message(badMAC).contains("attachments[0].mac"))
    }

    @Test func exampleFileLoads() throws {
        let state = try StateCodec.decode(try #require(readBytes(stateFixtures + "/example.json"), "cannot read \(stateFixtures + "/example.json")"), path: "example.json")
        #expect(state.attachments.count == 2)
        #expect(state.attachments[0].vlan == 10)
        #expect(state.attachments[1].mode == .dhcp && state.attachments[1].lease?.leaseSeconds == 3600)
        #expect(state.attachments[1].lease?.expiresAt.description == "2026-11-27T05:00:00Z")
        // Encoding what was decoded gives a file that decodes to the same state.
        #expect(try StateCodec.decode(StateCodec.encode(state), path: "re-encoded") == state)
    }
}

@Suite struct StateLockTests {
    @Test func secondHolderWaitsAndTimesOut() throws {
        let dir = temporaryDirectory()
        let store = StateStore(directory: dir)
        let first = try store.lock()
        var waitedFor: String?? = .none
        #expect(throws: StateFileError.locked(path: store.lockPath, holder: String(getpid()))) {
            _ = try store.lock(timeout: 0.2) { waitedFor = .some($0) }
        }
        #expect(waitedFor == .some(String(getpid())))
        first.release()
        let second = try store.lock(timeout: 0.2)
        second.release()
    }

    @Test func lockIsReleasedWhenTheHolderGoesAway() throws {
        let store = StateStore(directory: temporaryDirectory())
        do { _ = try store.lock() }
        _ = try store.lock(timeout: 0.2)
    }
}

/// DESIGN.md rule 6 at the file: a state that would not load is never written,
/// and an attach that fails puts the file back as it was.
@Suite struct StateSaveRulesTests {
    @Test func aStateThatWouldNotLoadIsNotWritten() throws {
        let store = StateStore(directory: temporaryDirectory())
        try store.save(State(attachments: [sample()]))
        let before = readBytes(store.statePath)
        var bad = sample("eth2")
        bad.containerName = String(repeating: "n", count: 256)
        #expect(throws: StateFileError.self) { try store.save(State(attachments: [sample(), bad])) }
        #expect(readBytes(store.statePath) == before)
        #expect(try store.load().attachments.count == 1)
    }

    @Test func undoPutsTheFileBackAsItWas() throws {
        let store = StateStore(directory: temporaryDirectory())
        try store.save(State(attachments: [sample()]))
        let before = readBytes(store.statePath)
        let undo = try store.keepForUndo()
        try store.save(State(attachments: [sample(), sample("eth2")]))
        try store.restore(undo)
        #expect(readBytes(store.statePath) == before)
    }

    @Test func undoOfAFirstAttachRemovesTheFile() throws {
        let store = StateStore(directory: temporaryDirectory())
        try FileManager.default.createDirectory(atPath: store.directory, withIntermediateDirectories: true)
        let undo = try store.keepForUndo()
        try store.save(State(attachments: [sample()]))
        try store.restore(undo)
        #expect(readBytes(store.statePath) == nil)
        #expect(try store.load().attachments.isEmpty)
    }
}
