/// Validation of the names netkeep accepts, and the names it derives.
///
/// Names reach the kernel, OVSDB and `/var/run/netns`; only a conservative
/// character set is accepted so that no name can be read as a path, an option
/// or a shell word by any tool an operator later runs on it.
public enum Names {
    /// Linux IFNAMSIZ minus the terminating NUL.
    public static let maxInterfaceNameLength = 15

    static func isSafeCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "_" || c == "." || c == "-")
    }

    /// An interface name as the kernel accepts it: 1-15 bytes of `[A-Za-z0-9_.-]`,
    /// not `.` or `..`, not starting with `-`.
    public static func interface(_ name: String, role: String = "interface name") throws(InputError) -> String {
        let object = "\(role) \(quoted(name))"
        guard !name.isEmpty else { throw InputError(object: object, cause: "is empty") }
        guard name.utf8.count <= maxInterfaceNameLength else {
            throw InputError(object: object, cause: "is \(name.utf8.count) bytes long; Linux allows at most \(maxInterfaceNameLength) (IFNAMSIZ)")
        }
        guard name.allSatisfy(isSafeCharacter) else {
            throw InputError(object: object, cause: "may contain only letters, digits, '_', '.' and '-'")
        }
        guard name != ".", name != "..", name.first != "-" else {
            throw InputError(object: object, cause: "is not a usable interface name")
        }
        return name
    }

    /// A bridge name: the same rules as an interface name (OVS creates a device of that name).
    public static func bridge(_ name: String) throws(InputError) -> String {
        try interface(name, role: "bridge")
    }

    /// The longest container name netkeep keeps. Docker itself sets no limit
    /// (dockerd 20.10 took a 70,000-character name), but the container's
    /// /var/run/netns link is named after it: a file name, at most 255 bytes.
    public static let maxContainerNameLength = 255

    /// A container as the user names it: a Docker name (`[A-Za-z0-9][A-Za-z0-9_.-]*`,
    /// optionally with a leading `/`) or a full or abbreviated id.
    public static func containerReference(_ ref: String) throws(InputError) -> String {
        try containerName(ref.hasPrefix("/") ? String(ref.dropFirst()) : ref, object: "container \(quoted(ref))")
    }

    /// A container name as Docker reports it (without the leading `/`).
    public static func containerName(_ name: String, object: String? = nil) throws(InputError) -> String {
        let object = object ?? "container name \(quoted(name))"
        guard !name.isEmpty else { throw InputError(object: object, cause: "is empty") }
        guard name.utf8.count <= maxContainerNameLength else {
            throw InputError(object: object, cause: "is \(name.utf8.count) bytes long; netkeep accepts at most \(maxContainerNameLength) (its /var/run/netns link is named after it)")
        }
        guard let first = name.first, first.isASCII, first.isLetter || first.isNumber else {
            throw InputError(object: object, cause: "must start with a letter or digit")
        }
        guard name.allSatisfy(isSafeCharacter) else {
            throw InputError(object: object, cause: "may contain only letters, digits, '_', '.' and '-'")
        }
        return name
    }

    /// Whether `ref` (from the state file, OVSDB, `hook` input or the command
    /// line) may be sent to Docker and its answer count as evidence: a name
    /// or id as Docker makes them, without a leading `/`. Nothing else is.
    public static func isContainerReference(_ ref: String) -> Bool {
        !ref.hasPrefix("/") && (try? containerName(ref)) != nil
    }

    /// The host end of an attachment's veth: `nk` and 12 hex digits derived from
    /// the full container id and the interface name, so it is the same every
    /// time it is recreated and fits IFNAMSIZ.
    public static func hostInterface(containerID: String, ifname: String) -> String {
        "nk" + String(attachmentID(containerID: containerID, ifname: ifname).prefix(12))
    }

    /// The attachment's identity: 16 hex digits of FNV-1a over `containerID/ifname`.
    public static func attachmentID(containerID: String, ifname: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(containerID)/\(ifname)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return (0..<8).reversed().map { hexByte(UInt8(truncatingIfNeeded: hash >> (8 * UInt64($0)))) }.joined()
    }
}
