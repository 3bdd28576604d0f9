/// What a path names when it is not a regular file: in ``FileSystemProblem/notRegularInput(_:)``
/// and ``FileSystemProblem/notRegularOutput(_:)``.
public enum FileKind: Sendable, Equatable, CustomStringConvertible {
    /// A directory.
    case directory
    /// A named pipe.
    case fifo
    /// A Unix-domain socket.
    case socket
    /// A character or block device (`/dev/null`, a disk).
    case device
    /// Anything else that is not a regular file.
    case other

    /// The kind with its article: "a directory", "a FIFO", ….
    public var description: String {
        switch self {
        case .directory: return "a directory"
        case .fifo: return "a FIFO"
        case .socket: return "a socket"
        case .device: return "a device"
        case .other: return "not a regular file"
        }
    }
}
