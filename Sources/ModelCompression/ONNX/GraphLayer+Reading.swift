import Decompositions
import NNLayers
import ONNX
import TensorModule

// The reader of an ONNX graph: every layer-like node with its settings, cost and eligibility.

extension ModelCompressor {
    /// The `Conv`, `Gemm`, `MatMul`, `ConvTranspose`, `LSTM`, `GRU`, `RNN` and `Gather` nodes of
    /// `model`'s main graph with their settings, MACs at ``CompressionOptions/inputShapes`` (for
    /// a recurrent layer, all time steps) and whether each can be compressed.
    ///
    /// Not compressible, with the reason: convolutions over more than 3 spatial axes, depthwise
    /// convolutions, weights or biases that are computed rather than constant (constants a graph
    /// computes by moving data only count as constants), weights read by several nodes, `Gemm`
    /// with `transA = 1`, `MatMul` whose right operand is not a constant matrix, weights or data
    /// that does not fit their shape, `ConvTranspose` that is not 2-D or has `SAME` padding or an
    /// output shape (the others are compressed through their equivalent convolution), 3-D
    /// convolutions and strided `ConvTranspose`s with CP or tensor-train or whose shapes are
    /// unknown, recurrent layers whose weights do not fit their gates and hidden size or with the
    /// tensor-train method (the others' input projections W·x are compressed; R stays), `Gather`
    /// (an embedding table), layers below
    /// ``CompressionOptions/minimumParameters`` or outside the include/exclude filters, and
    /// methods set to `none`.
    ///
    /// - Parameters:
    ///   - model: The model, read with its subgraphs.
    ///   - estimateRanks: Whether to estimate EVBMF ranks of every compressible weight.
    /// - Throws: the errors of `ONNXShapeInference.init(graph:inputShapes:opset:)` (a dynamic input
    ///   dimension without a given shape, for example).
    public func layers(in model: ONNXModel, estimateRanks: Bool = false) throws -> [GraphLayer] {
        let graph = model.graph
        let shapes = try ONNXShapeInference(graph: graph, inputShapes: options.inputShapes, opset: model.opsetVersion)
        // Weights a graph computes from constants by moving data only (a Slice → Concat → Unsqueeze
        // of an initializer) are constants too.
        let constants = graph.constants(folding: true)
        var result = try layers(in: graph, shapes: shapes, constants: constants, label: "", path: [], estimateRanks: estimateRanks)
        // Subgraphs, parents first: each body sees the values of the graphs around it (outer-scope
        // weights included) and its own, which shadow them.
        var scopes: [[ONNXSubgraphStep]: (shapes: ONNXShapeInference, constants: [String: ONNXConstant])] = [[]: (shapes, constants)]
        for (path, label, body) in graph.subgraphs() {
            let outer = scopes[Array(path.dropLast())]!
            let inner = ONNXShapeInference(subgraph: body, outer: outer.shapes, opset: model.opsetVersion)
            var visible = outer.constants
            for input in body.inputs { visible[input.name] = nil }
            visible.merge(body.constants(folding: true, outer: visible)) { $1 }
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
        let passesFilters = nameFilter()
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
        // Values read outside this graph's nodes: its outputs, and what a subgraph reads through the
        // outer scope (or names as one of its outputs), which `consumers` does not count. None of
        // them has a sole reader.
        let readOutside = Set(graph.outputs.map(\.name)).union(graph.subgraphs().flatMap { $0.graph.nodes.flatMap(\.inputs) + $0.graph.outputs.map(\.name) })
        /// The LayerNorm over the last axis that alone reads `value` (a linear layer's output of
        /// `features` features), after at most two `Add`s (a bias, a residual) that nothing else
        /// reads: `LayerNormalization`, or onnxruntime's fused `SkipLayerNormalization`.
        func followingNorm(_ value: String, features: Int) -> GraphLayer.Site.FollowingNorm? {
            var value = value
            for _ in 0...2 {
                guard !readOutside.contains(value), let readers = consumers[value], readers.count == 1 else { return nil }
                let reader = nodes[readers[0]]
                let scaleIndex: Int
                switch (reader.opType, reader.isStandard || reader.domain == "com.microsoft") {
                case ("Add", true) where reader.outputs.count == 1:
                    value = reader.outputs[0]
                    continue
                case ("LayerNormalization", true) where reader.inputs.first == value
                    && [-1, (shapes.shapes[value]?.count ?? 0) - 1].contains(reader.int("axis") ?? -1):
                    scaleIndex = 1
                // Its fourth output, the sum before the norm, carries the error on unnormalised.
                case ("SkipLayerNormalization", true) where reader.inputs.prefix(2).contains(value)
                    && (reader.outputs.count < 4 || reader.outputs[3].isEmpty || (consumers[reader.outputs[3]] == nil && !readOutside.contains(reader.outputs[3]))):
                    scaleIndex = 2
                default:
                    return nil
                }
                guard reader.inputs.count > scaleIndex, let gamma = constants[reader.inputs[scaleIndex]], gamma.tensor.shape == [features],
                      gamma.tensor.dataType.isFloatingPoint, let scale = try? gamma.tensor.tensor(as: Double.self).scalars,
                      scale.allSatisfy(\.isFinite) else { return nil }
                let index = readers[0]
                return .init(node: label + (reader.name.isEmpty ? "\(reader.opType)_\(index)" : reader.name), scale: Array(scale))
            }
            return nil
        }
        let producers = graph.producers()
        /// Whether `value` is a constant with one element.
        func isScalar(_ value: String) -> Bool { constants[value].map { (try? $0.tensor.elementCount()) == 1 } ?? false }
        /// The chain from a linear layer's output of `features` features into attention: a bias
        /// `Add`, scalar `Mul`/`Div`s, a `Reshape` by a constant shape `[…, H, D]` (`H·D =
        /// features`) and a `Transpose` of the 4-D result, each the value's only reader. Returns
        /// the transposed value, the permutation, `H` and the bias's name.
        func headSplit(from value: String, features: Int) -> (value: String, perm: [Int], heads: Int, bias: String?)? {
            var (value, bias, heads, scaled) = (value, String?.none, 0, false)
            while true {
                guard !readOutside.contains(value), let readers = consumers[value], readers.count == 1 else { return nil }
                let reader = nodes[readers[0]]
                guard reader.isStandard, reader.outputs.count == 1, reader.inputs.count >= 2 || reader.opType == "Transpose" else { return nil }
                let other = reader.inputs.first { $0 != value } ?? ""
                switch reader.opType {
                // A scale after the bias scales the whole projection (no matter to a metric); one
                // before it would not, so the bias comes first.
                case "Add" where bias == nil && heads == 0 && !scaled && constants[other].map({ $0.tensor.shape == [features] }) == true:
                    bias = other
                case "Mul" where isScalar(other), "Div" where reader.inputs[1] == other && isScalar(other):
                    scaled = true
                case "Reshape" where heads == 0 && reader.inputs[0] == value:
                    guard let shape = constants[reader.inputs[1]].flatMap({ try? $0.tensor.integers() }), shape.count == 4,
                          shape[2] > 0, shape[3] > 0, shape[2].multipliedReportingOverflow(by: shape[3]) == (features, false) else { return nil }
                    heads = shape[2]
                case "Transpose" where heads > 0:
                    guard let perm = reader.ints("perm"), perm.count == 4 else { return nil }
                    return (reader.outputs[0], perm, heads, bias)
                default:
                    return nil
                }
                value = reader.outputs[0]
            }
        }
        /// The same chain backwards from `value` to a `MatMul` by a constant 2-D weight of
        /// `features` outputs: that node's index and its bias's name.
        func headSplitSource(of value: String, features: Int) -> (node: Int, perm: [Int], heads: Int, bias: String?)? {
            let start = value
            var value = value
            for _ in 0..<6 {
                guard let k = producers[value] else { return nil }
                let node = nodes[k]
                if node.opType == "MatMul", node.isStandard, node.inputs.count == 2, let w = constants[node.inputs[1]], w.tensor.shape.count == 2,
                   w.tensor.shape[1] == features, w.tensor.dataType.isFloatingPoint {
                    guard let split = headSplit(from: node.outputs[0], features: features), split.value == start else { return nil }
                    return (k, split.perm, split.heads, split.bias)
                }
                guard node.isStandard, ["Add", "Mul", "Div", "Reshape", "Transpose"].contains(node.opType), let first = node.inputs.first else { return nil }
                value = first
            }
            return nil
        }
        /// The projection that meets this one's output (`features` features) in attention logits:
        /// both sides split into the same heads, this one's head size the contracted axis of a
        /// `MatMul` of two computed values (`q·kᵀ` per head), the sequence axes the free ones.
        func attentionPartner(_ value: String, features: Int) -> GraphLayer.Site.AttentionPartner? {
            guard let split = headSplit(from: value, features: features), let readers = consumers[split.value], readers.count == 1 else { return nil }
            let product = nodes[readers[0]]
            guard product.isStandard, product.opType == "MatMul", product.inputs.count == 2, product.inputs[0] != product.inputs[1],
                  let side = product.inputs.firstIndex(of: split.value), constants[product.inputs[1 - side]] == nil,
                  let partner = headSplitSource(of: product.inputs[1 - side], features: features), partner.heads == split.heads else { return nil }
            // Axes of [N, T, H, D] after each permutation: the head axes lead and agree, D is the
            // query's last axis and the key's second last, T the other.
            let (query, key) = side == 0 ? (split.perm, partner.perm) : (partner.perm, split.perm)
            guard query.prefix(2).sorted() == [0, 2], query.prefix(2) == key.prefix(2), query.suffix(2) == [1, 3], key.suffix(2) == [3, 1] else { return nil }
            let node = nodes[partner.node]
            return .init(role: side == 0 ? .query : .key, node: label + (node.name.isEmpty ? "\(node.opType)_\(partner.node)" : node.name),
                         weight: constants[node.inputs[1]]!, bias: partner.bias.flatMap { constants[$0] }, heads: split.heads)
        }
        for (index, node) in nodes.enumerated() where node.isStandard && (ONNXGraph.layerOperators.contains(node.opType) || node.opType == "Gather") {
            let name = label + (node.name.isEmpty ? "\(node.opType)_\(index)" : node.name)
            var layer = GraphLayer(name: name, nodeIndex: index, subgraph: path, op: node.opType)
            func refuse(_ refusal: LayerRefusal) { layer.refusal = refusal }
            let weightName = node.inputs.count > 1 ? node.inputs[node.opType == "Gather" ? 0 : 1] : ""
            layer.weight = weightName.isEmpty ? nil : weightName
            let weight = weightName.isEmpty ? nil : constants[weightName]   // an initializer may be named "" in a malformed file
            layer.shape = weight?.tensor.shape ?? shapes.shapes[weightName]
            var inputShape = node.inputs.first.flatMap { shapes.shapes[$0] }
            // The window attributes of a convolution, read once (their spatial axes from the weight).
            let window = ONNXConvAttributes(node, spatialAxes: (layer.shape?.count ?? 4) - 2)
            defer { result.append(layer) }
            switch node.opType {
            case "ConvTranspose":
                if let x = inputShape, x.count == 4, let w = layer.shape, w.count == 4 {
                    layer.macs = Self.macs([x[0], x[1], w[1], w[2], w[3], x[2], x[3]])
                    (layer.kernel, layer.stride, layer.groups) = (Array(w[2...]), window.strides, window.group)
                }
                // A transposed convolution is the convolution by the kernel flipped in space and
                // transposed in its channels, on the input upsampled by the strides (zeros between
                // samples) and padded by d·(k − 1) − p (plus the output padding at the end): its
                // channel factors are that convolution's. Stride 1 is written as that convolution;
                // a strided one as a ConvTranspose core between pointwise convolutions.
                let (strides, outputPadding, autoPad) = (window.strides, window.outputPadding, window.autoPad)
                let dilations = window.dilations
                guard layer.shape?.count == 4, strides.count == 2, strides.allSatisfy({ $0 >= 1 && $0 <= 1 << 31 }), outputPadding.count == 2,
                      dilations.count == 2, (0..<2).allSatisfy({ outputPadding[$0] >= 0 && outputPadding[$0] < max(strides[$0], dilations[$0]) }),
                      window.outputShape == nil, autoPad == "NOTSET" || autoPad == "VALID" else {
                    refuse(.transposedSettings(strides: strides, outputPadding: outputPadding, autoPad: autoPad, outputShape: window.outputShape != nil))
                    continue
                }
            case "Gather":
                refuse(weight != nil && layer.shape?.count == 2 ? .embeddingTable : .gather)
                continue
            case "LSTM", "GRU", "RNN":
                // W [directions, gates·H, I] and R [directions, gates·H, H]; X [seq, batch, I] (layout 1: [batch, seq, I]).
                let r = node.inputs.count > 2 ? (constants[node.inputs[2]]?.tensor.shape ?? shapes.shapes[node.inputs[2]]) : nil
                if let x = inputShape, x.count == 3, let w = layer.shape, w.count == 3, let r, r.count == 3 {
                    let (features, overflow) = w[2].addingReportingOverflow(r[2])
                    layer.macs = overflow ? nil : Self.macs([x[0], x[1], w[0], w[1], features])
                }
                // The input projection W·x of every step is what can be factored (a MatMul before the
                // node); the recurrence R·h stays inside the operator.
                let gates = ["LSTM": 4, "GRU": 3, "RNN": 1][node.opType]!
                let directions = node.string("direction") == "bidirectional" ? 2 : 1
                let b = node.inputs.count > 3 && !node.inputs[3].isEmpty ? (constants[node.inputs[3]]?.tensor.shape ?? shapes.shapes[node.inputs[3]]) : nil
                guard let w = layer.shape, w.count == 3, let hidden = node.int("hidden_size"), hidden >= 1, hidden <= w[1], w[0] == directions,
                      w[1] == gates * hidden, r == nil || r == [directions, gates * hidden, hidden],
                      b == nil || b == [directions, 2 * gates * hidden] else {
                    refuse(.recurrent(op: node.opType, inputWeights: layer.shape ?? [], recurrentWeights: r ?? []))
                    continue
                }
                // An input that does not fit W is a shape inference could not follow (a branch that
                // the given input shapes do not take): unknown, not a reason to refuse.
                if let x = inputShape, x.count != 3 || x[2] != w[2] {
                    inputShape = nil
                    layer.macs = nil
                }
                if options.linear == .none {
                    refuse(.methodNone(.linear))
                    continue
                }
                if options.linear == .tt {
                    refuse(.recurrentTensorTrain(op: node.opType))
                    continue
                }
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
            do { try weight.tensor.checkData() } catch let error as ONNXError {
                refuse(.unusable(role: "weight", name: weightName, error: error))
                continue
            }
            var site = GraphLayer.Site(kind: .matmul, weight: weight, weightName: weightName, input: node.inputs[0],
                                       output: node.outputs.first ?? "", inputShape: inputShape)
            switch node.opType {
            case "ConvTranspose":
                let groups = window.group
                let kernel = window.kernelShape ?? Array(shape[2...])
                let dilations = window.dilations
                let pads = window.autoPad == "VALID" ? [0, 0, 0, 0] : window.pads
                guard kernel == Array(shape[2...]), dilations.count == 2, dilations.allSatisfy({ $0 >= 1 }), pads.count == 4, groups >= 1,
                      shape[0] % groups == 0, kernel.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }),
                      zip(kernel, dilations).allSatisfy({ k, d in !d.multipliedReportingOverflow(by: k - 1).overflow }) else {
                    refuse(.convolutionSettings(kernel: kernel, strides: [1, 1], dilations: dilations, pads: pads, groups: groups, weight: shape))
                    continue
                }
                // The equivalent convolution pads each side by d·(k − 1) − p, the end by the output
                // padding more (negative: not a convolution).
                let (strides, outputPadding) = (window.strides, window.outputPadding)
                guard zip(kernel, dilations).allSatisfy({ k, d in d * (k - 1) < Int.max / 4 }) else {
                    refuse(.convolutionOverflow(kernel: kernel, strides: strides, dilations: dilations))
                    continue
                }
                let extents = [dilations[0] * (kernel[0] - 1), dilations[1] * (kernel[1] - 1)]
                let padding = Padding(top: extents[0] - pads[0], bottom: extents[0] - pads[2] + outputPadding[0],
                                      left: extents[1] - pads[1], right: extents[1] - pads[3] + outputPadding[1])
                guard padding.array.allSatisfy({ $0 >= 0 }) else {
                    refuse(.transposedPaddingBeyondKernel(pads: pads))
                    continue
                }
                (layer.kernel, layer.stride, layer.groups, layer.dilation, layer.padding) = (kernel, strides, groups, dilations, padding.array)
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
                if strides != [1, 1] {
                    // Costed at the positions it runs at: the pointwise input layer and the scattering
                    // core at the input's pixels, the pointwise output layer at the output's.
                    guard let x = inputShape, x.count == 4 else {
                        refuse(.unknownShapes(op: "ConvTranspose", spatialRank: 2))
                        continue
                    }
                    let pointwise = kernel == [1, 1]
                    guard options.conv == .tucker2 || (options.conv == .cp && pointwise) else {
                        refuse(.methodThroughStandIn(op: "ConvTranspose", spatialRank: 2, method: options.conv.rawValue))
                        continue
                    }
                    // Sizes from shape inference and strides up to 2³¹: counted with overflow checks.
                    func size(_ axis: Int, _ before: Int, _ after: Int) -> Int? {
                        let (span, o1) = (x[axis + 2] - 1).multipliedReportingOverflow(by: strides[axis])
                        let (padded, o2) = span.addingReportingOverflow(1 + before + after)
                        return o1 || o2 || x[axis + 2] < 1 ? nil : padded - extents[axis]
                    }
                    guard let height = size(0, padding.top, padding.bottom), let width = size(1, padding.left, padding.right) else {
                        refuse(.convolutionOverflow(kernel: kernel, strides: strides, dilations: dilations))
                        continue
                    }
                    let output = [height, width]
                    let pixels = Double(x[2]) * Double(x[3])
                    site.proxy = .init(node: node, kernel: Size2D(kernel[0], kernel[1]),
                                       positions: ConvPositions(input: pixels, core: pixels, output: Double(output[0]) * Double(output[1])), transposed: true)
                }
            case "Conv":
                if shape.count >= 3, let x = inputShape, x.count == shape.count, let y = shapes.shapes[site.output], y.count == shape.count {
                    layer.macs = Self.macs([x[0], shape[0], shape[1]] + Array(shape[2...]) + Array(y[2...]))
                }
                guard shape.count == 4 || shape.count == 3 || shape.count == 5 else {
                    refuse(.spatialRank(max(shape.count - 2, 0)))
                    continue
                }
                if shape.count == 5 {
                    // A 3-D convolution: decomposed through a 2-D stand-in whose kernel is
                    // [kd·kh, kw] (the same channel modes and patch order), written back in 3-D.
                    let groups = window.group
                    let kernel = window.kernelShape ?? Array(shape[2...])
                    let (strides, dilations) = (window.strides, window.dilations)
                    guard kernel == Array(shape[2...]), strides.count == 3, dilations.count == 3 else {
                        refuse(.convolutionSettings(kernel: kernel, strides: strides, dilations: dilations, pads: nil, groups: nil, weight: shape))
                        continue
                    }
                    guard (kernel + strides + dilations).allSatisfy({ $0 >= 1 }),
                          zip(kernel, dilations).allSatisfy({ k, d in !d.multipliedReportingOverflow(by: k - 1).overflow && d * (k - 1) < Int.max / 4 }),
                          let pads = Self.resolvedPads(window, kernel: kernel, strides: strides, dilations: dilations,
                                                       input: inputShape.flatMap { $0.count == 5 ? Array($0.dropFirst(2)) : nil }),
                          pads.allSatisfy({ $0 >= 0 }) else {
                        refuse(.convolutionOverflow(kernel: kernel, strides: strides, dilations: dilations))
                        continue
                    }
                    (layer.kernel, layer.stride, layer.dilation, layer.groups, layer.padding) = (kernel, strides, dilations, groups, pads)
                    if groups > 1 && shape[1] == 1 {
                        refuse(.depthwise(groups: groups, transposed: false))
                        continue
                    }
                    if options.conv == .none {
                        refuse(.methodNone(.convolution))
                        continue
                    }
                    guard let x = inputShape, x.count == 5, let y = shapes.shapes[site.output], y.count == 5 else {
                        refuse(.unknownShapes(op: "Conv", spatialRank: 3))
                        continue
                    }
                    guard (x + y).allSatisfy({ $0 >= 1 }) else {
                        refuse(.emptyShapes(input: x, output: y))
                        continue
                    }
                    guard options.conv == .tucker2 || options.conv == .cp else {
                        refuse(.methodThroughStandIn(op: "Conv", spatialRank: 3, method: options.conv.rawValue))
                        continue
                    }
                    site.spatialRank = 3
                    site.kind = .conv(stride: Size2D(1), padding: .zero, dilation: Size2D(1), groups: groups, autoPad: "NOTSET")
                    let (input, output) = (Double(x[2]) * Double(x[3]) * Double(x[4]), Double(y[2]) * Double(y[3]) * Double(y[4]))
                    site.proxy = .init(node: node, kernel: Size2D(kernel[0] * kernel[1], kernel[2]),
                                       positions: ConvPositions(input: input, core: output, output: output), transposed: false)
                    // CP keeps one factor per axis: the depthwise layers run at the output's depth
                    // and the input's height and width, then at the output's depth and height.
                    site.proxy?.axes = .init(kernel: kernel, strides: strides, dilations: dilations, pads: pads,
                                             afterDepth: Double(y[2]) * Double(x[3]) * Double(x[4]),
                                             afterHeight: Double(y[2]) * Double(y[3]) * Double(x[4]))
                    break
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
                let groups = window.group
                let kernel = lift(window.kernelShape ?? Array(shape[2...]))
                let strides = lift(window.strides)
                let dilations = lift(window.dilations)
                let autoPad = window.autoPad
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
                    let pads = window.pads
                    guard pads.count == 2, pads.allSatisfy({ $0 >= 0 }) else {
                        refuse(.oneDimensionalPads(pads))
                        continue
                    }
                    padding = Padding(top: 0, bottom: 0, left: pads[0], right: pads[1])
                } else {
                    guard let resolved = Self.resolvedPadding(window, kernel: kernel, strides: strides, dilations: dilations,
                                                              input: site.inputShape.map { Array($0.dropFirst(2)) }) else {
                        refuse(.convolutionOverflow(kernel: kernel, strides: strides, dilations: dilations))
                        continue
                    }
                    padding = resolved
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
                site.gemmC = c.flatMap { constants[$0] }
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
            case "LSTM", "GRU", "RNN":
                site.kind = .recurrent(node: node, directions: shape[0])
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
            // A convolution's bias (Conv's and ConvTranspose's third input) must be constant too, and
            // a recurrent node's B (its fourth), which takes the mean-shift correction.
            let biasIndex: Int?
            switch site.kind {
            case .conv: biasIndex = 2
            case .recurrent: biasIndex = 3
            default: biasIndex = nil
            }
            if let biasIndex, node.inputs.count > biasIndex, !node.inputs[biasIndex].isEmpty {
                site.biasName = node.inputs[biasIndex]
                site.bias = constants[node.inputs[biasIndex]]
                guard site.bias != nil else {
                    refuse(.computedBias(name: node.inputs[biasIndex]))
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
                do { try bias.tensor.checkData() } catch let error as ONNXError {
                    refuse(.unusable(role: "bias", name: site.biasName ?? "", error: error))
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
            if options.normWeightedOutputs, case .gemm = site.kind {
                site.followingNorm = followingNorm(site.output, features: shape[(node.int("transB") ?? 0) == 1 ? 0 : 1])
            } else if options.normWeightedOutputs, case .matmul = site.kind {
                site.followingNorm = followingNorm(site.output, features: shape[1])
            }
            if options.attentionWeightedOutputs, case .matmul = site.kind {
                site.attentionPartner = attentionPartner(site.output, features: shape[1])
            }
            layer.site = site
            layer.refusal = nil
            if estimateRanks {
                layer.vbmfRanks = try? estimatedRanks(site)
            }
        }
        return result
    }
}
