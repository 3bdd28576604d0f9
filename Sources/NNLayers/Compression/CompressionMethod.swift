import Decompositions

/// Which decomposition replaced a layer.
public enum CompressionMethod: String, Sendable, Equatable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// Truncated SVD of a linear layer: two linear layers.
    case svd
    /// CP of a convolution kernel: pointwise → depthwise kh×1 → depthwise 1×kw → pointwise (a
    /// depthwise layer that would not act, such as the kh×1 of a 1×k kernel, left out).
    case cp
    /// Tucker-2 of a convolution kernel: pointwise → kh×kw conv → pointwise.
    case tucker2
    /// Tensor-train of a layer's weight: one ``TTLinear`` or ``TTConv2D``.
    case tensorTrain = "tt"

    public var description: String { rawValue }
}

/// How to choose the ranks of a layer's decomposition: a rule on the kernel alone
/// (`RankSelection`) or a FLOP budget, which needs the layer's settings.
///
/// The rules of `RankSelection` read the same here: `.fixed([16])`, `.vbmf`, `.energy(0.9)`,
/// `.relativeError(0.1)`, `.parameterBudget(0.5)`; `.flopBudget(0.25)` is the layer's own.
public enum LayerRankSelection: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// A rule on the kernel (or weight matrix) alone.
    case kernel(RankSelection)
    /// The largest ranks whose replacement layers need at most this fraction `0 < f ≤ 1` of the
    /// layer's FLOPs (at a 64×64 input for convolutions, or larger when the dilated kernel needs it;
    /// the CP of a 3-D convolution in an ONNX graph at the layer's own shapes).
    case flopBudget(Double)

    /// The ranks given.
    public static func fixed(_ ranks: [Int]) -> LayerRankSelection { .kernel(.fixed(ranks)) }
    /// EVBMF on each unfolding.
    public static var vbmf: LayerRankSelection { .kernel(.vbmf) }
    /// The smallest ranks keeping this fraction of each unfolding's energy.
    public static func energy(_ fraction: Double) -> LayerRankSelection { .kernel(.energy(fraction)) }
    /// The smallest ranks whose truncated-HOSVD bound guarantees this relative kernel error.
    public static func relativeError(_ epsilon: Double) -> LayerRankSelection { .kernel(.relativeError(epsilon)) }
    /// The largest ranks whose factors hold at most this fraction of the parameters.
    public static func parameterBudget(_ fraction: Double) -> LayerRankSelection { .kernel(.parameterBudget(fraction)) }

    /// The command-line spelling: `vbmf`, `energy:F`, `error:F`, `params:F`, `flops:F` or `fixed [r, …]`.
    public var description: String {
        switch self {
        case let .kernel(selection): return selection.description
        case let .flopBudget(fraction): return "flops:\(fraction)"
        }
    }
}

/// How to decompose a convolution.
public enum ConvDecomposition: Sendable, Equatable {
    /// CP of the kernel (Lebedev et al. 2015, arXiv:1412.6553) → pointwise S→R, depthwise kh×1,
    /// depthwise 1×kw, pointwise R→T (``LayerStack/init(cp:replacing:)``). A kernel rule goes
    /// through `selectCPRank(for:selection:)`.
    case cp(LayerRankSelection, maxIterations: Int = 100, seed: UInt64 = 0)
    /// Tucker-2 of the channel modes (Kim et al. 2016, arXiv:1511.06530) → pointwise S→R_in,
    /// kh×kw conv R_in→R_out, pointwise R_out→T. Ranks `[R_out, R_in]`; a kernel rule goes through
    /// `selectRanks(for:modes:selection:)` on modes 0 and 1.
    case tucker2(LayerRankSelection)
    /// TT-SVD of the kernel reshaped to `(kh·kw, t_1 s_1, …, t_d s_d)` (Garipov et al. 2016,
    /// arXiv:1611.03214) → a ``TTConv2D``. Channel factorizations default to three balanced factors;
    /// with neither `maxRank` nor `tolerance` the decomposition is exact.
    case tensorTrain(outputModes: [Int]? = nil, inputModes: [Int]? = nil, maxRank: Int? = nil, tolerance: Double? = nil)
    /// Truncated SVD of a 1×1 kernel's `(T/g, S/g)` matrix per group → pointwise S→g·t (groups g,
    /// with the original stride and padding), pointwise g·t→T (groups g, with the bias). Only for
    /// 1×1 kernels, where CP and Tucker-2 reduce to the same matrix factorization with more layers.
    /// A kernel rule goes through `selectRanks(for:modes:selection:)` on each group's matrix.
    case svd(LayerRankSelection)
}

/// How to decompose a fully connected layer.
public enum LinearDecomposition: Sendable, Equatable {
    /// Truncated SVD `W ≈ U_t Σ_t V_tᵀ` → Linear(in → t, `Σ_t V_tᵀ`, no bias), Linear(t → out, `U_t`, bias).
    /// A kernel rule goes through `selectRanks(for:modes:selection:)` on the matrix.
    case svd(LayerRankSelection)
    /// A TT-matrix weight (Novikov et al. 2015, arXiv:1509.06569) → a ``TTLinear``.
    case tensorTrain(outputModes: [Int]? = nil, inputModes: [Int]? = nil, maxRank: Int? = nil, tolerance: Double? = nil)
}
