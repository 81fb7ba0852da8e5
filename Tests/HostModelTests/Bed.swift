#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NetkeepCore
@testable import NetkeepService
import NetkeepState

/// One in-memory host with a real state directory (under /dev/shm when it
/// exists: no root, no disk), and the checks a pass must leave true.
final class Bed {
    let host = MemoryHost()
    let directory: String
    var environment: HostEnvironment
    let logger = Logger(label: "netkeep.test", factory: { _ in SwiftLogNoOpLogHandler() })

    init() {
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory()
        var template = Array("\(base)/netkeep-model-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        environment = HostEnvironment(stateDirectory: directory, dockerSocket: "/nonexistent/docker.sock",
                                      ovsdbSocket: "/nonexistent/db.sock", netnsDirectory: "/nonexistent/netns")
        environment.audit = Audit(enabled: false)
        environment.lockTimeout = 5
        // Removed containers give everything back unless a test keeps them for a recreate.
        environment.retentionSeconds = 0
        environment.adapters = host.adapters
        var world = host.snapshot
        world.bridges = ["br0": "netdev", "br1": "system"]
        host.snapshot = world
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    var statePath: String { "\(directory)/state.json" }

    /// The state file's bytes (nil: none yet), to rewind with the world.
    var stateBytes: Data? {
        get { FileManager.default.contents(atPath: statePath) }
        set {
            if let newValue { _ = FileManager.default.createFile(atPath: statePath, contents: newValue) } else { try? FileManager.default.removeItem(atPath: statePath) }
        }
    }

    func records() throws -> [Attachment] { try environment.loadState().attachments }

    func attach(_ container: String, bridge: String = "br0", ifname: String = "eth1", ip: String? = nil, gateway: String? = nil,
                dhcp: Bool = false, mac: String, vlan: Int? = nil) throws -> Attachment {
        let request = try AttachRequest.parse(container: container, bridge: bridge, ifname: ifname, ip: ip, dhcp: dhcp, gateway: gateway,
                                              mac: mac, mtu: nil, vlan: vlan.map(String.init))
        return try Attach(environment: environment, logger: logger).run(request)
    }

    func detach(_ container: String, ifname: String? = nil) throws -> [Attachment] {
        try Detach(environment: environment, logger: logger).run(container: container, ifname: ifname)
    }

    @discardableResult
    func reconcile(_ scope: ReconcileScope = .host) throws -> ReconcileReport {
        try Reconcile(environment: environment, logger: logger).run(dryRun: false, scope: scope)
    }

    /// What is wrong with the host against the records: a record of a
    /// running container not whole, or anything of netkeep's that no record
    /// accounts for (a port, a veth end, a netns link, a DHCP lease).
    func problems() throws -> [String] {
        let records = try records()
        let w = host.snapshot
        var found: [String] = []
        for a in records {
            let name = "\(a.containerName) \(a.ifname)"
            if a.status == .retained {
                // Kept for a recreate: nothing of it on the host but its lease at the server.
                if w.containers[a.containerID] != nil { found.append("\(name): retained, but its container exists") }
                if w.ports[a.hostIfname] != nil || w.hostLinks[a.hostIfname] != nil { found.append("\(name): retained, but its port or veth stays") }
                if a.retainedUntil == nil || a.netnsLink != nil { found.append("\(name): retained without a deadline, or with a netns link") }
                if a.mode == .dhcp, let lease = a.lease, w.leases[a.mac] != lease.address { found.append("\(name): retained lease \(lease.address) not held by the server") }
                continue
            }
            guard let c = w.containers[a.containerID] else { found.append("\(name): the container is gone but its record stays"); continue }
            if !c.running {
                if w.ports[a.hostIfname] != nil { found.append("\(name): stopped, but its port stays") }
                if a.status == .removing || a.status == .ready { found.append("\(name): stopped, recorded as \(a.status)") }
                continue
            }
            if a.status != .ready || a.containerPID != c.pid { found.append("\(name): recorded \(a.status) pid \(a.containerPID ?? 0), runs as \(c.pid)") }
            let ns = w.namespaces[c.ns]!
            if let link = w.hostLinks[a.hostIfname] {
                if !link.up { found.append("\(name): \(a.hostIfname) down") }
                if link.peer?.ns != c.ns || link.peer?.name != a.ifname { found.append("\(name): \(a.hostIfname)'s peer is not \(a.ifname) in the container") }
            } else { found.append("\(name): host veth \(a.hostIfname) missing") }
            if let inside = ns.links[a.ifname] {
                if inside.mac != a.mac || !inside.up || inside.mtu != a.mtu || inside.hostPeer != a.hostIfname { found.append("\(name): inside end \(inside) differs") }
            } else { found.append("\(name): \(a.ifname) missing inside") }
            if let port = w.ports[a.hostIfname] {
                if port.bridge != a.bridge || port.tag != a.vlan || port.externalIDs["netkeep-attachment"] != a.id {
                    found.append("\(name): port \(port) is not the record's (\(a.bridge), tag \(a.vlan.map(String.init) ?? "-"))")
                }
            } else { found.append("\(name): port \(a.hostIfname) missing") }
            let addresses = ns.addresses[a.ifname] ?? []
            switch a.mode {
            case .static:
                if let address = a.address, !addresses.contains(address) { found.append("\(name): address \(address) missing (has \(addresses))") }
                if let gateway = a.gateway, !ns.defaultRoutes.contains(.init(gateway: gateway, ifname: a.ifname)) { found.append("\(name): route via \(gateway) missing") }
            case .dhcp:
                if let lease = a.lease {
                    if w.leases[a.mac] != lease.address { found.append("\(name): the server holds \(w.leases[a.mac].map(\.description) ?? "no lease"), recorded \(lease.address)") }
                    if addresses != [lease.address] { found.append("\(name): addresses \(addresses), leased \(lease.address)") }
                } else { found.append("\(name): no lease recorded") }
            }
            if let link = a.netnsLink, w.netns[link] != .proc(c.pid) { found.append("\(name): netns link \(link) is \(String(describing: w.netns[link])), not pid \(c.pid)") }
        }
        let byHost = Dictionary(records.map { ($0.hostIfname, $0) }, uniquingKeysWith: { a, _ in a })
        for (port, row) in w.ports where row.externalIDs["netkeep-attachment"] != nil {
            if byHost[port] == nil || w.containers[byHost[port]!.containerID]?.running != true { found.append("port \(port) leaked") }
        }
        for name in w.hostLinks.keys where byHost[name] == nil { found.append("veth \(name) leaked") }
        for c in w.containers.values where c.running {
            for (ifname, link) in w.namespaces[c.ns]!.links where link.hostPeer != nil {
                if !records.contains(where: { $0.containerID == c.id && $0.ifname == ifname }) { found.append("\(c.name) \(ifname): inside veth leaked") }
            }
        }
        for (name, target) in w.netns {
            guard case .proc(let pid) = target, let c = w.container(pid: pid),
                  records.contains(where: { $0.containerID == c.id && $0.netnsLink == name }) else { found.append("netns link \(name) leaked"); continue }
        }
        let macs = Set(records.filter { $0.mode == .dhcp }.map(\.mac))
        for mac in w.leases.keys where !macs.contains(mac) { found.append("lease of \(mac) leaked") }
        return found
    }
}

/// SplitMix64: the same seed, the same run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}
