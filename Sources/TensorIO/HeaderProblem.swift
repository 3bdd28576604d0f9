/// What is wrong with a file's header: the payload of ``TensorIOError/malformedHeader(format:problem:)``,
/// with the values that show it.
public enum HeaderProblem: Sendable, Equatable, CustomStringConvertible {
    /// A header of `length` bytes, above the reader's `limit` (``NPYHeader/maximumHeaderLength``,
    /// or 100 MiB for safetensors).
    case tooLong(length: UInt64, limit: Int)
    /// The header of a version 3.0 `.npy` file is not valid UTF-8.
    case notUTF8
    /// The `.npy` header dictionary has no entry `key` holding a `kind` ("string", "boolean", "tuple").
    case missingKey(String, kind: String)
    /// The `.npy` header dictionary does not parse at character `character`.
    case dictionarySyntax(HeaderSyntaxProblem, character: Int)
    /// The safetensors JSON header does not parse at byte `byte` of the header.
    case jsonSyntax(HeaderSyntaxProblem, byte: Int)
    /// A safetensors tensor entry without a dtype, a shape or two data offsets.
    case incompleteEntry(tensor: String)
    /// An `.npz` file that ZIPFoundation cannot open as a zip archive (its error's description).
    case notZipArchive(underlying: String)
    /// Member `member` (without `.npy`) of the `.npz` archive at `archive` is corrupt.
    case npzMember(String, archive: String, NPZMemberProblem)

    /// The problem in one line.
    public var description: String {
        switch self {
        case let .tooLong(length, limit):
            let origin = limit == NPYHeader.maximumHeaderLength ? " (NumPy's own limit)"
                : limit == SafetensorsFile.maximumHeaderLength ? " (100 MiB, as in the reference implementation)" : ""
            return "a header of \(length) bytes exceeds the limit of \(limit) bytes\(origin)"
        case .notUTF8: return "the header is not valid UTF-8"
        case let .missingKey(key, kind): return "no '\(key)' \(kind)"
        case let .dictionarySyntax(problem, character): return "\(problem) at character \(character)"
        case let .jsonSyntax(problem, byte): return "\(problem) at byte \(byte) of the header"
        case let .incompleteEntry(tensor): return "tensor \(tensor) needs dtype, shape and two data_offsets"
        case let .notZipArchive(underlying): return "not a readable zip archive (\(underlying))"
        case let .npzMember(member, archive, problem): return "member \(member).npy of \(archive) \(problem)"
        }
    }
}
