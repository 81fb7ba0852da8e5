#if canImport(Glibc)
import Glibc
#endif
import NetkeepCore
@testable import NetkeepState
import Testing

@Suite struct ContainerClaimsTests {
    @Test func aClaimIsExclusiveAcrossHoldersEvenInOneProcess() throws {
        let dir = temporaryDirectory()
        let first = try ContainerClaims(directory: dir)
        let second = try ContainerClaims(directory: dir)
        #expect(try first.tryClaim("aaaa"))
        #expect(try !second.tryClaim("aaaa"), "two holders of one container")
        #expect(try second.tryClaim("bbbb"), "another container must not wait")
        #expect(first.claimed == ["aaaa"] && second.claimed == ["bbbb"])
        first.release()
        #expect(try second.tryClaim("aaaa"), "a released claim is free")
    }

    @Test func aWaitForAHeldClaimEndsInATimeoutNamingTheContainer() throws {
        let dir = temporaryDirectory()
        let holder = try ContainerClaims(directory: dir)
        try holder.claim(["cccc"], timeout: 1)
        let waiter = try ContainerClaims(directory: dir)
        var waited: [String] = []
        #expect(throws: StateFileError.claimed(path: dir + "/claims.lock", container: "cccc")) {
            try waiter.claim(["cccc"], timeout: 0.05) { waited.append($0) }
        }
        #expect(waited == ["cccc"])
    }

    @Test func aClaimDiesWithItsDescriptor() throws {
        let dir = temporaryDirectory()
        do {
            let scoped = try ContainerClaims(directory: dir)
            #expect(try scoped.tryClaim("dddd"))
        }
        #expect(try ContainerClaims(directory: dir).tryClaim("dddd"), "the claim outlived its holder")
    }

    @Test func offsetsAreStableAndSpread() {
        #expect(ContainerClaims.offset("abc") == ContainerClaims.offset("abc"))
        let offsets = Set((0..<1000).map { ContainerClaims.offset(String(repeating: "\($0)", count: 3)) })
        #expect(offsets.count > 990)
    }
}

@Suite struct DaemonLockTests {
    @Test func aSecondDaemonOfTheInstanceIsRefusedNamingTheFirst() throws {
        let dir = temporaryDirectory()
        let instance = try Instance(parsing: "test-lock")
        let first = try DaemonLock(runDirectory: dir, instance: instance, stateDirectory: "/var/lib/first")
        do {
            _ = try DaemonLock(runDirectory: dir, instance: instance, stateDirectory: "/var/lib/second")
            Issue.record("a second daemon of the instance got the lock")
        } catch {
            #expect(error == .held(instance: instance, path: dir + "/daemon-test-lock.lock",
                                   by: DaemonLock.Holder(pid: getpid(), stateDirectory: "/var/lib/first")))
            #expect(error.description.contains("pid \(getpid())") && error.description.contains("/var/lib/first"), "\(error)")
        }
        // Another instance is another lock.
        let other = try DaemonLock(runDirectory: dir, instance: .default, stateDirectory: "/var/lib/other")
        other.release()
        first.release()
        let again = try DaemonLock(runDirectory: dir, instance: instance, stateDirectory: "/var/lib/second")
        again.release()
    }
}
