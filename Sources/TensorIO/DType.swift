import TensorModule

/// Element types of weight files, with their byte order where it matters.
public enum DType: String, Sendable, CaseIterable, Codable {
    case float16, bfloat16, float32, float64
    case int8, int16, int32, int64, uint8, uint16, uint32, uint64, bool

    /// The largest finite magnitude this type holds (65504 for float16), `Double.greatestFiniteMagnitude`
    /// for float64 and the integer types. A value computed in `Double` and written in this type must
    /// not exceed it, or it is written as infinity.
    public var largestFinite: Double {
        switch self {
        case .float16: return 65504
        case .bfloat16: return Double(Float(bitPattern: 0x7F7F_0000))
        case .float32: return Double(Float.greatestFiniteMagnitude)
        default: return .greatestFiniteMagnitude
        }
    }

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .int8, .uint8, .bool: return 1
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .float32, .int32, .uint32: return 4
        case .float64, .int64, .uint64: return 8
        }
    }

    /// Whether this is a floating-point type.
    public var isFloatingPoint: Bool { [.float16, .bfloat16, .float32, .float64].contains(self) }

    /// The dtype that stores `Scalar` exactly.
    public static func of<Scalar: BLASScalar>(_: Scalar.Type) -> DType {
        Scalar.self == Float.self ? .float32 : .float64
    }
}

/// The byte size of a tensor of `shape` and `dtype`.
///
/// - Throws: ``TensorIOError/invalidShape(format:shape:)`` for a negative dimension or a size that overflows.
package func validatedByteCount(shape: [Int], dtype: DType, format: String) throws -> Int {
    var count = 1
    for dimension in shape {
        guard dimension >= 0 else { throw TensorIOError.invalidShape(format: format, shape: shape) }
        let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
        guard !overflow else { throw TensorIOError.invalidShape(format: format, shape: shape) }
        count = product
    }
    let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.size)
    guard !overflow else { throw TensorIOError.invalidShape(format: format, shape: shape) }
    return bytes
}

/// Decodes `count` elements of `dtype` from `bytes` into `Scalar`, honouring the byte order.
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
package func decodeElements<Scalar: BLASScalar>(
    _ bytes: UnsafeRawBufferPointer, dtype: DType, bigEndian: Bool, count: Int, as _: Scalar.Type
) -> ContiguousArray<Scalar> {
    ContiguousArray<Scalar>(unsafeUninitializedCapacity: count) { out, initialized in
        func raw<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> T {
            let value = bytes.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self)
            return bigEndian ? T(bigEndian: value) : T(littleEndian: value)
        }
        switch dtype {
        case .float32:
            if !bigEndian && Scalar.self == Float.self {
                UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<(count * 4)]))
            } else {
                for i in 0..<count { out[i] = Scalar(Float(bitPattern: raw(UInt32.self, i))) }
            }
        case .float64:
            if !bigEndian && Scalar.self == Double.self {
                UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<(count * 8)]))
            } else {
                for i in 0..<count { out[i] = Scalar(Double(bitPattern: raw(UInt64.self, i))) }
            }
        case .float16:
            for i in 0..<count { out[i] = Scalar(halfToFloat(raw(UInt16.self, i))) }
        case .bfloat16:
            for i in 0..<count { out[i] = Scalar(Float(bitPattern: UInt32(raw(UInt16.self, i)) << 16)) }
        case .int8: for i in 0..<count { out[i] = Scalar(Int8(bitPattern: bytes[i])) }
        case .uint8: for i in 0..<count { out[i] = Scalar(bytes[i]) }
        case .bool: for i in 0..<count { out[i] = bytes[i] == 0 ? 0 : 1 }
        case .int16: for i in 0..<count { out[i] = Scalar(Int16(bitPattern: raw(UInt16.self, i))) }
        case .uint16: for i in 0..<count { out[i] = Scalar(raw(UInt16.self, i)) }
        case .int32: for i in 0..<count { out[i] = Scalar(Int32(bitPattern: raw(UInt32.self, i))) }
        case .uint32: for i in 0..<count { out[i] = Scalar(raw(UInt32.self, i)) }
        case .int64: for i in 0..<count { out[i] = Scalar(Int64(bitPattern: raw(UInt64.self, i))) }
        case .uint64: for i in 0..<count { out[i] = Scalar(raw(UInt64.self, i)) }
        }
        initialized = count
    }
}

/// Encodes scalars as little-endian `dtype` bytes (floating-point dtypes only).
@_specialize(exported: true, where Scalar == Float)
@_specialize(exported: true, where Scalar == Double)
package func encodeElements<Scalar: BLASScalar>(_ scalars: ContiguousArray<Scalar>, dtype: DType) throws -> [UInt8] {
    guard dtype.isFloatingPoint else {
        throw TensorIOError.unwritableDType(format: "safetensors", dtype: dtype.rawValue, writable: ["float16", "bfloat16", "float32", "float64"])
    }
    let count = scalars.count
    return [UInt8](unsafeUninitializedCapacity: count * dtype.size) { bytes, initialized in
        let out = UnsafeMutableRawBufferPointer(bytes)
        scalars.withUnsafeBufferPointer { x in
            switch dtype {
            case .float32: for i in 0..<count { out.storeBytes(of: Float(x[i]).bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            case .float64: for i in 0..<count { out.storeBytes(of: Double(x[i]).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self) }
            case .float16: for i in 0..<count { out.storeBytes(of: floatToHalf(Float(x[i])).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            case .bfloat16: for i in 0..<count { out.storeBytes(of: floatToBFloat16(Float(x[i])).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            default: preconditionFailure("floating-point dtypes only")
            }
        }
        initialized = count * dtype.size
    }
}

/// IEEE 754 binary16 → binary32.
package func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h >> 15) << 31
    let exponent = Int((h >> 10) & 0x1F)
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        // Zero or subnormal: mantissa · 2⁻²⁴.
        let magnitude = Float(mantissa) * 0x1p-24
        return sign == 0 ? magnitude : -magnitude
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
}

/// binary32 → binary16 with round-to-nearest-even, overflow to infinity.
package func floatToHalf(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    if f.isNaN { return sign | 0x7E00 }
    let magnitude = abs(f)
    if magnitude >= 65520 { return sign | 0x7C00 }
    if magnitude < 0x1p-14 {
        // Subnormal half: round magnitude / 2⁻²⁴ to the nearest integer (ties to even).
        return sign | UInt16((magnitude * 0x1p24).rounded(.toNearestOrEven))
    }
    let exponent = Int((bits >> 23) & 0xFF) - 127 + 15
    let mantissa = (bits >> 13) & 0x3FF
    let remainder = bits & 0x1FFF
    var half = UInt32(exponent) << 10 | mantissa
    if remainder > 0x1000 || (remainder == 0x1000 && (mantissa & 1) == 1) {
        half += 1  // may carry into the exponent, which is the correct rounding
    }
    return sign | UInt16(half)
}

/// binary32 → bfloat16 with round-to-nearest-even.
package func floatToBFloat16(_ f: Float) -> UInt16 {
    if f.isNaN { return UInt16(f.bitPattern >> 16) | 0x0040 }
    let bits = f.bitPattern
    let rounding = 0x7FFF + ((bits >> 16) & 1)
    return UInt16((bits &+ rounding) >> 16)
}
