import TensorIO

/// Why a tensor's external data cannot be read: the payload of
/// ``ONNXError/externalData(tensor:location:problem:)``, which names the tensor and the location.
public enum ExternalDataProblem: Sendable, Equatable, CustomStringConvertible {
    /// The tensor's `external_data` has no `location`.
    case noLocation
    /// An absolute location, or one with `..` or a backslash: it must stay inside the model's directory.
    case outsideDirectory
    /// No file at the location in `directory`, the model's directory.
    case missingFile(directory: String)
    /// A location that resolves, through a symlink, to `resolved`, outside the model's directory `root`.
    case symlinkOutside(resolved: String, root: String)
    /// A file that cannot be read (a FIFO, a device, no permission).
    case unreadable(TensorIOError)
    /// The `field` (`offset`, `length`) is `value`, not a non-negative integer.
    case notNonNegativeInteger(field: String, value: String)
    /// An offset beyond the file's `fileSize` bytes.
    case offsetBeyondFile(offset: Int, fileSize: Int)
    /// `offset + length` beyond the file's `fileSize` bytes.
    case rangeBeyondFile(offset: Int, length: Int, fileSize: Int)

    /// The problem in one line.
    public var description: String {
        switch self {
        case .noLocation: return "no location given"
        case .outsideDirectory: return "the location must be a relative path inside the model's directory"
        case let .missingFile(directory): return "no such file in \(directory)"
        case let .symlinkOutside(resolved, root): return "resolves to \(resolved), outside the model's directory \(root) (through a symlink)"
        case let .unreadable(error): return "\(error)"
        case let .notNonNegativeInteger(field, value): return "\(field) \(value) is not a non-negative integer"
        case let .offsetBeyondFile(offset, fileSize): return "offset \(offset) is beyond the file's \(fileSize) bytes"
        case let .rangeBeyondFile(offset, length, fileSize): return "offset \(offset) + length \(length) reaches beyond the file's \(fileSize) bytes"
        }
    }
}
