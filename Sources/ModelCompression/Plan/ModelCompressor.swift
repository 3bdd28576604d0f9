import Decompositions
import Foundation
import NNLayers
import TensorIO
import TensorModule

/// Compresses the layers of a model: a safetensors state dict (``compress(_:progress:)``) or an
/// ONNX graph (``compress(onnx:progress:)``). The library behind `tensor-compress compress`.
///
/// Both share the options and the per-layer step: each candidate layer is built with its
/// settings (read from the graph, or from ``CompressionOptions/layerSettings`` for a state dict),
/// decomposed with `NNLayers`, and kept when its stack would not have fewer parameters and at most
/// as many FLOPs (unless ``CompressionOptions/allowGrowth``).
///
/// ```swift
/// let model = try SafetensorsFile(contentsOf: url)
/// var options = CompressionOptions()
/// options.rankSelection = .energy(0.9)
/// let result = try ModelCompressor(options: options).compress(model)
/// try result.writer.write(to: outputURL)
/// ```
public struct ModelCompressor: Sendable {
    /// The options, checked by ``init(options:)``.
    public let options: CompressionOptions

    /// A compressor with checked options: every range is checked here, once, whoever built the
    /// options (the command line only parses them).
    ///
    /// - Throws: ``ModelCompressionError/invalidOption(_:value:requirement:)`` for a rank below 1,
    ///   a negative iteration limit or size, a budget fraction outside `(0, 1]`, a regular
    ///   expression that does not compile, and the like;
    ///   ``ModelCompressionError/budgetWithoutStatistics`` for a budget without statistics that is
    ///   not ``CompressionOptions/dataFree``.
    public init(options: CompressionOptions) throws {
        func fail(_ name: CompressionOptionName, _ value: Any, _ requirement: OptionRequirement) -> ModelCompressionError {
            .invalidOption(name, value: "\(value)", requirement: requirement)
        }
        if let rank = options.rank, rank < 1 { throw fail(.rank, rank, .atLeastOne) }
        if let maxRank = options.maxRank, maxRank < 1 { throw fail(.maxRank, maxRank, .atLeastOne) }
        if let tolerance = options.tolerance, !(tolerance >= 0 && tolerance.isFinite) { throw fail(.tolerance, tolerance, .finiteAndNonNegative) }
        if options.maxIterations < 0 { throw fail(.maxIterations, options.maxIterations, .nonNegative) }
        if options.minimumParameters < 0 { throw fail(.minimumParameters, options.minimumParameters, .nonNegative) }
        if let jobs = options.jobs, jobs < 1 { throw fail(.jobs, jobs, .atLeastOne) }
        if let dtype = options.outputDType, !dtype.isFloatingPoint {
            throw fail(.outputDType, dtype.rawValue, .floatingPointType(["float16", "bfloat16", "float32", "float64"]))
        }
        if options.inputSize.height < 1 || options.inputSize.width < 1 { throw fail(.inputSize, options.inputSize, .positive) }
        if let budget = options.budget, !(budget.fraction > 0 && budget.fraction <= 1) { throw fail(.budget, budget, .fraction) }
        if options.rankMultiple < 1 { throw fail(.rankMultiple, options.rankMultiple, .atLeastOne) }
        if !(options.minimumBudgetShare >= 0 && options.minimumBudgetShare < 1) {
            throw fail(.minimumBudgetShare, options.minimumBudgetShare, .belowOne)
        }
        if let (name, weight) = options.layerWeights.sorted(by: { $0.key < $1.key }).first(where: { !($0.value >= 0 && $0.value.isFinite) }) {
            throw fail(.layerWeights, "\(weight) for \(name)", .finiteAndNonNegative)
        }
        if options.budget != nil && options.statistics == nil && !options.dataFree { throw ModelCompressionError.budgetWithoutStatistics }
        for (name, pattern) in [(CompressionOptionName.include, options.include), (.exclude, options.exclude)] {
            guard let pattern else { continue }
            do { _ = try Regex(pattern) } catch { throw fail(name, pattern, .regularExpression(error: "\(error)")) }
        }
        self.options = options
    }

    /// The test of ``CompressionOptions/include`` and ``CompressionOptions/exclude``, their
    /// expressions compiled once for all the names a reader passes it (the one filter of every
    /// format; `Regex` is not `Sendable`, so each reader makes its own).
    func nameFilter() -> (String) -> Bool {
        let include = options.include.flatMap { try? Regex($0) }, exclude = options.exclude.flatMap { try? Regex($0) }
        return { name in
            if let include, name.firstMatch(of: include) == nil { return false }
            if let exclude, name.firstMatch(of: exclude) != nil { return false }
            return true
        }
    }

    /// The decomposition the options choose for a convolution: SVD for 1×1 kernels when the conv
    /// method is CP or Tucker-2 (both reduce to a matrix factorization there, with more layers).
    func convDecomposition<Scalar>(for conv: Conv2D<Scalar>) -> ConvDecomposition {
        let selection = options.rank.map { LayerRankSelection.fixed([$0]) } ?? options.rankSelection
        let pointwise = conv.kernelSize == Size2D(1)
        switch options.conv {
        case .cp: return pointwise ? .svd(selection) : .cp(selection, maxIterations: options.maxIterations)
        case .tucker2: return pointwise ? .svd(selection) : .tucker2(options.rank.map { .fixed([$0, $0]) } ?? options.rankSelection)
        case .tt: return .tensorTrain(maxRank: options.maxRank ?? options.rank, tolerance: options.tolerance)
        case .none: preconditionFailure("convolutions are not candidates when the conv method is none")
        }
    }

    /// The decomposition the options choose for a linear layer.
    func linearDecomposition() -> LinearDecomposition {
        switch options.linear {
        case .svd: return .svd(options.rank.map { LayerRankSelection.fixed([$0]) } ?? options.rankSelection)
        case .tt: return .tensorTrain(maxRank: options.maxRank ?? options.rank, tolerance: options.tolerance)
        case .none: preconditionFailure("linear layers are not candidates when the linear method is none")
        }
    }

    /// One layer decomposed and costed: the compressed layer and its report, whose status says
    /// whether the stack replaces the layer (it is kept when it would grow, unless allowed).
    ///
    /// - Parameters:
    ///   - prepared: The layer (a convolution or a linear layer) with one sample's input shape for
    ///     the cost (`[C, H, W]` or `[…, features]`), the samples per input (multiplied into the
    ///     FLOP counts) and its expanded statistics, if any.
    ///   - name: The layer's name in reports.
    ///   - shape: The weight's shape as stored.
    ///   - ranks: Ranks chosen by a budget allocation, in place of the options' rule.
    func compress<Scalar: BLASScalar>(
        _ prepared: PreparedLayer<Scalar>, name: String, shape: [Int], ranks: [Int]? = nil
    ) throws -> (CompressedLayer<Scalar>?, LayerReport) {
        let clock = ContinuousClock()
        let start = clock.now
        let compressed: CompressedLayer<Scalar>
        let (statistics, input, batch) = (prepared.statistics, prepared.input, prepared.batch)
        switch prepared.layer {
        case let .conv2d(conv):
            var method = convDecomposition(for: conv)
            if let ranks {
                switch method {
                case .svd: method = .svd(.fixed(ranks))
                case .tucker2: method = .tucker2(.fixed(ranks))
                case let .cp(_, iterations, seed): method = .cp(.fixed(ranks), maxIterations: iterations, seed: seed)
                case .tensorTrain: break
                }
            }
            if case let .cp(selection, iterations, seed) = method, let proxy = prepared.proxy, let axes = proxy.axes {
                // A 3-D convolution: CP with a factor per spatial axis, through its stand-in.
                var rule: RankSelection, rankReasons: [String]?
                switch selection {
                case let .kernel(kernelRule): rule = kernelRule
                case let .flopBudget(fraction):
                    let (rank, reason) = try proxy.cpRank(flopBudget: fraction, conv)
                    (rule, rankReasons) = (.fixed([rank]), [reason])
                }
                compressed = try conv.compressedCP(splittingHeight: Array(axes.kernel.prefix(2)), selection: rule, rankReasons: rankReasons,
                                                   maxIterations: iterations, seed: seed, statistics: statistics, options: options.dataAware)
            } else {
                compressed = try statistics.map { try conv.compressed(by: method, expanded: $0, options: options.dataAware) }
                    ?? conv.compressed(by: method, svdMethod: options.exactSVD ? .exact : .automatic)
            }
        case let .linear(linear):
            var method = linearDecomposition()
            if let ranks, case .svd = method { method = .svd(.fixed(ranks)) }
            compressed = try statistics.map { try linear.compressed(by: method, expanded: $0, options: options.dataAware) }
                ?? linear.compressed(by: method, svdMethod: options.exactSVD ? .exact : .automatic)
        case .ttLinear, .ttConv2d: preconditionFailure("TT layers are not compressed again")
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let cost = try prepared.proxy.map { $0.report(compressed) } ?? compressed.report(input: input)
        let (macsBefore, macsAfter) = (cost.originalMACs * batch, cost.macs * batch)
        var report = LayerReport(
            name: name, shape: shape, method: compressed.method, status: .replaced, ranks: compressed.ranks,
            parametersBefore: cost.originalParameters, parametersAfter: cost.parameters, macsBefore: macsBefore, macsAfter: macsAfter,
            relativeError: compressed.kernelRelativeError, converged: compressed.converged, iterations: compressed.iterations,
            seconds: seconds, reasons: compressed.reasons)
        report.outputError = compressed.outputRelativeError
        if (cost.parameters >= cost.originalParameters || cost.flops > cost.originalFLOPs) && !options.allowGrowth {
            report.status = .keptGrowth(parameters: cost.parameters, originalParameters: cost.originalParameters,
                                        flops: cost.flops * batch, originalFLOPs: cost.originalFLOPs * batch)
            (report.parametersAfter, report.macsAfter) = (cost.originalParameters, macsBefore)
        }
        return (compressed, report)
    }
}
