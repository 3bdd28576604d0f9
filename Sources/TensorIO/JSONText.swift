/// JSON text written straight into bytes, for the documents this package writes often: the
/// safetensors header and the compressed model's `stacks` metadata.
///
/// Foundation's `JSONSerialization` builds a tree of boxed values and, asked for sorted keys,
/// compares them with a locale-aware string comparison: 12 ms for the 100-tensor header of
/// all-MiniLM-L6-v2, paid once before and once after the layers, on one core. This writer
/// appends to a byte array as it goes; the caller decides the order of members, so the output is
/// deterministic without a sort.
///
/// ```swift
/// var json = JSONText()
/// json.beginObject()
/// json.key("shape"); json.value([2, 3])
/// json.key("name"); json.value("w\"1")
/// json.endObject()
/// // json.text == #"{"shape":[2,3],"name":"w\"1"}"#
/// ```
package struct JSONText: Sendable {
    /// The UTF-8 bytes written so far.
    package private(set) var bytes: [UInt8] = []
    /// Per open object or array: whether it holds a member already (a comma precedes the next).
    private var filled: [Bool] = []
    /// A key was written and its value is next (no comma before it).
    private var afterKey = false

    package init() {}

    /// The text written so far.
    package var text: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func separate() {
        if afterKey {
            afterKey = false
            return
        }
        if let last = filled.last {
            if last { bytes.append(UInt8(ascii: ",")) }
            filled[filled.count - 1] = true
        }
    }

    package mutating func beginObject() { open(UInt8(ascii: "{")) }
    package mutating func endObject() { close(UInt8(ascii: "}")) }
    package mutating func beginArray() { open(UInt8(ascii: "[")) }
    package mutating func endArray() { close(UInt8(ascii: "]")) }

    private mutating func open(_ bracket: UInt8) {
        separate()
        bytes.append(bracket)
        filled.append(false)
    }

    private mutating func close(_ bracket: UInt8) {
        precondition(filled.popLast() != nil && !afterKey, "JSONText: closing \(Character(Unicode.Scalar(bracket))) without an open one or after a key")
        bytes.append(bracket)
    }

    /// A member's key; its value comes next.
    package mutating func key(_ key: String) {
        precondition(!afterKey, "JSONText: two keys in a row")
        separate()
        appendQuoted(key)
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    package mutating func value(_ string: String) {
        separate()
        appendQuoted(string)
    }

    package mutating func value(_ integer: Int) {
        separate()
        bytes.append(contentsOf: String(integer).utf8)
    }

    /// A number in Swift's shortest round-trip form (`0.25`, `1e-05`); `null` when not finite, as
    /// JSON has no NaN or infinity.
    package mutating func value(_ number: Double) {
        separate()
        bytes.append(contentsOf: (number.isFinite ? number.description : "null").utf8)
    }

    package mutating func value(_ integers: [Int]) {
        beginArray()
        for integer in integers { value(integer) }
        endArray()
    }

    /// A value that is JSON text already (written by `JSONEncoder`, say), inserted as it is.
    package mutating func raw(_ json: some Collection<UInt8>) {
        separate()
        bytes.append(contentsOf: json)
    }

    /// `string` quoted, with `"`, `\` and the control characters escaped as RFC 8259 requires;
    /// everything else is written as its UTF-8 bytes.
    private mutating func appendQuoted(_ string: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: Array(#"\u00"#.utf8))
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
