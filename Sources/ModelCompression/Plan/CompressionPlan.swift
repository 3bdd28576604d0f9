import NNLayers
import TensorIO

/// A model as the compressor sees it: every layer it analysed, in model order, with its weight's
/// shape, its cost and what will be done to it.
///
/// A reader builds the plan once (``ModelCompressor/plan(onnx:)`` for an ONNX graph with its
/// subgraphs, ``ModelCompressor/plan(stateDict:)`` for safetensors files, the shards of a
/// checkpoint included); one pipeline then allocates a budget's ranks over it
/// (``ModelCompressor/allocate(_:)``) and decomposes its candidates, and a writer per format emits
/// the result. No later stage reads a layer's settings again.
///
/// ```swift
/// let compressor = try ModelCompressor(options: options)
/// var plan = try compressor.plan(onnx: model)
/// try compressor.allocate(&plan)
/// for layer in plan.layers where layer.isCandidate { print(layer.name, layer.ranks ?? []) }
/// ```
public struct CompressionPlan: Sendable {
    /// Every analysed layer, in model order.
    public internal(set) var layers: [PlannedLayer]

    /// The candidate layers that the totals and warnings count: an ONNX graph's compressible
    /// nodes; a state dict's weights that passed the filters (embedding tables and layers with an
    /// integer bias among them).
    public internal(set) var candidateCount: Int

    /// A plan of `layers`, `candidateCount` of them candidates.
    init(_ layers: [PlannedLayer], candidateCount: Int) {
        self.layers = layers
        self.candidateCount = candidateCount
    }

    /// The names of the layers to decompose.
    var decompositionNames: [String] { layers.filter(\.isCandidate).map(\.name) }
}

/// One layer of a ``CompressionPlan``.
public struct PlannedLayer: Sendable {
    /// What the pipeline does with a layer.
    public enum Decision: Sendable, Equatable {
        /// Decompose it; with a budget, at these ranks.
        case decompose(ranks: [Int]?)
        /// Leave it as it is, for this reason (never ``LayerStatus/replaced`` or ``LayerStatus/keptGrowth(parameters:originalParameters:flops:originalFLOPs:)``,
        /// which only a decomposition finds).
        case settled(LayerStatus)
    }

    /// Where a layer comes from: what the pipeline needs to build it.
    enum Source: Sendable {
        /// An ONNX node (compressible when it has a site).
        case graph(GraphLayer)
        /// A state dict's weight `weight` of `file` (`files[file]` of the reader), with its bias.
        case stateDict(file: SafetensorsFile, weight: String, bias: String?)
    }

    /// The layer's name in reports: an ONNX node's (after its subgraph's label), or a state
    /// dict's weight name without `.weight`.
    public var name: String
    /// The ONNX operator (`nil` for a state dict's layer).
    public var op: String?
    /// The weight's shape as stored (empty when unknown).
    public var shape: [Int]
    /// The weight's element count (0 when its shape is unknown).
    public var parameters: Int
    /// Multiply-adds of the layer as it is, at the analysed input shapes, when known (an ONNX
    /// graph's shapes; `nil` for a state dict, whose layers are costed when built).
    public var macs: Int?
    /// What the pipeline does with the layer.
    public var decision: Decision
    /// What the layer is built from.
    var source: Source
    /// The position of a state dict's file among those the plan was read from (0 for a graph).
    var fileIndex = 0
    /// The layer as a budget prepared it, kept for the decomposition (see
    /// ``ModelCompressor/allocate(_:)``); `nil` without a budget or past the memory bound.
    var prepared: AnyPreparedLayer?

    /// Whether the layer is to be decomposed.
    public var isCandidate: Bool {
        if case .decompose = decision { return true }
        return false
    }

    /// The ranks a budget allocated, `nil` without a budget (the options' rank rule applies).
    public var ranks: [Int]? {
        if case let .decompose(ranks) = decision { return ranks }
        return nil
    }

    /// The report of a layer that is not decomposed: its counts unchanged.
    func settledReport(_ status: LayerStatus) -> LayerReport {
        LayerReport(name: name, shape: shape, method: nil, status: status, ranks: [], parametersBefore: parameters,
                           parametersAfter: parameters, macsBefore: macs ?? 0, macsAfter: macs ?? 0, relativeError: 0, converged: true,
                           iterations: 0, seconds: 0, reasons: [], op: op)
    }
}
