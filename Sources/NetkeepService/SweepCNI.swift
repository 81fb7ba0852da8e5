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

    /// Every attachment's claim is tried first: one that a call of the
    /// runtime holds (ADD, DEL) is left to it. Then the records and the host,
    /// in that order: a record that is ready has its veth.
    @discardableResult
    public func run(dryRun: Bool = false) throws(Failure) -> [CNISweepAction] {
        let first = try environment.loadState().cni
        guard !first.isEmpty else { return [] }
        let held = try environment.claims()
        defer { held.release() }
        for record in first { _ = try? held.tryClaim(record.claimKey) }
        let records = try environment.loadState().cni.filter { held.claimed.contains($0.claimKey) }
        let (hostLinks, ports) = environment.linkAndPortNames()
        let actions = CNIRules.sweep(records, hostLinks: hostLinks, ports: ports)
        guard !dryRun else { return actions }
        let plugin = CNIPlugin(environment: environment, logger: logger, processEnvironment: [:])
        for action in actions {
            do throws(CNIError) {
                switch action {
                case .addPort(let a, let reason):
                    try plugin.addPort(a)
                    environment.audit.record(AuditEvent(kind: .repair, message: "CNI \(a.key): port \(a.hostIfname) added back to \(a.bridge) (\(reason))",
                                                        reason: reason, port: a.hostIfname, bridge: a.bridge, ip: a.addresses.first?.description,
                                                        steps: ["add-port"]))
                    logger.notice("CNI \(a.key): port added back (\(reason))")
                case .removeDeadPort(let a, let reason):
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
