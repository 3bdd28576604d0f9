import NNLayers
import TensorIO

/// What ``ModelCompressor`` compresses and how: the choices of `tensor-compress compress`.
///
/// Every 4-D floating-point weight is a convolution kernel (OIHW) and every 2-D one a linear
/// layer `(out, in)`, unless its name is an embedding table's (see ``embeddingPattern``).
///
/// ```swift
/// var options = CompressionOptions()
/// options.linear = .svd
/// options.rankSelection = .energy(0.9)
/// options.exclude = "classifier"
/// ```
public struct CompressionOptions: Sendable, Equatable {
    /// How 4-D weights are decomposed.
    public enum ConvMethod: String, Sendable, CaseIterable { case cp, tucker2, tt, none }
    /// How 2-D weights are decomposed.
    public enum LinearMethod: String, Sendable, CaseIterable { case svd, tt, none }

    /// Names of embedding tables, which look like linear weights but are indexed, not multiplied:
    /// a dot- or underscore-delimited `embed`, `embeds`, `embeddings`, `embed_tokens`, `wte`,
    /// `wpe`, `tok_embeddings`, `word_embeddings`, `position_embeddings` or `token_type_embeddings`.
    /// They are skipped unless ``include`` matches them.
    public static let embeddingPattern =
        #"(^|[._])(embed|embeds|embeddings|embed_tokens|wte|wpe|tok_embeddings|word_embeddings|position_embeddings|token_type_embeddings)([._]|$)"#

    /// Whether `name` matches ``embeddingPattern``: one of its words, between the name's ends,
    /// `.` or `_`. (A direct scan: building the `Regex` took longer than planning a whole model.)
    public static func isEmbeddingName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        func isBoundary(_ i: Int) -> Bool { i < 0 || i >= bytes.count || bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: "_") }
        for word in embeddingWords {
            let w = Array(word.utf8)
            guard w.count <= bytes.count else { continue }
            for start in 0...(bytes.count - w.count) where isBoundary(start - 1) && isBoundary(start + w.count)
                && bytes[start..<(start + w.count)].elementsEqual(w) {
                return true
            }
        }
        return false
    }

    static let embeddingWords = ["embed", "embeds", "embeddings", "embed_tokens", "wte", "wpe", "tok_embeddings", "word_embeddings",
                                 "position_embeddings", "token_type_embeddings"]

    /// Default ``ConvMethod/tucker2``.
    public var conv: ConvMethod = .tucker2
    /// Default ``LinearMethod/svd``.
    public var linear: LinearMethod = .svd
    /// A fixed rank for every layer (CP rank; both Tucker-2 ranks; SVD rank; TT max rank); overrides ``rankSelection``.
    public var rank: Int?
    /// How ranks are chosen when ``rank`` is `nil`. Default EVBMF.
    public var rankSelection: LayerRankSelection = .vbmf
    /// The largest TT rank.
    public var maxRank: Int?
    /// TT relative accuracy `ε`.
    public var tolerance: Double?
    /// CP-ALS iteration limit.
    public var maxIterations = 100
    /// Weights with fewer scalars are left unchanged.
    public var minimumParameters = 1024
    /// A regular expression: only weights whose name matches are compressed (embedding tables too).
    public var include: String?
    /// A regular expression: weights whose name matches are left unchanged.
    public var exclude: String?
    /// Convolution settings by weight name; a missing one takes stride 1, padding `k//2`, dilation 1, groups 1.
    public var layerSettings: [String: Conv2DSettings] = [:]
    /// The spatial input size of every convolution of a state dict, for FLOP counts (an ONNX
    /// graph's convolutions take theirs from ``inputShapes``).
    public var inputSize = Size2D(224, 224)
    /// Shapes of an ONNX graph's inputs, by input name, for shape inference and MAC counts; an
    /// input that is not named takes its declared shape, which must then be static.
    public var inputShapes: [String: [Int]] = [:]
    /// Replace a layer even when its stack has more parameters or FLOPs than the layer.
    public var allowGrowth = false
    /// After compressing an ONNX graph, fold elementwise scales and shifts into the convolutions
    /// around them and into a `Gemm` before them, and shorten hard-swish patterns (`ONNXGraph.simplify(opset:)`: exact
    /// rewrites that remove elementwise passes the replaced and unchanged layers both pay for).
    public var simplify = false
    /// Force LAPACK's exact SVD (`gesdd`) for data-free SVD layers instead of the automatic route
    /// (block Krylov for large matrices at small ranks).
    public var exactSVD = false
    /// Calibration statistics by layer name: the layers they name are compressed data-aware
    /// (whitened SVD, output-aware Tucker-2 and CP, bias correction); the others are left as they
    /// are, or compressed without data (``uncalibratedLayers``).
    public var statistics: CalibrationStatistics? = nil
    /// Bias correction, damping and iterations of data-aware compression.
    public var dataAware = DataAwareOptions()
    /// Data-aware SVD of an ONNX `Gemm` or `MatMul` whose output only a LayerNorm reads (after a
    /// bias and a residual `Add`; `LayerNormalization` over the last axis or onnxruntime's
    /// `SkipLayerNormalization`): weight the output error by what the normalisation does with
    /// it, `P diag(γ²) P` (its mean over the features removed, each feature scaled by the
    /// norm's constant `γ`; two-sided whitening, `WhitenedSVD`), in the factors and in a
    /// budget's allocation. On by default; the layer's reasons name the norm. A layer with an
    /// end-to-end output metric (``endToEndOutputs``) has its factors fitted in that one instead.
    public var normWeightedOutputs = true
    /// Data-aware SVD of an ONNX query or key projection (a `MatMul` whose output is split into
    /// heads and meets the other's in the logits `q·kᵀ`): weight the output error by what the
    /// logits see, per head, from the partner's calibration statistics: a query's error by the
    /// keys' covariance (softmax ignores a shift shared by all keys), a key's by the queries'
    /// second moment; the layer's reasons name the partner. Off by default: on all-MiniLM-L6-v2
    /// at `macs:0.67`, calibrated on quotations and scored on docstrings, it lowered the mean
    /// cosine from 0.891 to 0.872 (the statistics' global covariance stands in for the keys'
    /// spread within each sentence, which is what softmax sees).
    public var attentionWeightedOutputs = false
    /// Data-aware SVD of a linear layer whose statistics hold an end-to-end output metric
    /// (``CalibrationStatistics/outputMetrics``, measured by `Scripts/calibrate.sh`): weight the
    /// output error by it, `E[(ΔW x)ᵀ G (ΔW x)]`, in the factors. It stands in for the
    /// LayerNorm's and the attention's metrics, which it contains; a budget's allocation keeps
    /// ranking the layer by the error it would have without it (the error its sensitivities are
    /// measured in). On by default; the layer's reasons say so.
    public var endToEndOutputs = true
    /// A budget over all compressible layers (replaces ``rank`` and ``rankSelection``): the
    /// ranks are allocated across layers to meet it with the least damage.
    public var budget: CompressionBudget? = nil
    /// Allows a ``budget`` without ``statistics``: ranks and factors from the weights alone. Off by
    /// default, because data-free factors can break a network that data-aware ones keep
    /// (``ModelCompressionError/budgetWithoutStatistics``).
    public var dataFree = false
    /// What a run with ``statistics`` does with the candidate layers they do not name: leave them
    /// as they are, outside the budget (the default), or compress them from their weights alone
    /// (see ``UncalibratedLayers``).
    public var uncalibratedLayers: UncalibratedLayers = .skip
    /// How a ``budget`` is shared across layers.
    public var allocation: BudgetAllocation = .greedy
    /// Ranks that a budget allocation tries: multiples of this (and every rank below it, and the
    /// full rank). onnxruntime's vectorised convolutions work in blocks of 8 channels, so other
    /// widths run slower than their MACs say. Default 8.
    public var rankMultiple = 8
    /// A budget leaves alone layers with less than this share of the compressible layers' MACs
    /// (or parameters): replacing them saves little and adds nodes. Default 0.005.
    public var minimumBudgetShare = 0.005
    /// Multipliers of each layer's normalised error in the greedy allocation, by layer name
    /// (e.g. sensitivities measured end to end); a layer not named has weight 1.
    ///
    /// Unless set, the ``statistics``' end-to-end sensitivities
    /// (``CalibrationStatistics/sensitivities``, which `Scripts/calibrate.sh` measures). Weights
    /// that are set win over them, an empty dictionary too (every weight 1);
    /// ``layerWeightSource`` says which are used.
    ///
    /// ```swift
    /// options.statistics = try CalibrationStatistics(contentsOf: url)   // with NAME.sensitivity tensors
    /// options.layerWeightSource                                         // .statistics
    /// options.layerWeights = ["fc": 2]                                  // given: the sensitivities are not used
    /// ```
    public var layerWeights: [String: Double] {
        get { givenLayerWeights ?? statistics?.sensitivities ?? [:] }
        set { givenLayerWeights = newValue }
    }
    /// The weights set through ``layerWeights``; `nil` when never set.
    var givenLayerWeights: [String: Double]? = nil

    /// Where ``layerWeights`` come from.
    public enum LayerWeightSource: String, Sendable, Equatable {
        /// No weights: every layer's normalised error weighs 1.
        case none
        /// Set through ``CompressionOptions/layerWeights``.
        case given
        /// The sensitivities of ``CompressionOptions/statistics``.
        case statistics
    }

    /// Where ``layerWeights`` come from: set, the statistics' sensitivities, or none.
    public var layerWeightSource: LayerWeightSource {
        if givenLayerWeights != nil { return .given }
        return statistics?.sensitivities.isEmpty == false ? .statistics : .none
    }

    /// Layers decomposed at once, each with one BLAS thread; `nil` (the default) takes the active
    /// cores. `1` decomposes one layer at a time with OpenBLAS's own thread count. OpenBLAS's
    /// thread count is process-wide: while layers are decomposed concurrently, other BLAS work in
    /// the process runs single-threaded too (see `BLASThreads.withCount(_:_:)`).
    public var jobs: Int? = nil
    /// The element type of a state dict's new factor tensors; `nil` (the default) keeps each
    /// weight's own (a bfloat16 layer gives bfloat16 factors). Weights are decomposed in `Float`
    /// (`Double` for float64 weights) whatever their stored type.
    public var outputDType: DType? = nil

    /// The defaults.
    public init() {}

    /// A description of every setting that changes the output (not ``jobs``), the same in every
    /// process: dictionaries sorted by key, statistics by layer name and count. Workers of one
    /// sharded run compare it (hashed) to refuse merging parts of different runs.
    var fingerprint: String {
        var parts = ["\(conv) \(linear) \(rank as Any) \(rankSelection) \(maxRank as Any) \(tolerance as Any) \(maxIterations)",
                     "\(minimumParameters) \(include as Any) \(exclude as Any) \(inputSize) \(allowGrowth) \(simplify) \(exactSVD)",
                     "\(dataAware) \(budget as Any) \(allocation) \(rankMultiple) \(minimumBudgetShare) \(outputDType as Any) \(uncalibratedLayers)"]
        parts += layerSettings.keys.sorted().map { "setting \($0) \(layerSettings[$0]!)" }
        parts += inputShapes.keys.sorted().map { "shape \($0) \(inputShapes[$0]!)" }
        parts += layerWeights.keys.sorted().map { "weight \($0) \(layerWeights[$0]!)" }
        if let statistics {
            parts += statistics.layers.keys.sorted().map { name in
                let s = statistics.layers[name]!
                return "statistics \(name) \(s.count) \(s.groups)×\(s.dimension) \(s.means.first?.first ?? 0) \(s.grams.first?.scalars.first ?? 0)"
            }
        }
        return parts.joined(separator: "\n")
    }
}
