/// The Docker engine that answered, as `GET /info` names it. Evidence that a
/// container is gone counts only from the engine the records were made with:
/// another dockerd on the same socket, the same one with a changed data root,
/// or a proxy answering 404 to everything knows nothing of our containers.
public struct EngineIdentity: Codable, Hashable, Sendable, CustomStringConvertible {
    /// `ID` of `GET /info`: stable for one engine across restarts.
    public var id: String
    /// `DockerRootDir`: the same engine ID over another data root has other containers.
    public var rootDir: String

    public init(id: String, rootDir: String) {
        self.id = id
        self.rootDir = rootDir
    }

    /// An engine that does not say who it is cannot vouch for anything.
    public var isUsable: Bool { !id.isEmpty && !rootDir.isEmpty }

    public var description: String { "\(quoted(String(id.prefix(40)))) at \(quoted(rootDir))" }

    enum CodingKeys: String, CodingKey {
        case id
        case rootDir = "root_dir"
    }
}

/// A network namespace as the kernel names it: device and inode of its nsfs
/// file. PIDs are reused; this is not, while the namespace lives.
public struct NamespaceID: Hashable, Sendable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    public var description: String { "net:[\(inode)]" }
}
