import NetkeepCore
import Testing

/// What a message shows of given text: printable ASCII as it is, the rest in
/// JSON's escapes (never Swift's `\u{a}`), cut after 80 characters.
@Suite struct QuotedTests {
    @Test(arguments: [
        ("plain", #""plain""#),
        ("a\"b\\c", #""a\"b\\c""#),
        ("x\r\nforged", #""x\r\nforged""#),
        ("tab\there", #""tab\there""#),
        ("\u{1b}[31m", #""\u001b[31m""#),
        ("é", #""\u00e9""#),
        ("\u{202e}evil", #""\u202eevil""#),
        ("👍", #""\U0001f44d""#),
        ("\0", #""\u0000""#),
    ])
    func escapes(_ text: String, _ expected: String) {
        #expect(quoted(text) == expected)
    }

    @Test func longTextIsCut() {
        let q = quoted(String(repeating: "a", count: 81))
        #expect(q == "\"" + String(repeating: "a", count: 80) + "...\"")
        #expect(!quoted(String(repeating: "\n", count: 1000)).contains("\n"))
    }
}
