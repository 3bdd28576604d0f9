/// Errors thrown when reading, analysing or writing an ONNX model. Every case names the tensor,
/// node or file and carries the numbers.
public enum ONNXError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The bytes are not a valid `ModelProto`; `decoderError` is the protobuf decoder's error.
    case invalidProtobuf(decoderError: String)
    /// The model has no graph.
    case missingGraph
    /// A tensor's element type that this operation cannot read or write.
    case unsupportedDataType(tensor: String, dataType: ONNXDataType, operation: String)
    /// A tensor's stored data does not match its shape and element type.
    case dataSize(tensor: String, expected: Int, actual: Int)
    /// A dimension that is negative, or a shape whose element count overflows.
    case invalidShape(tensor: String, shape: [Int])
    /// External data that cannot be read: a missing file, a location outside the model's
    /// directory, or an offset and length outside the file.
    case externalData(tensor: String, location: String, problem: ExternalDataProblem)
    /// A model whose tensors need external data, but no directory to resolve it against.
    case externalDataWithoutDirectory(tensor: String)
    /// The serialized model would exceed protobuf's 2 GiB limit without external data.
    case tooLargeForOneFile(bytes: Int)
    /// A graph input with symbolic or unknown dimensions and no shape given for it.
    case dynamicInput(name: String, shape: String)
    /// A shape given for an input does not fit the graph's declared shape.
    case inputShape(name: String, declared: String, given: [Int])
    /// A shape given for a name that is not a graph input.
    case unknownInput(name: String, inputs: [String])
    /// A value name that no node, initializer or input produces.
    case unknownValue(name: String)
    /// A node whose attributes or inputs do not fit its operator, or an operator that is not covered.
    case invalidNode(node: String, opType: String, problem: ShapeInferenceProblem)

    public var description: String {
        switch self {
        case let .invalidProtobuf(decoderError): return "onnx: not a valid ONNX model (\(decoderError))"
        case .missingGraph: return "onnx: the model has no graph"
        case let .unsupportedDataType(tensor, dataType, operation):
            return "onnx: tensor \(tensor) has element type \(dataType), which \(operation) does not support"
        case let .dataSize(tensor, expected, actual):
            return "onnx: tensor \(tensor) holds \(actual) bytes of data where its shape and type need \(expected)"
        case let .invalidShape(tensor, shape): return "onnx: tensor \(tensor) has an invalid shape \(shape) (negative or overflowing)"
        case let .externalData(tensor, location, problem): return "onnx: external data of \(tensor) at \(location): \(problem)"
        case let .externalDataWithoutDirectory(tensor):
            return "onnx: tensor \(tensor) is stored in an external file; read the model from a file so that its directory is known"
        case let .tooLargeForOneFile(bytes):
            return "onnx: the model needs \(bytes) bytes, more than protobuf's 2 GiB limit for one file; write it with external data"
        case let .dynamicInput(name, shape):
            return "onnx: input \(name) has shape \(shape) with dynamic dimensions; give its shape (\(name)=d0,d1,…)"
        case let .inputShape(name, declared, given): return "onnx: the shape \(given) given for input \(name) does not fit its declared shape \(declared)"
        case let .unknownInput(name, inputs): return "onnx: \(name) is not a graph input (inputs: \(inputs.joined(separator: ", ")))"
        case let .unknownValue(name): return "onnx: no node, initializer or input produces \(name)"
        case let .invalidNode(node, opType, problem): return "onnx: node \(node) (\(opType)): \(problem)"
        }
    }
}
