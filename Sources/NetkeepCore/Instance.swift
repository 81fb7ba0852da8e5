/// Which netkeep a labelled container is for. Every netkeep on a host (the
/// daemon under systemd, a second one with a state directory of its own, a
/// test run) reads the labels of every container of the engine; the label
/// `netkeep.instance=NAME` says which of them acts on it. A container
/// without that label, or with it empty, is the default instance's. Records
/// made by command (`netkeep attach`), by the Docker plugin or by CNI are not
/// labels: they belong to their state directory and need no instance.
///
/// One daemon per instance runs on a host (`DaemonLock`).
public struct Instance: Hashable, Sendable, CustomStringConvertible {
    public let name: String

    public static let `default` = Instance(checked: "default")
    public static let label = "netkeep.instance"
    public static let maxLength = 63

    init(checked name: String) { self.name = name }

    /// A name for `--instance`, a label value and a file name: 1-63 of
    /// `a-z 0-9 _ . -`, starting with a letter or digit.
    public init(parsing text: String) throws(InputError) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { throw InputError(object: "instance", cause: "is empty") }
        guard bytes.count <= Self.maxLength else {
            throw InputError(object: "instance \(quoted(text))", cause: "is \(bytes.count) bytes long; at most \(Self.maxLength)")
        }
        func allowed(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b == 0x5f || b == 0x2e || b == 0x2d }
        guard bytes.allSatisfy(allowed), let first = bytes.first, first != 0x5f, first != 0x2e, first != 0x2d else {
            throw InputError(object: "instance \(quoted(text))",
                             cause: "may hold only a-z, 0-9, '_', '.' and '-', and starts with a letter or a digit")
        }
        name = text
    }

    public var description: String { name }

    /// Whose a container is, by its labels; a failure when its
    /// `netkeep.instance` value is no instance name (then it is nobody's,
    /// and the default instance reports it).
    public static func of(labels: [String: String]) -> Result<Instance, LabelProblem> {
        guard let value = labels[label], !value.isEmpty else { return .success(.default) }
        do { return .success(try Instance(parsing: value)) } catch {
            return .failure(LabelProblem(key: label, value: value, cause: error.cause))
        }
    }
}
