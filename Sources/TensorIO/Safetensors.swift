import Foundation
import TensorModule

/// A safetensors file (the format PyTorch and Hugging Face models ship in), read lazily from a
/// memory-mapped file: opening validates the header; each tensor is decoded when asked for.
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

    static let maximumHeaderLength = 100 * 1024 * 1024

    /// Opens and validates a file, memory-mapping it so that a multi-GB file is not read at once.
    ///
    /// - Throws: ``TensorIOError`` for a missing or malformed file.
    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw TensorIOError.fileSystem(path: url.path, reason: error.localizedDescription)
        }
        try self.init(data: data)
    }

    /// Validates a file held in memory.
    ///
    /// - Throws: ``TensorIOError`` when the header length is beyond the file or absurd, the JSON is
    ///   malformed, a dtype is unknown, a shape overflows, a byte size differs from shape × dtype,
    ///   or the offsets leave the data, overlap, are out of order or leave holes.
    public init(data: Data) throws {
        let format = "safetensors"
        guard data.count >= 8 else { throw TensorIOError.headerLengthOutOfRange(format: format, length: 0, fileSize: data.count) }
        let length = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length <= UInt64(Self.maximumHeaderLength) else {
            throw TensorIOError.malformedHeader(
                format: format, reason: "a header of \(length) bytes exceeds the limit of \(Self.maximumHeaderLength) bytes (100 MiB, as in the reference implementation)")
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
                throw TensorIOError.invalidOffsets(name: name, reason: "[\(range.lowerBound), \(range.upperBound)] overlaps the previous tensor, which ends at \(expected)")
            }
            if range.lowerBound > expected {
                throw TensorIOError.invalidOffsets(name: name, reason: "a hole of \(range.lowerBound - expected) bytes precedes it")
            }
            expected = range.upperBound
        }
        guard expected == dataSize else {
            throw TensorIOError.invalidOffsets(name: ordered.last ?? "(none)", reason: "the tensors cover \(expected) of \(dataSize) data bytes")
        }
        self.metadata = metadata
        self.entries = entries
        self.names = ordered
        self.data = data
        self.dataStart = dataStart
    }

    static let dtypes: [String: DType] = [
        "F16": .float16, "BF16": .bfloat16, "F32": .float32, "F64": .float64, "I8": .int8, "I16": .int16, "I32": .int32,
        "I64": .int64, "U8": .uint8, "U16": .uint16, "U32": .uint32, "U64": .uint64, "BOOL": .bool,
    ]

    static func name(of dtype: DType) -> String { dtypes.first { $0.value == dtype }!.key }

    /// The tensor `name`, converted to `Scalar` (integers and booleans converted, F16/BF16 widened).
    ///
    /// - Throws: ``TensorIOError/unknownTensor(name:available:)`` for a name the file does not hold.
    public func tensor<Scalar: BLASScalar>(named name: String, as _: Scalar.Type = Scalar.self) throws -> Tensor<Scalar> {
        guard let entry = entries[name] else { throw TensorIOError.unknownTensor(name: name, available: names) }
        let count = entry.shape.reduce(1, *)
        let scalars = data.withUnsafeBytes { bytes in
            decodeElements(UnsafeRawBufferPointer(rebasing: bytes[(dataStart + entry.byteRange.lowerBound)..<(dataStart + entry.byteRange.upperBound)]),
                           dtype: entry.dtype, bigEndian: false, count: count, as: Scalar.self)
        }
        return try Tensor(shape: entry.shape, scalars: scalars)
    }

    /// The raw bytes of tensor `name`, as stored.
    public func rawBytes(named name: String) throws -> Data {
        guard let entry = entries[name] else { throw TensorIOError.unknownTensor(name: name, available: names) }
        return data.subdata(in: (dataStart + entry.byteRange.lowerBound)..<(dataStart + entry.byteRange.upperBound))
    }
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
public struct SafetensorsWriter: Sendable {
    struct Item: Sendable { var name: String; var dtype: DType; var shape: [Int]; var bytes: [UInt8] }
    var items: [Item] = []
    var itemNames: Set<String> = []
    /// The string metadata written as `__metadata__`.
    public var metadata: [String: String] = [:]

    /// An empty file with no tensors and no metadata.
    public init() {}

    /// Adds a tensor in `dtype` (default: the scalar type's own).
    ///
    /// - Throws: ``TensorIOError/duplicateName(format:name:)`` for a repeated name,
    ///   ``TensorIOError/unwritableDType(format:dtype:writable:)`` for an integer dtype.
    public mutating func add<Scalar: BLASScalar>(_ name: String, _ tensor: Tensor<Scalar>, dtype: DType? = nil) throws {
        let dtype = dtype ?? DType.of(Scalar.self)
        try append(Item(name: name, dtype: dtype, shape: tensor.shape, bytes: encodeElements(tensor.scalars, dtype: dtype)))
    }

    /// Adds a tensor copied byte for byte from another file.
    public mutating func addRaw(_ name: String, dtype: DType, shape: [Int], bytes: Data) throws {
        guard bytes.count == shape.reduce(1, *) * dtype.size else {
            throw TensorIOError.sizeMismatch(name: name, expectedBytes: shape.reduce(1, *) * dtype.size, actualBytes: bytes.count)
        }
        try append(Item(name: name, dtype: dtype, shape: shape, bytes: [UInt8](bytes)))
    }

    mutating func append(_ item: Item) throws {
        guard item.name != "__metadata__", itemNames.insert(item.name).inserted else {
            throw TensorIOError.duplicateName(format: "safetensors", name: item.name)
        }
        items.append(item)
    }

    /// The file's bytes.
    public func encoded() throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for item in items {
            header[item.name] = ["dtype": SafetensorsFile.name(of: item.dtype), "shape": item.shape, "data_offsets": [offset, offset + item.bytes.count]]
            offset += item.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so that the data starts on an 8-byte boundary.
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - (json.count % 8)) % 8))
        var result = Data()
        result.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { result.append(contentsOf: $0) }
        result.append(json)
        for item in items { result.append(contentsOf: item.bytes) }
        return result
    }

    /// Writes the file atomically.
    public func write(to url: URL) throws {
        try writeAtomically(try encoded(), to: url)
    }
}
