import Foundation
import TensorModule
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A safetensors file (the format PyTorch and Hugging Face models ship in), read lazily from a
/// memory-mapped file: opening validates the header; each tensor is decoded when asked for.
///
/// Memory stays bounded on files larger than memory: after a tensor is decoded or copied, the
/// pages of the map that held it are handed back to the system (they stay in the page cache), so
/// the process's resident size grows with the tensors in use, not with the file.
///
/// ```swift
/// let file = try SafetensorsFile(contentsOf: url)
/// for name in file.names { print(name, file.entries[name]!.shape) }
/// let w = try file.tensor(named: "encoder.layer.0.attention.self.query.weight", as: Float.self)
/// ```
///
/// Format: an 8-byte little-endian header length `N`, `N` bytes of JSON
/// (`{"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}`),
/// then the data, which the offsets must cover in order, without overlaps or holes.
public struct SafetensorsFile: Sendable {
    /// One tensor's place in the file.
    public struct Entry: Sendable, Equatable {
        /// The stored element type.
        public var dtype: DType
        /// The shape; empty for a scalar.
        public var shape: [Int]
        /// The byte range within the data section.
        public var byteRange: Range<Int>
    }

    /// The string metadata (`__metadata__`).
    public let metadata: [String: String]
    /// The tensors by name.
    public let entries: [String: Entry]
    /// Tensor names in the order of their data.
    public let names: [String]
    /// The whole file (memory-mapped when read from disk).
    let data: Data
    /// Where the data section starts.
    let dataStart: Int
    /// Whether `data` is a read-only map of a file, whose pages may be released after use.
    let isMapped: Bool
    /// The mapped file, kept open so that unchanged tensors are copied by the kernel.
    let source: OpenFile?

    static let maximumHeaderLength = 100 * 1024 * 1024

    /// Opens and validates a file, memory-mapping it so that a multi-GB file is not read at once.
    ///
    /// - Throws: ``TensorIOError`` for a missing or malformed file.
    public init(contentsOf url: URL) throws {
        let (data, source) = try mapFile(url)
        try self.init(data: data, mapped: true, source: source)
    }

    /// Validates a file held in memory.
    ///
    /// - Throws: ``TensorIOError`` when the header length is beyond the file or absurd, the JSON is
    ///   malformed, a dtype is unknown, a shape overflows, a byte size differs from shape × dtype,
    ///   or the offsets leave the data, overlap, are out of order or leave holes.
    public init(data: Data) throws {
        try self.init(data: data, mapped: false)
    }

    init(data: Data, mapped: Bool, source: OpenFile? = nil) throws {
        let format = "safetensors"
        guard data.count >= 8 else { throw TensorIOError.headerLengthOutOfRange(format: format, length: 0, fileSize: data.count) }
        let length = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length <= UInt64(Self.maximumHeaderLength) else {
            throw TensorIOError.malformedHeader(format: format, problem: .tooLong(length: length, limit: Self.maximumHeaderLength))
        }
        guard Int(length) <= data.count - 8 else {
            throw TensorIOError.headerLengthOutOfRange(format: format, length: Int(length), fileSize: data.count)
        }
        let dataStart = 8 + Int(length)
        let dataSize = data.count - dataStart
        let header = try data.withUnsafeBytes { bytes in
            var parser = SafetensorsHeaderParser(UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart]))
            return try parser.parse(dataSize: dataSize)
        }
        let (metadata, entries) = (header.metadata, header.entries)
        // Tensors must tile the data section in order. Empty tensors hold no bytes: any offset
        // inside the section is valid for them, and they do not take part in the tiling.
        let byOffset = entries.map { (offset: $0.value.byteRange.lowerBound, name: $0.key, range: $0.value.byteRange) }
            .sorted { ($0.offset, $0.name) < ($1.offset, $1.name) }
        let ordered = byOffset.map(\.name)
        var expected = 0
        for (_, name, range) in byOffset {
            if range.isEmpty { continue }
            if range.lowerBound < expected {
                throw TensorIOError.invalidOffsets(name: name, problem: .overlap(start: range.lowerBound, end: range.upperBound, previousEnd: expected))
            }
            if range.lowerBound > expected {
                throw TensorIOError.invalidOffsets(name: name, problem: .hole(bytes: range.lowerBound - expected))
            }
            expected = range.upperBound
        }
        guard expected == dataSize else {
            throw TensorIOError.invalidOffsets(name: ordered.last ?? "(none)", problem: .coverage(covered: expected, dataSize: dataSize))
        }
        self.metadata = metadata
        self.entries = entries
        self.names = ordered
        self.data = data
        self.dataStart = dataStart
        self.isMapped = mapped
        self.source = source
    }

    static let dtypes: [String: DType] = [
        "F16": .float16, "BF16": .bfloat16, "F32": .float32, "F64": .float64, "I8": .int8, "I16": .int16, "I32": .int32,
        "I64": .int64, "U8": .uint8, "U16": .uint16, "U32": .uint32, "U64": .uint64, "BOOL": .bool,
    ]

    static func name(of dtype: DType) -> String { dtypes.first { $0.value == dtype }!.key }

    /// The tensor `name`, converted to `Scalar` (integers and booleans converted, F16/BF16 widened).
    ///
    /// - Throws: ``TensorIOError/unknownTensor(name:available:)`` for a name the file does not hold.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func tensor<Scalar: BLASScalar>(named name: String, as _: Scalar.Type = Scalar.self) throws -> Tensor<Scalar> {
        guard let entry = entries[name] else { throw TensorIOError.unknownTensor(name: name, available: names) }
        let count = entry.shape.reduce(1, *)
        let range = (dataStart + entry.byteRange.lowerBound)..<(dataStart + entry.byteRange.upperBound)
        let scalars = data.withUnsafeBytes { bytes in
            decodeElements(UnsafeRawBufferPointer(rebasing: bytes[range]), dtype: entry.dtype, bigEndian: false, count: count, as: Scalar.self)
        }
        releasePages(range)
        return try Tensor(shape: entry.shape, scalars: scalars)
    }

    /// The raw bytes of tensor `name`, as stored.
    public func rawBytes(named name: String) throws -> Data {
        guard let entry = entries[name] else { throw TensorIOError.unknownTensor(name: name, available: names) }
        let range = (dataStart + entry.byteRange.lowerBound)..<(dataStart + entry.byteRange.upperBound)
        defer { releasePages(range) }
        return data.subdata(in: range)
    }

    /// Writes the stored bytes of `entry` to `sink` in pieces of at most 64 MiB, releasing each
    /// piece's pages after it was written.
    func copyBytes(of entry: Entry, to sink: inout OutputSink) throws {
        var start = dataStart + entry.byteRange.lowerBound
        let end = dataStart + entry.byteRange.upperBound
        // The kernel copies from the page cache without faulting the map in (`sendfile`); where
        // it cannot, the map is copied piece by piece.
        if let source, try sink.appendCopy(of: source.descriptor, offset: start, count: end - start) { return }
        let piece = 64 << 20
        while start < end {
            let range = start..<Swift.min(start + piece, end)
            try data.withUnsafeBytes { bytes in try sink.write(UnsafeRawBufferPointer(rebasing: bytes[range])) }
            releasePages(range)
            start = range.upperBound
        }
    }

    /// Hands the whole pages inside `range` of a mapped file back to the system: they are read
    /// again from the file (or the page cache) if touched later. Does nothing for data in memory.
    func releasePages(_ range: Range<Int>) {
        guard isMapped, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        data.withUnsafeBytes { bytes in
            let base = Int(bitPattern: bytes.baseAddress!)
            let first = (base + range.lowerBound + page - 1) / page * page
            let last = (base + range.upperBound) / page * page
            if last > first { _ = madvise(UnsafeMutableRawPointer(bitPattern: first), last - first, Int32(MADV_DONTNEED)) }
        }
    }
}

/// An open, read-only file descriptor, closed when the last reference goes.
final class OpenFile: Sendable {
    let descriptor: Int32
    init(_ descriptor: Int32) { self.descriptor = descriptor }
    deinit { close(descriptor) }
}

/// A read-only private map of the file at `url` (an empty `Data` for an empty file), unmapped
/// when the last copy of the `Data` goes, and the file, still open.
func mapFile(_ url: URL) throws -> (Data, OpenFile) {
    func fail(_ operation: FileOperation) -> TensorIOError {
        TensorIOError.fileSystem(path: url.path, problem: .system(operation, errno: errno))
    }
    let descriptor = try InputFile.openRegular(url.path)
    let file = OpenFile(descriptor)
    var status = stat()
    guard fstat(descriptor, &status) == 0 else { throw fail(.readSize) }
    let size = Int(status.st_size)
    if size == 0 { return (Data(), file) }
    guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), base != MAP_FAILED else { throw fail(.map) }
    return (Data(bytesNoCopy: base, count: size, deallocator: .custom { pointer, count in munmap(pointer, count) }), file)
}

/// Builds a safetensors file and writes it through a temporary file renamed into place, so that a
/// failed write never leaves a half-written file.
///
/// ```swift
/// var writer = SafetensorsWriter()
/// try writer.add("layer.0.weight", tensor, dtype: .float16)
/// writer.metadata["format"] = "pt"
/// try writer.write(to: url)
/// ```
///
/// Tensors copied from another file with ``addRaw(_:from:)`` are not held in memory: their bytes
/// are streamed from the source when the file is written, so that rewriting a file larger than
/// memory needs memory only for the tensors that were added as values.
public struct SafetensorsWriter: Sendable {
    enum Payload: Sendable {
        case bytes([UInt8])
        case source(SafetensorsFile, SafetensorsFile.Entry)
        /// Already written to a ``SafetensorsStagedWriter``'s file, which alone holds these items:
        /// their bytes are no longer in memory.
        case written(byteCount: Int)
    }
    struct Item: Sendable {
        var name: String; var dtype: DType; var shape: [Int]; var payload: Payload
        var byteCount: Int {
            switch payload {
            case let .bytes(bytes): return bytes.count
            case let .source(_, entry): return entry.byteRange.count
            case let .written(byteCount): return byteCount
            }
        }

        /// The same tensor with its bytes dropped, once they are in the staged file.
        var written: Item { Item(name: name, dtype: dtype, shape: shape, payload: .written(byteCount: byteCount)) }
    }
    var items: [Item] = []
    var itemNames: Set<String> = []
    /// The string metadata written as `__metadata__`.
    public var metadata: [String: String] = [:]

    /// An empty file with no tensors and no metadata.
    public init() {}

    /// The tensor names, in the order they were added.
    public var names: [String] { items.map(\.name) }

    /// The bytes of all tensors (the data section, without the header): what a sharded
    /// checkpoint's index counts as `total_size`.
    public var tensorByteCount: Int { items.reduce(0) { $0 + $1.byteCount } }

    /// The elements of all tensors.
    public var tensorElementCount: Int { items.reduce(0) { $0 + $1.shape.reduce(1, *) } }

    /// Adds a tensor in `dtype` (default: the scalar type's own).
    ///
    /// - Throws: ``TensorIOError/duplicateName(format:name:)`` for a repeated name,
    ///   ``TensorIOError/unwritableDType(format:dtype:writable:)`` for an integer dtype.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public mutating func add<Scalar: BLASScalar>(_ name: String, _ tensor: Tensor<Scalar>, dtype: DType? = nil) throws {
        let dtype = dtype ?? DType.of(Scalar.self)
        try append(Item(name: name, dtype: dtype, shape: tensor.shape, payload: .bytes(encodeElements(tensor.scalars, dtype: dtype))))
    }

    /// Adds a tensor copied byte for byte from another file.
    public mutating func addRaw(_ name: String, dtype: DType, shape: [Int], bytes: Data) throws {
        guard bytes.count == shape.reduce(1, *) * dtype.size else {
            throw TensorIOError.sizeMismatch(name: name, expectedBytes: shape.reduce(1, *) * dtype.size, actualBytes: bytes.count)
        }
        try append(Item(name: name, dtype: dtype, shape: shape, payload: .bytes([UInt8](bytes))))
    }

    /// Adds tensor `name` of `file` under the same name, byte for byte; its bytes are read from
    /// `file` only when the file is written.
    ///
    /// - Throws: ``TensorIOError/unknownTensor(name:available:)``, ``TensorIOError/duplicateName(format:name:)``.
    public mutating func addRaw(_ name: String, from file: SafetensorsFile) throws {
        guard let entry = file.entries[name] else { throw TensorIOError.unknownTensor(name: name, available: file.names) }
        try append(Item(name: name, dtype: entry.dtype, shape: entry.shape, payload: .source(file, entry)))
    }

    /// Adds every tensor of `other`, in its order, without copying their bytes again (its
    /// metadata is not taken).
    ///
    /// - Throws: ``TensorIOError/duplicateName(format:name:)`` for a name both hold.
    public mutating func append(contentsOf other: SafetensorsWriter) throws {
        for item in other.items { try append(item) }
    }

    mutating func append(_ item: Item) throws {
        guard item.name != "__metadata__", itemNames.insert(item.name).inserted else {
            throw TensorIOError.duplicateName(format: "safetensors", name: item.name)
        }
        items.append(item)
    }

    /// The 8-byte length and the JSON header, padded with spaces so that the data starts on an
    /// 8-byte boundary, or to exactly `reserved` bytes of JSON when given (`nil` when it does not fit).
    func header(reserved: Int?) throws -> Data? {
        var json = try headerJSON()
        let length = reserved ?? (json.count + 7) / 8 * 8
        guard json.count <= length else { return nil }
        json.append(contentsOf: [UInt8](repeating: 0x20, count: length - json.count))
        var result = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { result.append(contentsOf: $0) }
        result.append(json)
        return result
    }

    /// The 8-byte length and the JSON header, padded so that the data starts on an 8-byte boundary.
    func header() throws -> Data {
        try header(reserved: nil)!
    }

    /// The length of the header's JSON text, unpadded.
    public var headerByteCount: Int {
        get throws { try headerJSON().count }
    }

    /// The header's JSON text, unpadded: `__metadata__` first (keys in code-point order), then the
    /// tensors in data order, as the reference implementation writes them.
    func headerJSON() throws -> Data {
        var json = JSONText()
        json.beginObject()
        if !metadata.isEmpty {
            json.key("__metadata__")
            json.beginObject()
            for key in metadata.keys.sorted() {
                json.key(key)
                json.value(metadata[key]!)
            }
            json.endObject()
        }
        var offset = 0
        for item in items {
            let count = item.byteCount
            json.key(item.name)
            json.beginObject()
            json.key("dtype"); json.value(SafetensorsFile.name(of: item.dtype))
            json.key("shape"); json.value(item.shape)
            json.key("data_offsets"); json.value([offset, offset + count])
            json.endObject()
            offset += count
        }
        json.endObject()
        return Data(json.bytes)
    }

    /// Writes the header and every tensor to `sink`, streaming copied tensors from their source.
    public func write(to sink: inout OutputSink) throws {
        try sink.write(try header())
        try writeTensors(items[...], to: &sink)
    }

    /// Writes the data of `items` to `sink`, in order.
    func writeTensors(_ items: ArraySlice<Item>, to sink: inout OutputSink) throws {
        for item in items {
            switch item.payload {
            case let .bytes(bytes): try bytes.withUnsafeBytes { try sink.write($0) }
            case let .source(file, entry): try file.copyBytes(of: entry, to: &sink)
            case .written: preconditionFailure("SafetensorsWriter: \(item.name) was written to a staged file already")
            }
        }
    }

    /// The file's bytes, all in memory.
    public func encoded() throws -> Data {
        var result = try header()
        result.reserveCapacity(result.count + tensorByteCount)
        for item in items {
            switch item.payload {
            case let .bytes(bytes): result.append(contentsOf: bytes)
            case let .source(file, _): result.append(try file.rawBytes(named: item.name))
            case .written: preconditionFailure("SafetensorsWriter: \(item.name) was written to a staged file already")
            }
        }
        return result
    }

    /// Writes the file to a temporary beside `output`, streaming, to be committed with others
    /// (``StagedFile/commit(_:removingFirst:)``).
    public func stage(to output: OutputFile) throws -> StagedFile {
        try output.stage { sink in try write(to: &sink) }
    }

    /// Writes the file atomically, streaming copied tensors from their source.
    public func write(to url: URL) throws {
        try StagedFile.commit([try stage(to: try OutputFile(path: url.path))])
    }
}
