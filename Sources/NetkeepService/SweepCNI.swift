import CNI
import Logging
import NetkeepCore

/// Mends the ports of CNI attachments (`CNIRules.sweep`): run by the daemon
/// after each full pass and by `netkeep reconcile`.
public struct SweepCNI {
    let environment: HostEnvironment
    let logger: Logger

    public init(environment: HostEnvironment, logger: Logger) {
        self.environment = environment
        self.logger = logger
    }

    @discardableResult
    public func run(dryRun: Bool = false) throws(Failure) -> [CNISweepAction] {
        // The records first, then the host: a record that is ready has its veth.
        let records = try environment.loadState().cni
        guard !records.isEmpty else { return [] }
        let (hostLinks, ports) = environment.linkAndPortNames()
        let actions = CNIRules.sweep(records, hostLinks: hostLinks, ports: ports)
        guard !dryRun else { return actions }
        let plugin = CNIPlugin(environment: environment, logger: logger, processEnvironment: [:])
        // A DEL may have begun since the records were read: only a record still ready is mended.
        func stillReady(_ a: CNIAttachment) -> Bool {
            ((try? environment.loadState())?.cniAttachment(network: a.network, containerID: a.containerID, ifname: a.ifname))?.status == .ready
        }
        for action in actions {
            do throws(CNIError) {
                switch action {
                case .addPort(let a, let reason):
                    guard stillReady(a) else { continue }
                    try plugin.addPort(a)
                    environment.audit.record(AuditEvent(kind: .repair, message: "CNI \(a.key): port \(a.hostIfname) added back to \(a.bridge) (\(reason))",
                                                        reason: reason, port: a.hostIfname, bridge: a.bridge, ip: a.addresses.first?.description,
                                                        steps: ["add-port"]))
                    logger.notice("CNI \(a.key): port added back (\(reason))")
                case .removeDeadPort(let a, let reason):
                    guard stillReady(a) else { continue }
                    try plugin.deletePort(a, comment: "netkeep: CNI \(a.key), its veth is gone")
                    environment.audit.record(AuditEvent(kind: .garbageCollect, message: "CNI \(a.key): dead port \(a.hostIfname) removed from \(a.bridge) (\(reason)); the record waits for the runtime's DEL",
                                                        reason: reason, port: a.hostIfname, bridge: a.bridge, ip: a.addresses.first?.description))
                    logger.notice("CNI \(a.key): dead port removed (\(reason))")
                }
            } catch {
                logger.warning("\(error)")
            }
        }
        return actions
    }
}
