import TensorIO

/// An ONNX element type (`TensorProto.DataType`), with names for the common ones; any other
/// value is kept as its number.
public struct ONNXDataType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The number in `onnx.proto`.
    public let rawValue: Int

    /// The type with this number.
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// No type (`UNDEFINED`).
    public static let undefined = ONNXDataType(rawValue: 0)
    /// 32-bit float (`FLOAT`).
    public static let float = ONNXDataType(rawValue: 1)
    /// `UINT8`.
    public static let uint8 = ONNXDataType(rawValue: 2)
    /// `INT8`.
    public static let int8 = ONNXDataType(rawValue: 3)
    /// `UINT16`.
    public static let uint16 = ONNXDataType(rawValue: 4)
    /// `INT16`.
    public static let int16 = ONNXDataType(rawValue: 5)
    /// `INT32`.
    public static let int32 = ONNXDataType(rawValue: 6)
    /// `INT64`: shapes, indices, token ids.
    public static let int64 = ONNXDataType(rawValue: 7)
    /// `STRING`.
    public static let string = ONNXDataType(rawValue: 8)
    /// `BOOL`.
    public static let bool = ONNXDataType(rawValue: 9)
    /// IEEE half precision (`FLOAT16`).
    public static let float16 = ONNXDataType(rawValue: 10)
    /// 64-bit float (`DOUBLE`).
    public static let double = ONNXDataType(rawValue: 11)
    /// `UINT32`.
    public static let uint32 = ONNXDataType(rawValue: 12)
    /// `UINT64`.
    public static let uint64 = ONNXDataType(rawValue: 13)
    /// bfloat16 (`BFLOAT16`).
    public static let bfloat16 = ONNXDataType(rawValue: 16)

    /// The weight-file dtype with the same layout, or `nil` (strings, complex and 8-bit float types).
    public var dtype: DType? {
        switch self {
        case .float: return .float32
        case .double: return .float64
        case .float16: return .float16
        case .bfloat16: return .bfloat16
        case .int8: return .int8
        case .uint8: return .uint8
        case .int16: return .int16
        case .uint16: return .uint16
        case .int32: return .int32
        case .uint32: return .uint32
        case .int64: return .int64
        case .uint64: return .uint64
        case .bool: return .bool
        default: return nil
        }
    }

    /// The ONNX type of a weight-file dtype.
    public init(_ dtype: DType) {
        switch dtype {
        case .float32: self = .float
        case .float64: self = .double
        case .float16: self = .float16
        case .bfloat16: self = .bfloat16
        case .int8: self = .int8
        case .uint8: self = .uint8
        case .int16: self = .int16
        case .uint16: self = .uint16
        case .int32: self = .int32
        case .uint32: self = .uint32
        case .int64: self = .int64
        case .uint64: self = .uint64
        case .bool: self = .bool
        }
    }

    /// Whether the type is FLOAT, DOUBLE, FLOAT16 or BFLOAT16.
    public var isFloatingPoint: Bool { [.float, .double, .float16, .bfloat16].contains(self) }

    /// The largest finite magnitude a value of this floating-point type holds (65504 for
    /// FLOAT16), `Double.greatestFiniteMagnitude` for DOUBLE and the non-floating-point types.
    /// A value computed in `Double` and written in this type must not exceed it, or it would be
    /// written as infinity.
    public var largestFinite: Double { dtype?.largestFinite ?? .greatestFiniteMagnitude }

    /// `FLOAT`, `INT64`, … as `onnx.proto` spells them, or `type N`.
    public var description: String {
        let names: [Int: String] = [
            0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "STRING",
            9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16",
        ]
        return names[rawValue] ?? "type \(rawValue)"
    }
}
