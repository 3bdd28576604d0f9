#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What is wrong with a path, or what the file system refused: the payload of
/// ``TensorIOError/fileSystem(path:problem:)``, which names the path.
public enum FileSystemProblem: Sendable, Equatable, CustomStringConvertible {
    /// The file does not exist.
    case noSuchFile
    /// Neither a file nor a directory exists at the path.
    case noSuchFileOrDirectory
    /// The system refused `operation` with `errno` (rendered by `strerror`).
    case system(FileOperation, errno: Int32)
    /// Foundation refused `operation`; `description` is its error's.
    case foundation(FileOperation, description: String)
    /// An input that is not a regular file: only regular files are read.
    case notRegularInput(FileKind)
    /// An output path that exists and is not a regular file: it is not replaced.
    case notRegularOutput(FileKind)
    /// An output path that is empty.
    case emptyOutputPath
    /// An output path that ends in `/`.
    case endsInSlash
    /// An output path that is a symlink to nothing.
    case danglingSymlink
    /// An output path whose directory `directory` does not exist.
    case missingDirectory(String)
    /// An output path whose directory `directory` is not writable.
    case unwritableDirectory(String)
    /// An output that is the same file as the output `other`.
    case sameOutput(as: String)
    /// An output that is the same file as `input`, which the run reads.
    case overwritesInput(String)
    /// A copy whose source ended `remaining` bytes before the `total` to copy.
    case sourceEnded(remaining: Int, total: Int)
    /// A directory with no `*.safetensors.index.json`.
    case noIndex
    /// A directory with several `*.safetensors.index.json`, these.
    case severalIndexes([String])
    /// A shard that the index lists with `tensors` tensors, missing.
    case missingShard(tensors: Int)
    /// A file that `namedBy` (a partial index) names, missing.
    case missingNamedFile(namedBy: String)

    /// The problem in one line, after the path.
    public var description: String {
        switch self {
        case .noSuchFile: return "no such file"
        case .noSuchFileOrDirectory: return "no such file or directory"
        case let .system(operation, code): return "cannot \(operation) (\(String(cString: strerror(code))))"
        case let .foundation(operation, description): return "cannot \(operation) (\(description))"
        case let .notRegularInput(kind): return "is \(kind); only regular files are read"
        case let .notRegularOutput(kind):
            switch kind {
            case .directory: return "is a directory; refusing to replace it"
            case .other: return "is not a regular file; refusing to replace it"
            default: return "is not a regular file (\(kind)); refusing to replace it"
            }
        case .emptyOutputPath: return "an empty output path"
        case .endsInSlash: return "ends in '/': a file name is needed, not a directory"
        case .danglingSymlink: return "is a symlink whose target does not exist"
        case let .missingDirectory(directory): return "the directory \(directory) does not exist"
        case let .unwritableDirectory(directory): return "the directory \(directory) is not writable"
        case let .sameOutput(other): return "is the same file as \(other); each output needs its own file"
        case let .overwritesInput(input): return "is the same file as \(input), which this run reads; write to another file"
        case let .sourceEnded(remaining, total): return "the source ended \(remaining) bytes before the \(total) to copy"
        case .noIndex: return "holds no *.safetensors.index.json"
        case let .severalIndexes(names): return "holds \(names.count) indexes (\(names.joined(separator: ", "))); name one"
        case let .missingShard(tensors): return "the index lists this shard (\(tensors) tensors), but it does not exist"
        case let .missingNamedFile(namedBy): return "named by \(namedBy), but it does not exist"
        }
    }
}
