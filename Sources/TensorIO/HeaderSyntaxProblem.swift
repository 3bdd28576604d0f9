/// Why the text of a header does not parse (a `.npy` header's Python dictionary, a safetensors
/// header's JSON): the payload of ``HeaderProblem/dictionarySyntax(_:character:)`` and
/// ``HeaderProblem/jsonSyntax(_:byte:)``, which add where.
public enum HeaderSyntaxProblem: Sendable, Equatable, CustomStringConvertible {
    /// Something else where `token` (e.g. `"':'"`, `"a string"`, `"True or False"`) must come.
    case expected(String)
    /// A `.npy` dictionary value that is not an integer of at most `bits` bits.
    case expectedInteger(bits: Int)
    /// The text ends where a value must come.
    case unexpectedEnd
    /// Text after the header object.
    case trailingText
    /// A string without its closing quote.
    case unterminatedString
    /// A raw control character inside a JSON string.
    case controlCharacter
    /// A backslash escape that JSON does not define.
    case unknownEscape
    /// A `\u` escape cut short by the end of the header.
    case truncatedUnicodeEscape
    /// A `\u` escape whose four characters are not hexadecimal digits.
    case malformedUnicodeEscape
    /// A `\u` escape of a lone UTF-16 surrogate.
    case unpairedSurrogate
    /// A JSON string whose bytes are not valid UTF-8.
    case invalidUTF8String
    /// A JSON number that does not parse.
    case malformedNumber
    /// A skipped JSON value nested deeper than `limit`.
    case nestedTooDeep(limit: Int)
    /// A `__metadata__` entry `key` whose value is not a string.
    case metadataNotString(key: String)
    /// A tensor name given twice.
    case repeatedTensor(String)
    /// The entry of `tensor` is not a JSON object.
    case entryNotObject(tensor: String)
    /// The `dtype` of `tensor` is not a string.
    case dtypeNotString(tensor: String)
    /// The `key` (`shape`, `data_offsets`) of `tensor` does not open with `[`.
    case arrayNotOpened(key: String, tensor: String)
    /// An element of the `key` array of `tensor` is followed by neither `,` nor `]`.
    case arrayNotContinued(key: String, tensor: String)
    /// The `key` array of `tensor` holds an integer of more than `bits` bits.
    case integerTooLarge(key: String, tensor: String, bits: Int)
    /// The `key` array of `tensor` holds a value that is not a non-negative integer.
    case notNonNegativeInteger(key: String, tensor: String)

    /// The problem in one line.
    public var description: String {
        switch self {
        case let .expected(token): return "expected \(token)"
        case let .expectedInteger(bits): return "expected an integer that fits in \(bits) bits"
        case .unexpectedEnd: return "unexpected end"
        case .trailingText: return "unexpected text after the header object"
        case .unterminatedString: return "unterminated string"
        case .controlCharacter: return "a control character inside a string"
        case .unknownEscape: return "an unknown escape"
        case .truncatedUnicodeEscape: return "a truncated \\u escape"
        case .malformedUnicodeEscape: return "a malformed \\u escape"
        case .unpairedSurrogate: return "an unpaired surrogate escape"
        case .invalidUTF8String: return "a string that is not valid UTF-8"
        case .malformedNumber: return "malformed number"
        case let .nestedTooDeep(limit): return "values nested deeper than \(limit)"
        case let .metadataNotString(key): return "__metadata__[\(key)] is not a string"
        case let .repeatedTensor(name): return "the tensor name \(name) appears twice"
        case let .entryNotObject(tensor): return "tensor \(tensor) is not an object"
        case let .dtypeNotString(tensor): return "the dtype of \(tensor) is not a string"
        case let .arrayNotOpened(key, tensor): return "expected '[' opening the \(key) of \(tensor)"
        case let .arrayNotContinued(key, tensor): return "expected ',' or ']' in the \(key) of \(tensor)"
        case let .integerTooLarge(key, tensor, bits): return "\(key) of \(tensor) holds a number that does not fit in \(bits) bits"
        case let .notNonNegativeInteger(key, tensor): return "\(key) of \(tensor) holds a value that is not a non-negative integer"
        }
    }
}
