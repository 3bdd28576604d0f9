import TensorModule

/// What ``ONNXGraph/simplify(opset:)`` changed.
public struct ONNXSimplification: Sendable, Equatable, Encodable {
    /// `Mul`/`Add`/`Sub`/`Div` nodes by a per-channel constant after a convolution, folded into
    /// its weight and bias.
    public var foldedIntoPrecedingConvolution = 0
    /// `Mul`/`Add`/`Sub`/`Div` nodes by a per-channel constant before convolutions, folded into
    /// their weights and biases (or, before a padded convolution, reduced to one `Add`).
    public var foldedIntoFollowingConvolutions = 0
    /// `Mul`/`Add`/`Sub`/`Div` nodes by a per-column constant, and inference `BatchNormalization`
    /// nodes, after a `Gemm` with constant `B` (and `C`), folded into `B` and `C`.
    public var foldedIntoPrecedingGemm = 0
    /// Hard-swish patterns (`x · clip(x + 3, 0, 6) / 6`, four nodes) rewritten as `x · HardSigmoid(x)`.
    public var hardSwishes = 0
    /// Inference `BatchNormalization` nodes among the folded nodes (counted in the folds above).
    public var batchNormalizations = 0
    /// `Constant` nodes of the main graph written as initializers (IR version 4 and later), which
    /// onnxruntime's quantizer needs for the weights it quantizes.
    public var constantsToInitializers = 0
    /// The graph's node count before the rewrites (`Constant` nodes included).
    public var nodesBefore = 0
    /// The graph's node count after them (folded `Constant` nodes are removed too).
    public var nodesAfter = 0

    /// Nothing rewritten yet.
    public init() {}

    /// Whether anything changed.
    public var isEmpty: Bool {
        foldedIntoPrecedingConvolution + foldedIntoFollowingConvolutions + foldedIntoPrecedingGemm + hardSwishes + constantsToInitializers == 0
    }
}

extension ONNXModel {
    /// Rewrites the graph by ``ONNXGraph/simplify(opset:)`` at the model's opset.
    @discardableResult
    public mutating func simplify() throws -> ONNXSimplification {
        var g = graph
        let result = try g.simplify(opset: opsetVersion)
        graph = g
        return result
    }
}

extension ONNXGraph {
    /// Exact rewrites that remove elementwise work around convolutions and after `Gemm`, with
    /// standard operators of the given opset only.
    ///
    /// Exporters often leave a convolution's affine epilogue and the pieces of an activation as
    /// separate nodes (paddle2onnx writes PP-LCNet's "learnable affine blocks" as a `Mul` and an
    /// `Add` by scalars around every hard-swish, itself four nodes). Each is one pass over a full
    /// activation tensor, and onnxruntime does not fold them when the constant comes first or
    /// the block sits before the convolution. Five rewrites, each exact in real arithmetic:
    ///
    /// - **After a convolution**: `Conv → Mul/Add/Sub/Div` by a constant that is per output channel
    ///   (a scalar, `[C, 1, 1]`, `[1, C, 1, 1]`, …), or an inference `BatchNormalization` with
    ///   constant parameters (`s = γ/√(σ² + ε)`, `t = β − μ s`), when the convolution's output has
    ///   no other reader: `W'[o] = s_o W[o]`, `b'[o] = s_o b[o] + t_o`. The convolution takes over
    ///   the last folded node's output name.
    /// - **After a `Gemm`**: the same chains (per output column: a scalar, `[M]` or `[1, M]`
    ///   constant, or an inference `BatchNormalization`) after a `Gemm` whose `B` is constant and
    ///   whose `C`, when it has one, is a constant per column: `op(B)' = op(B) diag(s)`,
    ///   `C' = s ⊙ (β C) + t`, `β' = 1` (opset 7 and later, where `C` broadcasts).
    /// - **Hard-swish**: `Add(x, 3) → Clip(0, 6) → Mul(x, ·) → Div(6)` (or `Mul(1/6)`, in either
    ///   order of the last two) becomes `Mul(x, HardSigmoid(x; α = 1/6, β = ½))`, two nodes; not in
    ///   DOUBLE graphs, where α, a FLOAT attribute, would be coarser than the data.
    /// - **Before convolutions**: a chain of `Mul/Add/Sub/Div` by per-input-channel constants,
    ///   `y = s ⊙ x + t`, read only by convolutions with constant weights. When none of them pads,
    ///   the chain disappears: `W'[o, i] = s_i W[o, i]`, `b'[o] = b[o] + Σ_{i,k} W[o, i, k] t_i`.
    ///   When one pads (zero padding does not see the shift `t`), the scale still folds and the
    ///   chain becomes one `Add(x, t / s)`, provided no `s_i` is zero. `BatchNormalization` nodes
    ///   join such chains too. The chain's input must already have the convolutions' rank and
    ///   channels (a constant that broadcasts a narrower input is not folded).
    /// - **Constants as initializers**: `Constant` nodes of the main graph become initializers
    ///   (IR 4 and later), as onnxruntime's quantizer needs.
    ///
    /// Intermediate values that other nodes read, or that are graph outputs, stop a rewrite. New
    /// weights keep each weight's element type, computed in `Double` and rounded once; weights
    /// nothing reads any more are removed. Outputs change only by floating-point rounding.
    ///
    /// - Returns: What was rewritten.
    /// - Throws: The errors of reading the constants involved.
    @discardableResult
    public mutating func simplify(opset: Int) throws -> ONNXSimplification {
        var result = ONNXSimplification()
        result.nodesBefore = proto.node.count
        var names = Set(proto.initializer.map(\.name))
        for node in proto.node { names.formUnion(node.output); names.insert(node.name) }
        var released = Set<String>()
        let normalizationsBefore = proto.node.filter { $0.opType == "BatchNormalization" }.count
        result.hardSwishes = try rewriteHardSwishes(names: &names, released: &released)
        result.foldedIntoPrecedingConvolution = try foldIntoPrecedingConvolutions(names: &names, released: &released)
        result.foldedIntoFollowingConvolutions = try foldIntoFollowingConvolutions(names: &names, released: &released)
        if opset >= 7 { result.foldedIntoPrecedingGemm = try foldIntoPrecedingGemms(names: &names, released: &released) }
        result.batchNormalizations = normalizationsBefore - proto.node.filter { $0.opType == "BatchNormalization" }.count
        removeUnused(released)
        result.constantsToInitializers = constantsToInitializers()
        let values = Set(proto.node.flatMap(\.output)).union(proto.input.map(\.name)).union(proto.initializer.map(\.name))
        proto.valueInfo.removeAll { !values.contains($0.name) }
        result.nodesAfter = proto.node.count
        return result
    }

    // MARK: - Helpers

    /// What is known of a value's layout without input sizes: its rank and its channel count
    /// (axis 1), for the rewrites that must not change either.
    struct Layout: Equatable {
        var rank: Int
        var channels: Int?
        /// Every dimension, for constants.
        var shape: [Int]?
    }

    /// The layout of every value that can be derived from declared shapes, constants and the
    /// operators that keep or set the channel count (convolutions, pooling, normalisation,
    /// elementwise operators with broadcasting, channel concatenation), in one pass.
    func layouts() -> [String: Layout] {
        var result: [String: Layout] = [:]
        func layout(_ dims: [ONNXDimension]) -> Layout {
            let channel: Int? = dims.count > 1 ? { if case let .value(v) = dims[1] { return v } else { return nil } }() : nil
            return Layout(rank: dims.count, channels: channel)
        }
        for info in proto.input.map(ONNXValueInfo.init(proto:)) + proto.valueInfo.map(ONNXValueInfo.init(proto:)) {
            if let dims = info.shape { result[info.name] = layout(dims) }
        }
        for tensor in proto.initializer {
            let shape = tensor.dims.map { Int(clamping: $0) }
            result[tensor.name] = Layout(rank: shape.count, channels: shape.count > 1 ? shape[1] : nil, shape: shape)
        }
        let keeps: Set<String> = ["Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Clip", "Identity",
                                  "Dropout", "BatchNormalization", "InstanceNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
                                  "GlobalMaxPool", "Neg", "Abs", "Exp", "Log", "Sqrt", "Erf", "Gelu", "Mish", "Softplus", "PRelu", "Cast"]
        let constants = self.constants()
        for p in proto.node {
            let node = ONNXNode(proto: p)
            guard node.isStandard, let out = p.output.first, !out.isEmpty else { continue }
            if node.opType == "Constant", let t = Self.constantValue(node) {
                let shape = t.shape
                result[out] = Layout(rank: shape.count, channels: shape.count > 1 ? shape[1] : nil, shape: shape)
                continue
            }
            let inputs = p.input.map { $0.isEmpty ? nil : result[$0] }
            var derived: Layout?
            switch node.opType {
            case "Conv":
                if p.input.count > 1, let w = constants[p.input[1]]?.tensor.shape, w.count >= 3 {
                    derived = Layout(rank: w.count, channels: w[0])
                }
            case _ where keeps.contains(node.opType):
                derived = inputs.first ?? nil
            case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min":
                guard inputs.count == 2, let a = inputs[0], let b = inputs[1] else { break }
                let rank = max(a.rank, b.rank)
                // Axis 1 of the result, operands aligned from the right: an operand of the full
                // rank gives its channels, one of rank − 1 its axis 0 (not tracked), a shorter one 1.
                func channel(_ l: Layout) -> Int? {
                    if l.rank == rank { return l.channels }
                    let index = l.rank - rank + 1
                    if let s = l.shape { return index >= 0 ? (index < s.count ? s[index] : nil) : 1 }
                    return l.rank == rank - 1 ? nil : 1
                }
                if rank < 2 { derived = Layout(rank: rank, channels: nil); break }
                let (ca, cb) = (channel(a), channel(b))
                if let ca, let cb, ca == cb || ca == 1 || cb == 1 {
                    derived = Layout(rank: rank, channels: max(ca, cb))
                } else {
                    derived = Layout(rank: rank, channels: nil)
                }
            case "Concat":
                guard let first = inputs.first ?? nil, node.int("axis") == 1 || node.int("axis") == 1 - first.rank else { break }
                let parts = inputs.compactMap { $0 }
                if parts.count == inputs.count, parts.allSatisfy({ $0.rank == first.rank }) {
                    let channels = parts.map(\.channels)
                    derived = Layout(rank: first.rank, channels: channels.allSatisfy { $0 != nil } ? channels.reduce(0) { $0 + $1! } : nil)
                }
            default: break
            }
            if let derived, result[out] == nil || result[out]?.channels == nil { result[out] = derived }
        }
        return result
    }

    /// An elementwise operation by a constant: `x ∘ c` for `Mul`/`Add`, `x − c`, `x / c`.
    private struct Affine {
        var node: Int
        var input: String
        var constant: ONNXTensor
    }

    /// The node at `k` as `x ∘ c` with a constant `c`, or `nil`.
    private func affine(at k: Int, constants: [String: ONNXConstant]) -> Affine? {
        let node = ONNXNode(proto: proto.node[k])
        guard node.isStandard, node.inputs.count == 2, node.outputs.count == 1,
              ["Mul", "Add", "Sub", "Div"].contains(node.opType) else { return nil }
        let (a, b) = (node.inputs[0], node.inputs[1])
        if let c = constants[b], constants[a] == nil, c.tensor.dataType.isFloatingPoint { return Affine(node: k, input: a, constant: c.tensor) }
        if ["Mul", "Add"].contains(node.opType), let c = constants[a], constants[b] == nil, c.tensor.dataType.isFloatingPoint {
            return Affine(node: k, input: b, constant: c.tensor)
        }
        return nil
    }

    /// The constant as one value per channel (`channels` of them) of a value of rank `rank`
    /// whose channels are axis 1, or `nil` when it broadcasts along any other axis or would
    /// enlarge the value.
    private static func channelVector(_ c: ONNXTensor, channels: Int, rank: Int) throws -> [Double]? {
        let shape = c.shape
        guard shape.count <= rank else { return nil }
        for (i, d) in shape.enumerated() {
            let axis = rank - shape.count + i
            if axis == 1 { guard d == 1 || d == channels else { return nil } } else { guard d == 1 else { return nil } }
        }
        let values = try c.tensor(as: Double.self).scalars
        guard values.allSatisfy(\.isFinite) else { return nil }
        return values.count == 1 ? Array(repeating: values[0], count: channels) : Array(values)
    }

    /// The data input of a per-channel elementwise node: an ``Affine`` node's non-constant input,
    /// or an inference `BatchNormalization`'s `X`; `nil` for any other node.
    private func elementwiseInput(at k: Int, constants: [String: ONNXConstant]) -> String? {
        if let a = affine(at: k, constants: constants) { return a.input }
        let node = ONNXNode(proto: proto.node[k])
        guard node.isStandard, node.opType == "BatchNormalization", node.inputs.count == 5, node.outputs.count == 1,
              (node.int("training_mode") ?? 0) == 0 else { return nil }
        return node.inputs[0]
    }

    /// The node at `k` as `y = s ⊙ x + t` per channel (axis 1) of a value with `channels`
    /// channels and rank `rank`: `Mul`/`Add`/`Sub`/`Div` by a per-channel constant, or an inference
    /// `BatchNormalization` with constant parameters (`s = γ/√(σ² + ε)`, `t = β − μ s`).
    private func channelStep(at k: Int, constants: [String: ONNXConstant], channels: Int, rank: Int) throws -> (scale: [Double], shift: [Double])? {
        var s = [Double](repeating: 1, count: channels), t = [Double](repeating: 0, count: channels)
        if let a = affine(at: k, constants: constants) {
            guard let c = try Self.channelVector(a.constant, channels: channels, rank: rank),
                  Self.compose(proto.node[k].opType, c, scale: &s, shift: &t) else { return nil }
            return (s, t)
        }
        guard elementwiseInput(at: k, constants: constants) != nil, rank >= 2 else { return nil }
        let node = ONNXNode(proto: proto.node[k])
        var parameters: [[Double]] = []
        for name in node.inputs.dropFirst() {
            guard let c = constants[name], c.tensor.dataType.isFloatingPoint, c.tensor.shape == [channels] else { return nil }
            parameters.append(Array(try c.tensor.tensor(as: Double.self).scalars))
        }
        let epsilon = Double(node.float("epsilon") ?? 1e-5)
        for i in 0..<channels {
            let variance = parameters[3][i] + epsilon
            guard variance > 0 else { return nil }
            s[i] = parameters[0][i] / variance.squareRoot()
            t[i] = parameters[1][i] - parameters[2][i] * s[i]
        }
        guard s.allSatisfy(\.isFinite), t.allSatisfy(\.isFinite) else { return nil }
        return (s, t)
    }

    /// `y = s ⊙ x + t` followed by `step`: `(s′ s, s′ t + t′)`.
    private static func compose(_ step: (scale: [Double], shift: [Double]), scale s: inout [Double], shift t: inout [Double]) {
        for i in s.indices {
            s[i] *= step.scale[i]
            t[i] = step.scale[i] * t[i] + step.shift[i]
        }
    }

    /// Composes `y = s ⊙ x + t` with one more operation `op` by `c` (per channel).
    private static func compose(_ op: String, _ c: [Double], scale s: inout [Double], shift t: inout [Double]) -> Bool {
        switch op {
        case "Mul": for i in s.indices { s[i] *= c[i]; t[i] *= c[i] }
        case "Add": for i in t.indices { t[i] += c[i] }
        case "Sub": for i in t.indices { t[i] -= c[i] }
        case "Div":
            guard c.allSatisfy({ $0 != 0 }) else { return false }
            for i in s.indices { s[i] /= c[i]; t[i] /= c[i] }
        default: return false
        }
        return true
    }

    /// A convolution whose weight (and bias, when given) are constant, with its node.
    private struct ConvolutionSite {
        var node: ONNXNode
        /// The node's window attributes, read once.
        var window: ONNXConvAttributes
        var weight: ONNXTensor
        var bias: ONNXTensor?
    }

    private func convolution(at k: Int, constants: [String: ONNXConstant]) -> ConvolutionSite? {
        let node = ONNXNode(proto: proto.node[k])
        guard node.isStandard, node.opType == "Conv", node.inputs.count >= 2, node.outputs.count == 1,
              let w = constants[node.inputs[1]], w.tensor.dataType.isFloatingPoint, w.tensor.shape.count >= 3,
              let count = try? w.tensor.elementCount(), count > 0, (try? w.tensor.checkData()) != nil else { return nil }
        // A malformed group count is left to the runtime to report, not folded.
        let window = ONNXConvAttributes(node, spatialAxes: w.tensor.shape.count - 2)
        let groups = window.group
        guard groups >= 1, w.tensor.shape[0] % groups == 0 else { return nil }
        var bias: ONNXTensor?
        if node.inputs.count > 2, !node.inputs[2].isEmpty {
            guard let b = constants[node.inputs[2]], b.tensor.dataType == w.tensor.dataType, b.tensor.shape == [w.tensor.shape[0]],
                  (try? b.tensor.checkData()) != nil else { return nil }
            bias = b.tensor
        }
        return ConvolutionSite(node: node, window: window, weight: w.tensor, bias: bias)
    }

    private static func fresh(_ base: String, _ names: inout Set<String>) -> String {
        var name = base, k = 1
        while names.contains(name) { name = "\(base)_\(k)"; k += 1 }
        names.insert(name)
        return name
    }

    /// The node's name, or its first output's when it has none.
    private static func label(_ node: ONNXNode) -> String { node.name.isEmpty ? (node.outputs.first ?? "node") : node.name }

    /// New weight and bias initializers for `site`, set on its node.
    private mutating func setWeights(_ k: Int, _ site: ConvolutionSite, weight: [Double], bias: [Double], suffix: String,
                                     names: inout Set<String>, released: inout Set<String>) throws {
        let type = site.weight.dataType
        let base = Self.label(site.node) + "/" + suffix
        let w = try ONNXTensor(name: Self.fresh(base + ".weight", &names), Tensor<Double>(shape: site.weight.shape, scalars: weight), dataType: type)
        let b = try ONNXTensor(name: Self.fresh(base + ".bias", &names), Tensor<Double>(shape: [site.weight.shape[0]], scalars: bias), dataType: type)
        released.insert(proto.node[k].input[1])
        if proto.node[k].input.count > 2, !proto.node[k].input[2].isEmpty { released.insert(proto.node[k].input[2]) }
        proto.node[k].input[1] = w.name
        if proto.node[k].input.count > 2 { proto.node[k].input[2] = b.name } else { proto.node[k].input.append(b.name) }
        proto.initializer.append(w.proto)
        proto.initializer.append(b.proto)
    }

    /// The single node reading `value` (not a graph output), or `nil`.
    private func soleReader(_ value: String, _ readers: [String: [Int]]) -> Int? {
        guard !isGraphOutput(value), let r = readers[value], r.count == 1 else { return nil }
        return r[0]
    }

    /// The value of a one-element constant of rank at most `maxRank` (a constant of higher rank
    /// would raise the rank of what it is applied to), or `nil`.
    private func scalar(_ name: String, _ constants: [String: ONNXConstant], maxRank: Int = 1) -> Double? {
        guard let c = constants[name], c.tensor.shape.count <= maxRank, (try? c.tensor.elementCount()) == 1, let v = try? c.tensor.tensor(as: Double.self).scalars[0] else { return nil }
        return v
    }

    // MARK: - Rewrites

    /// Writes the main graph's `Constant` nodes that hold a tensor (or `value_float(s)`,
    /// `value_int(s)`) as initializers of the same name, in IR 4 and later (before IR 4 every
    /// initializer must also be a graph input). Exact; it lets onnxruntime's quantizer, which
    /// reads weights from initializers only, take the model as it is.
    private mutating func constantsToInitializers() -> Int {
        guard initializersCanBeOverridden else { return 0 }
        var moved = Set<Int>()
        for (k, p) in proto.node.enumerated() where p.opType == "Constant" && p.output.count == 1 && !p.output[0].isEmpty {
            let node = ONNXNode(proto: p)
            guard node.isStandard, let tensor = Self.constantValue(node) else { continue }
            proto.initializer.append(tensor.proto)
            moved.insert(k)
        }
        if !moved.isEmpty { proto.node = proto.node.enumerated().filter { !moved.contains($0.offset) }.map(\.element) }
        return moved.count
    }

    private mutating func rewriteHardSwishes(names: inout Set<String>, released: inout Set<String>) throws -> Int {
        let constants = self.constants(), readers = consumers(), layouts = self.layouts()
        var count = 0
        var removed = Set<Int>()
        var inserted: [Int: [Onnx_NodeProto]] = [:]
        for (k, p) in proto.node.enumerated() where p.opType == "Add" && ONNXNode(proto: p).isStandard && p.input.count == 2 {
            // HardSigmoid's α is a FLOAT attribute: 1/6 in Float would change DOUBLE models by more than their rounding.
            guard let a = affine(at: k, constants: constants), a.constant.dataType != .double else { continue }
            let x = a.input
            // The constants may not have a higher rank than x: the rewrite's output has x's shape.
            let maxRank = layouts[x]?.rank ?? 0   // x's rank unknown: only scalars of rank 0
            func scalar(_ name: String, _ constants: [String: ONNXConstant]) -> Double? { self.scalar(name, constants, maxRank: maxRank) }
            guard scalar(p.input[0] == a.input ? p.input[1] : p.input[0], constants) == 3 else { continue }
            guard let c = soleReader(p.output[0], readers), proto.node[c].opType == "Clip", proto.node[c].input.first == p.output[0],
                  proto.node[c].output.count == 1 else { continue }
            let clip = ONNXNode(proto: proto.node[c])
            let low = clip.inputs.count > 1 && !clip.inputs[1].isEmpty ? scalar(clip.inputs[1], constants) : clip.float("min").map(Double.init)
            let high = clip.inputs.count > 2 && !clip.inputs[2].isEmpty ? scalar(clip.inputs[2], constants) : clip.float("max").map(Double.init)
            guard low == 0, high == 6, let m = soleReader(clip.outputs[0], readers) else { continue }
            // Either Mul(x, clip) then ÷6, or ÷6 then Mul(x, ·).
            func isSixth(_ j: Int) -> Bool {
                let n = proto.node[j]
                guard n.input.count == 2, n.output.count == 1 else { return false }
                if n.opType == "Div", let v = scalar(n.input[1], constants) { return v == 6 }
                if n.opType == "Mul", let v = scalar(n.input[1], constants) ?? scalar(n.input[0], constants) { return abs(v - 1.0 / 6) <= 1e-7 }
                return false
            }
            func isTimesX(_ j: Int, _ v: String) -> Bool {
                let n = proto.node[j]
                return n.opType == "Mul" && n.input.count == 2 && n.output.count == 1 && Set(n.input) == Set([x, v]) && x != v
            }
            let last: Int
            if isTimesX(m, clip.outputs[0]), let d = soleReader(proto.node[m].output[0], readers), isSixth(d) {
                last = d
            } else if isSixth(m), let d = soleReader(proto.node[m].output[0], readers), isTimesX(d, proto.node[m].output[0]) {
                last = d
            } else { continue }
            let group = [k, c, m, last]
            guard group.allSatisfy({ !removed.contains($0) && ONNXNode(proto: proto.node[$0]).isStandard }) else { continue }
            let base = Self.label(ONNXNode(proto: proto.node[last]))
            let h = Self.fresh(base + "/hard_sigmoid.out", &names)
            let sigmoid = ONNXNode(opType: "HardSigmoid", name: Self.fresh(base + "/hard_sigmoid", &names), inputs: [x], outputs: [h],
                                   attributes: [("alpha", .float(1.0 / 6)), ("beta", .float(0.5))])
            let times = ONNXNode(opType: "Mul", name: Self.fresh(base + "/hard_swish", &names), inputs: [x, h], outputs: proto.node[last].output)
            removed.formUnion(group)
            // The constants 3, 0, 6 (or 1/6) that only the replaced nodes read.
            let produced = Set(group.flatMap { proto.node[$0].output })
            released.formUnion(group.flatMap { proto.node[$0].input }.filter { !$0.isEmpty && $0 != x && !produced.contains($0) })
            inserted[last] = [sigmoid.proto, times.proto]
            count += 1
        }
        proto.node = proto.node.enumerated().flatMap { k, n in inserted[k] ?? (removed.contains(k) ? [] : [n]) }
        return count
    }

    /// The per-channel steps that follow node `k` through values read by one node only (a
    /// convolution's or a `Gemm`'s epilogue): their nodes, the last one's output, and the composed
    /// `y = s ⊙ x + t` over `channels` channels of a value of rank `rank`.
    private func perChannelChain(after k: Int, constants: [String: ONNXConstant], readers: [String: [Int]], channels: Int, rank: Int) throws
        -> (chain: [Int], output: String, scale: [Double], shift: [Double]) {
        var s = [Double](repeating: 1, count: channels), t = [Double](repeating: 0, count: channels)
        var value = proto.node[k].output[0], chain: [Int] = []
        while let r = soleReader(value, readers), r != k, !chain.contains(r), elementwiseInput(at: r, constants: constants) == value,
              let step = try channelStep(at: r, constants: constants, channels: channels, rank: rank) {
            Self.compose(step, scale: &s, shift: &t)
            chain.append(r)
            value = proto.node[r].output[0]
        }
        return (chain, value, s, t)
    }

    private mutating func foldIntoPrecedingConvolutions(names: inout Set<String>, released: inout Set<String>) throws -> Int {
        let constants = self.constants(), readers = consumers()
        var count = 0
        var removed = Set<Int>()
        for k in proto.node.indices {
            guard let site = convolution(at: k, constants: constants) else { continue }
            let channels = site.weight.shape[0], rank = site.weight.shape.count
            let (chain, value, s, t) = try perChannelChain(after: k, constants: constants, readers: readers, channels: channels, rank: rank)
            guard !chain.isEmpty else { continue }
            let w = try site.weight.tensor(as: Double.self).scalars, per = w.count / channels
            let b = try site.bias?.tensor(as: Double.self).scalars ?? ContiguousArray(repeating: 0, count: channels)
            var weight = [Double](repeating: 0, count: w.count), bias = [Double](repeating: 0, count: channels)
            for o in 0..<channels {
                for j in 0..<per { weight[o * per + j] = w[o * per + j] * s[o] }
                bias[o] = b[o] * s[o] + t[o]
            }
            let limit = site.weight.dataType.largestFinite
            guard weight.allSatisfy({ abs($0) <= limit }), bias.allSatisfy({ abs($0) <= limit }) else { continue }
            try setWeights(k, site, weight: weight, bias: bias, suffix: "folded", names: &names, released: &released)
            proto.node[k].output[0] = value
            for r in chain { released.formUnion(proto.node[r].input) }
            removed.formUnion(chain)
            count += chain.count
        }
        proto.node = proto.node.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        return count
    }

    /// Per-column chains after a `Gemm` (`Y = α A op(B) + β C`, output `[N, M]`) folded into its
    /// constant `B` and `C`.
    private mutating func foldIntoPrecedingGemms(names: inout Set<String>, released: inout Set<String>) throws -> Int {
        let constants = self.constants(), readers = consumers()
        var count = 0
        var removed = Set<Int>()
        for k in proto.node.indices {
            let node = ONNXNode(proto: proto.node[k])
            guard node.isStandard, node.opType == "Gemm", node.inputs.count >= 2, node.outputs.count == 1,
                  let b = constants[node.inputs[1]]?.tensor, b.dataType.isFloatingPoint, b.shape.count == 2,
                  let elements = try? b.elementCount(), elements > 0, (try? b.checkData()) != nil else { continue }
            let transB = (node.int("transB") ?? 0) == 1
            let columns = transB ? b.shape[0] : b.shape[1]
            let beta = Double(node.float("beta") ?? 1)
            // C: absent, or a constant of B's type that is one value per column (or one value).
            var c = [Double](repeating: 0, count: columns)
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard let constant = constants[node.inputs[2]]?.tensor, constant.dataType == b.dataType, (try? constant.checkData()) != nil,
                      let values = try Self.channelVector(constant, channels: columns, rank: 2), values.count == columns else { continue }
                c = values.map { beta * $0 }
            }
            let (chain, value, s, t) = try perChannelChain(after: k, constants: constants, readers: readers, channels: columns, rank: 2)
            guard !chain.isEmpty else { continue }
            let w = try b.tensor(as: Double.self).scalars
            var weight = [Double](repeating: 0, count: w.count)
            for i in 0..<b.shape[0] {
                for j in 0..<b.shape[1] { weight[i * b.shape[1] + j] = w[i * b.shape[1] + j] * s[transB ? i : j] }
            }
            let bias = (0..<columns).map { s[$0] * c[$0] + t[$0] }
            let limit = b.dataType.largestFinite
            guard weight.allSatisfy({ $0.isFinite && abs($0) <= limit }), bias.allSatisfy({ $0.isFinite && abs($0) <= limit }) else { continue }
            let base = Self.label(node) + "/folded"
            let newB = try ONNXTensor(name: Self.fresh(base + ".B", &names), Tensor<Double>(shape: b.shape, scalars: weight), dataType: b.dataType)
            let newC = try ONNXTensor(name: Self.fresh(base + ".C", &names), Tensor<Double>(shape: [columns], scalars: bias), dataType: b.dataType)
            released.insert(node.inputs[1])
            if node.inputs.count > 2, !node.inputs[2].isEmpty { released.insert(node.inputs[2]) }
            proto.node[k].input[1] = newB.name
            if proto.node[k].input.count > 2 { proto.node[k].input[2] = newC.name } else { proto.node[k].input.append(newC.name) }
            proto.node[k].attribute.removeAll { $0.name == "beta" }
            proto.node[k].attribute.append(ONNXNode.encode("beta", .float(1)))
            proto.initializer.append(newB.proto)
            proto.initializer.append(newC.proto)
            proto.node[k].output[0] = value
            for r in chain { released.formUnion(proto.node[r].input) }
            removed.formUnion(chain)
            count += chain.count
        }
        proto.node = proto.node.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        return count
    }

    private mutating func foldIntoFollowingConvolutions(names: inout Set<String>, released: inout Set<String>) throws -> Int {
        let constants = self.constants(), readers = consumers(), layouts = self.layouts()
        var count = 0
        var visited = Set<Int>(), removed = Set<Int>()
        var replaced: [Int: Onnx_NodeProto] = [:]
        for k in proto.node.indices where !visited.contains(k) {
            guard let firstInput = elementwiseInput(at: k, constants: constants) else { continue }
            // The longest chain from here through values read by one node only.
            var chain = [k], value = proto.node[k].output[0]
            while let r = soleReader(value, readers), !visited.contains(r), !chain.contains(r), elementwiseInput(at: r, constants: constants) == value {
                chain.append(r)
                value = proto.node[r].output[0]
            }
            visited.formUnion(chain)
            guard !isGraphOutput(value), let convs = readers[value], !convs.isEmpty else { continue }
            let sites = convs.compactMap { convolution(at: $0, constants: constants) }
            guard sites.count == convs.count, sites.allSatisfy({ $0.node.inputs[0] == value && !$0.node.inputs.dropFirst().contains(value) }) else { continue }
            let rank = sites[0].weight.shape.count
            let channels = sites[0].weight.shape[1] * sites[0].window.group
            guard sites.allSatisfy({ $0.weight.shape.count == rank && $0.weight.shape[1] * $0.window.group == channels }) else { continue }
            // The chain's input must already have the convolutions' rank and channels: a constant
            // that broadcasts a narrower input (x [1, 1, H, W] · s [1, C, 1, 1], or an unbatched
            // x [C, H, W]) widens it, and the convolutions could not read x itself.
            guard let layout = layouts[firstInput], layout.rank == rank, layout.channels == channels else { continue }
            var s = [Double](repeating: 1, count: channels), t = [Double](repeating: 0, count: channels)
            var ok = true
            for j in chain {
                guard let step = try channelStep(at: j, constants: constants, channels: channels, rank: rank) else { ok = false; break }
                Self.compose(step, scale: &s, shift: &t)
            }
            guard ok else { continue }
            let padded = sites.contains { site in
                site.window.pads.contains { $0 != 0 } || !(site.window.autoPad == "NOTSET" || site.window.autoPad == "VALID")
            }
            let shifted = t.contains { $0 != 0 }
            if padded {
                // Only the scale folds; the shift stays as one Add (x + t/s), worth it only for two nodes or a scale.
                guard s.allSatisfy({ $0 != 0 }), chain.count > 1 || s.contains(where: { $0 != 1 }) else { continue }
                if shifted && chain.count == 1 { continue }
            }
            var changes: [(Int, ConvolutionSite, [Double], [Double])] = []
            for (site, index) in zip(sites, convs) {
                let w = try site.weight.tensor(as: Double.self).scalars
                let outChannels = site.weight.shape[0], inPer = site.weight.shape[1], area = w.count / (outChannels * inPer)
                let groups = site.window.group, outPer = outChannels / groups
                let b = try site.bias?.tensor(as: Double.self).scalars ?? ContiguousArray(repeating: 0, count: outChannels)
                var weight = Array(w), bias = Array(b)
                for o in 0..<outChannels {
                    for i in 0..<inPer {
                        let ci = (o / outPer) * inPer + i
                        for p in 0..<area {
                            let at = (o * inPer + i) * area + p
                            if !padded { bias[o] += w[at] * t[ci] }
                            weight[at] = w[at] * s[ci]
                        }
                    }
                }
                // Finite in the weight's own type: a float16 weight scaled past 65504 would be infinite.
                let limit = site.weight.dataType.largestFinite
                guard weight.allSatisfy({ abs($0) <= limit }), bias.allSatisfy({ abs($0) <= limit }) else { ok = false; break }
                changes.append((index, site, weight, bias))
            }
            guard ok else { continue }
            for (index, site, weight, bias) in changes {
                try setWeights(index, site, weight: weight, bias: bias, suffix: "folded_input", names: &names, released: &released)
                if !padded || !shifted { proto.node[index].input[0] = firstInput }
            }
            for j in chain { released.formUnion(proto.node[j].input) }
            if padded && shifted {
                // One Add(x, t/s) in the chain's last place, under the chain's output name.
                let last = chain.last!
                let type = sites[0].weight.dataType
                let shift = try ONNXTensor(name: Self.fresh(Self.label(ONNXNode(proto: proto.node[last])) + "/shift.value", &names),
                                           Tensor<Double>(shape: [1, channels] + Array(repeating: 1, count: rank - 2),
                                                          scalars: zip(t, s).map { $0 / $1 }), dataType: type)
                let add = ONNXNode(opType: "Add", name: Self.fresh(Self.label(ONNXNode(proto: proto.node[last])) + "/shift", &names),
                                   inputs: [firstInput, shift.name], outputs: [value])
                proto.initializer.append(shift.proto)
                replaced[last] = add.proto
                removed.formUnion(chain.dropLast())
                count += chain.count - 1
            } else {
                removed.formUnion(chain)
                count += chain.count
            }
        }
        proto.node = proto.node.enumerated().compactMap { k, n in replaced[k] ?? (removed.contains(k) ? nil : n) }
        return count
    }
}
