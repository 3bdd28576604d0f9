import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A path that a file will be written to, checked before any work is done.
///
/// Writing goes through a temporary file in the target's directory that is renamed into place,
/// so that a reader sees the old file or the whole new one, never a part of it:
/// - a symlink is followed: the bytes replace its target and the link stays;
/// - an existing file keeps its permission bits (a `0600` file stays `0600`);
/// - an existing path that is not a regular file (a directory, a device such as `/dev/null`, a
///   FIFO, a socket) is refused, and so is a path that ends in `/`;
/// - temporaries are named `.NAME.tensor-compress-PID-RANDOM.tmp`; one left by a process that was
///   killed (its PID no longer runs) is removed by the next write to the same directory.
///
/// ```swift
/// let output = try OutputFile(path: "out/model.safetensors")
/// try OutputFile.write([(output, data)])
/// ```
public struct OutputFile: Sendable, Equatable {
    /// The path as given.
    public let path: String
    /// Where the bytes go: `path` with its symlinks resolved.
    public let target: URL
    /// The permission bits to give the new file: the existing file's, else `nil` (0666 less the umask).
    let mode: mode_t?

    /// Checks that `path` can be written as a regular file.
    ///
    /// - Throws: ``TensorIOError/fileSystem(path:problem:)`` for a path ending in `/`, an existing
    ///   path that is not a regular file (or a symlink to one), or a directory that does not exist.
    public init(path: String) throws {
        func fail(_ problem: FileSystemProblem) -> TensorIOError { TensorIOError.fileSystem(path: path, problem: problem) }
        guard !path.isEmpty else { throw fail(.emptyOutputPath) }
        guard !path.hasSuffix("/") else { throw fail(.endsInSlash) }
        var status = stat()
        if stat(path, &status) == 0 {
            guard (status.st_mode & S_IFMT) == S_IFREG else { throw fail(.notRegularOutput(FileKind(mode: status.st_mode))) }
            mode = status.st_mode & 0o7777
        } else if lstat(path, &status) == 0 {
            throw fail(.danglingSymlink)
        } else {
            mode = nil
        }
        let target = URL(fileURLWithPath: Self.canonicalPath(path))
        let directory = target.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw fail(.missingDirectory(directory))
        }
        guard access(directory, W_OK) == 0 else { throw fail(.unwritableDirectory(directory)) }
        self.path = path
        self.target = target
    }

    /// Whether this path names the same file as `other` (the same inode, so hard links and other
    /// spellings count), or the same resolved path when the file does not exist yet.
    public func isSameFile(as other: String) -> Bool {
        var a = stat(), b = stat()
        if stat(target.path, &a) == 0 && stat(other, &b) == 0 { return a.st_dev == b.st_dev && a.st_ino == b.st_ino }
        return Self.canonicalPath(other) == target.path
    }

    /// `path` with every symlink resolved: the file's own resolved path when it exists, else its
    /// resolved directory and its name (the standardized path when the directory is missing too).
    package static func canonicalPath(_ path: String) -> String {
        func resolved(_ path: String) -> String? {
            guard let pointer = realpath(path, nil) else { return nil }
            defer { free(pointer) }
            return String(cString: pointer)
        }
        if let file = resolved(path) { return file }
        let url = URL(fileURLWithPath: path)
        guard let directory = resolved(url.deletingLastPathComponent().path) else { return url.standardizedFileURL.path }
        return (directory == "/" ? "" : directory) + "/" + url.lastPathComponent
    }

    /// Writes every file or, when a write fails, none: each file goes to a temporary beside its
    /// target, and the temporaries are renamed into place only after all of them were written.
    ///
    /// - Throws: ``TensorIOError/fileSystem(path:problem:)``; two outputs that are the same file throw
    ///   before anything is written.
    public static func write(_ files: [(OutputFile, Data)]) throws {
        try checkDistinct(files.map(\.0))
        var staged: [StagedFile] = []
        do {
            for (file, data) in files { staged.append(try file.stage(data)) }
        } catch {
            StagedFile.discard(staged)
            throw error
        }
        try StagedFile.commit(staged)
    }

    /// Throws when two of `files` are the same file.
    public static func checkDistinct(_ files: [OutputFile]) throws {
        for (i, a) in files.enumerated() {
            for b in files[(i + 1)...] where a.isSameFile(as: b.target.path) {
                throw TensorIOError.fileSystem(path: b.path, problem: .sameOutput(as: a.path))
            }
        }
    }

    /// Throws when one of `outputs` is one of `inputs`, the files the run reads (a model, its
    /// data files, shards, statistics): a run never writes over what it reads, by any spelling,
    /// hard link or symlink.
    ///
    /// - Throws: ``TensorIOError/fileSystem(path:problem:)`` with ``FileSystemProblem/overwritesInput(_:)``.
    public static func checkNotReading(_ outputs: [OutputFile], inputs: [String]) throws {
        for output in outputs {
            for input in inputs where output.isSameFile(as: input) {
                throw TensorIOError.fileSystem(path: output.path, problem: .overwritesInput(input))
            }
        }
    }

    static let temporaryMarker = ".tensor-compress-"

    /// Writes `data` to a new temporary file beside the target; ``StagedFile/commit(_:removingFirst:)`` moves it into place.
    public func stage(_ data: Data) throws -> StagedFile {
        try stage { sink in try sink.write(data) }
    }

    /// Writes a new temporary file beside the target through `produce`, which may write any
    /// number of pieces (a file larger than memory is written piece by piece); the temporary is
    /// flushed to disk, and ``StagedFile/commit(_:removingFirst:)`` moves it into place. When `produce` throws,
    /// the temporary is removed.
    public func stage(_ produce: (inout OutputSink) throws -> Void) throws -> StagedFile {
        let (descriptor, temporary) = try createTemporary()
        var ok = false
        defer {
            close(descriptor)
            if !ok { unlink(temporary) }
        }
        var sink = OutputSink(descriptor: descriptor, path: path)
        try produce(&sink)
        guard fsync(descriptor) == 0 else { throw failure(.flush) }
        ok = true
        return StagedFile(file: self, temporary: temporary)
    }

    /// A new temporary file beside the target, open for writing with the target's mode (stale
    /// temporaries of dead processes removed first): its descriptor and path.
    func createTemporary() throws -> (descriptor: Int32, path: String) {
        let directory = target.deletingLastPathComponent().path
        let name = target.lastPathComponent
        Self.removeStaleTemporaries(in: directory, for: name)
        let temporary = directory + "/." + name + Self.temporaryMarker + "\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode ?? 0o666)
        guard descriptor >= 0 else { throw failure(.createTemporary(directory: directory)) }
        if let mode, fchmod(descriptor, mode) != 0 {
            let error = failure(.setMode)
            close(descriptor)
            unlink(temporary)
            throw error
        }
        return (descriptor, temporary)
    }

    /// An error naming the file and the system's reason (`errno`).
    func failure(_ operation: FileOperation) -> TensorIOError {
        TensorIOError.fileSystem(path: path, problem: .system(operation, errno: errno))
    }

    /// Removes `.NAME.tensor-compress-PID-*.tmp` files whose process no longer runs.
    static func removeStaleTemporaries(in directory: String, for name: String) {
        let prefix = "." + name + temporaryMarker
        guard let contents = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for file in contents where file.hasPrefix(prefix) && file.hasSuffix(".tmp") {
            let rest = file.dropFirst(prefix.count)
            guard let pid = rest.split(separator: "-").first.flatMap({ pid_t($0) }), pid > 0 else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink(directory + "/" + file) }
        }
    }
}

/// A file written to its temporary by `OutputFile.stage` and not yet moved into place.
///
/// Several outputs that belong together (a model's shards, its index and its report) are staged
/// one by one, each as soon as it is ready, and committed together at the end; when anything
/// fails before the commit, ``discard(_:)`` removes the temporaries and no target is touched.
public struct StagedFile: Sendable {
    /// The output this temporary will become.
    public let file: OutputFile
    /// The temporary's path.
    let temporary: String

    /// Renames every temporary into place, in order, after removing the files `removed`. A
    /// rename that fails removes the temporaries not yet renamed and throws.
    ///
    /// - Throws: ``TensorIOError/fileSystem(path:problem:)``.
    public static func commit(_ files: [StagedFile], removingFirst removed: [String] = []) throws {
        // A file that the new ones replace as a whole (an index over shards) goes before any
        // rename, so that no interrupted commit leaves it describing a mix of old and new files.
        for path in removed where unlink(path) != 0 && errno != ENOENT {
            let error = TensorIOError.fileSystem(path: path, problem: .system(.removeReplaced, errno: errno))
            discard(files)
            throw error
        }
        for (k, staged) in files.enumerated() where rename(staged.temporary, staged.file.target.path) != 0 {
            let error = TensorIOError.fileSystem(path: staged.file.path, problem: .system(.moveIntoPlace, errno: errno))
            discard(Array(files[k...]))
            throw error
        }
    }

    /// Removes the temporaries.
    public static func discard(_ files: [StagedFile]) {
        for staged in files { unlink(staged.temporary) }
    }
}

/// Where `OutputFile.stage` writes: an open file, written in order.
public struct OutputSink {
    let descriptor: Int32
    let path: String
    /// Bytes written so far.
    public private(set) var count = 0

    /// Appends `count` bytes of the open file `source` from `offset`, copied by the kernel
    /// (`sendfile`, page cache to page cache); `false`, with nothing written, where the system
    /// cannot copy between these files.
    ///
    /// - Throws: ``TensorIOError/fileSystem(path:problem:)`` when the copy fails part-way or the
    ///   source ends early.
    mutating func appendCopy(of source: Int32, offset: Int, count total: Int) throws -> Bool {
        var position = offset, remaining = total
        while remaining > 0 {
            let copied = sendfile(descriptor, source, &position, Swift.min(remaining, 1 << 30))
            if copied < 0 {
                if errno == EINTR { continue }
                if remaining == total && [EINVAL, ENOSYS, EOPNOTSUPP].contains(errno) { return false }
                throw TensorIOError.fileSystem(path: path, problem: .system(.copy(bytes: total), errno: errno))
            }
            guard copied > 0 else {
                throw TensorIOError.fileSystem(path: path, problem: .sourceEnded(remaining: remaining, total: total))
            }
            remaining -= copied
            count += copied
        }
        return true
    }

    /// Appends `count` bytes of the open file `source` from `offset`: copied by the kernel where
    /// it can, read and written in pieces otherwise.
    ///
    /// - Throws: ``TensorIOError/fileSystem(path:problem:)`` when reading or writing fails, or the
    ///   source ends early.
    mutating func appendFileRange(of source: Int32, offset: Int, count total: Int) throws {
        if try appendCopy(of: source, offset: offset, count: total) { return }
        var buffer = [UInt8](repeating: 0, count: Swift.min(total, 16 << 20))
        var position = offset, remaining = total
        while remaining > 0 {
            let read = buffer.withUnsafeMutableBytes { pread(source, $0.baseAddress!, Swift.min(remaining, $0.count), off_t(position)) }
            if read < 0 && errno == EINTR { continue }
            guard read > 0 else {
                throw TensorIOError.fileSystem(path: path, problem: read < 0 ? .system(.readForCopy(bytes: total), errno: errno)
                                                                          : .sourceEnded(remaining: remaining, total: total))
            }
            try buffer.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[..<read])) }
            position += read
            remaining -= read
        }
    }

    /// Appends `bytes`.
    ///
    /// - Throws: ``TensorIOError/fileSystem(path:problem:)`` when the system refuses (a full disk).
    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = posixWrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw TensorIOError.fileSystem(path: path, problem: .system(.write, errno: errno))
            }
            offset += written
        }
        count += bytes.count
    }

    /// Appends `data`.
    public mutating func write(_ data: Data) throws {
        try data.withUnsafeBytes { try write($0) }
    }
}

/// Writes `data` to `url` through ``OutputFile``: atomic, symlink-following, mode-keeping.
func writeAtomically(_ data: Data, to url: URL) throws {
    try OutputFile.write([(try OutputFile(path: url.path), data)])
}

#if canImport(Glibc)
private let posixWrite = Glibc.write
#elseif canImport(Darwin)
private let posixWrite = Darwin.write
#endif
