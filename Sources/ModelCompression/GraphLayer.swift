import Decompositions
import NNLayers
import ONNX
import TensorModule

/// A `Conv`, `Gemm`, `MatMul`, `ConvTranspose`, recurrent (`LSTM`, `GRU`, `RNN`) or `Gather` node of an ONNX graph, with its layer
/// settings as the graph states them, its cost at the analysed input shape, and whether it can be
/// compressed (and why not).
///
/// ```swift
/// let layers = try ModelCompressor(options: options).layers(in: model)
/// for layer in layers where layer.compressible { print(layer.name, layer.op, layer.macs ?? 0) }
/// ```
public struct GraphLayer: Sendable, Equatable, Encodable {
    /// The node's name (`<op>_<index>` when the node has none), after the label of the subgraph
    /// that holds it (`If_0/then_branch/conv`) for a node inside an `If`, `Loop` or `Scan` body.
    public var name: String
    /// The node's index in its graph.
    public var nodeIndex: Int
    /// The path from the main graph to the subgraph that holds the node (empty for the main graph).
    public var subgraph: [ONNXSubgraphStep] = []
    /// The operator.
    public var op: String
    /// The weight's value name (`Conv`'s W, `Gemm`'s and `MatMul`'s B, `Gather`'s data).
    public var weight: String?
    /// The weight's shape as stored.
    public var shape: [Int]?
    /// `[kh, kw]` of a convolution.
    public var kernel: [Int]?
    /// `[sh, sw]` of a convolution.
    public var stride: [Int]?
    /// `[top, bottom, left, right]` of a convolution, `auto_pad` resolved at the input shape.
    public var padding: [Int]?
    /// `[dh, dw]` of a convolution.
    public var dilation: [Int]?
    /// Groups of a convolution.
    public var groups: Int?
    /// Multiply-adds at the analysed input shape (all samples), `nil` when the shapes are unknown.
    public var macs: Int?
    /// EVBMF ranks (`[R_out, R_in]` for a k×k convolution, one rank for a matrix), when estimated.
    public var vbmfRanks: [Int]?
    /// Whether the node can be replaced.
    public var compressible: Bool
    /// Why not, when it cannot.
    public var refusal: LayerRefusal?
    /// ``refusal`` in words.
    public var reason: String? { refusal?.description }

    /// The weight's element count, 0 when its shape is unknown or invalid.
    var parameters: Int { shape.flatMap { ModelCompressor.macs($0) } ?? 0 }

    /// What the compressor needs to rebuild the node; not part of the JSON form.
    var site: Site?

    enum CodingKeys: String, CodingKey {
        case name, op, weight, shape, kernel, stride, padding, dilation, groups, macs, vbmfRanks, compressible, reason
    }

    /// Every key is written, `null` where a value does not apply.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(op, forKey: .op)
        try c.encode(weight, forKey: .weight)
        try c.encode(shape, forKey: .shape)
        try c.encode(kernel, forKey: .kernel)
        try c.encode(stride, forKey: .stride)
        try c.encode(padding, forKey: .padding)
        try c.encode(dilation, forKey: .dilation)
        try c.encode(groups, forKey: .groups)
        try c.encode(macs, forKey: .macs)
        try c.encode(vbmfRanks, forKey: .vbmfRanks)
        try c.encode(compressible, forKey: .compressible)
        try c.encode(reason, forKey: .reason)
    }

    /// The compressible node's operands and settings.
    struct Site: Sendable, Equatable {
        enum Kind: Sendable, Equatable {
            /// `Conv`: `auto_pad` as written, `pads` resolved for the decomposition.
            case conv(stride: Size2D, padding: Padding, dilation: Size2D, groups: Int, autoPad: String)
            /// `Gemm` with constant B: `W = alpha · (transB ? B : Bᵀ)`; C (any value) and beta stay on the last node.
            case gemm(transB: Bool, alpha: Float, beta: Float, c: String?)
            /// `MatMul` with a constant 2-D B: `W = Bᵀ`.
            case matmul
        }
        var kind: Kind
        /// The weight input's value name and where its constant comes from.
        var weight: ONNXConstant
        var weightName: String
        /// The bias input's value name (`Conv`'s third input), when it has one.
        var biasName: String?
        var bias: ONNXConstant?
        /// The data input and the output.
        var input: String
        var output: String
        /// The data input's shape when shape inference derived it (a 1-D convolution's as
        /// `[N, C, 1, L]`).
        var inputShape: [Int]?
        /// The convolution's spatial axes in the graph: 2, or 1 for a 1-D convolution that is
        /// decomposed as a 2-D one of height 1 and written back as 1-D nodes.
        var spatialRank = 2
        /// A stride-1 `ConvTranspose`, decomposed and written as its equivalent convolution (the
        /// kernel flipped in space, its channel axes transposed per group).
        var transposed = false
    }
}

extension ModelCompressor {
    /// The `Conv`, `Gemm`, `MatMul`, `ConvTranspose`, `LSTM`, `GRU`, `RNN` and `Gather` nodes of
    /// `model`'s main graph with their settings, MACs at ``CompressionOptions/inputShapes`` (for
    /// a recurrent layer, all time steps) and whether each can be compressed.
    ///
    /// Not compressible, with the reason: convolutions that are not 2-D, depthwise convolutions,
    /// weights or biases that are computed rather than constant, weights read by several nodes,
    /// `Gemm` with `transA = 1`, `MatMul` whose right operand is not a constant matrix, weights
    /// or data that does not fit their shape, `ConvTranspose` with a stride, output padding or
    /// `SAME` padding (a stride-1 one is compressed as its equivalent convolution), 3-D
    /// convolutions, recurrent layers, `Gather` (an embedding table), layers below
    /// ``CompressionOptions/minimumParameters`` or outside the include/exclude filters, and
    /// methods set to `none`.
    ///
    /// - Parameter estimateRanks: Whether to estimate EVBMF ranks of every compressible weight.
    /// - Throws: the errors of ``ONNX/ONNXShapeInference/init(graph:inputShapes:opset:)`` (a dynamic input
    ///   dimension without a given shape, for example).
    public func layers(in model: ONNXModel, estimateRanks: Bool = false) throws -> [GraphLayer] {
        let graph = model.graph
        let shapes = try ONNXShapeInference(graph: graph, inputShapes: options.inputShapes, opset: model.opsetVersion)
        let constants = graph.constants()
        var result = try layers(in: graph, shapes: shapes, constants: constants, label: "", path: [], estimateRanks: estimateRanks)
        // Subgraphs, parents first: each body sees the values of the graphs around it (outer-scope
        // weights included) and its own, which shadow them.
        var scopes: [[ONNXSubgraphStep]: (shapes: ONNXShapeInference, constants: [String: ONNXConstant])] = [[]: (shapes, constants)]
        for (path, label, body) in graph.subgraphs() {
            let outer = scopes[Array(path.dropLast())]!
            let inner = ONNXShapeInference(subgraph: body, outer: outer.shapes, opset: model.opsetVersion)
            var visible = outer.constants
            for input in body.inputs { visible[input.name] = nil }
            visible.merge(body.constants()) { $1 }
            scopes[path] = (inner, visible)
            result += try layers(in: body, shapes: inner, constants: visible, label: label + "/", path: path, estimateRanks: estimateRanks)
        }
        return result
    }

    /// The layers of one graph (the main graph, or a subgraph with the constants and shapes visible
    /// in it), their names after `label`.
    func layers(in graph: ONNXGraph, shapes: ONNXShapeInference, constants: [String: ONNXConstant], label: String,
                path: [ONNXSubgraphStep], estimateRanks: Bool) throws -> [GraphLayer] {
        let consumers = graph.consumers()
        let nodes = graph.nodes
        var result: [GraphLayer] = []
        /// Nodes other than `Identity` that read `source` or an `Identity` alias of it.
        func readers(of constant: ONNXConstant) -> Set<Int> {
            var names = [constant.sourceName]
            var seen = Set<String>()
            var found = Set<Int>()
            while let name = names.popLast() {
                guard seen.insert(name).inserted else { continue }
                for k in consumers[name] ?? [] {
                    if nodes[k].opType == "Identity" { names += nodes[k].outputs } else { found.insert(k) }
                }
            }
            return found
        }
        for (index, node) in nodes.enumerated() where node.isStandard && (ONNXGraph.layerOperators.contains(node.opType) || node.opType == "Gather") {
            let name = label + (node.name.isEmpty ? "\(node.opType)_\(index)" : node.name)
            var layer = GraphLayer(name: name, nodeIndex: index, subgraph: path, op: node.opType, compressible: false)
            func refuse(_ refusal: LayerRefusal) { layer.refusal = refusal }
            let weightName = node.inputs.count > 1 ? node.inputs[node.opType == "Gather" ? 0 : 1] : ""
            layer.weight = weightName.isEmpty ? nil : weightName
            let weight = weightName.isEmpty ? nil : constants[weightName]   // an initializer may be named "" in a malformed file
            layer.shape = weight?.tensor.shape ?? shapes.shapes[weightName]
            let inputShape = node.inputs.first.flatMap { shapes.shapes[$0] }
            defer { result.append(layer) }
            switch node.opType {
            case "ConvTranspose":
                if let x = inputShape, x.count == 4, let w = layer.shape, w.count == 4 {
                    layer.macs = Self.macs([x[0], x[1], w[1], w[2], w[3], x[2], x[3]])
                    (layer.kernel, layer.stride, layer.groups) = (Array(w[2...]), node.ints("strides") ?? [1, 1], node.int("group") ?? 1)
                }
                // With stride 1 a transposed convolution is the convolution by the kernel flipped in
                // space and transposed in its channels, padded by d·(k − 1) − p: compressed as that one.
                let strides = node.ints("strides") ?? [1, 1], outputPadding = node.ints("output_padding") ?? [0, 0]
                let autoPad = node.string("auto_pad") ?? "NOTSET"
                guard layer.shape?.count == 4, strides == [1, 1], outputPadding.allSatisfy({ $0 == 0 }), node.ints("output_shape") == nil,
                      autoPad == "NOTSET" || autoPad == "VALID" else {
                    refuse(.transposedSettings(strides: strides, outputPadding: outputPadding, autoPad: autoPad, outputShape: node.ints("output_shape") != nil))
                    continue
                }
            case "Gather":
                refuse(weight != nil && layer.shape?.count == 2 ? .embeddingTable : .gather)
                continue
            case "LSTM", "GRU", "RNN":
                // W [directions, gates·H, I] and R [directions, gates·H, H]; X [seq, batch, I] (layout 1: [batch, seq, I]).
                let r = node.inputs.count > 2 ? (constants[node.inputs[2]]?.tensor.shape ?? shapes.shapes[node.inputs[2]]) : nil
                if let x = inputShape, x.count == 3, let w = layer.shape, w.count == 3, let r, r.count == 3 {
                    layer.macs = Self.macs([x[0], x[1], w[0], w[1], w[2] + r[2]])
                }
                refuse(.recurrent(op: node.opType, inputWeights: layer.shape ?? [], recurrentWeights: r ?? []))
                continue
            default: break
            }
            guard let weight else {
                if node.opType == "MatMul", let a = inputShape, let b = layer.shape, a.count >= 1, b.count >= 2 {
                    let batch = (try? ONNXShapeInference.broadcast([Array(a.dropLast(2)), Array(b.dropLast(2))])).flatMap(Self.macs) ?? 1
                    layer.macs = Self.macs([batch, a.count >= 2 ? a[a.count - 2] : 1, a[a.count - 1], b[b.count - 1]])
                }
                refuse(node.opType == "MatMul" ? .computedOperand(name: weightName) : .computedWeight(name: weightName))
                continue
            }
            let shape = weight.tensor.shape
            do { try weight.tensor.checkData() } catch {
                refuse(.unusable(role: "weight", name: weightName, problem: "\(error)"))
                continue
            }
            var site = GraphLayer.Site(kind: .matmul, weight: weight, weightName: weightName, input: node.inputs[0],
                                       output: node.outputs.first ?? "", inputShape: inputShape)
            switch node.opType {
            case "ConvTranspose":
                let groups = node.int("group") ?? 1
                let kernel = node.ints("kernel_shape") ?? Array(shape[2...])
                let dilations = node.ints("dilations") ?? [1, 1]
                let pads = (node.string("auto_pad") ?? "NOTSET") == "VALID" ? [0, 0, 0, 0] : (node.ints("pads") ?? [0, 0, 0, 0])
                guard kernel == Array(shape[2...]), dilations.count == 2, dilations.allSatisfy({ $0 >= 1 }), pads.count == 4, groups >= 1,
                      shape[0] % groups == 0, kernel.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }),
                      zip(kernel, dilations).allSatisfy({ k, d in !d.multipliedReportingOverflow(by: k - 1).overflow }) else {
                    refuse(.convolutionSettings(kernel: kernel, strides: [1, 1], dilations: dilations, pads: pads, groups: groups, weight: shape))
                    continue
                }
                // The equivalent convolution pads each side by d·(k − 1) − p (negative: not a convolution).
                let extents = [dilations[0] * (kernel[0] - 1), dilations[1] * (kernel[1] - 1)]
                let padding = Padding(top: extents[0] - pads[0], bottom: extents[0] - pads[2], left: extents[1] - pads[1], right: extents[1] - pads[3])
                guard padding.array.allSatisfy({ $0 >= 0 }) else {
                    refuse(.transposedPaddingBeyondKernel(pads: pads))
                    continue
                }
                (layer.kernel, layer.stride, layer.groups, layer.dilation, layer.padding) = (kernel, [1, 1], groups, dilations, padding.array)
                site.transposed = true
                site.kind = .conv(stride: Size2D(1), padding: padding, dilation: Size2D(dilations[0], dilations[1]), groups: groups, autoPad: "NOTSET")
                if shape[1] == 1 && groups > 1 {
                    refuse(.depthwise(groups: groups, transposed: true))
                    continue
                }
                if options.conv == .none {
                    refuse(.methodNone(.convolution))
                    continue
                }
            case "Conv":
                if shape.count >= 3, let x = inputShape, x.count == shape.count, let y = shapes.shapes[site.output], y.count == shape.count {
                    layer.macs = Self.macs([x[0], shape[0], shape[1]] + Array(shape[2...]) + Array(y[2...]))
                }
                guard shape.count == 4 || shape.count == 3 else {
                    refuse(.spatialRank(max(shape.count - 2, 0)))
                    continue
                }
                // A 1-D convolution is analysed and decomposed as a 2-D one of height 1 (kernel
                // [1, k], stride [1, s], padding [0, 0, left, right], input [N, C, 1, L]) and written
                // back as 1-D nodes: the factors are those of the same linear map.
                let lifted = shape.count == 3
                func lift(_ values: [Int]) -> [Int] { lifted ? [1] + values : values }
                if lifted && options.conv == .tt {
                    refuse(.oneDimensionalTensorTrain)
                    continue
                }
                let groups = node.int("group") ?? 1
                let kernel = lift(node.ints("kernel_shape") ?? Array(shape[2...]))
                let strides = lift(node.ints("strides") ?? [Int](repeating: 1, count: shape.count - 2))
                let dilations = lift(node.ints("dilations") ?? [Int](repeating: 1, count: shape.count - 2))
                let autoPad = node.string("auto_pad") ?? "NOTSET"
                guard kernel == lift(Array(shape[2...])), strides.count == 2, dilations.count == 2 else {
                    refuse(.convolutionSettings(kernel: kernel, strides: strides, dilations: dilations, pads: nil, groups: nil, weight: shape))
                    continue
                }
                // Positive settings whose dilated kernel fits in Int (the padding is resolved from it).
                guard (kernel + strides + dilations).allSatisfy({ $0 >= 1 }),
                      zip(kernel, dilations).allSatisfy({ k, d in !d.multipliedReportingOverflow(by: k - 1).overflow && d * (k - 1) < Int.max / 4 }) else {
                    refuse(.convolutionOverflow(kernel: kernel, strides: strides, dilations: dilations))
                    continue
                }
                if lifted {
                    site.spatialRank = 1
                    site.inputShape = inputShape.flatMap { $0.count == 3 ? [$0[0], $0[1], 1, $0[2]] : nil }
                }
                let padding: Padding
                if lifted && !["VALID", "SAME_UPPER", "SAME_LOWER"].contains(autoPad) {
                    let pads = node.ints("pads") ?? [0, 0]
                    guard pads.count == 2, pads.allSatisfy({ $0 >= 0 }) else {
                        refuse(.oneDimensionalPads(pads))
                        continue
                    }
                    padding = Padding(top: 0, bottom: 0, left: pads[0], right: pads[1])
                } else {
                    padding = Self.resolvedPadding(node: node, kernel: kernel, strides: strides, dilations: dilations,
                                                   input: site.inputShape.map { Array($0.dropFirst(2)) })
                }
                layer.kernel = kernel
                layer.stride = strides
                layer.dilation = dilations
                layer.groups = groups
                layer.padding = padding.array
                site.kind = .conv(stride: Size2D(strides[0], strides[1]), padding: padding, dilation: Size2D(dilations[0], dilations[1]),
                                  groups: groups, autoPad: autoPad)
                if groups > 1 && shape[1] == 1 {
                    refuse(.depthwise(groups: groups, transposed: false))
                    continue
                }
                if options.conv == .none {
                    refuse(.methodNone(.convolution))
                    continue
                }
            case "Gemm":
                let transA = node.int("transA") ?? 0, transB = (node.int("transB") ?? 0) == 1
                let alpha = node.float("alpha") ?? 1, beta = node.float("beta") ?? 1
                let c = node.inputs.count > 2 && !node.inputs[2].isEmpty ? node.inputs[2] : nil
                site.kind = .gemm(transB: transB, alpha: alpha, beta: beta, c: c)
                if let a = inputShape, a.count == 2, shape.count == 2 { layer.macs = Self.macs([a[0], a[1], transB ? shape[0] : shape[1]]) }
                guard transA == 0 else {
                    refuse(.transposedGemmInput)
                    continue
                }
                guard shape.count == 2 else {
                    refuse(.notMatrix(shape: shape, op: "Gemm"))
                    continue
                }
                if options.linear == .none {
                    refuse(.methodNone(.linear))
                    continue
                }
            default:   // MatMul
                guard shape.count == 2 else {
                    refuse(.notMatrix(shape: shape, op: "MatMul"))
                    continue
                }
                if let a = inputShape, a.count >= 1 { layer.macs = Self.macs(a + [shape[1]]) }
                if options.linear == .none {
                    refuse(.methodNone(.linear))
                    continue
                }
            }
            // A convolution's bias (Conv's and ConvTranspose's third input) must be constant too.
            if case .conv = site.kind, node.inputs.count > 2, !node.inputs[2].isEmpty {
                site.biasName = node.inputs[2]
                site.bias = constants[node.inputs[2]]
                guard site.bias != nil else {
                    refuse(.computedBias(name: node.inputs[2]))
                    continue
                }
            }
            guard weight.tensor.dataType.isFloatingPoint else {
                refuse(.notFloatingPoint(role: "weight", dataType: "\(weight.tensor.dataType)"))
                continue
            }
            if let bias = site.bias, !bias.tensor.dataType.isFloatingPoint {
                refuse(.notFloatingPoint(role: "bias", dataType: "\(bias.tensor.dataType)"))
                continue
            }
            if let bias = site.bias {
                do { try bias.tensor.checkData() } catch {
                    refuse(.unusable(role: "bias", name: site.biasName ?? "", problem: "\(error)"))
                    continue
                }
            }
            let readers = readers(of: weight)
            guard readers.count <= 1 else {
                let others = readers.subtracting([index]).sorted().prefix(3).map { nodes[$0].name.isEmpty ? "\(nodes[$0].opType)_\($0)" : nodes[$0].name }
                refuse(.sharedWeight(name: weightName, others: Array(others), count: readers.count - 1))
                continue
            }
            let parameters = (try? weight.tensor.elementCount()) ?? 0
            guard parameters >= options.minimumParameters else {
                refuse(.belowMinimum(parameters: parameters, minimum: options.minimumParameters))
                continue
            }
            guard passesFilters(name) else {
                refuse(.filtered)
                continue
            }
            layer.site = site
            layer.compressible = true
            layer.refusal = nil
            if estimateRanks {
                layer.vbmfRanks = try? estimatedRanks(site)
            }
        }
        return result
    }

    /// The kernel of the convolution that a stride-1 `ConvTranspose` with kernel `w`
    /// (`[C_in, C_out/g, kh, kw]`) computes: `[C_out, C_in/g, kh, kw]`, flipped in both spatial
    /// axes, channels transposed within each group.
    static func equivalentConvolutionKernel<Scalar: BLASScalar>(_ w: Tensor<Scalar>, groups: Int) -> Tensor<Scalar> {
        let (inChannels, outPerGroup, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let inPerGroup = inChannels / groups
        var scalars = ContiguousArray<Scalar>(repeating: 0, count: w.scalarCount)
        w.withUnsafeBufferPointer { source in
            for g in 0..<groups {
                for i in 0..<inPerGroup {
                    for o in 0..<outPerGroup {
                        for a in 0..<kh {
                            for b in 0..<kw {
                                let from = (((g * inPerGroup + i) * outPerGroup + o) * kh + a) * kw + b
                                let to = (((g * outPerGroup + o) * inPerGroup + i) * kh + (kh - 1 - a)) * kw + (kw - 1 - b)
                                scalars[to] = source[from]
                            }
                        }
                    }
                }
            }
        }
        return Tensor(uncheckedShape: [outPerGroup * groups, inPerGroup, kh, kw], scalars: scalars)
    }

    /// The product of `factors` (a MAC count), `nil` when a factor is negative or twice the
    /// product (the FLOPs) overflows `Int`.
    static func macs(_ factors: [Int]) -> Int? {
        var product = 1
        for f in factors {
            guard f >= 0 else { return nil }
            let (p, overflow) = product.multipliedReportingOverflow(by: f)
            guard !overflow else { return nil }
            product = p
        }
        return product <= Int.max / 2 ? product : nil
    }

    /// `[top, bottom, left, right]` of a `Conv` node: explicit `pads` (ONNX order
    /// `[top, left, bottom, right]`), or `auto_pad` resolved at the input's spatial size (for
    /// stride 1 the size does not matter; without a size, the stride-1 split is used).
    static func resolvedPadding(node: ONNXNode, kernel: [Int], strides: [Int], dilations: [Int], input: [Int]?) -> Padding {
        let autoPad = node.string("auto_pad") ?? "NOTSET"
        switch autoPad {
        case "VALID": return .zero
        case "SAME_UPPER", "SAME_LOWER":
            let totals = (0..<2).map { k -> Int in
                let extent = dilations[k] * (kernel[k] - 1) + 1
                guard let input, input.count == 2 else { return extent - 1 }
                let out = (input[k] + strides[k] - 1) / strides[k]
                return max(0, (out - 1) * strides[k] + extent - input[k])
            }
            let upper = autoPad == "SAME_UPPER"
            let begin = totals.map { upper ? $0 / 2 : $0 - $0 / 2 }
            return Padding(top: begin[0], bottom: totals[0] - begin[0], left: begin[1], right: totals[1] - begin[1])
        default:
            let pads = node.ints("pads") ?? [0, 0, 0, 0]
            guard pads.count == 4 else { return .zero }
            return Padding(top: pads[0], bottom: pads[2], left: pads[1], right: pads[3])
        }
    }

    /// EVBMF ranks of a compressible site's weight: `[R_out, R_in]` of a k×k kernel (the largest
    /// over groups), one rank of a matrix or 1×1 kernel.
    func estimatedRanks(_ site: GraphLayer.Site) throws -> [Int] {
        let layer: Layer<Float> = try self.layer(site, as: Float.self)
        switch layer {
        case let .conv2d(conv):
            let kernels = try (0..<conv.groups).map { try conv.groupKernel($0) }
            if conv.kernelSize == Size2D(1) {
                return [try kernels.map { try evbmf(Matrix(reshaping: $0, rows: $0.shape[0], columns: $0.shape[1]), forceAtLeastOne: true).rank }.max()!]
            }
            let ranks = try kernels.map { try selectRanks(for: $0, modes: [0, 1], selection: .vbmf).ranks }
            return [ranks.map { $0[0] }.max()!, ranks.map { $0[1] }.max()!]
        case let .linear(linear):
            return [try evbmf(linear.weight, forceAtLeastOne: true).rank]
        default: return []
        }
    }

    /// The `NNLayers` layer of a compressible site, in `Scalar`.
    func layer<Scalar: BLASScalar>(_ site: GraphLayer.Site, as _: Scalar.Type) throws -> Layer<Scalar> {
        var w = try site.weight.tensor.tensor(as: Scalar.self)
        if site.spatialRank == 1 { w = try w.reshaped(to: [w.shape[0], w.shape[1], 1, w.shape[2]]) }
        if site.transposed, case let .conv(_, _, _, groups, _) = site.kind { w = Self.equivalentConvolutionKernel(w, groups: groups) }
        switch site.kind {
        case let .conv(stride, padding, dilation, groups, _):
            let bias = try site.bias.map { Array(try $0.tensor.tensor(as: Scalar.self).scalars) }
            return .conv2d(try Conv2D(weight: w, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups))
        case let .gemm(transB, alpha, _, _):
            let m = Matrix(uncheckedRows: w.shape[0], columns: w.shape[1], scalars: w.scalars)
            let weight = transB ? m : m.transposed()
            return .linear(try Linear(weight: alpha == 1 ? weight : Scalar(Double(alpha)) * weight))
        case .matmul:
            return .linear(try Linear(weight: Matrix(uncheckedRows: w.shape[0], columns: w.shape[1], scalars: w.scalars).transposed()))
        }
    }
}
