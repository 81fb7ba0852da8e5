import DHCP
import NetkeepCore
import Prometheus
import Synchronization

/// The daemon's metrics in Prometheus's text format (swift-prometheus renders
/// it): what `--metrics-textfile` writes and `--metrics-listen` serves.
/// Names follow prometheus.io's rules: the `netkeep_` prefix, base units,
/// `_total` on counters, `_info` for metadata.
///
/// Counters count from the daemon's start (Prometheus's `rate()` handles the
/// reset); gauges are set from the state file after each piece of work.
public final class DaemonMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// The lease-expiry gauges now exported, by their label set, so that the
    /// gauge of a lease that is gone is taken out of the output.
    private let leaseGauges = Mutex<[[String]: Gauge]>([:])

    /// Every family: its name after `netkeep_` and before the unit, its unit
    /// (none for a count of things), and what it means (one help text per
    /// name, as the text format wants).
    static let families: [(metric: String, unit: String, help: String)] = [
        ("build", "info", "The netkeep build: its version and commit (always 1)."),
        ("daemon_start_time", "seconds", "When the daemon started, in seconds since the epoch."),
        ("reconcile", "total", "Reconcile passes, by what started them and how they ended."),
        ("reconcile_duration", "seconds", "How long reconcile passes took, by what started them."),
        ("last_full_reconcile_timestamp", "seconds", "When the last full reconcile pass ended, in seconds since the epoch."),
        ("repairs", "total", "Repair actions that succeeded, by reason."),
        ("repair_failures", "total", "Actions that failed, by reason."),
        ("garbage_collections", "total", "Removals that succeeded (attachments, ports, netns links, leases), by reason."),
        ("attachments", "", "Attachments in the state file by kind and status; refused: containers whose labels were refused."),
        ("dhcp_exchanges", "total", "DHCP exchanges, by what they asked for and how they ended."),
        ("dhcp_exchange_duration", "seconds", "How long DHCP exchanges took from their first message to their end."),
        ("lease_expiry_timestamp", "seconds", "When each recorded DHCP lease expires, in seconds since the epoch."),
        ("docker_event_stream_reconnects", "total", "Subscriptions to Docker's event stream after the first."),
        ("source_up", "", "Whether a source answered the last time it was asked (1) or not (0)."),
    ]

    /// The families by their full names (`netkeep_reconcile_total`).
    static let familiesByName = Dictionary(uniqueKeysWithValues: families.map { ("netkeep_\($0.metric)" + ($0.unit.isEmpty ? "" : "_\($0.unit)"), $0) })

    /// The family's descriptor by its full name.
    static func descriptor(_ name: String) -> MetricNameDescriptor {
        guard let family = familiesByName[name] else { preconditionFailure("metric \(name) has no entry in DaemonMetrics.families") }
        return MetricNameDescriptor(namespace: "netkeep", metricName: family.metric, unitName: family.unit, helpText: family.help)
    }

    /// Reconcile passes: from a few milliseconds (one container) to a boot of hundreds.
    static let reconcileBuckets: [Double] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
    /// DHCP exchanges: a LAN answers in milliseconds; retransmissions take seconds.
    static let exchangeBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32]

    public static let triggers = ["start", "resync", "reconnect", "retry", "event"]
    public static let results = ["ok", "failed", "unreachable"]

    public init(version: String, commit: String, startTime: Double) {
        gauge("netkeep_build_info", ["version": version, "commit": commit]).set(Double(1))
        gauge("netkeep_daemon_start_time_seconds").set(startTime)
        // Every series a dashboard or alert names exists from the start, at zero.
        for trigger in Self.triggers {
            for result in Self.results { counter("netkeep_reconcile_total", ["trigger": trigger, "result": result]).increment(by: Int64(0)) }
            _ = histogram("netkeep_reconcile_duration_seconds", ["trigger": trigger], Self.reconcileBuckets)
        }
        counter("netkeep_docker_event_stream_reconnects_total").increment(by: Int64(0))
        gauge("netkeep_last_full_reconcile_timestamp_seconds").set(Double(0))
        for source in ["docker", "ovsdb"] { gauge("netkeep_source_up", ["source": source]).set(Double(0)) }
        attachments(in: State(), refused: 0)
    }

    /// One reconcile pass ended.
    public func reconcile(trigger: String, result: String, seconds: Double) {
        counter("netkeep_reconcile_total", ["trigger": trigger, "result": result]).increment()
        histogram("netkeep_reconcile_duration_seconds", ["trigger": trigger], Self.reconcileBuckets).record(seconds)
    }

    public func fullPassEnded(at secondsSinceEpoch: Double) {
        gauge("netkeep_last_full_reconcile_timestamp_seconds").set(secondsSinceEpoch)
    }

    /// What a pass did: removals count as garbage collections, the rest as
    /// repairs; failures by the reason of the action that failed.
    public func actions(_ results: [ActionResult]) {
        for result in results {
            let reason = result.action.reason.code
            if result.error != nil {
                counter("netkeep_repair_failures_total", ["reason": reason]).increment()
            } else {
                switch Self.effect(of: result.action) {
                case .repair: counter("netkeep_repairs_total", ["reason": reason]).increment()
                case .collection: counter("netkeep_garbage_collections_total", ["reason": reason]).increment()
                }
            }
        }
    }

    enum Effect { case repair, collection }

    /// Removals (an attachment, a port, a netns link, and the port and veth
    /// of a removed container whose record is kept for a recreate) are
    /// collections, as the journal's `gc` entries have them, and so is the
    /// DHCPRELEASE of a lease given back; the rest are repairs.
    static func effect(of action: Action) -> Effect {
        if case .releaseLease = action { return .collection }
        return action.removes ? .collection : .repair
    }

    /// Repairs outside a plan (a port the endpoint or CNI sweep added back).
    public func repaired(reason: String) {
        counter("netkeep_repairs_total", ["reason": reason]).increment()
    }

    /// Removals outside a plan (a CNI lease nobody claimed, released).
    public func collected(reason: String) {
        counter("netkeep_garbage_collections_total", ["reason": reason]).increment()
    }

    /// Attachments by kind and status, every status of every kind (zero
    /// included, so that `== 0` and `> 0` alerts work), and the lease
    /// expiry of every recorded lease.
    public func attachments(in state: State, refused: Int) {
        var counts: [String: [String: Int]] = [
            "container": Dictionary(uniqueKeysWithValues: AttachmentStatus.allCases.map { ($0.rawValue, 0) }),
            "endpoint": Dictionary(uniqueKeysWithValues: EndpointStatus.allCases.map { ($0.rawValue, 0) }),
            "cni": Dictionary(uniqueKeysWithValues: CNIAttachmentStatus.allCases.map { ($0.rawValue, 0) }),
        ]
        for a in state.attachments { counts["container"]![a.status.rawValue]! += 1 }
        for e in state.endpoints { counts["endpoint"]![e.status.rawValue]! += 1 }
        for c in state.cni { counts["cni"]![c.status.rawValue]! += 1 }
        counts["container"]!["refused"] = refused
        for (kind, byStatus) in counts {
            for (status, n) in byStatus { gauge("netkeep_attachments", ["kind": kind, "status": status]).set(Int64(n)) }
        }

        var leases: [[String]: Double] = [:]
        for l in state.ownedLeases { leases[[l.kind, l.owner, l.ifname]] = Double(l.lease.expiresAt.secondsSinceEpoch) }
        leaseGauges.withLock { gauges in
            for (key, gauge) in gauges where leases[key] == nil {
                registry.unregisterGauge(gauge)
                gauges[key] = nil
            }
            for (key, expiry) in leases {
                let gauge = gauges[key] ?? self.gauge("netkeep_lease_expiry_timestamp_seconds", ["kind": key[0], "owner": key[1], "ifname": key[2]])
                gauges[key] = gauge
                gauge.set(expiry)
            }
        }
    }

    public func exchange(_ record: ExchangeRecord) {
        counter("netkeep_dhcp_exchanges_total", ["kind": record.kind.rawValue, "result": record.result.rawValue]).increment()
        histogram("netkeep_dhcp_exchange_duration_seconds", ["kind": record.kind.rawValue], Self.exchangeBuckets).record(record.seconds)
    }

    public func eventStreamReconnected() {
        counter("netkeep_docker_event_stream_reconnects_total").increment()
    }

    public func source(_ name: String, up: Bool) {
        gauge("netkeep_source_up", ["source": name]).set(Double(up ? 1 : 0))
    }

    /// The text format (version 0.0.4), every family with HELP and TYPE.
    public func render() -> String { registry.emitToString() }

    /// The content type of `render()`'s output over HTTP.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    // MARK: Registry shorthands (labels sorted: one series per label set)

    private func counter(_ name: String, _ labels: [String: String] = [:]) -> Counter {
        registry.makeCounter(descriptor: Self.descriptor(name), labels: sorted(labels))
    }

    private func gauge(_ name: String, _ labels: [String: String] = [:]) -> Gauge {
        registry.makeGauge(descriptor: Self.descriptor(name), labels: sorted(labels))
    }

    private func histogram(_ name: String, _ labels: [String: String], _ buckets: [Double]) -> ValueHistogram {
        registry.makeValueHistogram(descriptor: Self.descriptor(name), labels: sorted(labels), buckets: buckets)
    }

    private func sorted(_ labels: [String: String]) -> [(String, String)] { labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
}
