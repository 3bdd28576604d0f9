#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

extension FileKind {
    /// The kind of a `stat` mode that is not a regular file.
    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFDIR: self = .directory
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        case S_IFCHR, S_IFBLK: self = .device
        default: self = .other
        }
    }
}
