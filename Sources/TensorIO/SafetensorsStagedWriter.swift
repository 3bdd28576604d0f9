import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A safetensors file whose tensors are written (and flushed to disk) in the background while
/// the rest is still being computed.
///
/// A safetensors file starts with its header, whose length depends on every tensor, so a writer
/// normally waits for the last tensor before it writes the first. This one reserves room for the
/// header instead: tensors whose place is settled are handed to ``append(_:)`` in file order and
/// written into the temporary after the reserved room by a background queue, which flushes them
/// to disk whenever it has caught up and written 8 MiB or more since its last flush. Their bytes
/// are not kept: once written, only their names, types and shapes stay in memory.
/// ``finish(appending:metadata:)`` writes the last tensors and the header, padded with spaces
/// (JSON whitespace, which every safetensors reader accepts) to the reserved length; when the
/// header does not fit, the file is written again with the ordinary layout, its tensors copied
/// from the first attempt. The result is always a valid file.
///
/// ```swift
/// let staging = try SafetensorsStagedWriter(output: try OutputFile(path: "out.safetensors"),
///                                           reservedHeaderBytes: 64 * 1024)
/// staging.append(unchanged)           // copied from their source in the background
/// // … compute the next tensors and hand each settled run to `staging.append(_:)` …
/// try StagedFile.commit([try staging.finish(appending: last, metadata: ["format": "pt"])])
/// ```
public final class SafetensorsStagedWriter: Sendable {
    let output: OutputFile
    let reserved: Int
    let descriptor: Int32
    let temporary: String
    let queue = DispatchQueue(label: "SafetensorsStagedWriter")
    let state = Mutex(State())

    struct State: Sendable {
        /// The tensors appended so far, in order.
        var staged = SafetensorsWriter()
        /// Appends not yet written by the queue.
        var pending = 0
        /// Bytes the queue wrote since it last flushed.
        var unflushed = 0
        var error: (any Error)?
        var finished = false
    }

    /// The background queue flushes when it has caught up with the appends and written at least
    /// this many bytes since its last flush (fewer, larger flushes than one per layer).
    static let flushBytes = 8 << 20

    /// Creates the temporary beside `output`, with room for the header; the tensors come through
    /// ``append(_:)``.
    ///
    /// - Parameters:
    ///   - output: The file this one will become (``StagedFile/commit(_:removingFirst:)``).
    ///   - reservedHeaderBytes: Room for the header's JSON, rounded up to a multiple of 8.
    /// - Throws: ``TensorIOError/fileSystem(path:problem:)`` when the temporary cannot be created.
    public init(output: OutputFile, reservedHeaderBytes: Int) throws {
        self.output = output
        self.reserved = (Swift.max(reservedHeaderBytes, 8) + 7) / 8 * 8
        (descriptor, temporary) = try output.createTemporary()
        guard lseek(descriptor, off_t(8 + reserved), SEEK_SET) >= 0 else {
            let error = output.failure(.seek)
            close(descriptor)
            unlink(temporary)
            throw error
        }
    }

    /// Creates the temporary beside `output` and starts copying `prefix`'s tensors into it.
    ///
    /// - Parameters:
    ///   - output: The file this one will become (``StagedFile/commit(_:removingFirst:)``).
    ///   - prefix: The leading tensors (their metadata is not used).
    ///   - reservedHeaderBytes: Room for the header's JSON, rounded up to a multiple of 8.
    /// - Throws: ``TensorIOError/fileSystem(path:problem:)`` when the temporary cannot be created.
    public convenience init(output: OutputFile, prefix: SafetensorsWriter, reservedHeaderBytes: Int) throws {
        try self.init(output: output, reservedHeaderBytes: reservedHeaderBytes)
        try append(prefix)
    }

    /// Queues `tensors` (their metadata is not used) to be written after those appended before;
    /// the call returns at once. A write error is thrown by ``finish(appending:metadata:)``.
    ///
    /// - Throws: ``TensorIOError/duplicateName(format:name:)`` for a name appended before.
    public func append(_ tensors: SafetensorsWriter) throws {
        guard !tensors.items.isEmpty else { return }
        try state.withLock { state in
            precondition(!state.finished, "SafetensorsStagedWriter.append: called after finish or discard")
            if let repeated = tensors.items.first(where: { state.staged.itemNames.contains($0.name) }) {
                throw TensorIOError.duplicateName(format: "safetensors", name: repeated.name)
            }
            // Only the layout is kept, not the bytes: the queue holds them until it has written them.
            for item in tensors.items { try state.staged.append(item.written) }
            state.pending += 1
        }
        queue.async { [self] in
            let failed = state.withLock { $0.error != nil }
            var error: (any Error)?
            if !failed {
                do {
                    var sink = OutputSink(descriptor: descriptor, path: output.path)
                    try tensors.writeTensors(tensors.items[...], to: &sink)
                } catch let caught {
                    error = caught
                }
            }
            let flush = state.withLock { state in
                state.pending -= 1
                state.unflushed += tensors.tensorByteCount
                if let error, state.error == nil { state.error = error }
                guard state.pending == 0 && state.error == nil && state.unflushed >= Self.flushBytes else { return false }
                state.unflushed = 0
                return true
            }
            // Caught up with enough written: flushed now, while the rest is computed, the final
            // flush has less left.
            if flush && fdatasync(descriptor) != 0 {
                let error = output.failure(.flush)
                state.withLock { if $0.error == nil { $0.error = error } }
            }
        }
    }

    /// The names of the tensors appended so far, in order.
    public var names: [String] { state.withLock { $0.staged.names } }

    /// The bytes of the tensors appended so far.
    public var tensorByteCount: Int { state.withLock { $0.staged.tensorByteCount } }

    /// The elements of the tensors appended so far.
    public var tensorElementCount: Int { state.withLock { $0.staged.tensorElementCount } }

    /// Writes `rest` after the appended tensors, then the header with `metadata`, flushes the file
    /// and returns it staged; the temporary is removed when this throws.
    ///
    /// - Throws: the errors of the background writes and of writing (a full disk), and
    ///   ``TensorIOError/duplicateName(format:name:)`` for a name of `rest` appended before.
    public func finish(appending rest: SafetensorsWriter = SafetensorsWriter(), metadata: [String: String]) throws -> StagedFile {
        var file = try drain()
        var ok = false   // the temporary became the file; else it is removed (also after a second attempt)
        defer {
            close(descriptor)
            if !ok { unlink(temporary) }
        }
        let stagedBytes = file.tensorByteCount, stagedCount = file.items.count
        try file.append(contentsOf: rest)
        file.metadata = metadata
        if let header = try file.header(reserved: reserved) {
            try header.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = pwrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset, off_t(offset))
                    if written < 0 && errno == EINTR { continue }
                    guard written > 0 else { throw output.failure(.writeHeader) }
                    offset += written
                }
            }
            guard lseek(descriptor, off_t(8 + reserved + stagedBytes), SEEK_SET) >= 0 else { throw output.failure(.seek) }
            var sink = OutputSink(descriptor: descriptor, path: output.path)
            try file.writeTensors(file.items.dropFirst(stagedCount), to: &sink)
            guard fsync(descriptor) == 0 else { throw output.failure(.flush) }
            ok = true
            return StagedFile(file: output, temporary: temporary)
        }
        // The header outgrew its room: a second temporary with the ordinary layout, the appended
        // tensors copied from the first.
        let source = open(temporary, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { throw output.failure(.readBack(temporary)) }
        defer { close(source) }
        return try output.stage { sink in
            try sink.write(try file.header())
            try sink.appendFileRange(of: source, offset: 8 + reserved, count: stagedBytes)
            try file.writeTensors(file.items.dropFirst(stagedCount), to: &sink)
        }
    }

    /// Finishes with the final content `writer`, whose tensors should begin with the appended
    /// ones: ``finish(appending:metadata:)`` with the rest of them, or, when they do not begin
    /// that way, `writer` written from the start the ordinary way. The temporary is removed when
    /// this throws.
    ///
    /// - Throws: the errors of the background writes and of writing (a full disk).
    public func finish(_ writer: SafetensorsWriter) throws -> StagedFile {
        let staged = state.withLock { $0.staged.items }
        let leading = writer.items.prefix(staged.count)
        let matches = leading.count == staged.count
            && zip(leading, staged).allSatisfy { $0.name == $1.name && $0.byteCount == $1.byteCount && $0.dtype == $1.dtype && $0.shape == $1.shape }
        if matches {
            var rest = SafetensorsWriter()
            for item in writer.items.dropFirst(staged.count) { try rest.append(item) }
            return try finish(appending: rest, metadata: writer.metadata)
        }
        // The tensors changed order: the ordinary layout, from the start.
        _ = try drain()
        var ok = false
        defer {
            close(descriptor)
            if !ok { unlink(temporary) }
        }
        guard ftruncate(descriptor, 0) == 0, lseek(descriptor, 0, SEEK_SET) >= 0 else { throw output.failure(.startOver) }
        var sink = OutputSink(descriptor: descriptor, path: output.path)
        try writer.write(to: &sink)
        guard fsync(descriptor) == 0 else { throw output.failure(.flush) }
        ok = true
        return StagedFile(file: output, temporary: temporary)
    }

    /// Marks the writer finished, waits for the queue and returns the appended tensors' layout;
    /// on a background write's error, closes and removes the temporary and rethrows it.
    private func drain() throws -> SafetensorsWriter {
        let staged = state.withLock { state in
            precondition(!state.finished, "SafetensorsStagedWriter.finish: called after finish or discard")
            state.finished = true
            return state.staged
        }
        queue.sync {}
        if let error = state.withLock({ $0.error }) {
            close(descriptor)
            unlink(temporary)
            throw error
        }
        return staged
    }

    deinit {
        // Neither finished nor discarded (the queue, which holds this object while it writes, is idle).
        if !state.withLock({ $0.finished }) {
            close(descriptor)
            unlink(temporary)
        }
    }

    /// Stops using the temporary and removes it (after the queued writes end).
    public func discard() {
        let first = state.withLock { state in
            defer { state.finished = true }
            return !state.finished
        }
        guard first else { return }
        queue.sync {}
        close(descriptor)
        unlink(temporary)
    }
}
