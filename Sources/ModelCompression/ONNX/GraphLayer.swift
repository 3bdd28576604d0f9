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
    /// The weight's value name (`Conv`'s W, `Gemm`'s and `MatMul`'s B, a recurrent node's W, `Gather`'s data).
    public var weight: String?
    /// The weight's shape as stored.
    public var shape: [Int]?
    /// `[kh, kw]` of a convolution (`[kd, kh, kw]` of a 3-D one).
    public var kernel: [Int]?
    /// `[sh, sw]` of a convolution (a `ConvTranspose`'s own strides).
    public var stride: [Int]?
    /// `[top, bottom, left, right]` of a convolution, `auto_pad` resolved at the input shape: each
    /// axis's beginning and end (`[front, back, top, bottom, left, right]` of a 3-D one). A
    /// `ConvTranspose`'s is its equivalent convolution's, on the input upsampled by its strides.
    public var padding: [Int]?
    /// `[dh, dw]` of a convolution.
    public var dilation: [Int]?
    /// Groups of a convolution.
    public var groups: Int?
    /// Multiply-adds at the analysed input shape (all samples), `nil` when the shapes are unknown.
    public var macs: Int?
    /// EVBMF ranks (`[R_out, R_in]` for a k×k convolution, one rank for a matrix), when estimated.
    public var vbmfRanks: [Int]?
    /// Whether the node can be replaced (it has a site; otherwise ``refusal`` says why).
    public var compressible: Bool { site != nil }
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
            /// The input projection of an `LSTM`, `GRU` or `RNN` node (the node as read, for its
            /// attributes and other inputs): `W` `[directions, gates·H, I]` as one
            /// `[directions·gates·H, I]` matrix, applied to every step's input. Its low-rank form
            /// is a `MatMul` by the first factor before the node, which then reads the rank-`k`
            /// projection with `W = V` `[directions, gates·H, k]`; a mean-shift correction goes
            /// into the input half of `B`. R, the recurrence, stays as it is.
            case recurrent(node: ONNXNode, directions: Int)
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
        /// The convolution's spatial axes in the graph: 2, 1 for a 1-D convolution that is
        /// decomposed as a 2-D one of height 1 and written back as 1-D nodes, or 3 (see ``proxy``).
        var spatialRank = 2
        /// A `Gemm`'s C when it is a constant (a mean-shift correction is folded into it).
        var gemmC: ONNXConstant?
        /// A `ConvTranspose`, decomposed as its equivalent convolution (the kernel flipped in
        /// space, its channel axes transposed per group); one of stride 1 is written as that
        /// convolution, a strided one through ``proxy``.
        var transposed = false
        /// A 3-D convolution or a strided `ConvTranspose`: decomposed through a 2-D stand-in of the
        /// same channel factors, costed at ``Proxy/positions`` and written back as nodes of the
        /// original's kind.
        var proxy: Proxy?
        /// The LayerNorm that alone reads a `Gemm`'s or `MatMul`'s output (through a bias and a
        /// residual `Add`), when its scale is a constant over the output's features.
        var followingNorm: FollowingNorm?

        /// The projection whose output this one's meets in attention logits (a query's key or a
        /// key's query), when the graph shows it: the data-aware SVD then weights the output
        /// error by what the logits see (``ModelCompressor/attentionMetric(_:statistics:)``).
        var attentionPartner: AttentionPartner?

        /// The other side of the attention logits `q·k` per head: a `MatMul` by a constant
        /// `[in, out]` weight, its optional constant bias, and the head count of the split.
        struct AttentionPartner: Sendable, Equatable {
            enum Role: Sendable, Equatable {
                /// This layer is the query; the partner is the key.
                case query
                /// This layer is the key; the partner is the query.
                case key
            }
            var role: Role
            /// The partner's layer name (its statistics are looked up by it).
            var node: String
            var weight: ONNXConstant
            var bias: ONNXConstant?
            var heads: Int
        }

        /// A LayerNorm over a linear layer's output features: it removes the error's mean over
        /// the features and scales each feature by `γ`, so the data-aware SVD weights the output
        /// error by `P diag(γ²) P` (``ModelCompressor/normMetric(_:)``).
        struct FollowingNorm: Sendable, Equatable {
            /// The normalisation node's name (its operator and index when it has none).
            var node: String
            var scale: [Double]
        }

        /// What a layer decomposed through a 2-D stand-in needs beside it.
        ///
        /// The stand-in is a stride-1 `Conv2D` of the same channels and groups whose kernel holds
        /// the original's taps: a 3-D kernel `[T, S/g, kd, kh, kw]` as `[T, S/g, kd·kh, kw]` (the
        /// patch vectors' order, `(c, kd, kh, kw)`, is unchanged), a transposed convolution's
        /// equivalent kernel. Tucker-2 and SVD factor its channel modes only, so their factors
        /// are the original's; the stack's spatial layer is written as the original node (every
        /// attribute kept) with its kernel laid out back, the pointwise layers as 1×1(×1) `Conv`s.
        struct Proxy: Sendable, Equatable {
            /// The node as read, for its attributes.
            var node: ONNXNode
            /// The stand-in's kernel size.
            var kernel: Size2D
            /// Where the stack's layers run (per sample).
            var positions: ConvPositions
            /// Whether the original is a `ConvTranspose` (its stack's spatial layer is the last
            /// with the stand-in's kernel size, a transposed one scattering at the input's
            /// positions; a convolution's is the first, which carries its stride).
            var transposed: Bool
            /// A 3-D convolution's settings per axis, for its CP stack: the stand-in's CP
            /// (`Conv2D.compressedCP(splittingHeight:…)`) keeps the depth and height factors
            /// apart, and the stack is written as pointwise → one depthwise `Conv` per axis →
            /// pointwise.
            var axes: Axes? = nil

            /// A 3-D convolution's kernel, strides, dilations and explicit pads per spatial axis
            /// (depth, height, width; `pads` as `[begin, end]` per axis), and where its CP
            /// stack's depthwise layers run.
            struct Axes: Sendable, Equatable {
                var kernel: [Int]
                var strides: [Int]
                var dilations: [Int]
                var pads: [Int]
                /// Positions after the depthwise layer along depth (the output's depth, the
                /// input's height and width), where the one along height runs its taps.
                var afterDepth: Double
                /// Positions after the depthwise layer along height (the output's depth and
                /// height, the input's width), where the one along width runs its taps.
                var afterHeight: Double

                /// Whether the CP stack writes a depthwise layer along `axis`: not for a kernel of
                /// 1 with stride 1 and no padding, a per-channel scale folded into the last layer.
                func written(_ axis: Int) -> Bool {
                    kernel[axis] != 1 || strides[axis] != 1 || pads[2 * axis] != 0 || pads[2 * axis + 1] != 0
                }
            }

            /// The index of the stack's spatial layer: the first layer with the stand-in's kernel
            /// size (the last for a transposed convolution).
            func spatialIndex<Scalar: BLASScalar>(_ layers: [Conv2D<Scalar>]) -> Int {
                let matching = layers.indices.filter { layers[$0].kernelSize == kernel }
                precondition(!matching.isEmpty, "a stand-in's stack has a layer with its kernel size")
                return transposed ? matching.last! : matching.first!
            }

            /// Parameters and FLOPs of the stand-in and of its stack for one sample: each layer's
            /// weights times the positions it runs at (the input's before the spatial layer, the
            /// core's for it, the output's after).
            func report<Scalar: BLASScalar>(_ compressed: CompressedLayer<Scalar>) -> CompressionReport {
                guard case let .conv2d(original) = compressed.original else { preconditionFailure("a stand-in is a convolution") }
                func flops(_ macs: Double) -> Int { 2 * macs < Double(Int.max) ? Int(2 * macs) : Int.max }
                if axes != nil, compressed.method == .cp, let rank = compressed.ranks.first {
                    let before = original.formCost(positions: positions), after = cpCost(rank: rank, original)
                    return CompressionReport(originalParameters: original.parameterCount, parameters: Int(after.parameters),
                                             originalFLOPs: flops(before.macs), flops: flops(after.macs))
                }
                let layers = compressed.stack.layers.map { layer -> Conv2D<Scalar> in
                    guard case let .conv2d(conv) = layer else { preconditionFailure("a stand-in's stack is convolutions") }
                    return conv
                }
                let spatial = spatialIndex(layers)
                var macs = 0.0
                for (k, conv) in layers.enumerated() {
                    let at = k < spatial ? positions.input : k == spatial ? positions.core : positions.output
                    macs += Double(conv.weight.scalarCount) * at
                }
                let before = original.formCost(positions: positions)
                return CompressionReport(originalParameters: original.parameterCount, parameters: compressed.stack.parameterCount,
                                         originalFLOPs: flops(before.macs), flops: flops(macs))
            }

            /// The largest CP rank (at most the rank at which CP is exact) whose 3-D stack needs at
            /// most `fraction` of the convolution's MACs at its own shapes (`--rank-selection
            /// flops:F`), and the reason.
            func cpRank<Scalar: BLASScalar>(flopBudget fraction: Double, _ conv: Conv2D<Scalar>) throws -> (Int, String) {
                guard fraction > 0, fraction <= 1 else { throw NNLayersError.invalidBudget(fraction) }
                guard let axes else { preconditionFailure("a 3-D CP rank needs the convolution's axes") }
                let perRank = cpCost(rank: 1, conv).macs, original = conv.formCost(positions: positions).macs
                let bound = maximumCPRank(shape: [conv.outChannels / conv.groups, conv.weight.shape[1]] + axes.kernel)
                // The reader refuses empty shapes, so both counts are positive.
                let rank = perRank > 0 ? Swift.max(1, Int(Swift.min(fraction * original / perRank, Double(bound)))) : 1
                return (rank, "CP rank \(rank): \(2 * Double(rank) * perRank) of \(2 * original) FLOPs at the layer's shapes (budget \(fraction))")
            }

            /// The 3-D CP stack's cost at rank `R` per group for one sample, as written:
            /// pointwise `S → g·R` at the input's positions, depthwise `kd`, `kh` and `kw` taps at
            /// the positions each runs at (the axes ``Axes/written(_:)``), pointwise `g·R → T` at
            /// the output's.
            func cpCost<Scalar: BLASScalar>(rank: Int, _ conv: Conv2D<Scalar>) -> FormCost {
                guard let axes else { preconditionFailure("a 3-D CP cost needs the convolution's axes") }
                let width = Double(conv.groups * rank), r = Double(rank)
                let at = [axes.afterDepth, axes.afterHeight, positions.output]
                let written = (0..<3).filter { axes.written($0) }
                let taps = written.reduce(0.0) { $0 + Double(axes.kernel[$1]) * at[$1] }
                let macs = r * Double(conv.inChannels) * positions.input + width * taps + Double(conv.outChannels) * r * positions.output
                let parameters = r * Double(conv.inChannels) + width * written.reduce(0.0) { $0 + Double(axes.kernel[$1]) }
                    + Double(conv.outChannels) * r + Double(conv.bias?.count ?? 0)
                return FormCost(macs: macs, parameters: parameters)
            }
        }
    }
}
