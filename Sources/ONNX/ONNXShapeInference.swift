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
            } catch let error as InferenceFailure {
                failures.append((node.name.isEmpty ? node.outputs.first ?? node.opType : node.name, "\(node.opType): \(error.reason)"))
            } catch {
                failures.append((node.name, "\(node.opType): \(error)"))
            }
        }
    }

    struct InferenceFailure: Error { let reason: String }

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
        guard let s = shapes[name] else { throw InferenceFailure(reason: "the shape of \(name) is unknown") }
        return s
    }

    func integers(_ name: String, _ what: String) throws -> [Int] {
        guard let v = values[name] else { throw InferenceFailure(reason: "\(what) (\(name)) is not a constant") }
        return try v.map { try Self.integer($0, what) }
    }

    /// `value` as an `Int`, clamped to ±2⁶² (`INT64_MAX` as a slice end stays "to the end", and
    /// any product with it is refused later); NaN and infinities are refused.
    static func integer(_ value: Double, _ what: String) throws -> Int {
        guard value.isFinite else { throw InferenceFailure(reason: "\(what) holds \(value), not an integer") }
        return Int(Swift.min(Swift.max(value, -0x1p62), 0x1p62))
    }

    /// `a · b`, refused on overflow.
    static func mul(_ a: Int, _ b: Int) throws -> Int {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        guard !overflow else { throw InferenceFailure(reason: "\(a) × \(b) overflows a 64-bit integer") }
        return p
    }

    /// `a + b`, refused on overflow.
    static func add(_ a: Int, _ b: Int) throws -> Int {
        let (s, overflow) = a.addingReportingOverflow(b)
        guard !overflow else { throw InferenceFailure(reason: "\(a) + \(b) overflows a 64-bit integer") }
        return s
    }

    /// The element count of `shape`, refused on overflow.
    static func product(_ shape: [Int]) throws -> Int {
        try shape.reduce(1) { try mul($0, $1) }
    }

    /// Records a derived shape: every dimension non-negative and the element count within
    /// `Int`, or the value stays unknown (an ``InferenceFailure``).
    mutating func set(_ name: String, _ shape: [Int], value: [Double]? = nil) throws {
        guard !name.isEmpty else { return }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw InferenceFailure(reason: "the derived shape \(shape) has a negative dimension") }
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
    public static func broadcast(_ shapes: [[Int]]) throws -> [Int] {
        let rank = shapes.map(\.count).max() ?? 0
        var result = [Int](repeating: 1, count: rank)
        for s in shapes {
            for (k, d) in s.enumerated() {
                let r = rank - s.count + k
                if result[r] == 1 { result[r] = d } else if d != 1 && d != result[r] {
                    throw InferenceFailure(reason: "shapes \(shapes) do not broadcast")
                }
            }
        }
        return result
    }

    static func normalized(_ axis: Int, rank: Int) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < rank else { throw InferenceFailure(reason: "axis \(axis) is outside a rank-\(rank) tensor") }
        return a
    }

    /// Output sizes of a convolution or pooling window on each spatial axis.
    static func windowed(input: [Int], kernel: [Int], node: ONNXNode, ceilMode: Bool = false) throws -> [Int] {
        let n = kernel.count
        let strides = node.ints("strides") ?? [Int](repeating: 1, count: n)
        let dilations = node.ints("dilations") ?? [Int](repeating: 1, count: n)
        let pads = node.ints("pads") ?? [Int](repeating: 0, count: 2 * n)
        let autoPad = node.string("auto_pad") ?? "NOTSET"
        guard strides.count == n, dilations.count == n, pads.count == 2 * n, input.count == n else {
            throw InferenceFailure(reason: "strides \(strides), dilations \(dilations), pads \(pads) do not fit a \(n)-D kernel on \(input)")
        }
        guard strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }), kernel.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }) else {
            throw InferenceFailure(reason: "strides \(strides), dilations \(dilations) and kernel \(kernel) must be positive, pads \(pads) non-negative")
        }
        return try (0..<n).map { k in
            let extent = try add(try mul(dilations[k], kernel[k] - 1), 1)
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER": return try add(input[k], strides[k] - 1) / strides[k]
            case "VALID":
                guard input[k] >= extent else { throw InferenceFailure(reason: "input \(input) is smaller than the kernel extent") }
                return (input[k] - extent) / strides[k] + 1
            default:
                let padded = try add(try add(input[k], pads[k]), pads[k + n]) - extent
                guard padded >= 0 else { throw InferenceFailure(reason: "padded input \(input) is smaller than the kernel extent") }
                return (ceilMode ? try add(padded, strides[k] - 1) : padded) / strides[k] + 1
            }
        }
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    mutating func infer(_ node: ONNXNode, opset: Int) throws {
        let op = node.opType
        // Inputs a node lacks read as "" (an absent optional input, whose shape is unknown), so
        // that a node with too few inputs fails like one with unknown inputs, never by indexing.
        let ins = node.inputs + [String](repeating: "", count: 6)
        let out = node.outputs.first ?? ""
        guard node.isStandard else { throw InferenceFailure(reason: "operators of domain \(node.domain) are not covered") }
        switch op {
        case "Constant":
            guard let tensor = ONNXGraph.constantValue(node) else { throw InferenceFailure(reason: "no value attribute") }
            record(out, tensor)
        case "Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Exp", "Log", "Sqrt", "Neg", "Abs",
             "Erf", "Reciprocal", "Clip", "Identity", "Dropout", "Softmax", "LogSoftmax", "Not", "Floor", "Ceil", "Round", "Sign",
             "Gelu", "Mish", "Softplus", "Softsign", "BatchNormalization", "InstanceNormalization", "LayerNormalization",
             "LpNormalization", "Cast", "CastLike", "Trilu", "Sin", "Cos", "IsNaN", "IsInf", "PRelu", "ThresholdedRelu", "Celu",
             "Hardmax", "Shrink":
            let s = try shape(ins[0])
            var value = values[ins[0]]
            if op == "Neg" { value = value?.map { -$0 } }
            if op == "Cast", let to = node.int("to"), ![1, 10, 11, 16].contains(to) { value = value?.map { $0.rounded(.towardZero) } }
            if !["Cast", "CastLike", "Identity", "Neg", "Dropout"].contains(op) { value = nil }
            if op == "PRelu" { try set(out, try Self.broadcast([s, try shape(ins[1])])) } else { try set(out, s, value: value) }
        case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less", "Greater", "And", "Or",
             "Xor", "Mod", "GreaterOrEqual", "LessOrEqual", "BitShift":
            let s = try Self.broadcast(try ins.filter { !$0.isEmpty }.map(shape))
            var value: [Double]?
            if ["Add", "Sub", "Mul", "Div"].contains(op), node.inputs.count == 2, let a = values[ins[0]], let b = values[ins[1]] {
                let count = try Self.product(s)
                if count <= Self.valueLimit, a.count == 1 || a.count == count, b.count == 1 || b.count == count {
                    value = (0..<count).map { k in
                        let (x, y) = (a[a.count == 1 ? 0 : k], b[b.count == 1 ? 0 : k])
                        switch op {
                        case "Add": return x + y
                        case "Sub": return x - y
                        case "Mul": return x * y
                        default: return y == 0 ? .nan : (x / y).rounded(.down)
                        }
                    }
                }
            }
            try set(out, s, value: value)
        case "Conv", "ConvInteger":
            let x = try shape(ins[0]), w = try shape(ins[1])
            guard x.count >= 3, w.count == x.count else { throw InferenceFailure(reason: "input \(x) and weight \(w) do not fit") }
            let kernel = node.ints("kernel_shape") ?? Array(w.dropFirst(2))
            try set(out, [x[0], w[0]] + (try Self.windowed(input: Array(x.dropFirst(2)), kernel: kernel, node: node)))
        case "ConvTranspose":
            let x = try shape(ins[0]), w = try shape(ins[1])
            guard x.count >= 3, w.count == x.count else { throw InferenceFailure(reason: "input \(x) and weight \(w) do not fit") }
            let n = x.count - 2, group = node.int("group") ?? 1
            let kernel = node.ints("kernel_shape") ?? Array(w.dropFirst(2))
            let channels = try Self.mul(w[1], group)
            if let outputShape = node.ints("output_shape") {
                guard outputShape.count >= n else { throw InferenceFailure(reason: "output_shape \(outputShape) does not fit a \(n)-D input") }
                try set(out, [x[0], channels] + outputShape.suffix(n))
                return
            }
            let strides = node.ints("strides") ?? [Int](repeating: 1, count: n)
            let dilations = node.ints("dilations") ?? [Int](repeating: 1, count: n)
            let pads = node.ints("pads") ?? [Int](repeating: 0, count: 2 * n)
            let outputPadding = node.ints("output_padding") ?? [Int](repeating: 0, count: n)
            let autoPad = node.string("auto_pad") ?? "NOTSET"
            guard kernel.count == n, strides.count == n, dilations.count == n, pads.count == 2 * n, outputPadding.count == n else {
                throw InferenceFailure(reason: "kernel_shape \(kernel), strides \(strides), dilations \(dilations), pads \(pads) or output_padding \(outputPadding) do not fit a \(n)-D input")
            }
            guard (kernel + strides + dilations).allSatisfy({ $0 >= 1 }), (pads + outputPadding).allSatisfy({ $0 >= 0 }) else {
                throw InferenceFailure(reason: "kernel_shape \(kernel), strides \(strides) and dilations \(dilations) must be positive, pads \(pads) and output_padding \(outputPadding) non-negative")
            }
            let spatial = try (0..<n).map { k -> Int in
                if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" { return try Self.mul(x[k + 2], strides[k]) }
                var size = try Self.add(try Self.mul(strides[k], x[k + 2] - 1), outputPadding[k])
                size = try Self.add(size, try Self.add(try Self.mul(kernel[k] - 1, dilations[k]), 1))
                return autoPad == "VALID" ? size : size - (try Self.add(pads[k], pads[k + n]))   // pads ≥ 0, size ≥ 0: no overflow
            }
            try set(out, [x[0], channels] + spatial)
        case "MaxPool", "AveragePool", "LpPool":
            let x = try shape(ins[0])
            guard let kernel = node.ints("kernel_shape"), x.count == kernel.count + 2 else {
                throw InferenceFailure(reason: "kernel_shape does not fit input \(x)")
            }
            let s = [x[0], x[1]] + (try Self.windowed(input: Array(x.dropFirst(2)), kernel: kernel, node: node, ceilMode: node.int("ceil_mode") == 1))
            for o in node.outputs { try set(o, s) }
        case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
            let x = try shape(ins[0])
            try set(out, Array(x.prefix(2)) + [Int](repeating: 1, count: max(0, x.count - 2)))
        case "MatMul", "MatMulInteger":
            var a = try shape(ins[0]), b = try shape(ins[1])
            let (aVector, bVector) = (a.count == 1, b.count == 1)
            if aVector { a = [1] + a }
            if bVector { b = b + [1] }
            guard a.count >= 2, b.count >= 2, a.last == b[b.count - 2] else {
                throw InferenceFailure(reason: "shapes \(try shape(ins[0])) and \(try shape(ins[1])) do not multiply")
            }
            var s = try Self.broadcast([Array(a.dropLast(2)), Array(b.dropLast(2))]) + [a[a.count - 2], b[b.count - 1]]
            if aVector { s.remove(at: s.count - 2) }
            if bVector { s.removeLast() }
            try set(out, s)
        case "Gemm":
            let a = try shape(ins[0]), b = try shape(ins[1])
            guard a.count == 2, b.count == 2 else { throw InferenceFailure(reason: "Gemm needs 2-D operands, got \(a) and \(b)") }
            let m = node.int("transA") == 1 ? a[1] : a[0]
            let n = node.int("transB") == 1 ? b[0] : b[1]
            try set(out, [m, n])
        case "Shape":
            let x = try shape(ins[0])
            let rank = x.count
            var start = node.int("start") ?? 0, end = node.int("end") ?? rank
            if start < 0 { start += rank }
            if end < 0 { end += rank }
            let low = min(max(start, 0), rank)
            let slice = Array(x[low..<max(low, min(max(end, 0), rank))])
            try set(out, [slice.count], value: slice.map(Double.init))
        case "Size":
            try set(out, [], value: [Double(try Self.product(try shape(ins[0])))])
        case "Reshape":
            let x = try shape(ins[0])
            var target = try integers(ins[1], "the target shape")
            let allowZero = node.int("allowzero") == 1
            for k in target.indices where target[k] == 0 && !allowZero {
                guard k < x.count else { throw InferenceFailure(reason: "target \(target) copies a dimension \(x) lacks") }
                target[k] = x[k]
            }
            let total = try Self.product(x)
            guard target.allSatisfy({ $0 >= -1 }), target.filter({ $0 == -1 }).count <= 1 else {
                throw InferenceFailure(reason: "cannot reshape \(x) to \(target)")
            }
            if let k = target.firstIndex(of: -1) {
                let known = try Self.product(target.enumerated().filter { $0.offset != k }.map(\.element))
                guard known > 0, total % known == 0 else { throw InferenceFailure(reason: "cannot reshape \(x) to \(target)") }
                target[k] = total / known
            }
            guard try Self.product(target) == total else { throw InferenceFailure(reason: "cannot reshape \(x) to \(target)") }
            try set(out, target, value: values[ins[0]])
        case "Flatten":
            let x = try shape(ins[0])
            let axis = try Self.normalized(node.int("axis") ?? 1, rank: x.count + 1)
            try set(out, [try Self.product(Array(x.prefix(axis))), try Self.product(Array(x.dropFirst(axis)))], value: values[ins[0]])
        case "Transpose":
            let x = try shape(ins[0])
            let perm = node.ints("perm") ?? Array((0..<x.count).reversed())
            guard perm.sorted() == Array(0..<x.count) else { throw InferenceFailure(reason: "perm \(perm) does not fit \(x)") }
            let permuted = perm.map { x[$0] }
            // Small constant tensors are permuted too (PyTorch's pad arguments pass through a Transpose).
            let value = values[ins[0]].flatMap { v in Self.remapped(v, shape: x, to: permuted) { o in
                var i = [Int](repeating: 0, count: x.count)
                for (k, axis) in perm.enumerated() { i[axis] = o[k] }
                return i
            } }
            try set(out, permuted, value: value)
        case "Squeeze", "Unsqueeze":
            let x = try shape(ins[0])
            let axes: [Int]? = opset >= 13 ? (ins.count > 1 && !ins[1].isEmpty ? try integers(ins[1], "axes") : nil) : node.ints("axes")
            if op == "Squeeze" {
                let rank = x.count
                let drop = try axes.map { try Set($0.map { try Self.normalized($0, rank: rank) }) } ?? Set(x.indices.filter { x[$0] == 1 })
                try set(out, x.indices.filter { !drop.contains($0) }.map { x[$0] }, value: values[ins[0]])
            } else {
                guard let axes else { throw InferenceFailure(reason: "no axes") }
                let rank = x.count + axes.count
                let inserted = try Set(axes.map { try Self.normalized($0, rank: rank) })
                var rest = x.makeIterator()
                try set(out, (0..<rank).map { inserted.contains($0) ? 1 : rest.next() ?? 1 }, value: values[ins[0]])
            }
        case "Concat":
            let parts = try ins.filter { !$0.isEmpty }.map(shape)
            guard let first = parts.first else { throw InferenceFailure(reason: "no inputs") }
            let axis = try Self.normalized(node.int("axis") ?? 0, rank: first.count)
            guard parts.allSatisfy({ part in part.count == first.count && part.indices.allSatisfy { k in k == axis || part[k] == first[k] } }) else {
                throw InferenceFailure(reason: "inputs of shapes \(parts) do not concatenate on axis \(axis)")
            }
            var s = first
            s[axis] = try parts.reduce(0) { try Self.add($0, $1[axis]) }
            let pieces = ins.filter { !$0.isEmpty }.map { values[$0] }
            let value: [Double]? = first.count == 1 && pieces.allSatisfy { $0 != nil } ? pieces.flatMap { $0! } : nil
            try set(out, s, value: value)
        case "Gather":
            let data = try shape(ins[0]), indices = try shape(ins[1])
            let axis = try Self.normalized(node.int("axis") ?? 0, rank: data.count)
            let s = Array(data.prefix(axis)) + indices + Array(data.dropFirst(axis + 1))
            var value: [Double]?
            if data.count == 1, let d = values[ins[0]], let i = values[ins[1]] {
                value = try i.map { index in
                    let k = try Self.integer(index, "the index")
                    guard k >= -d.count, k < d.count else { throw InferenceFailure(reason: "index \(k) is outside \(d.count) values") }
                    return d[k < 0 ? k + d.count : k]
                }
            }
            try set(out, s, value: value)
        case "Slice":
            let x = try shape(ins[0])
            let starts: [Int], ends: [Int], axes: [Int], steps: [Int]
            if opset >= 10 {
                starts = try integers(ins[1], "starts")
                ends = try integers(ins[2], "ends")
                axes = ins.count > 3 && !ins[3].isEmpty ? try integers(ins[3], "axes") : Array(0..<starts.count)
                steps = ins.count > 4 && !ins[4].isEmpty ? try integers(ins[4], "steps") : [Int](repeating: 1, count: starts.count)
            } else {
                starts = node.ints("starts") ?? []
                ends = node.ints("ends") ?? []
                axes = node.ints("axes") ?? Array(0..<starts.count)
                steps = [Int](repeating: 1, count: starts.count)
            }
            guard starts.count == axes.count, ends.count == axes.count, steps.count == axes.count else {
                throw InferenceFailure(reason: "starts \(starts), ends \(ends), axes \(axes) and steps \(steps) differ in length")
            }
            var s = x
            var ranges: [Int: (start: Int, step: Int, count: Int)] = [:]
            for (k, a) in axes.enumerated() {
                let axis = try Self.normalized(a, rank: x.count)
                let d = x[axis], step = steps[k]
                guard step != 0, step != Int.min else { throw InferenceFailure(reason: "step \(step)") }
                func clamp(_ v: Int, _ low: Int, _ high: Int) -> Int { min(max(v, low), high) }
                // Starts and ends near ±2⁶³ are clamped before the dimension is added.
                var start = clamp(starts[k], -d, d), end = clamp(ends[k], -d - 1, d)
                start = start < 0 ? start + d : start
                end = end < 0 ? end + d : end
                if step > 0 { start = clamp(start, 0, d); end = clamp(end, 0, d) } else { start = clamp(start, 0, d - 1); end = clamp(end, -1, d - 1) }
                // The count in closed form: a slice of a huge dimension is never enumerated.
                let count = step > 0 ? (end > start ? (end - start - 1) / step + 1 : 0) : (start > end ? (start - end - 1) / -step + 1 : 0)
                s[axis] = count
                ranges[axis] = (start, step, count)
            }
            let value = values[ins[0]].flatMap { v in Self.remapped(v, shape: x, to: s) { o in
                o.enumerated().map { axis, k in ranges[axis].map { $0.start + k * $0.step } ?? k }
            } }
            try set(out, s, value: value)
        case "Split":
            let x = try shape(ins[0])
            let axis = try Self.normalized(node.int("axis") ?? 0, rank: x.count)
            var sizes: [Int]
            if opset >= 13, ins.count > 1, !ins[1].isEmpty { sizes = try integers(ins[1], "split") } else if let split = node.ints("split") { sizes = split } else {
                let n = node.int("num_outputs") ?? node.outputs.count
                guard n > 0, n <= node.outputs.count else {
                    throw InferenceFailure(reason: "num_outputs \(n) with \(node.outputs.count) outputs")
                }
                let chunk = (x[axis] - 1) / n + 1
                sizes = try (0..<n).map { min(chunk, max(0, x[axis] - (try Self.mul($0, chunk)))) }
            }
            for (o, size) in zip(node.outputs, sizes) {
                var s = x
                s[axis] = size
                try set(o, s)
            }
        case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
             "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin":
            let x = try shape(ins[0])
            let keep = (node.int("keepdims") ?? 1) == 1
            var axes: [Int]?
            if op == "ArgMax" || op == "ArgMin" { axes = [node.int("axis") ?? 0] } else if let a = node.ints("axes") { axes = a } else if ins.count > 1, !ins[1].isEmpty {
                axes = try integers(ins[1], "axes")
            }
            if axes?.isEmpty ?? true {
                if node.int("noop_with_empty_axes") == 1 { try set(out, x); return }
                axes = Array(x.indices)
            }
            let reduced = try Set(axes!.map { try Self.normalized($0, rank: x.count) })
            try set(out, keep ? x.indices.map { reduced.contains($0) ? 1 : x[$0] } : x.indices.filter { !reduced.contains($0) }.map { x[$0] })
        case "Resize", "Upsample":
            let x = try shape(ins[0])
            if op == "Resize", opset >= 11, ins.count > 3, !ins[3].isEmpty, let sizes = values[ins[3]], sizes.count == x.count {
                try set(out, try sizes.map { try Self.integer($0, "sizes") })
                return
            }
            let scalesName = op == "Upsample" || opset < 11 ? (ins.count > 1 ? ins[1] : "") : (ins.count > 2 ? ins[2] : "")
            let scales: [Double]
            if let v = values[scalesName] { scales = v } else if let a = node.attribute("scales"), case let .floats(f) = a {
                scales = f.map(Double.init)
            } else {
                throw InferenceFailure(reason: "the scales or sizes are not constant")
            }
            guard scales.count == x.count else { throw InferenceFailure(reason: "scales \(scales) do not fit \(x)") }
            try set(out, try zip(x, scales).map { try Self.integer((Double($0) * $1).rounded(.down), "a scaled size") })
        case "Expand":
            let x = try shape(ins[0])
            try set(out, try Self.broadcast([x, try integers(ins[1], "the shape")]))
        case "ConstantOfShape":
            let s = try integers(ins[0], "the shape")
            guard s.allSatisfy({ $0 >= 0 }) else { throw InferenceFailure(reason: "the shape \(s) has a negative dimension") }
            let count = try Self.product(s)
            var fill = 0.0
            if let t = node.tensor("value"), let v = try? t.tensor(as: Double.self).scalars.first { fill = v }
            try set(out, s, value: count <= Self.valueLimit ? [Double](repeating: fill, count: count) : nil)
        case "Range":
            let bounds = try [(ins[0], "start"), (ins[1], "limit"), (ins[2], "delta")].map { name, what -> Double in
                guard let v = values[name], v.count == 1, v[0].isFinite else { throw InferenceFailure(reason: "\(what) is not a constant scalar") }
                return v[0]
            }
            let (start, limit, delta) = (bounds[0], bounds[1], bounds[2])
            guard delta != 0 else { throw InferenceFailure(reason: "delta 0") }
            // The count in floating point: only a count of at most valueLimit is materialised.
            let count = max(0, ((limit - start) / delta).rounded(.up))
            guard count <= 0x1p62 else { throw InferenceFailure(reason: "a range of \(count) values") }
            let n = Int(count)
            try set(out, [n], value: n <= Self.valueLimit ? (0..<n).map { start + Double($0) * delta } : nil)
        case "Tile":
            let x = try shape(ins[0]), repeats = try integers(ins[1], "repeats")
            guard repeats.count == x.count, repeats.allSatisfy({ $0 >= 0 }) else { throw InferenceFailure(reason: "repeats \(repeats) do not fit \(x)") }
            try set(out, try zip(x, repeats).map { try Self.mul($0, $1) })
        case "Pad":
            let x = try shape(ins[0])
            let pads = opset >= 11 ? try integers(ins[1], "pads") : (node.ints("pads") ?? [])
            var axes = Array(x.indices)
            if opset >= 18, ins.count > 3, !ins[3].isEmpty { axes = try integers(ins[3], "axes").map { try Self.normalized($0, rank: x.count) } }
            guard pads.count == 2 * axes.count else { throw InferenceFailure(reason: "pads \(pads) do not fit \(x)") }
            var s = x
            for (k, a) in axes.enumerated() { s[a] = try Self.add(s[a], try Self.add(pads[k], pads[k + axes.count])) }
            try set(out, s)
        case "DepthToSpace", "SpaceToDepth":
            let x = try shape(ins[0])
            guard x.count == 4, let b = node.int("blocksize"), b >= 1 else { throw InferenceFailure(reason: "needs a 4-D input and a positive blocksize") }
            let square = try Self.mul(b, b)
            try set(out, op == "DepthToSpace" ? [x[0], x[1] / square, try Self.mul(x[2], b), try Self.mul(x[3], b)]
                                               : [x[0], try Self.mul(x[1], square), x[2] / b, x[3] / b])
        default:
            throw InferenceFailure(reason: "operator not covered by shape inference")
        }
    }
}
