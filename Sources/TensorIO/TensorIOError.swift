/// Errors thrown when reading or writing weight files. Every case names the problem and the numbers.
public enum TensorIOError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The file does not start with the format's magic bytes.
    case badMagic(format: String)
    /// A format version this reader does not know.
    case unsupportedVersion(format: String, version: String)
    /// The header is malformed; the problem says how.
    case malformedHeader(format: String, problem: HeaderProblem)
    /// A declared length reaches beyond the file or is absurdly large.
    case headerLengthOutOfRange(format: String, length: Int, fileSize: Int)
    /// A dtype this reader cannot convert.
    case unsupportedDType(format: String, dtype: String)
    /// The product of a shape overflows, or a dimension is negative.
    case invalidShape(format: String, shape: [Int])
    /// The data section is shorter than the shape and dtype require.
    case truncatedData(format: String, expectedBytes: Int, actualBytes: Int)
    /// A tensor's byte size does not equal its shape times its dtype size.
    case sizeMismatch(name: String, expectedBytes: Int, actualBytes: Int)
    /// Data offsets lie outside the data section, overlap, or leave gaps.
    case invalidOffsets(name: String, problem: OffsetProblem)
    /// A tensor name that the file does not hold.
    case unknownTensor(name: String, available: [String])
    /// A dtype that the writer does not write (integers): the floating-point ones it does.
    case unwritableDType(format: String, dtype: String, writable: [String])
    /// A tensor name given twice, or the reserved `__metadata__`.
    case duplicateName(format: String, name: String)
    /// A path that cannot be read or written, or an error from the file system.
    case fileSystem(path: String, problem: FileSystemProblem)
    /// A sharded checkpoint's index (`model.safetensors.index.json`) is malformed or disagrees
    /// with its shards; the problem says how.
    case invalidIndex(path: String, problem: IndexProblem)

    public var description: String {
        switch self {
        case let .badMagic(format): return "\(format): the file does not start with the \(format) magic bytes"
        case let .unsupportedVersion(format, version): return "\(format): unsupported format version \(version)"
        case let .malformedHeader(format, problem): return "\(format): malformed header: \(problem)"
        case let .headerLengthOutOfRange(format, length, fileSize):
            return "\(format): header length \(length) does not fit in a file of \(fileSize) bytes"
        case let .unsupportedDType(format, dtype): return "\(format): unsupported dtype \(dtype)"
        case let .invalidShape(format, shape): return "\(format): invalid shape \(shape) (negative or overflowing)"
        case let .truncatedData(format, expected, actual):
            return "\(format): data is truncated: \(actual) bytes where the shape and dtype need \(expected)"
        case let .sizeMismatch(name, expected, actual):
            return "tensor \(name): \(actual) bytes of data where its shape and dtype need \(expected)"
        case let .invalidOffsets(name, problem): return "tensor \(name): invalid data offsets: \(problem)"
        case let .unknownTensor(name, available):
            let list = available.prefix(8).joined(separator: ", ") + (available.count > 8 ? ", …" : "")
            return "no tensor named \(name) (the file has \(available.count): \(list))"
        case let .unwritableDType(format, dtype, writable):
            return "\(format): writing \(dtype) is not supported; write \(writable.joined(separator: ", "))"
        case let .duplicateName(format, name): return "\(format): the tensor name \(name) is repeated or reserved"
        case let .fileSystem(path, problem): return "\(path): \(problem)"
        case let .invalidIndex(path, problem): return "\(path): invalid sharded-checkpoint index: \(problem)"
        }
    }
}
