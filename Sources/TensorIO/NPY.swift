import Foundation
import TensorModule

/// The header of a `.npy` file: dtype, byte order, memory order and shape.
public struct NPYHeader: Sendable, Equatable {
    /// The element type.
    public var dtype: DType
    /// Whether the elements are big-endian.
    public var bigEndian: Bool
    /// Whether the data is in Fortran (column-major) order.
    public var fortranOrder: Bool
    /// The shape; empty for a 0-d array.
    public var shape: [Int]
    /// The offset of the data in the file.
    public var dataOffset: Int
}

extension NPYHeader {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
    /// The longest header dictionary read, in bytes: NumPy's `max_header_size` default, so that a
    /// file's header can never take more memory than NumPy would give it.
    public static let maximumHeaderLength = 10_000

    /// Parses the preamble and header dictionary of a `.npy` file (format versions 1.0, 2.0, 3.0).
    ///
    /// - Throws: ``TensorIOError`` for bad magic, an unknown version, a header length beyond the
    ///   file or above ``maximumHeaderLength``, a malformed dictionary, an unsupported dtype or an
    ///   invalid shape.
    public init(parsing bytes: UnsafeRawBufferPointer) throws {
        let format = "npy"
        guard bytes.count >= 10, Array(bytes[0..<6]) == Self.magic else { throw TensorIOError.badMagic(format: format) }
        let (major, minor) = (bytes[6], bytes[7])
        let lengthSize: Int
        switch (major, minor) {
        case (1, 0): lengthSize = 2
        case (2, 0), (3, 0): lengthSize = 4
        default: throw TensorIOError.unsupportedVersion(format: format, version: "\(major).\(minor)")
        }
        guard bytes.count >= 8 + lengthSize else { throw TensorIOError.headerLengthOutOfRange(format: format, length: 0, fileSize: bytes.count) }
        var length = 0
        for k in 0..<lengthSize { length |= Int(bytes[8 + k]) << (8 * k) }
        let start = 8 + lengthSize
        guard length <= Self.maximumHeaderLength else {
            throw TensorIOError.malformedHeader(format: format, problem: .tooLong(length: UInt64(length), limit: Self.maximumHeaderLength))
        }
        guard length <= bytes.count - start else {
            throw TensorIOError.headerLengthOutOfRange(format: format, length: length, fileSize: bytes.count)
        }
        let headerBytes = Array(bytes[start..<(start + length)])
        let text: String
        if major == 3 {
            guard let decoded = String(validating: headerBytes, as: UTF8.self) else {
                throw TensorIOError.malformedHeader(format: format, problem: .notUTF8)
            }
            text = decoded
        } else {
            text = String(headerBytes.map { Character(Unicode.Scalar($0)) })  // Latin-1
        }
        var parser = PythonLiteralParser(text)
        let dictionary = try parser.parseDictionary()
        guard case let .string(descr)? = dictionary["descr"] else {
            throw TensorIOError.malformedHeader(format: format, problem: .missingKey("descr", kind: "string"))
        }
        guard case let .bool(fortran)? = dictionary["fortran_order"] else {
            throw TensorIOError.malformedHeader(format: format, problem: .missingKey("fortran_order", kind: "boolean"))
        }
        guard case let .tuple(shape)? = dictionary["shape"] else {
            throw TensorIOError.malformedHeader(format: format, problem: .missingKey("shape", kind: "tuple"))
        }
        (self.dtype, self.bigEndian) = try Self.parseDescr(descr)
        _ = try validatedByteCount(shape: shape, dtype: dtype, format: format)
        self.fortranOrder = fortran
        self.shape = shape
        self.dataOffset = start + length
    }

    /// NumPy's `descr` string, e.g. `<f4`, `>i8`, `|u1`, `|b1`.
    static func parseDescr(_ descr: String) throws -> (DType, bigEndian: Bool) {
        let characters = Array(descr)
        guard characters.count >= 2 else { throw TensorIOError.unsupportedDType(format: "npy", dtype: descr) }
        var bigEndian = false
        var body = Substring(descr)
        switch characters[0] {
        case "<", "|", "=": body = body.dropFirst()
        case ">": bigEndian = true; body = body.dropFirst()
        default: break
        }
        let table: [String: DType] = [
            "f2": .float16, "f4": .float32, "f8": .float64, "i1": .int8, "i2": .int16, "i4": .int32, "i8": .int64,
            "u1": .uint8, "u2": .uint16, "u4": .uint32, "u8": .uint64, "b1": .bool, "?": .bool,
        ]
        guard let dtype = table[String(body)] else { throw TensorIOError.unsupportedDType(format: "npy", dtype: descr) }
        return (dtype, bigEndian && dtype.size > 1)
    }
}

extension Tensor {
    /// Decodes a `.npy` file held in memory (format 1.0, 2.0 or 3.0; little- or big-endian
    /// `f2`, `f4`, `f8`; integer and boolean types converted; C or Fortran order; 0-d arrays).
    ///
    /// ```swift
    /// let x = try Tensor<Float>(npyData: Data(contentsOf: url))
    /// ```
    ///
    /// - Throws: ``TensorIOError`` for a malformed header or truncated data.
    public init(npyData data: Data) throws {
        self = try data.withUnsafeBytes { bytes in
            let header = try NPYHeader(parsing: bytes)
            let count = header.shape.reduce(1, *)
            let needed = count * header.dtype.size
            let available = bytes.count - header.dataOffset
            guard available >= needed else {
                throw TensorIOError.truncatedData(format: "npy", expectedBytes: needed, actualBytes: available)
            }
            let body = UnsafeRawBufferPointer(rebasing: bytes[header.dataOffset..<(header.dataOffset + needed)])
            let scalars = decodeElements(body, dtype: header.dtype, bigEndian: header.bigEndian, count: count, as: Scalar.self)
            if header.fortranOrder && header.shape.count > 1 {
                let reversed = Array(header.shape.reversed())
                let columnMajor = try Tensor(shape: reversed, scalars: scalars)
                return try columnMajor.transposed(permutation: Array((0..<reversed.count).reversed()))
            }
            return try Tensor(shape: header.shape, scalars: scalars)
        }
    }

    /// Reads a `.npy` file.
    ///
    /// - Throws: ``TensorIOError`` for a missing or malformed file.
    public init(contentsOfNPY url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw TensorIOError.fileSystem(path: url.path, problem: .foundation(.read, description: error.localizedDescription))
        }
        try self.init(npyData: data)
    }

    /// The tensor encoded as a `.npy` file (format 1.0, or 2.0 for very long headers), C order,
    /// little-endian, in `dtype` (default: `<f4` for `Float`, `<f8` for `Double`).
    ///
    /// - Throws: ``TensorIOError/unwritableDType(format:dtype:writable:)`` for an integer or bfloat16 `dtype`.
    public func npyData(dtype: DType? = nil) throws -> Data {
        let dtype = dtype ?? DType.of(Scalar.self)
        let descr: String
        switch dtype {
        case .float16: descr = "<f2"
        case .float32: descr = "<f4"
        case .float64: descr = "<f8"
        default: throw TensorIOError.unwritableDType(format: "npy", dtype: dtype.rawValue, writable: ["float16", "float32", "float64"])
        }
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad with spaces so that the data starts on a 64-byte boundary; end with a newline.
        let version1 = (10 + header.utf8.count + 1) <= 65_535 + 10
        let preamble = version1 ? 10 : 12
        let total = preamble + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var bytes = NPYHeader.magic + (version1 ? [1, 0] : [2, 0])
        let length = header.utf8.count
        bytes += version1 ? [UInt8(length & 0xFF), UInt8(length >> 8)]
                          : [UInt8(length & 0xFF), UInt8((length >> 8) & 0xFF), UInt8((length >> 16) & 0xFF), UInt8(length >> 24)]
        bytes += Array(header.utf8)
        bytes += try encodeElements(scalars, dtype: dtype)
        return Data(bytes)
    }

    /// Writes the tensor as a `.npy` file, through a temporary file renamed into place, so that a
    /// failed write never leaves a half-written file.
    ///
    /// - Throws: ``TensorIOError`` for an unsupported dtype or a file-system failure.
    public func writeNPY(to url: URL, dtype: DType? = nil) throws {
        try writeAtomically(try npyData(dtype: dtype), to: url)
    }
}

/// A parser for the Python literals of `.npy` headers: a dictionary of strings, booleans and
/// tuples of integers.
struct PythonLiteralParser {
    enum Value: Equatable { case string(String), bool(Bool), tuple([Int]), integer(Int) }
    let characters: [Character]
    var position = 0

    init(_ text: String) { characters = Array(text) }

    func fail(_ problem: HeaderSyntaxProblem) -> TensorIOError {
        TensorIOError.malformedHeader(format: "npy", problem: .dictionarySyntax(problem, character: position))
    }

    mutating func skipSpace() { while position < characters.count && characters[position].isWhitespace { position += 1 } }

    mutating func expect(_ c: Character) throws {
        skipSpace()
        guard position < characters.count, characters[position] == c else { throw fail(.expected("'\(c)'")) }
        position += 1
    }

    mutating func peek() -> Character? { skipSpace(); return position < characters.count ? characters[position] : nil }

    mutating func parseDictionary() throws -> [String: Value] {
        try expect("{")
        var result: [String: Value] = [:]
        while let c = peek(), c != "}" {
            let key = try parseString()
            try expect(":")
            result[key] = try parseValue()
            if peek() == "," { position += 1 }
        }
        try expect("}")
        return result
    }

    mutating func parseString() throws -> String {
        guard let quote = peek(), quote == "'" || quote == "\"" else { throw fail(.expected("a string")) }
        position += 1
        var value = ""
        while position < characters.count && characters[position] != quote {
            value.append(characters[position])
            position += 1
        }
        guard position < characters.count else { throw fail(.unterminatedString) }
        position += 1
        return value
    }

    mutating func parseInteger() throws -> Int {
        skipSpace()
        var digits = ""
        if position < characters.count && characters[position] == "-" { digits.append("-"); position += 1 }
        while position < characters.count, characters[position].isASCII, characters[position].isNumber {
            digits.append(characters[position])
            position += 1
        }
        if position < characters.count && characters[position] == "L" { position += 1 }  // Python 2 long
        guard let value = Int(digits) else { throw fail(.expectedInteger(bits: 64)) }
        return value
    }

    mutating func parseValue() throws -> Value {
        guard let c = peek() else { throw fail(.unexpectedEnd) }
        switch c {
        case "'", "\"": return .string(try parseString())
        case "(":
            position += 1
            var items: [Int] = []
            while let next = peek(), next != ")" {
                items.append(try parseInteger())
                if peek() == "," { position += 1 }
            }
            try expect(")")
            return .tuple(items)
        case "T", "F":
            for word in ["True", "False"] where characters[position...].starts(with: word) {
                position += word.count
                return .bool(word == "True")
            }
            throw fail(.expected("True or False"))
        default:
            return .integer(try parseInteger())
        }
    }
}
