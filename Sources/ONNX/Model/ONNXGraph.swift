/// One dimension of a declared shape.
public enum ONNXDimension: Sendable, Equatable, CustomStringConvertible {
    /// A fixed size.
    case value(Int)
    /// A named symbolic size, e.g. `batch`.
    case parameter(String)
    /// No size given.
    case unknown

    public var description: String {
        switch self {
        case let .value(v): return "\(v)"
        case let .parameter(p): return p
        case .unknown: return "?"
        }
    }
}

/// A graph input, output or `value_info` entry: a name with its element type and shape when known.
public struct ONNXValueInfo: Sendable, Equatable {
    var proto: Onnx_ValueInfoProto

    init(proto: Onnx_ValueInfoProto) { self.proto = proto }

    /// A tensor value of the given element type and shape (`nil`: shape not given).
    public init(name: String, elementType: ONNXDataType, shape: [ONNXDimension]?) {
        var tensorType = Onnx_TypeProto.Tensor()
        tensorType.elemType = Int32(elementType.rawValue)
        if let shape {
            var shapeProto = Onnx_TensorShapeProto()
            shapeProto.dim = shape.map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                switch d {
                case let .value(v): dim.dimValue = Int64(v)
                case let .parameter(p): dim.dimParam = p
                case .unknown: break
                }
                return dim
            }
            tensorType.shape = shapeProto
        }
        var proto = Onnx_ValueInfoProto()
        proto.name = name
        proto.type.tensorType = tensorType
        self.proto = proto
    }

    /// The value's name.
    public var name: String { proto.name }
    /// The element type of a tensor value (`undefined` for other kinds).
    public var elementType: ONNXDataType {
        guard case let .tensorType(t)? = proto.type.value else { return .undefined }
        return ONNXDataType(rawValue: Int(t.elemType))
    }
    /// The declared dimensions of a tensor value, or `nil` when the shape is not given.
    public var shape: [ONNXDimension]? {
        guard case let .tensorType(t)? = proto.type.value, t.hasShape else { return nil }
        return t.shape.dim.map { d in
            switch d.value {
            case let .dimValue(v)?: return .value(Int(clamping: v))
            case let .dimParam(p)?: return p.isEmpty ? .unknown : .parameter(p)
            case nil: return .unknown
            }
        }
    }
    /// The shape written as `[1, 3, height, ?]`.
    public var shapeDescription: String {
        shape.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "(unknown rank)"
    }
}

/// Where a constant value comes from.
public struct ONNXConstant: Sendable, Equatable {
    /// The value, named as the graph names the constant's source.
    public var tensor: ONNXTensor
    /// The initializer's name, when the source is one.
    public var initializer: String?
    /// The index of the `Constant` node, when the source is one.
    public var constantNode: Int?
    /// Indices of the `Identity` nodes between the source and the value asked for, first first.
    public var identities: [Int]
    /// The name of the source value (the initializer, or the `Constant` node's output; a folded
    /// constant's own name).
    public var sourceName: String
    /// The index of the node that computes the value from other constants, when
    /// ``ONNXGraph/constants(folding:outer:)`` folded it (see ``ONNXGraph/foldedOperators``).
    public var foldedNode: Int? = nil
}

/// The computation graph of a model: nodes in topological order, initializers, inputs and outputs.
///
/// Read it from ``ONNXModel/graph``; changes made to a copy are written back by assigning it.
public struct ONNXGraph: Sendable, Equatable {
    var proto: Onnx_GraphProto
    /// Whether an initializer that is also listed as a graph input may be fed at run time, as
    /// onnxruntime does from IR version 4 on: such an initializer is an input with a default
    /// value, never a constant to fold or factor. ``ONNXModel/graph`` sets it from the model's IR
    /// version (before IR 4 every initializer had to be listed as an input and none is
    /// overridable); `true` for a graph made with ``init(name:nodes:initializers:inputs:outputs:)``.
    public var initializersCanBeOverridden = true

    init(proto: Onnx_GraphProto) { self.proto = proto }

    /// A graph from its parts; `nodes` must be in topological order.
    public init(name: String, nodes: [ONNXNode], initializers: [ONNXTensor], inputs: [ONNXValueInfo], outputs: [ONNXValueInfo]) {
        var proto = Onnx_GraphProto()
        proto.name = name
        proto.node = nodes.map(\.proto)
        proto.initializer = initializers.map(\.proto)
        proto.input = inputs.map(\.proto)
        proto.output = outputs.map(\.proto)
        self.proto = proto
    }

    /// The graph's name.
    public var name: String { proto.name }

    /// The nodes in their stored (topological) order.
    public var nodes: [ONNXNode] {
        get { proto.node.map(ONNXNode.init(proto:)) }
        set { proto.node = newValue.map(\.proto) }
    }

    /// The initializers (weights and other constant tensors).
    public var initializers: [ONNXTensor] {
        get { proto.initializer.map(ONNXTensor.init(proto:)) }
        set { proto.initializer = newValue.map(\.proto) }
    }

    /// The graph inputs that are not initializers (models of IR version < 4 list weights as inputs too).
    public var inputs: [ONNXValueInfo] {
        let initializerNames = Set(proto.initializer.map(\.name))
        return proto.input.filter { !initializerNames.contains($0.name) }.map(ONNXValueInfo.init(proto:))
    }

    /// The graph outputs.
    public var outputs: [ONNXValueInfo] { proto.output.map(ONNXValueInfo.init(proto:)) }

    /// The operators whose compute a model compressor looks for: convolutions, matrix products
    /// and recurrent layers.
    public static let layerOperators: Set<String> = ["Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN"]

    /// The initializers that a run may replace by feeding the input of the same name (see
    /// ``initializersCanBeOverridden``).
    public var overridableInitializerNames: Set<String> {
        guard initializersCanBeOverridden else { return [] }
        let inputNames = Set(proto.input.map(\.name))
        return Set(proto.initializer.map(\.name).filter(inputNames.contains))
    }

    /// The `value_info` entries: shapes of intermediate values recorded by the exporter.
    public var valueInfo: [ONNXValueInfo] { proto.valueInfo.map(ONNXValueInfo.init(proto:)) }

    /// The initializer called `name`.
    public func initializer(named name: String) -> ONNXTensor? {
        proto.initializer.first { $0.name == name }.map(ONNXTensor.init(proto:))
    }

    /// For every value name, the indices of the nodes that read it (graph outputs are not nodes:
    /// see ``isGraphOutput(_:)``).
    public func consumers() -> [String: [Int]] {
        var result: [String: [Int]] = [:]
        for (k, node) in proto.node.enumerated() {
            for input in Set(node.input) where !input.isEmpty { result[input, default: []].append(k) }
        }
        return result
    }

    /// For every value name, the index of the node that writes it.
    public func producers() -> [String: Int] {
        var result: [String: Int] = [:]
        for (k, node) in proto.node.enumerated() {
            for output in node.output where !output.isEmpty { result[output] = k }
        }
        return result
    }

    /// Whether `name` is a graph output.
    public func isGraphOutput(_ name: String) -> Bool { proto.output.contains { $0.name == name } }

    /// Every value whose content is fixed: initializers (not the overridable ones), `Constant`
    /// node outputs, and `Identity` outputs of either, with where each comes from.
    public func constants() -> [String: ONNXConstant] {
        var result: [String: ONNXConstant] = [:]
        let overridable = overridableInitializerNames
        for tensor in proto.initializer where !overridable.contains(tensor.name) {
            result[tensor.name] = ONNXConstant(tensor: ONNXTensor(proto: tensor), initializer: tensor.name, constantNode: nil,
                                               identities: [], sourceName: tensor.name)
        }
        for (k, node) in proto.node.enumerated() where ONNXNode(proto: node).isStandard && node.output.count == 1 {
            let n = ONNXNode(proto: node)
            if node.opType == "Constant", let tensor = Self.constantValue(n) {
                result[node.output[0]] = ONNXConstant(tensor: tensor, initializer: nil, constantNode: k, identities: [], sourceName: node.output[0])
            } else if node.opType == "Identity", node.input.count == 1, var source = result[node.input[0]] {
                source.identities.append(k)
                result[node.output[0]] = source
            }
        }
        return result
    }

    /// The value of a `Constant` node: its `value` tensor, or `value_float(s)` / `value_int(s)`.
    static func constantValue(_ node: ONNXNode) -> ONNXTensor? {
        guard let output = node.outputs.first else { return nil }
        var tensor: ONNXTensor
        switch (node.attribute("value"), node.attribute("value_float"), node.attribute("value_floats"),
                node.attribute("value_int"), node.attribute("value_ints")) {
        case let (.tensor(t)?, _, _, _, _): tensor = t
        case let (_, .float(v)?, _, _, _):
            var p = Onnx_TensorProto(); p.dataType = Int32(ONNXDataType.float.rawValue); p.floatData = [v]; tensor = ONNXTensor(proto: p)
        case let (_, _, .floats(v)?, _, _):
            var p = Onnx_TensorProto(); p.dataType = Int32(ONNXDataType.float.rawValue); p.dims = [Int64(v.count)]; p.floatData = v
            tensor = ONNXTensor(proto: p)
        case let (_, _, _, .int(v)?, _): tensor = ONNXTensor(name: "", int64: [v], shape: [])
        case let (_, _, _, _, .ints(v)?): tensor = ONNXTensor(name: "", int64: v)
        default: return nil
        }
        tensor.name = output
        return tensor
    }

    /// Removes what produced `names` when nothing reads it any more: initializers, `Constant`
    /// nodes, `Identity` nodes and the data-moving nodes of a folded constant
    /// (``foldedOperators``; and, through them, their own sources), and the `value_info` entries
    /// of the removed values. Graph outputs, overridable initializers and values still read (by a
    /// node, or by a node of a subgraph through the outer scope) are kept.
    ///
    /// - Returns: the names, among `names` and the sources reached from them, that nothing here
    ///   reads any more but that this graph does not define: a subgraph's outer-scope values, for
    ///   the graphs around it to remove.
    /// - Complexity: O(nodes + initializers + names): one count of the readers, updated as
    ///   producers are removed.
    @discardableResult
    public mutating func removeUnused(_ names: Set<String>) -> Set<String> {
        var readers: [String: Int] = [:]
        // A subgraph reads a value of the graphs around it through its nodes' inputs, or by listing
        // it as one of its outputs.
        func count(_ graph: Onnx_GraphProto, nested: Bool) {
            if nested { for output in graph.output where !output.name.isEmpty { readers[output.name, default: 0] += 1 } }
            for node in graph.node {
                for input in node.input where !input.isEmpty { readers[input, default: 0] += 1 }
                for attribute in node.attribute {
                    if attribute.hasG { count(attribute.g, nested: true) }
                    attribute.graphs.forEach { count($0, nested: true) }
                }
            }
        }
        count(proto, nested: false)
        let outputs = Set(proto.output.map(\.name)), inputs = Set(proto.input.map(\.name))
        var producers: [String: Int] = [:]
        for (k, node) in proto.node.enumerated()
        where node.output.count == 1 && (node.opType == "Constant" || node.opType == "Identity" || Self.foldedOperators.contains(node.opType)) {
            producers[node.output[0]] = k
        }
        let defined = Set(proto.node.flatMap(\.output)).union(inputs)
        var initializers: [String: Int] = [:]
        for (k, tensor) in proto.initializer.enumerated() { initializers[tensor.name] = k }
        var removedNodes = Set<Int>(), removedInitializers = Set<Int>(), removedValues = Set<String>(), escaped = Set<String>()
        var pending = Array(names)
        while let name = pending.popLast() {
            guard !outputs.contains(name), readers[name, default: 0] == 0, !removedValues.contains(name) else { continue }
            if initializers[name] == nil && !defined.contains(name) {
                escaped.insert(name)
            } else if let k = producers[name] {
                removedNodes.insert(k)
                removedValues.insert(name)
                for input in proto.node[k].input where !input.isEmpty {
                    readers[input, default: 1] -= 1
                    pending.append(input)
                }
            } else if let k = initializers[name] {
                // An initializer listed as a graph input is an overridable input (or, before IR 4, listed
                // because it had to be): keep it.
                if inputs.contains(name) { continue }
                removedInitializers.insert(k)
                removedValues.insert(name)
            }
        }
        guard !removedValues.isEmpty else { return escaped }
        if !removedNodes.isEmpty { proto.node = proto.node.enumerated().filter { !removedNodes.contains($0.offset) }.map(\.element) }
        if !removedInitializers.isEmpty {
            proto.initializer = proto.initializer.enumerated().filter { !removedInitializers.contains($0.offset) }.map(\.element)
        }
        proto.valueInfo.removeAll { removedValues.contains($0.name) }
        return escaped
    }

    /// Replaces the node at `index` by `replacement` (in that order, at the same place, so that
    /// the graph stays topologically sorted) and appends `initializers`.
    public mutating func replaceNode(at index: Int, with replacement: [ONNXNode], initializers: [ONNXTensor]) {
        proto.node.replaceSubrange(index...index, with: replacement.map(\.proto))
        proto.initializer.append(contentsOf: initializers.map(\.proto))
    }
}
