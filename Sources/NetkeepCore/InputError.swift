/// Bad input: names the object and says what is wrong with it.
public struct InputError: Error, Equatable, Sendable, CustomStringConvertible {
    public let object: String
    public let cause: String

    public init(object: String, cause: String) {
        self.object = object
        self.cause = cause
    }

    public var description: String { "\(object): \(cause)" }
}

/// Quotes user-supplied text for an error message, escaping what is not
/// printable ASCII the way JSON, C and Python write it (`\n`, `\t`, `\u00e9`,
/// `\U0001f468`), so that no control character or lookalike reaches a
/// terminal or a log line, and the text is cut after 80 characters.
public func quoted(_ text: String) -> String {
    var out = "\""
    func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
    for scalar in text.unicodeScalars.prefix(80) {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case " "..."~": out.unicodeScalars.append(scalar)
        default: out += scalar.value <= 0xFFFF ? "\\u" + hex(scalar.value, digits: 4) : "\\U" + hex(scalar.value, digits: 8)
        }
    }
    if text.unicodeScalars.count > 80 { out += "..." }
    return out + "\""
}
