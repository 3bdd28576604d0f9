import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A safetensors file whose leading tensors are written (and flushed to disk) in the background
/// while the rest is still being computed.
///
/// A safetensors file starts with its header, whose length depends on every tensor, so a writer
/// normally waits for the last tensor before it writes the first. This one reserves room for the
/// header instead: tensors whose place is settled are handed to ``append(_:)`` in file order and
/// copied from their sources (or their bytes) into the temporary after the reserved room by a
/// background queue, which flushes them to disk whenever it has caught up and written 8 MiB or
/// more since its last flush; ``finish(_:)`` then writes the rest and the header, padded with
/// spaces (JSON whitespace, which every safetensors reader accepts) to the reserved length. When the header does not fit, or the final tensors do
/// not begin with the appended ones, the file is written again from the start the ordinary way,
/// so the result is always a valid file with the final writer's content.
///
/// ```swift
/// var prefix = SafetensorsWriter()
/// for name in unchanged { try prefix.addRaw(name, from: source) }
/// let staging = try SafetensorsStagedWriter(output: try OutputFile(path: "out.safetensors"), prefix: prefix,
///                                           reservedHeaderBytes: 64 * 1024)
/// // … compute the other tensors into `writer`, whose first tensors are `prefix`'s, and hand
/// // settled runs of them to `staging.append(_:)` as they come …
/// try StagedFile.commit([try staging.finish(writer)])
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
    ///   - output: The file this one will become (``StagedFile/commit(_:)``).
    ///   - reservedHeaderBytes: Room for the header's JSON, rounded up to a multiple of 8.
    /// - Throws: ``TensorIOError/fileSystem(path:reason:)`` when the temporary cannot be created.
    public init(output: OutputFile, reservedHeaderBytes: Int) throws {
        self.output = output
        self.reserved = (Swift.max(reservedHeaderBytes, 8) + 7) / 8 * 8
        (descriptor, temporary) = try output.createTemporary()
        guard lseek(descriptor, off_t(8 + reserved), SEEK_SET) >= 0 else {
            let error = output.failure("cannot seek")
            close(descriptor)
            unlink(temporary)
            throw error
        }
    }

    /// Creates the temporary beside `output` and starts copying `prefix`'s tensors into it.
    ///
    /// - Parameters:
    ///   - output: The file this one will become (``StagedFile/commit(_:)``).
    ///   - prefix: The leading tensors (their metadata is not used).
    ///   - reservedHeaderBytes: Room for the header's JSON, rounded up to a multiple of 8.
    /// - Throws: ``TensorIOError/fileSystem(path:reason:)`` when the temporary cannot be created.
    public convenience init(output: OutputFile, prefix: SafetensorsWriter, reservedHeaderBytes: Int) throws {
        try self.init(output: output, reservedHeaderBytes: reservedHeaderBytes)
        append(prefix)
    }

    /// Queues `tensors` (their metadata is not used) to be written after those appended before;
    /// the call returns at once. A write error is thrown by ``finish(_:)``.
    public func append(_ tensors: SafetensorsWriter) {
        guard !tensors.items.isEmpty else { return }
        state.withLock { state in
            precondition(!state.finished, "SafetensorsStagedWriter.append: called after finish or discard")
            // Names were checked when `tensors` was built; the queue needs only the layout.
            state.staged.items.append(contentsOf: tensors.items)
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
                let error = output.failure("cannot flush")
                state.withLock { if $0.error == nil { $0.error = error } }
            }
        }
    }

    /// Writes the rest of `writer` and its header, flushes the file and returns it staged; the
    /// temporary is removed when this throws.
    ///
    /// - Throws: the errors of copying and writing (a full disk), and of encoding the header.
    public func finish(_ writer: SafetensorsWriter) throws -> StagedFile {
        let staged = state.withLock { state in
            precondition(!state.finished, "SafetensorsStagedWriter.finish: called after finish or discard")
            state.finished = true
            return state.staged
        }
        queue.sync {}
        var ok = false
        defer {
            close(descriptor)
            if !ok { unlink(temporary) }
        }
        if let error = state.withLock({ $0.error }) { throw error }
        let leading = writer.items.prefix(staged.items.count)
        let matches = leading.count == staged.items.count
            && zip(leading, staged.items).allSatisfy { $0.name == $1.name && $0.byteCount == $1.byteCount && $0.dtype == $1.dtype && $0.shape == $1.shape }
        if matches, let header = try writer.header(reserved: reserved) {
            try header.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = pwrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset, off_t(offset))
                    if written < 0 && errno == EINTR { continue }
                    guard written > 0 else { throw output.failure("cannot write the header") }
                    offset += written
                }
            }
            let start = 8 + reserved + staged.tensorByteCount
            guard lseek(descriptor, off_t(start), SEEK_SET) >= 0 else { throw output.failure("cannot seek") }
            var sink = OutputSink(descriptor: descriptor, path: output.path)
            try writer.writeTensors(writer.items.dropFirst(staged.items.count), to: &sink)
        } else {
            // The header outgrew its room (or the tensors changed order): the ordinary layout.
            guard ftruncate(descriptor, 0) == 0, lseek(descriptor, 0, SEEK_SET) >= 0 else { throw output.failure("cannot start over") }
            var sink = OutputSink(descriptor: descriptor, path: output.path)
            try writer.write(to: &sink)
        }
        guard fsync(descriptor) == 0 else { throw output.failure("cannot flush") }
        ok = true
        return StagedFile(file: output, temporary: temporary)
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
