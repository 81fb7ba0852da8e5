import FoundationEssentials
import NetkeepCore

extension ReconcileReport {
    /// One line per action with its reason (and its outcome), then notices and a summary.
    public var text: String {
        var lines = declarations
        let outcomes = results.map { rs in rs.map { $0.error.map { "FAILED: \($0)" } ?? "done" } }
        if plan.actions.isEmpty {
            lines.append(plan.hasErrors ? "nothing done: see the errors below" : "nothing to do: the host matches the state")
        }
        for (i, action) in plan.actions.enumerated() {
            lines.append(action.summary + (outcomes.map { " — \($0[i])" } ?? ""))
        }
        for notice in plan.notices { lines.append("\(notice.severity == .error ? "error" : "note"): \(notice.message)") }
        for action in remaining { lines.append("still differs: \(action.summary)") }
        let verb = dryRun ? "planned" : "done"
        let done = results.map { $0.count - failed.count } ?? plan.actions.count
        lines.append("reconcile: \(done) action\(done == 1 ? "" : "s") \(verb)\(failed.isEmpty ? "" : ", \(failed.count) failed") (\(timings.summary))")
        return lines.joined(separator: "\n") + "\n"
    }

    struct ActionJSON: Encodable {
        var action: String
        var reason: String
        var detail: String
        var summary: String
        var container_id: String?
        var container_name: String?
        var ifname: String?
        var bridge: String?
        var port: String?
        var result: String?
        var error: String?
    }

    struct ReportJSON: Encodable {
        var dry_run: Bool
        var ok: Bool
        var actions: [ActionJSON]
        var notices: [[String: String]]
        var remaining: [String]
        var declarations: [String]
        var timings_ms: [String: Double]
    }

    public var json: String {
        func item(_ action: Action, _ result: ActionResult?) -> ActionJSON {
            let a = action.attachment
            var bridge = a?.bridge
            if case .removePort(_, let b, _) = action { bridge = b }
            return ActionJSON(action: action.kind, reason: action.reason.code, detail: action.reason.description, summary: action.summary,
                              container_id: a?.containerID, container_name: a?.containerName, ifname: a?.ifname, bridge: bridge,
                              port: action.port, result: result.map { $0.error == nil ? "done" : "failed" }, error: result?.error)
        }
        let body = ReportJSON(
            dry_run: dryRun, ok: exitCode == 0,
            actions: plan.actions.enumerated().map { item($1, results?[$0]) },
            notices: plan.notices.map { ["severity": $0.severity.rawValue, "message": $0.message] },
            remaining: remaining.map(\.summary), declarations: declarations,
            timings_ms: Dictionary(timings.values.map { ($0.0, ($0.1 * 100).rounded() / 100) }, uniquingKeysWith: +))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(body)) ?? Data("{}".utf8), as: UTF8.self) + "\n"
    }
}
