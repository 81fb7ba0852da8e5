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

/// Quotes user-supplied text for an error message, escaping what is not printable.
public func quoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars.prefix(80) {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case " "..."~": out.unicodeScalars.append(scalar)
        default: out += "\\u{\(String(scalar.value, radix: 16))}"
        }
    }
    if text.unicodeScalars.count > 80 { out += "..." }
    return out + "\""
}
