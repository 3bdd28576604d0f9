import Decompositions
import TensorModule

extension Linear {
    /// This layer replaced by two smaller linear layers (SVD) or a TT layer.
    ///
    /// ```swift
    /// let svd = try fc.compressed(by: .svd(.fixed([64])))
    /// let y = try svd.stack(x)          // ≈ fc(x)
    /// ```
    ///
    /// - Parameters:
    ///   - method: The decomposition and its rank rule.
    ///   - svdMethod: The route of the truncated SVD (default automatic: block Krylov for
    ///     large matrices at small ranks, else LAPACK's exact `gesdd`).
    /// - Throws: the decompositions' errors for impossible ranks or modes.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func compressed(by method: LinearDecomposition, svdMethod: SVDMethod = .automatic) throws -> CompressedLayer<Scalar> {
        switch method {
        case let .svd(selection):
            let choice: RankChoice
            switch selection {
            case let .flopBudget(fraction):
                let (rank, reason) = try svdRank(flopBudget: fraction)
                choice = RankChoice(ranks: [rank], reasons: [reason])
            case let .kernel(rule):
                choice = try selectRanks(for: Tensor(weight), modes: [0], selection: rule)
            }
            let f = try svd(weight, rank: choice.ranks[0], method: svdMethod)
            let stack = try LayerStack(svd: f, replacing: self)
            return CompressedLayer(original: .linear(self), stack: stack, method: .svd, ranks: choice.ranks,
                                   kernelRelativeError: Double(try f.relativeError(to: Tensor(weight))), reasons: choice.reasons)
        case let .tensorTrain(outputModes, inputModes, maxRank, tolerance):
            let outModes = outputModes ?? balancedFactorization(outFeatures, count: 3)
            let inModes = inputModes ?? balancedFactorization(inFeatures, count: outModes.count)
            let tt = try ttMatrixDecompose(weight, rowModes: outModes, columnModes: inModes, maxRank: maxRank, tolerance: tolerance)
            let layer = try TTLinear(weight: tt, bias: bias)
            return CompressedLayer(original: .linear(self), stack: LayerStack([.ttLinear(layer)]), method: .tensorTrain, ranks: tt.ranks,
                                   kernelRelativeError: Double(try tt.relativeError(to: Tensor(weight))),
                                   reasons: ["TT-matrix with output modes \(outModes), input modes \(inModes)"
                                             + (tolerance.map { ", tolerance \($0)" } ?? "") + (maxRank.map { ", max rank \($0)" } ?? "")])
        }
    }
}
