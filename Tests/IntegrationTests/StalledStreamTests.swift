import Foundation
import Testing

extension IntegrationSuite {
    /// A Docker event stream that stops delivering without closing (a proxy
    /// that stalls) is noticed within seconds and replaced, and the restart it
    /// swallowed is repaired.
    @Suite struct StalledStreamTests {
        @Test func aStalledEventStreamIsReplacedAndTheMissedRestartRepaired() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let dir = netkeep.stateDirectory
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let stall = dir + "/stall"
            let proxy = try startTool(["python3", toolsDirectory + "/docker_proxy.py", "--listen", dir + "/docker.sock",
                                       "--mode", "stall-file", "--stall-file", stall])
            defer { proxy.stop() }
            let c = try TestContainer()
            let net = randomSubnet()
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(net).9/24").status == 0)
            defer { netkeep("detach", c.name) }
            let daemon = try BackgroundProcess([Testbed.netkeepBinary, "daemon", "-v", "--foreground", "--state-dir", dir,
                                                "--docker-socket", dir + "/docker.sock"])
            defer { daemon.stop() }
            #expect(eventually(within: 20) { daemon.log.contains("following Docker events") }, "daemon did not start: \(daemon.log)")
            // The stream that is open now stops delivering; new connections still work.
            _ = FileManager.default.createFile(atPath: stall, contents: Data())
            let stalledAt = Date()
            #expect(run(["docker", "restart", "-t", "0", c.name]).status == 0)
            let repaired = eventually(within: 30) { c.exec("ip", "-o", "addr", "show", "eth1").stdout.contains(" \(net).9/24 ") }
            #expect(repaired, "not repaired: \(daemon.log)")
            #expect(daemon.log.contains("stalled"), "\(daemon.log)")
            // The check runs after 5 s of silence; the repair comes with the new stream's full pass.
            #expect(Date().timeIntervalSince(stalledAt) < 25)
        }
    }
}
