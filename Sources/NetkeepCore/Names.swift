/// Validation of the names netkeep accepts, and the names it derives.
///
/// Names reach the kernel, OVSDB and `/var/run/netns`; only a conservative
/// character set is accepted so that no name can be read as a path, an option
/// or a shell word by any tool an operator later runs on it.
///
/// The checks run on every load and save of the state file, so they look at
/// UTF-8 bytes and build a message only for a name that fails.
public enum Names {
    /// Linux IFNAMSIZ minus the terminating NUL.
    public static let maxInterfaceNameLength = 15

    /// `[A-Za-z0-9_.-]`. A string made only of these bytes is made only of
    /// these characters, each its own Character: none of them combines.
    static func isSafeByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    static func isAlphanumericByte(_ byte: UInt8) -> Bool {
        isSafeByte(byte) && byte != UInt8(ascii: "_") && byte != UInt8(ascii: ".") && byte != UInt8(ascii: "-")
    }

    /// Why a name is refused; the message is made from it only then.
    enum Fault: Equatable {
        case empty
        case tooLong(bytes: Int)
        case badStart
        case badCharacter
        /// `.` or `..`.
        case reserved
    }

    static let characterSetCause = "may contain only letters, digits, '_', '.' and '-'"

    static func interfaceFault(_ name: String) -> Fault? {
        withBytes(name) { bytes in
            guard let first = bytes.first else { return .empty }
            guard bytes.count <= maxInterfaceNameLength else { return .tooLong(bytes: bytes.count) }
            guard bytes.allSatisfy(isSafeByte) else { return .badCharacter }
            if first == UInt8(ascii: "-") { return .badStart }
            if first == UInt8(ascii: "."), bytes.count == 1 || (bytes.count == 2 && bytes[1] == UInt8(ascii: ".")) { return .reserved }
            return nil
        }
    }

    /// An interface name as the kernel accepts it: 1-15 bytes of `[A-Za-z0-9_.-]`,
    /// not `.` or `..`, not starting with `-`.
    public static func interface(_ name: String, role: String = "interface name") throws(InputError) -> String {
        guard let fault = interfaceFault(name) else { return name }
        let cause = switch fault {
        case .empty: "is empty"
        case .tooLong(let bytes): "is \(bytes) bytes long; Linux allows at most \(maxInterfaceNameLength) (IFNAMSIZ)"
        case .badCharacter: characterSetCause
        case .badStart, .reserved: "is not a usable interface name"
        }
        throw InputError(object: "\(role) \(quoted(name))", cause: cause)
    }

    /// A bridge name: the same rules as an interface name (OVS creates a device of that name).
    public static func bridge(_ name: String) throws(InputError) -> String {
        try interface(name, role: "bridge")
    }

    /// The longest container name netkeep keeps. Docker itself sets no limit
    /// (dockerd 20.10 took a 70,000-character name), but the container's
    /// /var/run/netns link is named after it: a file name, at most 255 bytes.
    public static let maxContainerNameLength = 255

    static func containerNameFault(_ name: String) -> Fault? {
        let fault: Fault? = withBytes(name) { bytes in
            guard let first = bytes.first else { return .empty }
            guard bytes.count <= maxContainerNameLength else { return .tooLong(bytes: bytes.count) }
            guard isAlphanumericByte(first) else { return .badStart }
            return bytes.allSatisfy(isSafeByte) ? nil : .badCharacter
        }
        // The rule is on the first Character: a letter with a combining mark is not an ASCII letter.
        if fault == .badCharacter, name.first!.utf8.count > 1 { return .badStart }
        return fault
    }

    static func containerNameError(_ fault: Fault, object: String) -> InputError {
        let cause = switch fault {
        case .empty: "is empty"
        case .tooLong(let bytes): "is \(bytes) bytes long; netkeep accepts at most \(maxContainerNameLength) (its /var/run/netns link is named after it)"
        case .badStart, .reserved: "must start with a letter or digit"
        case .badCharacter: characterSetCause
        }
        return InputError(object: object, cause: cause)
    }

    /// A container as the user names it: a Docker name (`[A-Za-z0-9][A-Za-z0-9_.-]*`,
    /// optionally with a leading `/`) or a full or abbreviated id.
    public static func containerReference(_ ref: String) throws(InputError) -> String {
        let name = ref.hasPrefix("/") ? String(ref.dropFirst()) : ref
        if let fault = containerNameFault(name) { throw containerNameError(fault, object: "container \(quoted(ref))") }
        return name
    }

    /// A container name as Docker reports it (without the leading `/`).
    public static func containerName(_ name: String, object: String? = nil) throws(InputError) -> String {
        if let fault = containerNameFault(name) { throw containerNameError(fault, object: object ?? "container name \(quoted(name))") }
        return name
    }

    /// Whether `ref` (from the state file, OVSDB, `hook` input or the command
    /// line) may be sent to Docker and its answer count as evidence: a name
    /// or id as Docker makes them, without a leading `/`. Nothing else is.
    public static func isContainerReference(_ ref: String) -> Bool {
        !ref.hasPrefix("/") && containerNameFault(ref) == nil
    }

    /// 64 hex digits, as a full container id is recorded.
    static func isFullContainerID(_ id: String) -> Bool {
        guard id.utf8.count == 64 else { return false }
        if withBytes(id, { $0.allSatisfy(isHexByte) }) { return true }
        // Character.isHexDigit, the rule's first form, also takes fullwidth
        // digits (U+FF10...); other strings keep it so the accepted set is unchanged.
        return id.allSatisfy(\.isHexDigit)
    }

    /// The host end of an attachment's veth: `nk` and 12 hex digits derived from
    /// the full container id and the interface name, so it is the same every
    /// time it is recreated and fits IFNAMSIZ.
    public static func hostInterface(containerID: String, ifname: String) -> String {
        hex(attachmentHash(containerID: containerID, ifname: ifname), digits: 12, after: "nk")
    }

    /// The attachment's identity: 16 hex digits of FNV-1a over `containerID/ifname`.
    public static func attachmentID(containerID: String, ifname: String) -> String {
        hex(attachmentHash(containerID: containerID, ifname: ifname), digits: 16)
    }

    /// Whether `id` is `attachmentID(containerID:ifname:)`, without making that string.
    static func isAttachmentID(_ id: String, containerID: String, ifname: String) -> Bool {
        guard id.utf8.count == 16 else { return false }
        let hash = attachmentHash(containerID: containerID, ifname: ifname)
        return withBytes(id) { bytes in bytes.indices.allSatisfy { bytes[$0] == hexDigit(hash, at: $0) } }
    }

    static func attachmentHash(containerID: String, ifname: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func add(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        withBytes(containerID) { for byte in $0 { add(byte) } }
        add(UInt8(ascii: "/"))
        withBytes(ifname) { for byte in $0 { add(byte) } }
        return hash
    }

    /// The string's UTF-8 bytes as one buffer: a native string's own storage,
    /// so loops over it run without the per-byte index checks of `utf8`.
    static func withBytes<R>(_ string: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        var string = string
        return string.withUTF8(body)
    }

    /// The `i`th hex digit (from the most significant) of `value`, lower case.
    static func hexDigit(_ value: UInt64, at i: Int) -> UInt8 {
        let nibble = UInt8(truncatingIfNeeded: value >> UInt64(60 - 4 * i)) & 0x0f
        return nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    /// `prefix` and the first `digits` hex digits of `value`, written into the string's own storage.
    static func hex(_ value: UInt64, digits: Int, after prefix: StaticString = "") -> String {
        prefix.withUTF8Buffer { head in
            String(unsafeUninitializedCapacity: head.count + digits) { buffer in
                var n = 0
                for byte in head {
                    buffer[n] = byte
                    n += 1
                }
                for i in 0..<digits {
                    buffer[n] = hexDigit(value, at: i)
                    n += 1
                }
                return n
            }
        }
    }

    static func isHexByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"): true
        default: false
        }
    }
}
