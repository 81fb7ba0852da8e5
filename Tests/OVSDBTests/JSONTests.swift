@testable import OVSDB
import Testing

@Suite struct JSONTests {
    @Test func parsesAndSerialisesCanonically() throws {
        let text = #"{"b":[1,-2,3.5,"x\n\"y\"",true,false,null],"a":{"é":"\u00e9\ud83d\ude00"}}"#
        let value = try JSON.parse(text)
        #expect(value["a"]?["é"] == .string("é😀"))
        #expect(value["b"]?.arrayValue?[1] == .int(-2))
        #expect(value["b"]?.arrayValue?[2] == .double(3.5))
        #expect(value.description == #"{"a":{"é":"é😀"},"b":[1,-2,3.5,"x\n\"y\"",true,false,null]}"#)
        #expect(try JSON.parse(value.description) == value)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01x", "\"abc", "[1] [2]", "{\"a\":tru}", "\"\\ud800\"", "\"\u{01}\"", String(repeating: "[", count: 300)])
    func rejectsMalformed(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
    }

    @Test func framerSplitsBackToBackMessagesAcrossReads() throws {
        var framer = JSONStreamFramer()
        let stream = Array(#"{"id":1,"result":"a}b"}  {"id":2,"result":[{"x":"\"}"}]}"#.utf8)
        var messages: [JSON] = []
        for byte in stream {
            framer.append([byte])
            while let message = try framer.next() { messages.append(try JSON.parse(message)) }
        }
        #expect(messages.count == 2)
        #expect(messages[0]["result"] == .string("a}b"))
        #expect(messages[1]["id"] == .int(2))
    }

    @Test func framerRejectsNonObjects() {
        var framer = JSONStreamFramer()
        framer.append(Array("42".utf8))
        #expect(throws: JSONParseError.self) { _ = try framer.next() }
    }
}
