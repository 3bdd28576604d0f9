import Decompositions
import TensorModule

/// Parameters and FLOPs of a layer and of the stack that replaces it, for one input sample.
public struct CompressionReport: Sendable, Equatable, Codable {
    /// Parameters of the original layer.
    public var originalParameters: Int
    /// Parameters of the replacement stack.
    public var parameters: Int
    /// FLOPs of the original layer for one sample.
    public var originalFLOPs: Int
    /// FLOPs of the replacement stack for one sample.
    public var flops: Int

    /// A report from its counts.
    public init(originalParameters: Int, parameters: Int, originalFLOPs: Int, flops: Int) {
        (self.originalParameters, self.parameters, self.originalFLOPs, self.flops) = (originalParameters, parameters, originalFLOPs, flops)
    }

    /// Multiply-adds of the original layer for one sample: half of ``originalFLOPs``.
    public var originalMACs: Int { originalFLOPs / 2 }
    /// Multiply-adds of the replacement stack for one sample: half of ``flops``.
    public var macs: Int { flops / 2 }

    /// `originalParameters / parameters`.
    public var compression: Double { Double(originalParameters) / Double(Swift.max(parameters, 1)) }
    /// `originalFLOPs / flops`: the speed-up the FLOP counts predict.
    public var predictedSpeedup: Double { Double(originalFLOPs) / Double(Swift.max(flops, 1)) }
}

/// A layer replaced by a stack of smaller layers, with how it was chosen.
public struct CompressedLayer<Scalar: BLASScalar>: Sendable {
    /// The layer that was decomposed.
    public var original: Layer<Scalar>
    /// The layers that replace it.
    public var stack: LayerStack<Scalar>
    /// The decomposition used.
    public var method: CompressionMethod
    /// The ranks used.
    public var ranks: [Int]
    /// `‖W − Ŵ‖_F / ‖W‖_F` of the kernel.
    public var kernelRelativeError: Double
    /// Why the ranks were chosen.
    public var reasons: [String]
    /// Whether an iterative decomposition (CP-ALS) met its tolerance; `true` for the direct ones.
    public var converged: Bool
    /// Iterations of an iterative decomposition (the most over groups), `0` for the direct ones.
    public var iterations: Int
    /// `‖(W − Ŵ) X‖ / ‖W X‖` on the calibration inputs (after bias correction), when the layer was
    /// compressed with ``InputStatistics``; `nil` without data.
    public var outputRelativeError: Double? = nil

    /// A compressed layer from its parts.
    public init(original: Layer<Scalar>, stack: LayerStack<Scalar>, method: CompressionMethod, ranks: [Int], kernelRelativeError: Double,
                reasons: [String], converged: Bool = true, iterations: Int = 0) {
        self.original = original
        self.stack = stack
        self.method = method
        self.ranks = ranks
        self.kernelRelativeError = kernelRelativeError
        self.reasons = reasons
        self.converged = converged
        self.iterations = iterations
    }

    /// Parameters and FLOPs before and after, for one sample of the given shape.
    public func report(input shape: [Int]) throws -> CompressionReport {
        let before = try original.cost(input: shape)
        let after = try stack.cost(input: shape)
        return CompressionReport(originalParameters: before.parameters, parameters: after.parameters,
                                 originalFLOPs: before.flops, flops: after.flops)
    }

    /// A one-line description: method, ranks, error, the stack, and whether CP-ALS stopped at its
    /// iteration limit without converging.
    public var summary: String {
        "\(method) ranks \(ranks): \(stack.summary) "
            + "(\(stack.parameterCount) parameters vs \(original.parameterCount), kernel error \(kernelRelativeError)"
            + (converged ? ")" : "; not converged after \(iterations) iterations)")
    }
}
