#if canImport(Glibc)
import Glibc
#endif
import NetkeepCore

/// Runs a program with bytes on its stdin and collects its stdout, as a CNI
/// runtime runs a plugin (netkeep delegates IPAM this way).
public enum Subprocess {
    public struct Outcome: Sendable {
        public var status: Int32
        public var stdout: [UInt8]
    }

    /// `path` with `arguments` (argv[1...]) and exactly `environment`. stdin is
    /// written whole before stdout is read: meant for small inputs (a config),
    /// which a program reads before it answers. stderr is inherited.
    public static func run(_ path: String, arguments: [String] = [], environment: [String: String],
                           stdin input: [UInt8]) throws(SystemError) -> Outcome {
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0]
        guard pipe(&inPipe) == 0 else { throw SystemError("pipe", path, errno: errno) }
        guard pipe(&outPipe) == 0 else {
            let saved = errno
            close(inPipe[0]); close(inPipe[1])
            throw SystemError("pipe", path, errno: saved)
        }
        // Only the dup2'd copies reach the program.
        for fd in inPipe + outPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, envp)
        close(inPipe[0])
        close(outPipe[1])
        guard spawned == 0 else {
            close(inPipe[1]); close(outPipe[0])
            throw SystemError("spawn", path, errno: spawned)
        }
        writeAll(input, to: inPipe[1])  // stops early when the program closed its stdin: it reads no more
        close(inPipe[1])
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(outPipe[0], $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            output += chunk[..<n]
        }
        close(outPipe[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw SystemError("waitpid", path, errno: errno) }
        }
        // WIFEXITED / WEXITSTATUS, or 128 + the signal.
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Outcome(status: exit, stdout: output)
    }
}
