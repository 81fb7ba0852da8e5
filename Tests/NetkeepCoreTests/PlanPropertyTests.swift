import NetkeepCore
import PropertyBased
import Testing

/// Random worlds built from a short "script" of perturbation codes, so that a
/// failing case shrinks to the few codes that matter.
extension World {
    init(script: [Int]) {
        self.init()
        // Half the worlds keep removed containers' identities for a day.
        if let first = script.first, first % 2 == 1 { retention = 86400 }
        for code in script {
            let op = code % 20, arg = code / 20
            let all = state.attachments
            let pick = all.isEmpty ? nil : all[arg % all.count]
            switch op {
            case 0...3:
                addHealthy(arg % 6 + 1, ifname: arg % 3 == 0 ? "eth2" : "eth1", vlan: arg % 4 == 0 ? 10 : nil, gateway: arg % 5 != 0,
                           dhcp: arg % 7 >= 5)
            case 4:
                guard let a = pick, containers[a.containerID] != nil else { continue }
                containers[a.containerID]!.pid += 1000
                networks[a.containerID] = ContainerNetwork(links: [:], addresses: [:], defaultRoutes: [])
                for b in all where b.containerID == a.containerID { hostLinks?[b.hostIfname] = nil }
            case 5:
                bootID = "boot-\(arg + 2)"
                hostLinks = [:]
                for id in networks.keys { networks[id] = ContainerNetwork(links: [:], addresses: [:], defaultRoutes: []) }
                for name in ovs?.ports.keys.map({ $0 }) ?? [] { ovs?.ports[name]?.ofport = -1; ovs?.ports[name]?.error = "could not open network device" }
            case 6: if let a = pick { hostLinks?[a.hostIfname] = nil }
            case 7: if let a = pick { networks[a.containerID]?.links[a.ifname] = nil }
            case 8:
                guard let a = pick else { continue }
                if arg % 2 == 0 { ovs?.ports[a.hostIfname] = nil } else { ovs?.ports[a.hostIfname]?.ofport = -1 }
            case 9: if let a = pick { ovs?.ports[a.hostIfname]?.tag = arg % 3 == 0 ? nil : 99 }
            case 10:
                guard let a = pick else { continue }
                switch arg % 6 {
                case 4: hostLinks?[a.hostIfname]?.isUp = false
                case 5: hostLinks?[a.hostIfname]?.mtu = 1400
                case 0: networks[a.containerID]?.links[a.ifname]?.mtu = 9000
                case 1: networks[a.containerID]?.links[a.ifname]?.isUp = false
                case 2: networks[a.containerID]?.addresses[a.ifname] = []
                default: networks[a.containerID]?.defaultRoutes = []
                }
            case 11:
                guard let a = pick, let link = a.netnsLink else { continue }
                switch arg % 3 {
                case 0: netns?[link] = nil
                case 1: netns?[link] = NetnsEntry(name: link, kind: .procLink(pid: 7, alive: arg % 2 == 0))
                default: netns?[link] = NetnsEntry(name: link, kind: .other)
                }
            case 12:
                guard var a = pick else { continue }
                a.status = arg % 2 == 0 ? .pending : .removing
                if arg % 3 == 0 { a.containerPID = nil }
                state.upsert(a)
            case 13:
                guard let a = pick else { continue }
                containers[a.containerID]?.running = false
                containers[a.containerID]?.pid = 0
                networks[a.containerID] = nil
            case 14:
                guard let a = pick else { continue }
                containers[a.containerID] = nil
                networks[a.containerID] = nil
                for b in all where b.containerID == a.containerID { hostLinks?[b.hostIfname] = nil }
                if arg % 2 == 0 { removed.insert(a.containerID) }
            case 15:
                let name = "p\(arg)_l"
                ovs?.ports[name] = ObservedPort(name: name, bridge: "br0", tag: nil, ofport: -1, error: nil, type: "",
                                                externalIDs: ["container_id": "web\(arg % 3)", "container_iface": "eth1"])
                if arg % 2 == 0 { removed.insert("web\(arg % 3)") }
                if arg % 4 == 0 { hostLinks?[name] = ObservedLink(name: name, index: 9000 + Int32(arg), kind: "veth", mac: nil, mtu: 1500, isUp: true) }
            case 16:
                let name = "nkorphan\(arg)"
                ovs?.ports[name] = ObservedPort(name: name, bridge: "br0", tag: nil, ofport: 3, error: nil, type: arg % 3 == 0 ? "vxlan" : "",
                                                externalIDs: ["netkeep-attachment": "x", "container_id": World.containerID(arg % 9 + 1), "container_iface": "eth1"])
                // Docker cannot both list a container and answer 404 for it.
                if arg % 2 == 0, containers[World.containerID(arg % 9 + 1)] == nil { removed.insert(World.containerID(arg % 9 + 1)) }
            case 17:
                let name = "\(5000 + arg)"
                switch arg % 3 {
                case 0: netns?[name] = NetnsEntry(name: name, kind: .procLink(pid: Int32(5000 + arg), alive: false))
                case 1: netns?[name] = NetnsEntry(name: name, kind: .procLink(pid: Int32(5000 + arg), alive: true))
                default: netns?[name] = NetnsEntry(name: name, kind: .other)
                }
            case 18 where arg % 8 >= 5:
                // Time passes: DHCP leases may expire; or a lease is lost.
                if arg % 8 == 7, var a = pick, a.mode == .dhcp {
                    a.lease = nil
                    state.upsert(a)
                } else {
                    now = now.adding(seconds: Int64(arg) * 200)
                }
            case 18:
                switch arg % 8 {
                case 0: dockerReachable = false
                case 1: ovs = nil
                case 2: ovs?.bridges = [:]
                default: break
                }
            case 19 where arg % 4 == 0:
                // Another engine (or one that does not say who it is) on the socket.
                switch arg % 12 {
                case 0: engine = nil
                case 4: engine = EngineIdentity(id: "OTHER:ENGINE", rootDir: "/var/lib/docker")
                default: engine = EngineIdentity(id: World.engine.id, rootDir: "/srv/docker")
                }
            case 19 where arg % 4 == 1:
                // Hostile container_id values in OVSDB, answered 404 by a confused proxy.
                let hostile = ["a/b", "x\r\nGET /containers/json HTTP/1.1", String(repeating: "z", count: 300), "../x", "a?b", "%2e", " a"][arg % 7]
                let name = "h\(arg)_l"
                ovs?.ports[name] = ObservedPort(name: name, bridge: "br0", tag: nil, ofport: -1, error: nil, type: "",
                                                externalIDs: ["container_id": hostile, "container_iface": "eth1"])
                removed.insert(hostile)
            case 19 where arg % 4 == 2:
                // netkeep's DHCP release station: running (veth alive) or left by a crash.
                let name = "nkrel\(arg)"
                ovs?.ports[name] = ObservedPort(name: name, bridge: "br0", tag: nil, ofport: -1, error: nil, type: "",
                                                externalIDs: ["netkeep-release": "1"])
                if arg % 8 == 2 { hostLinks?[name] = ObservedLink(name: name, index: 8000 + Int32(arg), kind: "veth", mac: nil, mtu: 1500, isUp: true) }
            case 19:
                // Docker forgets a container whose veth lives on (renamed, or a namespace kept by another process).
                guard let a = pick else { continue }
                containers[a.containerID] = nil
                removed.insert(a.containerID)
            default:
                if let a = pick { containers[a.containerID] = nil }
            }
        }
    }

    /// What the executor does to the host, on the model: each action done as planned.
    mutating func apply(_ plan: Plan) {
        for action in plan.actions {
            switch action {
            case .createVeth(let a, let pid, _), .recreateVeth(let a, let pid, _):
                for (name, link) in hostLinks ?? [:] where link.name == a.hostIfname { hostLinks?[name] = nil }
                var m = self
                m.makeHealthy(a, pid: pid)
                hostLinks?[a.hostIfname] = m.hostLinks?[a.hostIfname]
                var network = networks[a.containerID] ?? ContainerNetwork(links: [:], addresses: [:], defaultRoutes: [])
                network.links[a.ifname] = m.networks[a.containerID]!.links[a.ifname]
                // A DHCP interface comes up without an address: the lease brings it.
                network.addresses[a.ifname] = a.mode == .static ? (a.address.map { [$0] } ?? []) : []
                network.defaultRoutes.removeAll { $0.ifname == a.ifname }
                if a.mode == .static, let gw = a.gateway { network.defaultRoutes.append(.init(gateway: gw, ifname: a.ifname)) }
                networks[a.containerID] = network
            case .obtainLease(let a, _, _):
                guard var current = state.attachments.first(where: { $0.id == a.id }) else { continue }
                let lease = freshLease(a.lease?.address ?? a.address ?? (try! IPv4CIDR(address: IPv4Address(10, 9, 9, 9), prefixLength: 24)),
                                       router: IPv4Address(10, 9, 9, 1))
                current.lease = lease
                current.address = lease.address
                current.gateway = lease.router
                state.upsert(current)
                networks[a.containerID]?.addresses[a.ifname] = [lease.address]
                networks[a.containerID]?.defaultRoutes.removeAll { $0.ifname == a.ifname }
                networks[a.containerID]?.defaultRoutes.append(.init(gateway: lease.router, ifname: a.ifname))
            case .configureInterface(let a, _, let fixes, _):
                for fix in fixes {
                    switch fix {
                    case .containerMTU: networks[a.containerID]?.links[a.ifname]?.mtu = a.mtu
                    case .hostMTU: hostLinks?[a.hostIfname]?.mtu = a.mtu
                    case .containerUp: networks[a.containerID]?.links[a.ifname]?.isUp = true
                    case .hostUp: hostLinks?[a.hostIfname]?.isUp = true
                    case .address(let cidr): networks[a.containerID]?.addresses[a.ifname, default: []].append(cidr)
                    case .defaultRoute(let gw): networks[a.containerID]?.defaultRoutes.append(.init(gateway: gw, ifname: a.ifname))
                    }
                }
            case .addPort(let a, _), .replacePort(let a, _):
                ovs?.ports[a.hostIfname] = ObservedPort(name: a.hostIfname, bridge: a.bridge, tag: a.vlan, ofport: 9, error: nil, type: "",
                                                        externalIDs: ["netkeep-attachment": a.id, "container_id": a.containerID, "container_iface": a.ifname])
            case .setVLAN(let a, _):
                ovs?.ports[a.hostIfname]?.tag = a.vlan
            case .linkNetns(let a, let pid, _):
                netns?[a.netnsLink!] = NetnsEntry(name: a.netnsLink!, kind: .procLink(pid: pid, alive: true))
            case .removeAttachment(let a, _):
                ovs?.ports[a.hostIfname] = nil
                hostLinks?[a.hostIfname] = nil
                if networks[a.containerID]?.links[a.ifname]?.mac == a.mac { networks[a.containerID]?.links[a.ifname] = nil }
                state.remove(id: a.id)
            case .retainAttachment(let a, let until, _):
                ovs?.ports[a.hostIfname] = nil
                hostLinks?[a.hostIfname] = nil
                guard var current = state.attachments.first(where: { $0.id == a.id }) else { continue }
                current.status = .retained
                current.retainedUntil = until
                current.containerPID = nil
                current.netnsLink = nil
                state.upsert(current)
            case .removePort(let name, _, _):
                ovs?.ports[name] = nil
                hostLinks?[name] = nil
            case .removeNetnsLink(let name, let pid, _):
                if case .procLink(pid, _)? = netns?[name]?.kind { netns?[name] = nil }
            case .unplugPort(let a, _):
                ovs?.ports[a.hostIfname] = nil
            case .claimPort(let a, _):
                ovs?.ports[a.hostIfname]?.externalIDs["netkeep-attachment"] = a.id
            case .releaseLease:
                break
            case .renewLease(let a, _, _, _):
                guard var current = state.attachments.first(where: { $0.id == a.id }), let old = current.lease else { continue }
                current.lease = freshLease(old.address, router: old.router)
                state.upsert(current)
            case .markDown(let a, _):
                guard var current = state.attachments.first(where: { $0.id == a.id }) else { continue }
                current.status = .down
                state.upsert(current)
            case .markReady(let a, let pid, _):
                guard var current = state.attachments.first(where: { $0.id == a.id }) else { continue }
                current.status = .ready
                current.containerPID = pid
                state.upsert(current)
            }
        }
    }
}

@Suite struct PlanPropertyTests {
    static let scripts = Gen.int(in: 0...999).array(of: 1...30)

    @Test func applyingThePlanThenPlanningAgainGivesAnEmptyPlan() async {
        await propertyCheck(count: 2000, input: Self.scripts) { script in
            var world = World(script: script)
            let first = world.plan
            world.apply(first)
            let second = world.plan
            #expect(second.actions.isEmpty, "after \(first.actions.map(\.summary)) still \(second.actions.map(\.summary))")
        }
    }

    @Test func nothingIsRemovedWithoutPositiveEvidence() async {
        await propertyCheck(count: 2000, input: Self.scripts) { script in
            let world = World(script: script)
            let observed = world.observed
            for action in world.plan.actions where action.removes {
                switch action {
                case .removeAttachment(let a, let reason), .retainAttachment(let a, _, let reason):
                    if case .retainAttachment = action {
                        #expect(reason == .containerRemoved && world.retention > 0 && (a.status == .ready || a.status == .down), "\(action.summary)")
                    }
                    if reason == .retentionEnded {
                        #expect(a.status == .retained && !(a.retainedUntil.map { $0 > world.now } ?? false), "\(action.summary) before its time")
                    } else if reason == .detachRequested {
                        // A detach needs OVSDB and the host's links, not Docker's word.
                        #expect(a.status == .removing)
                        #expect(observed.ovs != nil && observed.hostLinks != nil, "\(action.summary) while OVSDB or netlink was unreadable")
                    } else {
                        #expect(observed.isComplete, "\(action.summary) while a source was unreadable")
                        #expect(observed.docker.isRemoved(a.containerID), "\(action.summary) without a 404")
                        // Rule 5: a live host veth means a live peer; only a detach removes it.
                        #expect(observed.hostLinks?[a.hostIfname] == nil, "\(action.summary) although \(a.hostIfname) lives")
                        #expect(world.engine == world.state.engine, "\(action.summary) on the word of another engine")
                    }
                case .removePort(let name, _, .releasePortLeft):
                    #expect(observed.isComplete, "\(action.summary) while a source was unreadable")
                    #expect(observed.ovs?.ports[name]?.isReleaseStation == true, "\(name) is no release station")
                    #expect(observed.hostLinks?[name] == nil, "\(name): a release is running")
                case .removePort(let name, _, _):
                    #expect(observed.isComplete, "\(action.summary) while a source was unreadable")
                    let port = observed.ovs?.ports[name]
                    #expect(world.engine == world.state.engine, "\(action.summary) on the word of another engine")
                    #expect(port?.owner != nil, "\(name) is not netkeep's or ovs-docker's")
                    #expect(observed.docker.isRemoved(port?.externalIDs["container_id"] ?? ""), "\(name) without a 404")
                    #expect(Names.isContainerReference(port?.externalIDs["container_id"] ?? ""), "\(name) on the word of a malformed reference")
                    #expect(observed.hostLinks?[name] == nil, "\(name) has a live veth")
                    #expect(!world.state.attachments.contains { $0.hostIfname == name })
                case .removeNetnsLink(let name, let pid, _):
                    guard case .procLink(pid, let alive)? = observed.netns?[name]?.kind else {
                        Issue.record("\(name) is not a /proc link to \(pid)")
                        continue
                    }
                    let ownRemoval = world.plan.actions.contains {
                        switch $0 {
                        case .removeAttachment(let a, _), .retainAttachment(let a, _, _):
                            return a.netnsLink == name && observed.docker.container(a.containerID)?.pid == pid
                        default: return false
                        }
                    }
                    #expect(!alive || ownRemoval, "\(name) points at a live process \(pid)")
                    #expect(!alive || observed.isComplete, "\(action.summary) of a live process while a source was unreadable")
                default:
                    Issue.record("unexpected removal \(action.summary)")
                }
            }
        }
    }
}

extension World {
    /// What must hold for an attachment whose container runs, once repaired.
    func problems(of a: NetkeepCore.Attachment) -> [String] {
        guard let c = containers[a.containerID], c.running, let network = networks[a.containerID] else { return [] }
        var out: [String] = []
        if let inside = network.links[a.ifname], inside.mac != a.mac { return [] } // someone else's interface: left alone
        if let host = hostLinks?[a.hostIfname] {
            if !host.isUp || host.mtu != a.mtu { out.append("host end down or wrong MTU") }
        } else if hostLinks != nil { out.append("host end missing") }
        if let inside = network.links[a.ifname] {
            if !inside.isUp || inside.mtu != a.mtu { out.append("inside down or wrong MTU") }
        } else { out.append("inside missing") }
        let record = state.attachments.first { $0.id == a.id } ?? a
        if record.mode == .dhcp, !(record.lease?.isValid(at: now) ?? false) { out.append("no valid lease") }
        if let address = record.expectedAddress(at: now), !(network.addresses[a.ifname] ?? []).contains(address) { out.append("address missing") }
        if let gw = record.expectedGateway(at: now), !network.defaultRoutes.contains(.init(gateway: gw, ifname: a.ifname)) { out.append("route missing") }
        if let ovs, ovs.bridges[a.bridge] != nil {
            if let port = ovs.ports[a.hostIfname] {
                if port.isInError || port.tag != a.vlan || port.bridge != a.bridge { out.append("port unhealthy") }
            } else { out.append("port missing") }
        }
        if let link = a.netnsLink, let netns, netns[link]?.kind != .other, netns[link]?.kind != .procLink(pid: c.pid, alive: true) {
            out.append("netns link wrong")
        }
        if let record = state.attachments.first(where: { $0.id == a.id }), record.status != .ready || record.containerPID != c.pid {
            out.append("record not ready for pid \(c.pid)")
        }
        return out
    }
}

extension PlanPropertyTests {
    @Test func afterThePlanEveryAttachmentOfARunningContainerIsWhole() async {
        await propertyCheck(count: 2000, input: Self.scripts) { script in
            var world = World(script: script)
            guard world.dockerReachable else { return }
            world.apply(world.plan)
            for a in world.state.attachments where a.status != .removing {
                let problems = world.problems(of: a)
                #expect(problems.isEmpty, "\(a.containerName) \(a.ifname): \(problems)")
            }
        }
    }
}
