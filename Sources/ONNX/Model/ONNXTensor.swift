import Foundation
import SwiftProtobuf
import TensorIO
import TensorModule

/// One tensor of an ONNX model: an initializer, or the value of a `Constant` node.
///
/// Its data may sit in `raw_data` (little-endian bytes), in the typed fields (`float_data`,
/// `int32_data` for 8- and 16-bit types including FLOAT16 and BFLOAT16 bit patterns,
/// `int64_data`, `double_data`, `uint64_data`), or in an external file, which
/// ``ONNXModel/init(contentsOf:)`` reads in.
///
/// ```swift
/// let w = try model.graph.initializer(named: "conv1.weight")!.tensor(as: Float.self)
/// let t = try ONNXTensor(name: "fc.weight", Tensor<Float>.randomNormal(shape: [4, 8], seed: 1), dataType: .float16)
/// ```
public struct ONNXTensor: Sendable, Equatable {
    var proto: Onnx_TensorProto

    init(proto: Onnx_TensorProto) { self.proto = proto }

    /// A tensor holding `tensor`'s scalars as `dataType` (FLOAT, DOUBLE, FLOAT16 or BFLOAT16;
    /// default: `Scalar`'s own type) in `raw_data`.
    ///
    /// As FLOAT or DOUBLE, a value that would be subnormal in `dataType` (below
    /// `Float.leastNormalMagnitude`, 1.2e-38, for FLOAT) is written as zero unless
    /// `flushingSubnormals` is false: CPU kernels multiply subnormal operands through a slow
    /// microcode path, and a low-rank factor with a few hundred of them made one 1×1 convolution of
    /// PP-OCRv4's recognizer 20 times slower in onnxruntime (Documentation/Performance.md). The
    /// change is below every normal value's rounding error. FLOAT16 and BFLOAT16 are written as
    /// they round.
    ///
    /// - Throws: ``ONNXError/unsupportedDataType(tensor:dataType:operation:)`` for any other type.
    public init<Scalar: BLASScalar>(name: String, _ tensor: Tensor<Scalar>, dataType: ONNXDataType? = nil,
                                    flushingSubnormals: Bool = true) throws {
        let type = dataType ?? (Scalar.self == Double.self ? .double : .float)
        guard type.isFloatingPoint, let dtype = type.dtype else {
            throw ONNXError.unsupportedDataType(tensor: name, dataType: type, operation: "writing floating-point weights")
        }
        var scalars = tensor.scalars
        if flushingSubnormals {
            switch type {
            case .float: Self.flush(&scalars, below: Scalar(Double(Float.leastNormalMagnitude)))
            case .double: Self.flush(&scalars, below: Scalar(Double.leastNormalMagnitude))
            default: break
            }
        }
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dataType = Int32(type.rawValue)
        proto.dims = tensor.shape.map(Int64.init)
        proto.rawData = Data(try encodeElements(scalars, dtype: dtype))
        self.proto = proto
    }

    /// Sets every non-zero value of magnitude below `least` to zero (a Float `least` of 2⁻¹²⁶ stands
    /// for itself: it is exactly representable).
    private static func flush<Scalar: BLASScalar>(_ scalars: inout ContiguousArray<Scalar>, below least: Scalar) {
        for i in scalars.indices where scalars[i] != 0 && abs(scalars[i]) < least { scalars[i] = 0 }
    }

    /// An INT64 tensor (a shape for `Reshape`, axes, …) of the given shape (default: 1-D).
    ///
    /// - Precondition: `values.count` is the product of `shape`.
    public init(name: String, int64 values: [Int], shape: [Int]? = nil) {
        let shape = shape ?? [values.count]
        precondition(shape.reduce(1, *) == values.count, "ONNXTensor(int64:): \(values.count) values for shape \(shape)")
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dataType = Int32(ONNXDataType.int64.rawValue)
        proto.dims = shape.map(Int64.init)
        var bytes = Data(capacity: values.count * 8)
        for v in values { withUnsafeBytes(of: Int64(v).littleEndian) { bytes.append(contentsOf: $0) } }
        proto.rawData = bytes
        self.proto = proto
    }

    /// The tensor's name.
    public var name: String {
        get { proto.name }
        set { proto.name = newValue }
    }

    /// The element type.
    public var dataType: ONNXDataType { ONNXDataType(rawValue: Int(proto.dataType)) }

    /// The dimensions.
    public var shape: [Int] { proto.dims.map { Int(clamping: $0) } }

    /// Whether the data is in an external file that has not been read in.
    public var isExternal: Bool { proto.dataLocation == .external }

    /// The number of elements.
    ///
    /// - Throws: ``ONNXError/invalidShape(tensor:shape:)`` for a negative or overflowing shape.
    public func elementCount() throws -> Int {
        var count = 1
        for d in shape {
            guard d >= 0 else { throw ONNXError.invalidShape(tensor: name, shape: shape) }
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw ONNXError.invalidShape(tensor: name, shape: shape) }
            count = p
        }
        return count
    }

    /// Checks, without decoding, that the shape is valid and the stored data holds exactly its
    /// elements (in `raw_data` or the typed field of the element type).
    ///
    /// - Throws: ``ONNXError/invalidShape(tensor:shape:)``, ``ONNXError/dataSize(tensor:expected:actual:)``,
    ///   ``ONNXError/unsupportedDataType(tensor:dataType:operation:)``, ``ONNXError/externalDataWithoutDirectory(tensor:)``.
    public func checkData() throws {
        let count = try elementCount()
        guard let dtype = dataType.dtype else {
            throw ONNXError.unsupportedDataType(tensor: name, dataType: dataType, operation: "reading numbers")
        }
        if isExternal { throw ONNXError.externalDataWithoutDirectory(tensor: name) }
        let (expected, overflow) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow else { throw ONNXError.invalidShape(tensor: name, shape: shape) }
        if proto.hasRawData { return try checkSize(expected) }
        let stored: Int
        switch dtype {
        case .float32: stored = proto.floatData.count
        case .float64: stored = proto.doubleData.count
        case .int64: stored = proto.int64Data.count
        case .uint32, .uint64: stored = proto.uint64Data.count
        default: stored = proto.int32Data.count
        }
        guard stored == count else { throw ONNXError.dataSize(tensor: name, expected: expected, actual: stored * dtype.size) }
    }

    /// The bytes of the data when stored as `raw_data` (or read in from an external file).
    var storedBytes: Int { proto.rawData.count }

    /// The scalars converted to `Scalar`, in row-major order (any numeric type converts; the
    /// floating-point weight types are the intended use).
    ///
    /// - Throws: ``ONNXError/unsupportedDataType(tensor:dataType:operation:)`` for strings and types
    ///   without a numeric layout here, ``ONNXError/dataSize(tensor:expected:actual:)`` when the
    ///   data does not fit the shape, ``ONNXError/externalDataWithoutDirectory(tensor:)`` for data
    ///   that was never read in.
    public func tensor<Scalar: BLASScalar>(as _: Scalar.Type = Scalar.self) throws -> Tensor<Scalar> {
        let count = try elementCount()
        let scalars = try decoded(count: count, as: Scalar.self)
        return try Tensor(shape: shape, scalars: scalars)
    }

    /// The values of an integer tensor (INT64, INT32, INT16, INT8, UINT8, UINT16, UINT32, BOOL),
    /// as `Int`: shapes, axes, indices.
    ///
    /// - Throws: as ``tensor(as:)``, and ``ONNXError/unsupportedDataType(tensor:dataType:operation:)``
    ///   for floating-point types.
    public func integers() throws -> [Int] {
        guard let dtype = dataType.dtype, !dtype.isFloatingPoint else {
            throw ONNXError.unsupportedDataType(tensor: name, dataType: dataType, operation: "reading integers")
        }
        let count = try elementCount()
        if isExternal { throw ONNXError.externalDataWithoutDirectory(tensor: name) }
        if proto.hasRawData {
            try checkSize(count * dtype.size)
            return proto.rawData.withUnsafeBytes { bytes in
                (0..<count).map { i -> Int in
                    switch dtype {
                    case .int64: return Int(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                    case .uint64: return Int(truncatingIfNeeded: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                    case .int32: return Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                    case .uint32: return Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    case .int16: return Int(Int16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
                    case .uint16: return Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                    case .int8: return Int(Int8(bitPattern: bytes[i]))
                    default: return Int(bytes[i])   // uint8, bool
                    }
                }
            }
        }
        let values: [Int]
        switch dtype {
        case .int64: values = proto.int64Data.map { Int($0) }
        case .uint32, .uint64: values = proto.uint64Data.map { Int(truncatingIfNeeded: $0) }
        default: values = proto.int32Data.map { Int($0) }
        }
        guard values.count == count else { throw ONNXError.dataSize(tensor: name, expected: count * dtype.size, actual: values.count * dtype.size) }
        return values
    }

    func checkSize(_ expected: Int) throws {
        guard proto.rawData.count == expected else {
            throw ONNXError.dataSize(tensor: name, expected: expected, actual: proto.rawData.count)
        }
    }

    /// The scalars from `raw_data` or the typed fields.
    func decoded<Scalar: BLASScalar>(count: Int, as _: Scalar.Type) throws -> ContiguousArray<Scalar> {
        guard let dtype = dataType.dtype else {
            throw ONNXError.unsupportedDataType(tensor: name, dataType: dataType, operation: "reading numbers")
        }
        if isExternal { throw ONNXError.externalDataWithoutDirectory(tensor: name) }
        if proto.hasRawData || count == 0 && proto.floatData.isEmpty && proto.int32Data.isEmpty && proto.int64Data.isEmpty
            && proto.doubleData.isEmpty && proto.uint64Data.isEmpty {
            let expected = count * dtype.size
            try checkSize(expected)
            return proto.rawData.withUnsafeBytes { decodeElements($0, dtype: dtype, bigEndian: false, count: count, as: Scalar.self) }
        }
        func checked<T>(_ values: [T]) throws -> [T] {
            guard values.count == count else { throw ONNXError.dataSize(tensor: name, expected: count * dtype.size, actual: values.count * dtype.size) }
            return values
        }
        switch dtype {
        case .float32: return ContiguousArray(try checked(proto.floatData).map { Scalar(Float($0)) })
        case .float64: return ContiguousArray(try checked(proto.doubleData).map { Scalar(Double($0)) })
        case .float16: return ContiguousArray(try checked(proto.int32Data).map { Scalar(halfToFloat(UInt16(truncatingIfNeeded: $0))) })
        case .bfloat16:
            return ContiguousArray(try checked(proto.int32Data).map { Scalar(Float(bitPattern: UInt32(UInt16(truncatingIfNeeded: $0)) << 16)) })
        case .int64: return ContiguousArray(try checked(proto.int64Data).map { Scalar(Double($0)) })
        case .uint32, .uint64: return ContiguousArray(try checked(proto.uint64Data).map { Scalar(Double($0)) })
        default: return ContiguousArray(try checked(proto.int32Data).map { Scalar(Double($0)) })
        }
    }
}
