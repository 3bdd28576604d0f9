import Foundation
import Testing
@testable import TensorIO

@Suite("JSON text writer")
struct JSONTextTests {
    /// Every string that needs escaping, parsed back by Foundation to the same value.
    @Test func stringsAndNumbersParseBackToTheirValues() throws {
        let strings = ["plain", "quote \" and backslash \\", "slash /", "tab\tnewline\nreturn\r", "\u{01}\u{1F}\u{7F}", "é 😀", ""]
        let numbers: [Double] = [0, -0.5, 1e-05, 1.0 / 3, 6.02214076e23, .leastNonzeroMagnitude]
        var json = JSONText()
        json.beginObject()
        json.key("strings")
        json.beginArray()
        for string in strings { json.value(string) }
        json.endArray()
        json.key("numbers")
        json.beginArray()
        for number in numbers { json.value(number) }
        json.endArray()
        json.key("not finite"); json.beginArray(); json.value(Double.nan); json.value(-Double.infinity); json.endArray()
        json.key("integers"); json.value([Int.min, -1, 0, Int.max])
        json.key("empty"); json.beginObject(); json.endObject()
        json.key("raw"); json.raw(Array(#"{"a":[true,null]}"#.utf8))
        json.endObject()

        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any])
        #expect(object["strings"] as? [String] == strings)
        let parsed = try #require(object["numbers"] as? [Any]).map { ($0 as! NSNumber).doubleValue }
        #expect(parsed == numbers, "shortest round-trip forms parse back exactly")
        #expect((object["not finite"] as? [Any])?.allSatisfy { $0 is NSNull } == true)
        #expect((object["integers"] as? [Any])?.map { ($0 as! NSNumber).int64Value } == [Int64.min, -1, 0, Int64.max])
        #expect((object["empty"] as? [String: Any])?.isEmpty == true)
        #expect(((object["raw"] as? [String: Any])?["a"] as? [Any])?.count == 2)
        #expect(json.text.hasPrefix(#"{"strings":["plain","quote \" and backslash \\","slash /","tab\tnewline\nreturn\r","\u0001\u001f"#))
    }

    /// The header lists `__metadata__` first and the tensors in data order, whatever their names.
    @Test func headerListsMetadataThenTensorsInDataOrder() throws {
        var writer = SafetensorsWriter()
        writer.metadata = ["z": "last", "a": "first \"quoted\""]
        for name in ["layer.10.w", "layer.9.w", "B", "a/b"] {
            try writer.addRaw(name, dtype: .float32, shape: [1], bytes: Data(count: 4))
        }
        let json = String(decoding: try writer.headerJSON(), as: UTF8.self)
        #expect(json == #"{"__metadata__":{"a":"first \"quoted\"","z":"last"},"#
            + #""layer.10.w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"layer.9.w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"#
            + #""B":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"a/b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#)
        let file = try SafetensorsFile(data: try writer.encoded())
        #expect(file.metadata == writer.metadata)
        #expect(file.names == ["layer.10.w", "layer.9.w", "B", "a/b"])
    }
}
