import Foundation
import Testing

extension IntegrationSuite {
    /// Every bad input: one clear line, a non-zero exit, and the host and the
    /// state file byte for byte as they were.
    @Suite struct BadInputTests {
        @Test func badInputChangesNothing() throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer(), stopped = try TestContainer()
            run(["docker", "stop", "-t", "0", stopped.name])
            let net = randomSubnet()
            #expect(netkeep("attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(net).5/24", "--gateway", "\(net).1").status == 0)
            defer { netkeep("detach", c.name) }
            let ip = "\(net).6/24"
            let cases: [(String, [String], Int32)] = [
                ("unknown container", ["attach", "nkt-no-such-container", "--bridge", Testbed.bridge, "--ip", ip], 2),
                ("stopped container", ["attach", stopped.name, "--bridge", Testbed.bridge, "--ip", ip], 2),
                ("missing bridge", ["attach", c.name, "--bridge", "nk-nosuchbr", "--ifname", "eth2", "--ip", ip], 2),
                ("interface taken inside", ["attach", c.name, "--bridge", Testbed.bridge, "--ifname", "lo", "--ip", ip], 2),
                ("second attach", ["attach", c.name, "--bridge", Testbed.bridge, "--ip", ip], 2),
                ("second default route", ["attach", c.name, "--bridge", Testbed.bridge, "--ifname", "eth2", "--ip", ip, "--gateway", "\(net).1"], 2),
                ("bad CIDR", ["attach", c.name, "--bridge", Testbed.bridge, "--ifname", "eth2", "--ip", "\(net).300/24"], 2),
                ("CIDR without prefix", ["attach", c.name, "--bridge", Testbed.bridge, "--ifname", "eth2", "--ip", "\(net).6"], 2),
                ("bad gateway", ["attach", c.name, "--bridge", Testbed.bridge, "--ifname", "eth2", "--ip", ip, "--gateway", "192.0.2.1"], 2),
                ("bad MAC", ["attach", c.name, "--bridge", Testbed.bridge, "--ifname", "eth2", "--ip", ip, "--mac", "02:00:00:00:00"], 2),
                ("multicast MAC", ["attach", c.name, "--bridge", Testbed.bridge, "--ifname", "eth2", "--ip", ip, "--mac", "01:00:5e:00:00:01"], 2),
                ("bad MTU", ["attach", c.name, "--bridge", Testbed.bridge, "--ifname", "eth2", "--ip", ip, "--mtu", "67"], 2),
                ("bad VLAN", ["attach", c.name, "--bridge", Testbed.bridge, "--ifname", "eth2", "--ip", ip, "--vlan", "4096"], 2),
                ("long ifname", ["attach", c.name, "--bridge", Testbed.bridge, "--ifname", "eth-is-too-long-x", "--ip", ip], 2),
                ("long bridge", ["attach", c.name, "--bridge", "bridge-name-too-long", "--ifname", "eth2", "--ip", ip], 2),
                ("shell in container", ["attach", "\(c.name);reboot", "--bridge", Testbed.bridge, "--ip", ip], 2),
                ("shell in ifname", ["attach", c.name, "--bridge", Testbed.bridge, "--ifname", "e$(id)", "--ip", ip], 2),
                ("shell in bridge", ["attach", c.name, "--bridge", "br`id`", "--ifname", "eth2", "--ip", ip], 2),
                ("path in container", ["attach", "../../etc", "--bridge", Testbed.bridge, "--ip", ip], 2),
                ("detach unknown", ["detach", "nkt-no-such-container"], 2),
                ("detach unknown ifname", ["detach", c.name, "--ifname", "eth9"], 2),
                ("detach hostile", ["detach", "a;b"], 2),
            ]
            for (label, arguments, code) in cases {
                let hostBefore = hostFingerprint(containers: [c])
                let stateBefore = netkeep.stateBytes
                let r = netkeep.invoke(arguments)
                #expect(r.status == code, "\(label): exit \(r.status), stderr \(r.stderr)")
                let lines = r.stderr.split(separator: "\n")
                #expect(lines.count == 1, "\(label): \(r.stderr)")
                #expect(r.stderr.hasPrefix("netkeep: "), "\(label): \(r.stderr)")
                #expect(netkeep.stateBytes == stateBefore, "\(label): state file changed")
                #expect(hostFingerprint(containers: [c]) == hostBefore, "\(label): host changed")
            }
        }

        @Test(arguments: ["truncated.json", "garbage.json", "unknown-version.json", "empty.json", "forged-host-ifname.json"])
        func unusableStateFilesAreRefusedAndLeftUntouched(_ file: String) throws {
            try Testbed.check()
            let netkeep = Netkeep()
            let c = try TestContainer()
            try FileManager.default.createDirectory(atPath: netkeep.stateDirectory, withIntermediateDirectories: true)
            let original = try Data(contentsOf: URL(fileURLWithPath: Testbed.packageRoot + "/state/corrupt/" + file))
            try original.write(to: URL(fileURLWithPath: netkeep.statePath))
            let hostBefore = hostFingerprint(containers: [c])
            for arguments in [["attach", c.name, "--bridge", Testbed.bridge, "--ip", "\(randomSubnet()).5/24"], ["detach", c.name], ["list"]] {
                let r = netkeep.invoke(arguments)
                #expect(r.status == 3, "\(arguments[0]): \(r.stderr)")
                #expect(r.stderr.contains(netkeep.statePath), "\(arguments[0]): \(r.stderr)")
                #expect(netkeep.stateBytes == original)
            }
            #expect(hostFingerprint(containers: [c]) == hostBefore)
        }
    }
}
