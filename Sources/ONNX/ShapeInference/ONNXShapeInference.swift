/// Static shapes of a graph's values for given input shapes, and the contents of the small
/// tensors that shapes are computed from (`Shape` → `Gather` → `Concat` → `Reshape` chains,
/// `Resize` scales).
///
/// The standard operators that vision and transformer models use are covered (convolutions and
/// pooling with every padding mode, `MatMul`/`Gemm`, elementwise operators with broadcasting,
/// reshaping, slicing, reductions, `Resize`). A value whose shape cannot be derived, because its
/// operator is not covered or depends on data, is left out of ``shapes`` and the node that first
/// lost it is listed in ``failures``.
///
/// ```swift
/// let shapes = try ONNXShapeInference(graph: model.graph, inputShapes: ["x": [1, 3, 640, 640]])
/// let convInput = shapes.shapes[node.inputs[0]]     // [1, 16, 320, 320]
/// ```
public struct ONNXShapeInference: Sendable {
    /// The shape of every value that could be derived.
    public private(set) var shapes: [String: [Int]] = [:]
    /// The contents of small tensors (at most 64 elements) that could be derived.
    public private(set) var values: [String: [Double]] = [:]
    /// Nodes whose output shapes could not be derived although their inputs' were, with why.
    public private(set) var failures: [(node: String, reason: String)] = []

    static let valueLimit = 64

    /// Propagates `inputShapes` through `graph`.
    ///
    /// - Parameters:
    ///   - graph: The graph.
    ///   - inputShapes: Shapes of graph inputs; an input that is not given takes its declared
    ///     shape, which must then be fully static.
    ///   - opset: The model's default-domain opset (``ONNXModel/opsetVersion``): operators whose
    ///     inputs changed between opsets (`Squeeze`, `Split`, `Pad`, `Resize`, …) are read as that
    ///     version defines them.
    /// - Throws: ``ONNXError/dynamicInput(name:shape:)`` for an input with symbolic dimensions and no
    ///   shape given, ``ONNXError/inputShape(name:declared:given:)`` for a given shape that
    ///   contradicts the declared one, ``ONNXError/unknownInput(name:inputs:)``.
    public init(graph: ONNXGraph, inputShapes: [String: [Int]] = [:], opset: Int = 13) throws {
        let inputs = graph.inputs
        for name in inputShapes.keys.sorted() where !inputs.contains(where: { $0.name == name }) {
            throw ONNXError.unknownInput(name: name, inputs: inputs.map(\.name))
        }
        for input in inputs {
            if let given = inputShapes[input.name], (try? Self.product(given)) == nil {
                throw ONNXError.invalidShape(tensor: input.name, shape: given)
            }
            let declared = input.shape
            if let given = inputShapes[input.name] {
                if let declared {
                    let fits = declared.count == given.count && zip(declared, given).allSatisfy { d, g in
                        if case let .value(v) = d { return v == g } else { return g >= 0 }
                    }
                    guard fits else { throw ONNXError.inputShape(name: input.name, declared: input.shapeDescription, given: given) }
                }
                shapes[input.name] = given
            } else if let declared {
                let fixed = declared.compactMap { d -> Int? in if case let .value(v) = d { return v } else { return nil } }
                guard fixed.count == declared.count else { throw ONNXError.dynamicInput(name: input.name, shape: input.shapeDescription) }
                guard fixed.allSatisfy({ $0 >= 0 }), (try? Self.product(fixed)) != nil else {
                    throw ONNXError.invalidShape(tensor: input.name, shape: fixed)
                }
                shapes[input.name] = fixed
            } else {
                throw ONNXError.dynamicInput(name: input.name, shape: "(unknown rank)")
            }
        }
        propagate(graph, opset: opset)
    }

    /// Propagates the shapes of `subgraph` (an `If` branch, a `Loop` or `Scan` body) from those of
    /// the graph around it: outer values are visible inside, the body's own inputs take their
    /// declared shape when it is static and are unknown otherwise (a `Loop`'s carried values, a
    /// `Scan`'s slices). Never throws: what cannot be derived stays unknown.
    ///
    /// ```swift
    /// let outer = try ONNXShapeInference(graph: model.graph, inputShapes: ["x": [1, 16, 512]])
    /// for (_, label, body) in model.graph.subgraphs() {
    ///     let inner = ONNXShapeInference(subgraph: body, outer: outer, opset: model.opsetVersion)
    /// }
    /// ```
    public init(subgraph: ONNXGraph, outer: ONNXShapeInference, opset: Int = 13) {
        (shapes, values) = (outer.shapes, outer.values)
        for input in subgraph.inputs {
            // A formal input shadows any outer value of the same name.
            shapes[input.name] = nil
            values[input.name] = nil
            let fixed = input.shape?.compactMap { d -> Int? in if case let .value(v) = d { return v } else { return nil } }
            if let fixed, fixed.count == input.shape?.count, fixed.allSatisfy({ $0 >= 0 }), (try? Self.product(fixed)) != nil {
                shapes[input.name] = fixed
            }
        }
        propagate(subgraph, opset: opset)
    }

    /// An `If`'s outputs: the branch its condition takes when the condition is known, else what
    /// both branches agree on (each branch inferred with the values visible here).
    mutating func inferIf(_ node: ONNXNode, opset: Int) throws {
        func branch(_ name: String) -> ONNXGraph? {
            node.proto.attribute.first { $0.name == name && $0.hasG }.map { ONNXGraph(proto: $0.g) }
        }
        guard let thenBranch = branch("then_branch"), let elseBranch = branch("else_branch") else { throw ShapeInferenceProblem.missingValue }
        let condition = node.inputs.first.flatMap { values[$0] }?.first
        let taken: [ONNXGraph] = condition.map { [$0 != 0 ? thenBranch : elseBranch] } ?? [thenBranch, elseBranch]
        let inferred = taken.map { ONNXShapeInference(subgraph: $0, outer: self, opset: opset) }
        for (k, output) in node.outputs.enumerated() where !output.isEmpty {
            let results = zip(taken, inferred).map { graph, inference in
                k < graph.outputs.count ? (inference.shapes[graph.outputs[k].name], inference.values[graph.outputs[k].name]) : (nil, nil)
            }
            guard let shape = results[0].0, results.allSatisfy({ $0.0 == shape }) else { continue }
            try set(output, shape, value: results.allSatisfy({ $0.1 != nil && $0.1 == results[0].1 }) ? results[0].1 : nil)
        }
    }

    /// Records the initializers, then infers every node in order.
    mutating func propagate(_ graph: ONNXGraph, opset: Int) {
        let overridable = graph.overridableInitializerNames
        for tensor in graph.initializers {
            record(tensor.name, tensor)
            // A value fed at run time may replace it: its shape stays, its contents are not known.
            if overridable.contains(tensor.name) { values[tensor.name] = nil }
        }
        for node in graph.nodes {
            let known = node.inputs.allSatisfy { $0.isEmpty || shapes[$0] != nil }
            do {
                guard known || node.opType == "Constant" else { continue }
                try infer(node, opset: opset)
            } catch let problem as ShapeInferenceProblem {
                failures.append((node.name.isEmpty ? node.outputs.first ?? node.opType : node.name, "\(node.opType): \(problem)"))
            } catch {
                failures.append((node.name, "\(node.opType): \(error)"))
            }
        }
    }

    mutating func record(_ name: String, _ tensor: ONNXTensor) {
        guard let count = try? tensor.elementCount() else { return }   // negative or overflowing dims: unknown
        shapes[name] = tensor.shape
        if count <= Self.valueLimit {
            if tensor.dataType.isFloatingPoint {
                if let t = try? tensor.tensor(as: Double.self) { values[name] = Array(t.scalars) }
            } else if let ints = try? tensor.integers() {
                values[name] = ints.map(Double.init)
            }
        }
    }

    func shape(_ name: String) throws -> [Int] {
        guard let s = shapes[name] else { throw ShapeInferenceProblem.unknownShape(name: name) }
        return s
    }

    func integers(_ name: String, _ what: String) throws -> [Int] {
        guard let v = values[name] else { throw ShapeInferenceProblem.notConstant(role: what, name: name) }
        return try v.map { try Self.integer($0, what) }
    }

    /// `value` as an `Int`, clamped to ±2⁶² (`INT64_MAX` as a slice end stays "to the end", and
    /// any product with it is refused later); NaN and infinities are refused.
    static func integer(_ value: Double, _ what: String) throws -> Int {
        guard value.isFinite else { throw ShapeInferenceProblem.notInteger(role: what, value: value) }
        return Int(Swift.min(Swift.max(value, -0x1p62), 0x1p62))
    }

    /// `a · b`, refused on overflow.
    static func mul(_ a: Int, _ b: Int) throws -> Int {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        guard !overflow else { throw ShapeInferenceProblem.productOverflow(a, b) }
        return p
    }

    /// `a + b`, refused on overflow.
    static func add(_ a: Int, _ b: Int) throws -> Int {
        let (s, overflow) = a.addingReportingOverflow(b)
        guard !overflow else { throw ShapeInferenceProblem.sumOverflow(a, b) }
        return s
    }

    /// The element count of `shape`, refused on overflow.
    static func product(_ shape: [Int]) throws -> Int {
        try shape.reduce(1) { try mul($0, $1) }
    }

    /// Records a derived shape: every dimension non-negative and the element count within
    /// `Int`, or the value stays unknown (a ``ShapeInferenceProblem``).
    mutating func set(_ name: String, _ shape: [Int], value: [Double]? = nil) throws {
        guard !name.isEmpty else { return }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw ShapeInferenceProblem.negativeDimension(shape: shape) }
        _ = try Self.product(shape)
        shapes[name] = shape
        if let value, value.count <= Self.valueLimit { values[name] = value }
    }

    /// The values of a small tensor of `shape` rearranged into `target`: output element at
    /// multi-index `o` is input element `source(o)` (row-major both). `nil` beyond ``valueLimit``.
    static func remapped(_ values: [Double], shape: [Int], to target: [Int], source: ([Int]) -> [Int]) -> [Double]? {
        guard values.count == shape.reduce(1, *), let count = try? product(target), count <= valueLimit else { return nil }
        var result: [Double] = []
        var o = [Int](repeating: 0, count: target.count)
        for _ in 0..<count {
            let i = source(o)
            var flat = 0
            for (axis, k) in i.enumerated() {
                guard k >= 0, k < shape[axis] else { return nil }
                flat = flat * shape[axis] + k
            }
            result.append(values[flat])
            var axis = target.count - 1
            while axis >= 0 {
                o[axis] += 1
                if o[axis] < target[axis] { break }
                o[axis] = 0
                axis -= 1
            }
        }
        return result
    }

    /// NumPy broadcasting of `shapes`.
    ///
    /// - Throws: ``ShapeInferenceProblem/notBroadcastable(shapes:)`` when a dimension differs from another that is not 1.
    public static func broadcast(_ shapes: [[Int]]) throws -> [Int] {
        let rank = shapes.map(\.count).max() ?? 0
        var result = [Int](repeating: 1, count: rank)
        for s in shapes {
            for (k, d) in s.enumerated() {
                let r = rank - s.count + k
                if result[r] == 1 { result[r] = d } else if d != 1 && d != result[r] {
                    throw ShapeInferenceProblem.notBroadcastable(shapes: shapes)
                }
            }
        }
        return result
    }

    static func normalized(_ axis: Int, rank: Int) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < rank else { throw ShapeInferenceProblem.axisOutside(axis: axis, rank: rank) }
        return a
    }

    /// Output sizes of a convolution or pooling window on each spatial axis.
    static func windowed(input: [Int], kernel: [Int], window: ONNXConvAttributes, ceilMode: Bool = false) throws -> [Int] {
        let n = kernel.count
        let (strides, dilations, pads, autoPad) = (window.strides, window.dilations, window.pads, window.autoPad)
        guard strides.count == n, dilations.count == n, pads.count == 2 * n, input.count == n else {
            throw ShapeInferenceProblem.windowLengths(strides: strides, dilations: dilations, pads: pads, spatialAxes: n, input: input)
        }
        guard strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }), kernel.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }) else {
            throw ShapeInferenceProblem.windowValues(strides: strides, dilations: dilations, kernel: kernel, pads: pads)
        }
        return try (0..<n).map { k in
            let extent = try add(try mul(dilations[k], kernel[k] - 1), 1)
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER": return try add(input[k], strides[k] - 1) / strides[k]
            case "VALID":
                guard input[k] >= extent else { throw ShapeInferenceProblem.inputSmallerThanKernel(input: input, padded: false) }
                return (input[k] - extent) / strides[k] + 1
            default:
                let padded = try add(try add(input[k], pads[k]), pads[k + n]) - extent
                guard padded >= 0 else { throw ShapeInferenceProblem.inputSmallerThanKernel(input: input, padded: true) }
                return (ceilMode ? try add(padded, strides[k] - 1) : padded) / strides[k] + 1
            }
        }
    }

    /// Shapes (and small constant values) of one node's outputs: each family of operators in its own file.
    mutating func infer(_ node: ONNXNode, opset: Int) throws {
        let op = node.opType
        // Inputs a node lacks read as "" (an absent optional input, whose shape is unknown), so
        // that a node with too few inputs fails like one with unknown inputs, never by indexing.
        let ins = node.inputs + [String](repeating: "", count: 6)
        let out = node.outputs.first ?? ""
        guard node.isStandard else { throw ShapeInferenceProblem.unsupportedDomain(node.domain) }
        if op == "If" { return try inferIf(node, opset: opset) }
        if try inferElementwise(node, op, ins, out, opset) || inferWindows(node, op, ins, out, opset) || inferLayout(node, op, ins, out, opset)
            || inferIndexing(node, op, ins, out, opset) || inferResampling(node, op, ins, out, opset) {
            return
        }
        throw ShapeInferenceProblem.unsupportedOperator
    }
}
