import NNLayers
import TensorModule

/// A planned layer built once for the pipeline: its `NNLayers` layer in the scalar type it is
/// decomposed in, one sample's input shape, the sample count for its costs, and its calibration
/// statistics expanded to its input vectors. A budget's rank options and the decomposition both
/// read it (``ModelCompressor/prepared(_:as:)``).
struct PreparedLayer<Scalar: BLASScalar>: Sendable {
    var layer: Layer<Scalar>
    var input: [Int]
    var batch: Int
    /// The expanded statistics, when the options hold statistics for the layer and its
    /// decomposition reads them (not a tensor-train convolution, not a depthwise one).
    var statistics: ExpandedStatistics?
    /// A 3-D convolution's or strided `ConvTranspose`'s stand-in: where its stacks run, for costs.
    var proxy: GraphLayer.Site.Proxy?

    /// The layer's own MACs (one sample) and parameters.
    func cost() throws -> (macs: Int, parameters: Int) {
        if let proxy, case let .conv2d(conv) = layer {
            let macs = conv.formCost(positions: proxy.positions).macs
            return (macs < Double(Int.max / 2) ? Int(macs) : Int.max / 2, conv.parameterCount)
        }
        let cost = try layer.cost(input: input)
        return (cost.macs, cost.parameters)
    }

    /// Where a convolution's stacks run for one sample: the stand-in's positions, else the
    /// convolution's at ``input``.
    func positions<S>(_ conv: Conv2D<S>) throws -> ConvPositions {
        try proxy?.positions ?? conv.positions(input: Size2D(input[1], input[2]))
    }

    /// The memory the weight and the expanded statistics hold, in bytes.
    var byteCount: Int { layer.parameterCount * MemoryLayout<Scalar>.size + (statistics?.byteCount ?? 0) }
}

/// A ``PreparedLayer`` in either scalar type, as a plan keeps it from the budget to the
/// decomposition.
enum AnyPreparedLayer: Sendable {
    case float(PreparedLayer<Float>)
    case double(PreparedLayer<Double>)

    init<Scalar: BLASScalar>(_ prepared: PreparedLayer<Scalar>) {
        if let p = prepared as? PreparedLayer<Double> { self = .double(p) } else { self = .float(prepared as! PreparedLayer<Float>) }
    }

    /// The prepared layer when it is in `Scalar`.
    func prepared<Scalar: BLASScalar>(as _: Scalar.Type) -> PreparedLayer<Scalar>? {
        switch self {
        case let .float(p): return p as? PreparedLayer<Scalar>
        case let .double(p): return p as? PreparedLayer<Scalar>
        }
    }
}

extension ModelCompressor {
    /// How many bytes of prepared layers (weights and expanded statistics) a plan keeps from the
    /// budget to the decomposition; past it, a layer is prepared again when decomposed. Keeping
    /// them saves rebuilding each layer and expanding its statistics (`O(d²)` per group, against
    /// the decompositions' `O(d³)`); the bound keeps a large checkpoint's budget (a 4096×11008
    /// projection's metric alone is about 1 GB) within memory.
    static let preparedByteLimit = 1 << 30

    /// Whether a planned layer is decomposed in `Double`: an ONNX node always (its factors are
    /// rounded once, when written), a state dict's weight when the file stores float64.
    static func decomposedInDouble(_ planned: PlannedLayer) -> Bool {
        switch planned.source {
        case .graph: return true
        case let .stateDict(file, weight, _): return file.entries[weight]?.dtype == .float64
        }
    }

    /// `P diag(γ²) P` with `P = I − 11ᵀ/m`: the error metric of a LayerNorm's input over `m`
    /// features, linearised (the per-token division by the standard deviation left out).
    static func normMetric(_ gamma: [Double]) -> Matrix<Double> {
        let m = gamma.count
        let squares = gamma.map { $0 * $0 }
        let mean = squares.reduce(0, +) / Double(m)
        // (P D P)_ij = D_ij − (d_i + d_j)/m + tr(D)/m², D = diag(γ²).
        var result = Matrix<Double>.zeros(rows: m, columns: m)
        result.withUnsafeMutableBufferPointer { p in
            for i in 0..<m {
                for j in 0..<m { p[i * m + j] = (i == j ? squares[i] : 0) - (squares[i] + squares[j]) / Double(m) + mean / Double(m) }
            }
        }
        return result
    }

    /// The error metric of a query (key) projection's output in the logits `q·kᵀ`, from its
    /// partner's weight `B` (`[in, out]`, the partner computes `xB + b`) and input statistics:
    /// per head, the covariance of the keys `Bᵀ Σ_x B` for a query (softmax ignores a shift
    /// shared by all keys), the second moment of the queries `E[(Bᵀx + b)(Bᵀx + b)ᵀ]` for a key;
    /// zero between heads. `nil` when the partner's weight, bias or statistics do not fit or
    /// cannot be read (the layer is then compressed with the plain output error).
    static func attentionMetric(_ partner: GraphLayer.Site.AttentionPartner, statistics: InputStatistics) -> Matrix<Double>? {
        guard (try? partner.weight.tensor.checkData()) != nil, partner.bias.map({ (try? $0.tensor.checkData()) != nil && $0.tensor.dataType.isFloatingPoint }) ?? true,
              let b = try? partner.weight.tensor.tensor(as: Double.self), b.shape.count == 2, b.scalars.allSatisfy(\.isFinite) else { return nil }
        let (inputs, outputs) = (b.shape[0], b.shape[1])
        guard statistics.dimension == inputs, statistics.groups == 1, partner.heads > 0, outputs % partner.heads == 0 else { return nil }
        let weight = Matrix(b)                                              // [in, out]
        var metric: Matrix<Double>
        switch partner.role {
        case .query:
            metric = weight.matmul(statistics.covariance().matmul(weight), transposeSelf: true)
        case .key:
            guard let bias = partner.bias.map({ try? $0.tensor.tensor(as: Double.self).scalars }) ?? ContiguousArray(repeating: 0, count: outputs),
                  bias.count == outputs, bias.allSatisfy(\.isFinite) else { return nil }
            metric = weight.matmul(statistics.grams[0].matmul(weight), transposeSelf: true)
            let projectedMean = weight.matmul(Matrix(uncheckedRows: inputs, columns: 1, scalars: ContiguousArray(statistics.means[0]))
                                              , transposeSelf: true).scalars
            metric.withUnsafeMutableBufferPointer { p in
                for i in 0..<outputs {
                    for j in 0..<outputs { p[i * outputs + j] += projectedMean[i] * bias[j] + bias[i] * projectedMean[j] + bias[i] * bias[j] }
                }
            }
        }
        let size = outputs / partner.heads
        metric.withUnsafeMutableBufferPointer { p in
            for i in 0..<outputs { for j in 0..<outputs where i / size != j / size { p[i * outputs + j] = 0 } }
        }
        return metric.scalars.allSatisfy(\.isFinite) ? metric : nil
    }

    /// A planned layer built in `Scalar` with its statistics expanded (the only place where
    /// either happens).
    ///
    /// - Throws: the errors of reading the weights and of the statistics
    ///   (``NNLayersError/statistics(_:)`` for statistics of another size or group count).
    func prepared<Scalar: BLASScalar>(_ planned: PlannedLayer, as _: Scalar.Type) throws -> PreparedLayer<Scalar> {
        let layer: Layer<Scalar>, input: [Int], batch: Int
        switch planned.source {
        case let .graph(node):
            layer = try self.layer(node.site!, as: Scalar.self)
            (input, batch) = costInput(node.site!, layer)
        case let .stateDict(file, weight, bias):
            (layer, input) = try stateDictLayer(file, name: weight, bias: bias, as: Scalar.self)
            batch = 1
        }
        var expanded: ExpandedStatistics?
        if let statistics = options.statistics?.layers[planned.name] {
            let corrected = options.dataAware.biasCorrection
            switch layer {
            case let .conv2d(conv):
                if options.endToEndOutputs, options.statistics?.outputMetrics[planned.name] != nil {
                    throw NNLayersError.statistics(.outputMetricOfConvolution(layer: planned.name))
                }
                let readsStatistics: Bool
                if case .tensorTrain = convDecomposition(for: conv) { readsStatistics = false } else { readsStatistics = true }
                if readsStatistics && !(conv.weight.shape[1] == 1 && conv.groups > 1) { expanded = try conv.expanded(statistics, corrected: corrected) }
            case let .linear(linear):
                expanded = try linear.expanded(statistics, corrected: corrected)
                if case let .graph(node) = planned.source, let norm = node.site?.followingNorm, norm.scale.count == linear.outFeatures {
                    expanded?.outputMetric = (Self.normMetric(norm.scale), "the LayerNorm '\(norm.node)' that reads it (its scale, centred)")
                }
                if case let .graph(node) = planned.source, let partner = node.site?.attentionPartner,
                   let partnerStatistics = options.statistics?.layers[partner.node],
                   let metric = Self.attentionMetric(partner, statistics: partnerStatistics), metric.rows == linear.outFeatures {
                    let what = partner.role == .query ? "the keys' covariance" : "the queries' second moment"
                    expanded?.outputMetric = (metric, "the attention logits it forms with '\(partner.node)' (\(partner.heads) heads; \(what) per head)")
                }
                if options.endToEndOutputs, let metric = options.statistics?.outputMetrics[planned.name] {
                    guard metric.rows == linear.outFeatures else {
                        throw NNLayersError.statistics(.outputMetric(layer: planned.name, shape: [metric.rows, metric.columns], outputs: linear.outFeatures))
                    }
                    // The budget keeps ranking by the error its sensitivities are measured in: on
                    // all-MiniLM-L6-v2, spectra in the end-to-end metric chose worse ranks (0.903
                    // against 0.923 with these factors; Performance.md).
                    let previous = expanded?.outputMetric?.matrix
                    expanded?.allocationMetric = .some(previous)
                    expanded?.outputMetric = (metric, "the network's outputs (the end-to-end metric that calibration measured)")
                }
            case .ttLinear, .ttConv2d:
                preconditionFailure("TT layers are not compressed again")
            }
        }
        var proxy: GraphLayer.Site.Proxy?
        if case let .graph(node) = planned.source { proxy = node.site?.proxy }
        return PreparedLayer(layer: layer, input: input, batch: batch, statistics: expanded, proxy: proxy)
    }
}
