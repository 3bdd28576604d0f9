/// What the file system was asked to do when it refused: in ``FileSystemProblem/system(_:errno:)``
/// and ``FileSystemProblem/foundation(_:description:)``, rendered after "cannot".
public enum FileOperation: Sendable, Equatable, CustomStringConvertible {
    /// Reading a file, or learning what it is (`stat`).
    case read
    /// Opening a file.
    case open
    /// Reading an open file's size (`fstat`).
    case readSize
    /// Mapping a file into memory.
    case map
    /// Flushing a written file to disk (`fsync`).
    case flush
    /// Creating a temporary file in `directory`.
    case createTemporary(directory: String)
    /// Giving a new file the permission bits of the one it replaces.
    case setMode
    /// Removing a file that the new ones replace.
    case removeReplaced
    /// Renaming a temporary file into place.
    case moveIntoPlace
    /// Copying `bytes` bytes of another file into this one (`sendfile`).
    case copy(bytes: Int)
    /// Reading the `bytes` bytes of another file that are copied into this one.
    case readForCopy(bytes: Int)
    /// Writing.
    case write
    /// Moving the write position (`lseek`).
    case seek
    /// Writing a safetensors header in front of data written first.
    case writeHeader
    /// Reading back the temporary file `path` that data was staged in.
    case readBack(String)
    /// Emptying a file to write it again from the start.
    case startOver
    /// Writing bytes held in memory to a temporary file (to open them as an archive).
    case writeTemporaryCopy
    /// Creating a directory (and its parents).
    case createDirectory

    /// The operation as a verb phrase: "read its size", "move the new file into place", ….
    public var description: String {
        switch self {
        case .read: return "read"
        case .open: return "open"
        case .readSize: return "read its size"
        case .map: return "map"
        case .flush: return "flush"
        case let .createTemporary(directory): return "create a temporary file in \(directory)"
        case .setMode: return "set the file mode"
        case .removeReplaced: return "remove the file it replaces"
        case .moveIntoPlace: return "move the new file into place"
        case let .copy(bytes): return "copy \(bytes) bytes into it"
        case let .readForCopy(bytes): return "read the \(bytes) bytes to copy"
        case .write: return "write"
        case .seek: return "seek"
        case .writeHeader: return "write the header"
        case let .readBack(path): return "read back \(path)"
        case .startOver: return "start over"
        case .writeTemporaryCopy: return "write a temporary copy"
        case .createDirectory: return "create the directory"
        }
    }
}
