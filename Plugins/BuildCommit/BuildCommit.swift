import Foundation
import PackagePlugin

/// Stamps the commit a build comes from into the `netkeep` executable, for
/// `netkeep --version` and the metrics' build_info, whatever builds it
/// (`swift build`, scripts/install, scripts/package, scripts/demo).
///
/// SwiftPM plans a build once and reuses the plan, so the commit is not read
/// here but by the `stamp-commit` tool, which the build runs again whenever
/// git's HEAD, its reflog or its index changes (a commit, a checkout, an add).
@main
struct BuildCommit: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let package = context.package.directoryURL
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("BuildCommit.swift")
        let inputs = Self.gitDirectory(of: package).map { git in
            ["HEAD", "logs/HEAD", "index"].map { git.appendingPathComponent($0) }
                .filter { FileManager.default.fileExists(atPath: $0.path) }
        } ?? []
        return [.buildCommand(displayName: "Stamping the build's commit", executable: try context.tool(named: "stamp-commit").url,
                              arguments: [package.path, output.path], inputFiles: inputs, outputFiles: [output])]
    }

    /// `.git`, or where a worktree's `.git` file points.
    static func gitDirectory(of package: URL) -> URL? {
        let dotGit = package.appendingPathComponent(".git")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dotGit.path, isDirectory: &isDirectory) else { return nil }
        if isDirectory.boolValue { return dotGit }
        guard let text = try? String(contentsOf: dotGit, encoding: .utf8), text.hasPrefix("gitdir: ") else { return nil }
        let path = text.dropFirst(8).trimmingCharacters(in: .whitespacesAndNewlines)
        return path.hasPrefix("/") ? URL(fileURLWithPath: path) : package.appendingPathComponent(path)
    }
}
