/// A single-pass parser of a safetensors JSON header that builds the entries directly from the
/// bytes, so that its memory stays a small multiple of the header's size (a general JSON parser
/// builds a tree of boxed values first, many times the header's size).
///
/// Accepts exactly the JSON of the format: one object whose members are `"__metadata__"` (an
/// object of strings, or `null`) or tensors `{"dtype": …, "shape": [...], "data_offsets": [b, e]}`.
/// Unknown members of a tensor object are skipped, as the reference implementation does; a name
/// that appears twice is an error.
struct SafetensorsHeaderParser {
    static let format = "safetensors"
    /// Nesting deeper than this in a skipped value is refused (no recursion bombs).
    static let maximumDepth = 64

    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    struct Header {
        var metadata: [String: String] = [:]
        var entries: [String: SafetensorsFile.Entry] = [:]
    }

    func fail(_ problem: HeaderSyntaxProblem) -> TensorIOError {
        TensorIOError.malformedHeader(format: Self.format, problem: .jsonSyntax(problem, byte: position))
    }

    mutating func skipSpace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    mutating func peek() -> UInt8? {
        skipSpace()
        return position < bytes.count ? bytes[position] : nil
    }

    mutating func expect(_ byte: UInt8, _ what: @autoclosure () -> HeaderSyntaxProblem) throws {
        guard peek() == byte else { throw fail(what()) }
        position += 1
    }

    /// Calls `member` for each key of an object, positioned at the key's value.
    mutating func forEachMember(_ member: (inout SafetensorsHeaderParser, String) throws -> Void) throws {
        try expect(UInt8(ascii: "{"), .expected("'{'"))
        if peek() == UInt8(ascii: "}") { position += 1; return }
        while true {
            let key = try parseString()
            try expect(UInt8(ascii: ":"), .expected("':'"))
            try member(&self, key)
            switch peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return
            default: throw fail(.expected("',' or '}'"))
            }
        }
    }

    mutating func parse(dataSize: Int) throws -> Header {
        var header = Header()
        try forEachMember { parser, name in
            if name == "__metadata__" {
                if parser.peek() == UInt8(ascii: "n") { try parser.literal("null"); return }
                try parser.forEachMember { parser, key in
                    guard parser.peek() == UInt8(ascii: "\"") else { throw parser.fail(.metadataNotString(key: key)) }
                    header.metadata[key] = try parser.parseString()
                }
                return
            }
            guard header.entries[name] == nil else { throw parser.fail(.repeatedTensor(name)) }
            header.entries[name] = try parser.parseEntry(name: name, dataSize: dataSize)
        }
        skipSpace()
        guard position == bytes.count else { throw fail(.trailingText) }
        return header
    }

    mutating func parseEntry(name: String, dataSize: Int) throws -> SafetensorsFile.Entry {
        var dtypeName: String?, shape: [Int]?, offsets: [Int]?
        guard peek() == UInt8(ascii: "{") else { throw fail(.entryNotObject(tensor: name)) }
        try forEachMember { parser, key in
            switch key {
            case "dtype":
                guard parser.peek() == UInt8(ascii: "\"") else { throw parser.fail(.dtypeNotString(tensor: name)) }
                dtypeName = try parser.parseString()
            case "shape": shape = try parser.parseIntegers(key: "shape", tensor: name)
            case "data_offsets": offsets = try parser.parseIntegers(key: "data_offsets", tensor: name)
            default: try parser.skipValue(depth: 0)
            }
        }
        guard let dtypeName, let shape, let offsets, offsets.count == 2 else {
            throw TensorIOError.malformedHeader(format: Self.format, problem: .incompleteEntry(tensor: name))
        }
        guard let dtype = SafetensorsFile.dtypes[dtypeName] else { throw TensorIOError.unsupportedDType(format: Self.format, dtype: dtypeName) }
        let count = try validatedByteCount(shape: shape, dtype: dtype, format: Self.format)
        guard offsets[1] >= offsets[0], offsets[1] <= dataSize else {
            throw TensorIOError.invalidOffsets(name: name, problem: .outsideData(start: offsets[0], end: offsets[1], dataSize: dataSize))
        }
        guard offsets[1] - offsets[0] == count else {
            throw TensorIOError.sizeMismatch(name: name, expectedBytes: count, actualBytes: offsets[1] - offsets[0])
        }
        return SafetensorsFile.Entry(dtype: dtype, shape: shape, byteRange: offsets[0]..<offsets[1])
    }

    /// A JSON array of non-negative integers below 2⁶² (shapes and offsets).
    mutating func parseIntegers(key: String, tensor: String) throws -> [Int] {
        try expect(UInt8(ascii: "["), .arrayNotOpened(key: key, tensor: tensor))
        var values: [Int] = []
        if peek() == UInt8(ascii: "]") { position += 1; return values }
        while true {
            skipSpace()
            var value = 0, digits = 0
            while position < bytes.count, (0x30...0x39).contains(bytes[position]) {
                let digit = Int(bytes[position] - 0x30)
                guard value <= ((1 << 62) - 1 - digit) / 10 else { throw fail(.integerTooLarge(key: key, tensor: tensor, bits: 62)) }
                value = value * 10 + digit
                digits += 1
                position += 1
            }
            if position < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "-")].contains(bytes[position]) {
                throw fail(.notNonNegativeInteger(key: key, tensor: tensor))
            }
            guard digits > 0 else { throw fail(.notNonNegativeInteger(key: key, tensor: tensor)) }
            values.append(value)
            switch peek() {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return values
            default: throw fail(.arrayNotContinued(key: key, tensor: tensor))
            }
        }
    }

    mutating func literal(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count,
              (0..<count).allSatisfy({ bytes[position + $0] == word.utf8Start[$0] }) else { throw fail(.expected("\(word)")) }
        position += count
    }

    /// Skips any JSON value (a member of a tensor object that the format does not define).
    mutating func skipValue(depth: Int) throws {
        guard depth < Self.maximumDepth else { throw fail(.nestedTooDeep(limit: Self.maximumDepth)) }
        switch peek() {
        case UInt8(ascii: "\""): _ = try parseString()
        case UInt8(ascii: "{"): try forEachMember { parser, _ in try parser.skipValue(depth: depth + 1) }
        case UInt8(ascii: "["):
            position += 1
            if peek() == UInt8(ascii: "]") { position += 1; return }
            while true {
                try skipValue(depth: depth + 1)
                switch peek() {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "]"): position += 1; return
                default: throw fail(.expected("',' or ']'"))
                }
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case let byte? where byte == UInt8(ascii: "-") || (0x30...0x39).contains(byte):
            let start = position
            while position < bytes.count, "+-.eE0123456789".utf8.contains(bytes[position]) { position += 1 }
            guard Double(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)) != nil else {
                throw fail(.malformedNumber)
            }
        default: throw fail(.expected("a JSON value"))
        }
    }

    /// A JSON string, with escapes decoded; the raw bytes must be valid UTF-8.
    mutating func parseString() throws -> String {
        try expect(UInt8(ascii: "\""), .expected("a string"))
        let start = position
        // Fast path: no escapes.
        while position < bytes.count, bytes[position] != UInt8(ascii: "\""), bytes[position] != UInt8(ascii: "\\") {
            guard bytes[position] >= 0x20 else { throw fail(.controlCharacter) }
            position += 1
        }
        guard position < bytes.count else { throw fail(.unterminatedString) }
        var utf8 = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<position]))
        while bytes[position] != UInt8(ascii: "\"") {
            if bytes[position] == UInt8(ascii: "\\") {
                position += 1
                guard position < bytes.count else { throw fail(.unterminatedString) }
                let escape = bytes[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hexQuad()
                    if (0xD800..<0xDC00).contains(scalar) {
                        try literal("\\u")
                        let low = try hexQuad()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail(.unpairedSurrogate) }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw fail(.unpairedSurrogate) }
                    utf8.append(contentsOf: String(Character(unicode)).utf8)
                default: throw fail(.unknownEscape)
                }
            } else {
                guard bytes[position] >= 0x20 else { throw fail(.controlCharacter) }
                utf8.append(bytes[position])
                position += 1
            }
            guard position < bytes.count else { throw fail(.unterminatedString) }
        }
        position += 1
        guard let string = String(validating: utf8, as: UTF8.self) else { throw fail(.invalidUTF8String) }
        return string
    }

    mutating func hexQuad() throws -> UInt32 {
        guard position + 4 <= bytes.count else { throw fail(.truncatedUnicodeEscape) }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case 0x30...0x39: digit = byte - 0x30
            case 0x41...0x46: digit = byte - 0x41 + 10
            case 0x61...0x66: digit = byte - 0x61 + 10
            default: throw fail(.malformedUnicodeEscape)
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }
}
