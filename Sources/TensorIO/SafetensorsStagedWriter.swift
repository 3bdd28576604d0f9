import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A safetensors file whose leading tensors are written (and flushed to disk) in the background
/// while the rest is still being computed.
///
/// A safetensors file starts with its header, whose length depends on every tensor, so a writer
/// normally waits for the last tensor before it writes the first. This one reserves room for the
/// header instead: the tensors of `prefix`, whose offsets are known at once, are copied from their
/// sources into the temporary right after the reserved room on a background thread and flushed
/// there; ``finish(_:)`` then writes the rest and the header, padded with spaces (JSON whitespace,
/// which every safetensors reader accepts) to the reserved length. When the header does not fit,
/// or the final tensors do not begin with `prefix`'s, the file is written again from the start
/// the ordinary way, so the result is always a valid file with the final writer's content.
///
/// ```swift
/// var prefix = SafetensorsWriter()
/// for name in unchanged { try prefix.addRaw(name, from: source) }
/// let staging = try SafetensorsStagedWriter(output: try OutputFile(path: "out.safetensors"), prefix: prefix,
///                                           reservedHeaderBytes: 64 * 1024)
/// // … compute the other tensors into `writer`, whose first tensors are `prefix`'s …
/// try StagedFile.commit([try staging.finish(writer)])
/// ```
public final class SafetensorsStagedWriter: @unchecked Sendable {
    let output: OutputFile
    let prefix: SafetensorsWriter
    let reserved: Int
    let descriptor: Int32
    let temporary: String
    let copied = DispatchSemaphore(value: 0)
    var copyError: (any Error)?
    var finished = false

    /// Creates the temporary beside `output` and starts copying `prefix`'s tensors into it.
    ///
    /// - Parameters:
    ///   - output: The file this one will become (``StagedFile/commit(_:)``).
    ///   - prefix: The leading tensors (their metadata is not used).
    ///   - reservedHeaderBytes: Room for the header's JSON, rounded up to a multiple of 8.
    /// - Throws: ``TensorIOError/fileSystem(path:reason:)`` when the temporary cannot be created.
    public init(output: OutputFile, prefix: SafetensorsWriter, reservedHeaderBytes: Int) throws {
        self.output = output
        self.prefix = prefix
        self.reserved = (Swift.max(reservedHeaderBytes, 8) + 7) / 8 * 8
        (descriptor, temporary) = try output.createTemporary()
        let (descriptor, path, reserved) = (self.descriptor, output.path, self.reserved)
        DispatchQueue.global().async { [self] in
            do {
                guard lseek(descriptor, off_t(8 + reserved), SEEK_SET) >= 0 else { throw output.failure("cannot seek") }
                var sink = OutputSink(descriptor: descriptor, path: path)
                try prefix.writeTensors(prefix.items[...], to: &sink)
                // Flushed now, while the rest is computed: the final flush has only the rest left.
                guard fsync(descriptor) == 0 else { throw output.failure("cannot flush") }
            } catch {
                copyError = error
            }
            copied.signal()
        }
    }

    /// Writes the rest of `writer` and its header, flushes the file and returns it staged; the
    /// temporary is removed when this throws.
    ///
    /// - Throws: the errors of copying and writing (a full disk), and of encoding the header.
    public func finish(_ writer: SafetensorsWriter) throws -> StagedFile {
        precondition(!finished, "SafetensorsStagedWriter.finish: called twice")
        finished = true
        copied.wait()
        var ok = false
        defer {
            close(descriptor)
            if !ok { unlink(temporary) }
        }
        if let copyError { throw copyError }
        let leading = writer.items.prefix(prefix.items.count)
        let matches = leading.count == prefix.items.count
            && zip(leading, prefix.items).allSatisfy { $0.name == $1.name && $0.byteCount == $1.byteCount && $0.dtype == $1.dtype && $0.shape == $1.shape }
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
            let start = 8 + reserved + prefix.tensorByteCount
            guard lseek(descriptor, off_t(start), SEEK_SET) >= 0 else { throw output.failure("cannot seek") }
            var sink = OutputSink(descriptor: descriptor, path: output.path)
            try writer.writeTensors(writer.items.dropFirst(prefix.items.count), to: &sink)
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
        // Neither finished nor discarded: the background copy (which holds this object) is over.
        if !finished {
            close(descriptor)
            unlink(temporary)
        }
    }

    /// Stops using the temporary and removes it (after the background copy ends).
    public func discard() {
        guard !finished else { return }
        finished = true
        copied.wait()
        close(descriptor)
        unlink(temporary)
    }
}
