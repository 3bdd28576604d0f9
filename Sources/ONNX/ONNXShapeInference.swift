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
    /// - Throws: ``ONNXError/dynamicInput(name:shape:)`` for an input with symbolic dimensions and no
    ///   shape given, ``ONNXError/inputShape(name:declared:given:)`` for a given shape that
    ///   contradicts the declared one, ``ONNXError/unknownInput(name:inputs:)``.
    public init(graph: ONNXGraph, inputShapes: [String: [Int]] = [:], opset: Int = 13) throws {
        let inputs = graph.inputs
        for name in inputShapes.keys.sorted() where !inputs.contains(where: { $0.name == name }) {
            throw ONNXError.unknownInput(name: name, inputs: inputs.map(\.name))
        }
        for input in inputs {
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
                shapes[input.name] = fixed
            } else {
                throw ONNXError.dynamicInput(name: input.name, shape: "(unknown rank)")
            }
        }
        for tensor in graph.initializers where shapes[tensor.name] == nil {
            record(tensor.name, tensor)
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
        shapes[name] = tensor.shape
        if let count = try? tensor.elementCount(), count <= Self.valueLimit {
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
        return v.map { $0 >= Double(Int.max) ? Int.max : ($0 <= Double(Int.min) ? Int.min : Int($0)) }
    }

    mutating func set(_ name: String, _ shape: [Int], value: [Double]? = nil) {
        guard !name.isEmpty else { return }
        shapes[name] = shape
        if let value, value.count <= Self.valueLimit { values[name] = value }
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
        guard a >= 0, a < max(rank, 1) else { throw InferenceFailure(reason: "axis \(axis) is outside a rank-\(rank) tensor") }
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
        return try (0..<n).map { k in
            let extent = dilations[k] * (kernel[k] - 1) + 1
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER": return (input[k] + strides[k] - 1) / strides[k]
            case "VALID":
                guard input[k] >= extent else { throw InferenceFailure(reason: "input \(input) is smaller than the kernel extent") }
                return (input[k] - extent) / strides[k] + 1
            default:
                let padded = input[k] + pads[k] + pads[k + n] - extent
                guard padded >= 0 else { throw InferenceFailure(reason: "padded input \(input) is smaller than the kernel extent") }
                return (ceilMode ? (padded + strides[k] - 1) : padded) / strides[k] + 1
            }
        }
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    mutating func infer(_ node: ONNXNode, opset: Int) throws {
        let op = node.opType
        let ins = node.inputs
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
            if op == "PRelu" { set(out, try Self.broadcast([s, try shape(ins[1])])) } else { set(out, s, value: value) }
        case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less", "Greater", "And", "Or",
             "Xor", "Mod", "GreaterOrEqual", "LessOrEqual", "BitShift":
            let s = try Self.broadcast(try ins.filter { !$0.isEmpty }.map(shape))
            var value: [Double]?
            if ["Add", "Sub", "Mul", "Div"].contains(op), ins.count == 2, let a = values[ins[0]], let b = values[ins[1]] {
                let count = s.reduce(1, *)
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
            set(out, s, value: value)
        case "Conv", "ConvInteger":
            let x = try shape(ins[0]), w = try shape(ins[1])
            guard x.count >= 3, w.count == x.count else { throw InferenceFailure(reason: "input \(x) and weight \(w) do not fit") }
            let kernel = node.ints("kernel_shape") ?? Array(w.dropFirst(2))
            set(out, [x[0], w[0]] + (try Self.windowed(input: Array(x.dropFirst(2)), kernel: kernel, node: node)))
        case "ConvTranspose":
            let x = try shape(ins[0]), w = try shape(ins[1])
            guard x.count >= 3, w.count == x.count else { throw InferenceFailure(reason: "input \(x) and weight \(w) do not fit") }
            let n = x.count - 2, group = node.int("group") ?? 1
            let kernel = node.ints("kernel_shape") ?? Array(w.dropFirst(2))
            if let outputShape = node.ints("output_shape") {
                set(out, [x[0], w[1] * group] + outputShape.suffix(n))
                return
            }
            let strides = node.ints("strides") ?? [Int](repeating: 1, count: n)
            let dilations = node.ints("dilations") ?? [Int](repeating: 1, count: n)
            let pads = node.ints("pads") ?? [Int](repeating: 0, count: 2 * n)
            let outputPadding = node.ints("output_padding") ?? [Int](repeating: 0, count: n)
            let autoPad = node.string("auto_pad") ?? "NOTSET"
            let spatial = (0..<n).map { k -> Int in
                if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" { return x[k + 2] * strides[k] }
                return strides[k] * (x[k + 2] - 1) + outputPadding[k] + (kernel[k] - 1) * dilations[k] + 1
                    - (autoPad == "VALID" ? 0 : pads[k] + pads[k + n])
            }
            set(out, [x[0], w[1] * group] + spatial)
        case "MaxPool", "AveragePool", "LpPool":
            let x = try shape(ins[0])
            guard let kernel = node.ints("kernel_shape"), x.count == kernel.count + 2 else {
                throw InferenceFailure(reason: "kernel_shape does not fit input \(x)")
            }
            let s = [x[0], x[1]] + (try Self.windowed(input: Array(x.dropFirst(2)), kernel: kernel, node: node, ceilMode: node.int("ceil_mode") == 1))
            for o in node.outputs { set(o, s) }
        case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
            let x = try shape(ins[0])
            set(out, Array(x.prefix(2)) + [Int](repeating: 1, count: max(0, x.count - 2)))
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
            set(out, s)
        case "Gemm":
            let a = try shape(ins[0]), b = try shape(ins[1])
            guard a.count == 2, b.count == 2 else { throw InferenceFailure(reason: "Gemm needs 2-D operands, got \(a) and \(b)") }
            let m = node.int("transA") == 1 ? a[1] : a[0]
            let n = node.int("transB") == 1 ? b[0] : b[1]
            set(out, [m, n])
        case "Shape":
            let x = try shape(ins[0])
            let rank = x.count
            var start = node.int("start") ?? 0, end = node.int("end") ?? rank
            if start < 0 { start += rank }
            if end < 0 { end += rank }
            let slice = Array(x[min(max(start, 0), rank)..<min(max(end, 0), rank)])
            set(out, [slice.count], value: slice.map(Double.init))
        case "Size":
            set(out, [], value: [Double(try shape(ins[0]).reduce(1, *))])
        case "Reshape":
            let x = try shape(ins[0])
            var target = try integers(ins[1], "the target shape")
            let allowZero = node.int("allowzero") == 1
            for k in target.indices where target[k] == 0 && !allowZero {
                guard k < x.count else { throw InferenceFailure(reason: "target \(target) copies a dimension \(x) lacks") }
                target[k] = x[k]
            }
            let total = x.reduce(1, *)
            if let k = target.firstIndex(of: -1) {
                let known = target.enumerated().filter { $0.offset != k }.reduce(1) { $0 * $1.element }
                guard known > 0, total % known == 0 else { throw InferenceFailure(reason: "cannot reshape \(x) to \(target)") }
                target[k] = total / known
            }
            guard target.reduce(1, *) == total else { throw InferenceFailure(reason: "cannot reshape \(x) to \(target)") }
            set(out, target, value: values[ins[0]])
        case "Flatten":
            let x = try shape(ins[0])
            let axis = try Self.normalized(node.int("axis") ?? 1, rank: x.count + 1)
            set(out, [x.prefix(axis).reduce(1, *), x.dropFirst(axis).reduce(1, *)], value: values[ins[0]])
        case "Transpose":
            let x = try shape(ins[0])
            let perm = node.ints("perm") ?? Array((0..<x.count).reversed())
            guard perm.sorted() == Array(0..<x.count) else { throw InferenceFailure(reason: "perm \(perm) does not fit \(x)") }
            set(out, perm.map { x[$0] }, value: x.count <= 1 ? values[ins[0]] : nil)
        case "Squeeze", "Unsqueeze":
            let x = try shape(ins[0])
            let axes: [Int]? = opset >= 13 ? (ins.count > 1 && !ins[1].isEmpty ? try integers(ins[1], "axes") : nil) : node.ints("axes")
            if op == "Squeeze" {
                let rank = x.count
                let drop = try axes.map { try Set($0.map { try Self.normalized($0, rank: rank) }) } ?? Set(x.indices.filter { x[$0] == 1 })
                set(out, x.indices.filter { !drop.contains($0) }.map { x[$0] }, value: values[ins[0]])
            } else {
                guard let axes else { throw InferenceFailure(reason: "no axes") }
                let rank = x.count + axes.count
                let inserted = try Set(axes.map { try Self.normalized($0, rank: rank) })
                var rest = x.makeIterator()
                set(out, (0..<rank).map { inserted.contains($0) ? 1 : rest.next() ?? 1 }, value: values[ins[0]])
            }
        case "Concat":
            let parts = try ins.filter { !$0.isEmpty }.map(shape)
            guard let first = parts.first else { throw InferenceFailure(reason: "no inputs") }
            let axis = try Self.normalized(node.int("axis") ?? 0, rank: first.count)
            var s = first
            s[axis] = parts.reduce(0) { $0 + $1[axis] }
            let pieces = ins.filter { !$0.isEmpty }.map { values[$0] }
            let value: [Double]? = first.count == 1 && pieces.allSatisfy { $0 != nil } ? pieces.flatMap { $0! } : nil
            set(out, s, value: value)
        case "Gather":
            let data = try shape(ins[0]), indices = try shape(ins[1])
            let axis = try Self.normalized(node.int("axis") ?? 0, rank: data.count)
            let s = Array(data.prefix(axis)) + indices + Array(data.dropFirst(axis + 1))
            var value: [Double]?
            if data.count == 1, let d = values[ins[0]], let i = values[ins[1]] {
                value = i.map { let k = Int($0); return d[k < 0 ? k + d.count : k] }
            }
            set(out, s, value: value)
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
            var s = x
            var ranges: [Int: [Int]] = [:]
            for (k, a) in axes.enumerated() {
                let axis = try Self.normalized(a, rank: x.count)
                let d = x[axis], step = steps[k]
                guard step != 0 else { throw InferenceFailure(reason: "step 0") }
                func clamp(_ v: Int, _ low: Int, _ high: Int) -> Int { min(max(v, low), high) }
                var start = starts[k] < 0 ? starts[k] + d : starts[k]
                var end = ends[k] < 0 ? ends[k] + d : ends[k]
                if step > 0 { start = clamp(start, 0, d); end = clamp(end, 0, d) } else { start = clamp(start, 0, d - 1); end = clamp(end, -1, d - 1) }
                let indices = Array(stride(from: start, to: end, by: step))
                s[axis] = indices.count
                ranges[axis] = indices
            }
            var value: [Double]?
            if x.count == 1, let v = values[ins[0]] { value = (ranges[0] ?? Array(0..<x[0])).map { v[$0] } }
            set(out, s, value: value)
        case "Split":
            let x = try shape(ins[0])
            let axis = try Self.normalized(node.int("axis") ?? 0, rank: x.count)
            var sizes: [Int]
            if opset >= 13, ins.count > 1, !ins[1].isEmpty { sizes = try integers(ins[1], "split") } else if let split = node.ints("split") { sizes = split } else {
                let n = node.outputs.count
                let chunk = (x[axis] + n - 1) / n
                sizes = (0..<n).map { min(chunk, max(0, x[axis] - $0 * chunk)) }
            }
            for (o, size) in zip(node.outputs, sizes) {
                var s = x
                s[axis] = size
                set(o, s)
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
                if node.int("noop_with_empty_axes") == 1 { set(out, x); return }
                axes = Array(x.indices)
            }
            let reduced = try Set(axes!.map { try Self.normalized($0, rank: x.count) })
            set(out, keep ? x.indices.map { reduced.contains($0) ? 1 : x[$0] } : x.indices.filter { !reduced.contains($0) }.map { x[$0] })
        case "Resize", "Upsample":
            let x = try shape(ins[0])
            if op == "Resize", opset >= 11, ins.count > 3, !ins[3].isEmpty, let sizes = values[ins[3]], sizes.count == x.count {
                set(out, sizes.map { Int($0) })
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
            set(out, zip(x, scales).map { Int((Double($0) * $1).rounded(.down)) })
        case "Expand":
            let x = try shape(ins[0])
            set(out, try Self.broadcast([x, try integers(ins[1], "the shape")]))
        case "ConstantOfShape":
            let s = try integers(ins[0], "the shape")
            let count = s.reduce(1, *)
            var fill = 0.0
            if let t = node.tensor("value"), let v = try? t.tensor(as: Double.self).scalars.first { fill = v }
            set(out, s, value: count <= Self.valueLimit ? [Double](repeating: fill, count: count) : nil)
        case "Range":
            let start = try integers(ins[0], "start")[0], limit = try integers(ins[1], "limit")[0], delta = try integers(ins[2], "delta")[0]
            guard delta != 0 else { throw InferenceFailure(reason: "delta 0") }
            let count = max(0, Int((Double(limit - start) / Double(delta)).rounded(.up)))
            set(out, [count], value: (0..<count).map { Double(start + $0 * delta) })
        case "Tile":
            let x = try shape(ins[0]), repeats = try integers(ins[1], "repeats")
            guard repeats.count == x.count else { throw InferenceFailure(reason: "repeats \(repeats) do not fit \(x)") }
            set(out, zip(x, repeats).map { $0 * $1 })
        case "Pad":
            let x = try shape(ins[0])
            let pads = opset >= 11 ? try integers(ins[1], "pads") : (node.ints("pads") ?? [])
            var axes = Array(x.indices)
            if opset >= 18, ins.count > 3, !ins[3].isEmpty { axes = try integers(ins[3], "axes").map { try Self.normalized($0, rank: x.count) } }
            guard pads.count == 2 * axes.count else { throw InferenceFailure(reason: "pads \(pads) do not fit \(x)") }
            var s = x
            for (k, a) in axes.enumerated() { s[a] += pads[k] + pads[k + axes.count] }
            set(out, s)
        case "DepthToSpace", "SpaceToDepth":
            let x = try shape(ins[0])
            guard x.count == 4, let b = node.int("blocksize") else { throw InferenceFailure(reason: "needs a 4-D input and blocksize") }
            set(out, op == "DepthToSpace" ? [x[0], x[1] / (b * b), x[2] * b, x[3] * b] : [x[0], x[1] * b * b, x[2] / b, x[3] / b])
        default:
            throw InferenceFailure(reason: "operator not covered by shape inference")
        }
    }
}
