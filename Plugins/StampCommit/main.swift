#if canImport(Glibc)
import Glibc
#endif

// stamp-commit PACKAGE_DIR OUTPUT: writes `let buildCommit = "<commit>"` to
// OUTPUT, the commit being git's HEAD in PACKAGE_DIR (12 digits), "-dirty"
// when tracked files differ from it, "unknown" without git or a checkout.
// The file is left alone when it already says so: nothing compiles again.

/// git's standard output with the arguments, or nil when it cannot run or fails.
func git(_ arguments: [String]) -> String? {
    var pipe: [Int32] = [0, 0]
    guard Glibc.pipe(&pipe) == 0 else { return nil }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, pipe[1], 1)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addclose(&actions, pipe[0])
    let argv = (["git"] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawnp(&pid, "git", &actions, nil, argv, environ)
    close(pipe[1])
    defer { close(pipe[0]) }
    guard spawned == 0 else { return nil }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(pipe[0], &buffer, buffer.count)
        if n > 0 { output += buffer[..<n]; continue }
        if n < 0 && errno == EINTR { continue }
        break
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    guard status == 0 else { return nil }
    return String(decoding: output, as: UTF8.self).filter { !$0.isWhitespace }
}

func fail(_ message: String, status: Int32) -> Never {
    let line = "stamp-commit: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(status)
}

let arguments = CommandLine.arguments
guard arguments.count == 3 else { fail("usage: stamp-commit PACKAGE_DIR OUTPUT", status: 64) }
let package = arguments[1], outputPath = arguments[2]
var commit = "unknown"
if let head = git(["-C", package, "rev-parse", "--short=12", "HEAD"]), !head.isEmpty, head.allSatisfy(\.isHexDigit) {
    let dirty = git(["-C", package, "status", "--porcelain", "--untracked-files=no"]).map { !$0.isEmpty } ?? false
    commit = head + (dirty ? "-dirty" : "")
}
let text = "/// Written by Plugins/StampCommit at build time.\nlet buildCommit = \"\(commit)\"\n"
if let file = fopen(outputPath, "r") {
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = fread(&buffer, 1, buffer.count, file)
    fclose(file)
    if String(decoding: buffer[..<n], as: UTF8.self) == text { exit(0) }
}
let temporary = outputPath + ".tmp"
guard let file = fopen(temporary, "w"), fputs(text, file) >= 0, fclose(file) == 0, rename(temporary, outputPath) == 0 else {
    fail("cannot write \(outputPath): \(String(cString: strerror(errno)))", status: 1)
}
