import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading the files a run takes in: only regular files, checked before they are opened.
///
/// A FIFO, a device or a socket given as a model, a shard, a statistics file or a data file would
/// block a read forever or stream without end; a directory has no bytes to read. Every input path
/// goes through ``checkRegular(_:)`` (which follows symlinks, as opening does) before anything
/// opens it, and ``contents(of:)`` opens without blocking and checks the open file again.
///
/// ```swift
/// try InputFile.checkRegular("model.onnx")               // a FIFO: "is a FIFO; only regular files are read"
/// let bytes = try InputFile.contents(of: URL(fileURLWithPath: "layers.json"))
/// ```
public enum InputFile {
    /// Throws unless `path` names a regular file (through any symlinks).
    ///
    /// - Throws: ``TensorIOError/fileSystem(path:problem:)``: ``FileSystemProblem/noSuchFile``, or
    ///   ``FileSystemProblem/notRegularInput(_:)`` with what the path is instead (a directory, a FIFO, …).
    public static func checkRegular(_ path: String) throws {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw TensorIOError.fileSystem(path: path, problem: errno == ENOENT ? .noSuchFile : .system(.read, errno: errno))
        }
        try check(status, path)
    }

    static func check(_ status: stat, _ path: String) throws {
        guard status.st_mode & S_IFMT != S_IFREG else { return }
        throw TensorIOError.fileSystem(path: path, problem: .notRegularInput(FileKind(mode: status.st_mode)))
    }

    /// Opens `path` read-only without blocking (a FIFO that appeared after a check cannot stall
    /// the open) and checks that the open file is regular.
    ///
    /// - Returns: the descriptor, which the caller closes.
    static func openRegular(_ path: String) throws -> Int32 {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            throw TensorIOError.fileSystem(path: path, problem: errno == ENOENT ? .noSuchFile : .system(.open, errno: errno))
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let error = TensorIOError.fileSystem(path: path, problem: .system(.readSize, errno: errno))
            close(descriptor)
            throw error
        }
        do { try check(status, path) } catch {
            close(descriptor)
            throw error
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
        return descriptor
    }

    /// The bytes of the regular file at `url`, memory-mapped from the descriptor that was checked
    /// (so a file swapped for a FIFO after the check cannot stall the read); the map stays valid
    /// while the `Data` lives.
    ///
    /// - Throws: ``TensorIOError/fileSystem(path:problem:)`` for a missing or irregular file or
    ///   one that cannot be read.
    public static func contents(of url: URL) throws -> Data {
        try mapFile(url).0
    }
}
