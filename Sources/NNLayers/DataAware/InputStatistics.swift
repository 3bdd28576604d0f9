import TensorModule

/// Calibration statistics of a layer's inputs: the number of input vectors, their mean and their
/// second moment (Gram matrix), in `Double`, per group.
///
/// For a linear layer (`Linear`, ONNX `Gemm`/`MatMul`) an input vector is one row of features
/// (`d = in`); for a convolution it is one im2col patch of a group, `d = (C/g)·kh·kw`, with the
/// patch index ordered `(channel, kernel row, kernel column)` like a kernel row `W[t, :, :, :]`,
/// so that a convolution is the linear map `y = W_(0) x` on patches. The output error of a
/// replacement `Ŵ` is then, over the calibration inputs,
///
/// ```text
/// ‖(W − Ŵ) X‖²_F / n = tr((W − Ŵ) G (W − Ŵ)ᵀ),   G = X Xᵀ / n,   μ = X 1 / n
/// ```
///
/// Statistics add up: two partial statistics of the same layer merge into those of all their
/// samples (``merged(with:)``), so calibration can run in batches and in parallel.
///
/// ```swift
/// var stats = InputStatistics(dimension: 384)
/// try stats.accumulate(rows: activations)                // (…, 384) activations of the layer's input
/// let covariance = stats.covariance(group: 0)             // G − μμᵀ
/// ```
public struct InputStatistics: Sendable, Equatable {
    /// Input vectors accumulated (per group; every group sees the same count).
    public private(set) var count: Double
    /// The mean input vector of each group.
    public private(set) var means: [[Double]]
    /// The second moment `E[x xᵀ]` of each group, `d × d`.
    public private(set) var grams: [Matrix<Double>]

    /// ``count`` as a whole number, or in exponent form when it is beyond 10¹⁵ (a count read
    /// from a file may be any finite value).
    public var countDescription: String {
        count < 1e15 ? String(Int(count)) : "\(count)"
    }
    /// The vector length `d`.
    public var dimension: Int { means.first?.count ?? 0 }
    /// The number of groups.
    public var groups: Int { means.count }

    /// Empty statistics of `groups` groups of `dimension`-vectors.
    ///
    /// - Precondition: `dimension >= 1` and `groups >= 1`.
    public init(dimension: Int, groups: Int = 1) {
        precondition(dimension >= 1 && groups >= 1, "InputStatistics: dimension \(dimension) and groups \(groups) must be at least 1")
        count = 0
        means = [[Double]](repeating: [Double](repeating: 0, count: dimension), count: groups)
        grams = [Matrix<Double>](repeating: .zeros(rows: dimension, columns: dimension), count: groups)
    }

    /// Statistics from their parts (as read from a file).
    ///
    /// - Throws: ``NNLayersError/statistics(_:)`` when the shapes disagree, the count is
    ///   negative, a value is not finite, or a Gram matrix cannot be a second moment (a negative
    ///   variance, an entry beyond Cauchy–Schwarz).
    public init(count: Double, means: [[Double]], grams: [Matrix<Double>]) throws {
        guard count >= 0, count.isFinite, !means.isEmpty, means.count == grams.count else {
            throw NNLayersError.statistics(.parts(count: count, means: means.count, grams: grams.count))
        }
        let d = means[0].count
        guard d >= 1, means.allSatisfy({ $0.count == d }), grams.allSatisfy({ $0.rows == d && $0.columns == d }) else {
            throw NNLayersError.statistics(.partShapes(meanLengths: means.map(\.count), gramShapes: grams.map(\.shape)))
        }
        guard means.allSatisfy({ $0.allSatisfy(\.isFinite) }), grams.allSatisfy({ $0.scalars.allSatisfy(\.isFinite) }) else {
            throw NNLayersError.statistics(.nonFiniteEntry)
        }
        // A second moment E[x xᵀ] is positive semidefinite and dominates μμᵀ: every variance
        // G_ii − μ_i² is non-negative and every |G_ij| ≤ √(G_ii G_jj) (Cauchy–Schwarz). A file
        // that breaks either is not statistics of any inputs (checks in O(d²); the whitening
        // checks the eigenvalues too).
        for (g, (gram, mean)) in zip(grams, means).enumerated() {
            for i in 0..<d {
                let variance = gram[i, i] - mean[i] * mean[i]
                guard gram[i, i] >= 0, variance >= -1e-9 * Swift.max(gram[i, i], mean[i] * mean[i]) else {
                    throw NNLayersError.statistics(.negativeVariance(group: g, input: i, secondMoment: gram[i, i], mean: mean[i]))
                }
                for j in 0..<i where abs(gram[i, j]) > (gram[i, i] * gram[j, j]).squareRoot() * (1 + 1e-9) + 1e-300 {
                    throw NNLayersError.statistics(.notSemidefinite(group: g, row: i, column: j, entry: gram[i, j], bound: (gram[i, i] * gram[j, j]).squareRoot()))
                }
            }
        }
        (self.count, self.means, self.grams) = (count, means, grams)
    }

    /// The covariance `G − μμᵀ` of a group.
    public func covariance(group: Int = 0) -> Matrix<Double> {
        var c = grams[group]
        let mu = means[group]
        let d = dimension
        c.withUnsafeMutableBufferPointer { p in
            for i in 0..<d { for j in 0..<d { p[i * d + j] -= mu[i] * mu[j] } }
        }
        return c
    }

    /// These statistics and `other` as one: counts add, means and moments average by count.
    ///
    /// - Throws: ``NNLayersError/statistics(_:)`` when the dimensions or group counts differ.
    public func merged(with other: InputStatistics) throws -> InputStatistics {
        guard other.dimension == dimension, other.groups == groups else {
            throw NNLayersError.statistics(.unmergeable(groups: groups, dimension: dimension, otherGroups: other.groups, otherDimension: other.dimension))
        }
        let total = count + other.count
        guard total > 0 else { return self }
        let (a, b) = (count / total, other.count / total)
        var result = self
        result.count = total
        for g in 0..<groups {
            result.means[g] = zip(means[g], other.means[g]).map { a * $0 + b * $1 }
            result.grams[g] = a * grams[g] + b * other.grams[g]
        }
        return result
    }

    /// Adds `n` vectors whose sum is `sum` and whose sum of outer products is `outer` to group `g`.
    mutating func add(group g: Int, n: Double, sum: [Double], outer: Matrix<Double>) {
        let total = count + n
        guard n > 0 else { return }
        let old = count / total
        means[g] = zip(means[g], sum).map { old * $0 + $1 / total }
        grams[g] = old * grams[g] + (1 / total) * outer
    }

    /// Accumulates the rows of `x` (shape `(…, d)`): every row is one input vector of group 0.
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` when the last axis is not `d`,
    ///   ``NNLayersError/statistics(_:)`` for non-finite activations.
    public mutating func accumulate<Scalar: BLASScalar>(rows x: Tensor<Scalar>) throws {
        guard groups == 1, x.order >= 1, x.shape.last == dimension else {
            throw NNLayersError.inputShape(layer: "InputStatistics (d = \(dimension))", expected: "(…, \(dimension))", actual: x.shape)
        }
        if let index = x.firstNonFiniteIndex { throw NNLayersError.statistics(.nonFiniteActivation(index: index)) }
        let rows = x.scalarCount / dimension
        guard rows > 0 else { return }
        let m = Matrix<Double>(uncheckedRows: rows, columns: dimension, scalars: ContiguousArray(x.scalars.lazy.map { Double($0) }))
        var sum = [Double](repeating: 0, count: dimension)
        m.withUnsafeBufferPointer { p in
            for r in 0..<rows { for j in 0..<dimension { sum[j] += p[r * dimension + j] } }
        }
        add(group: 0, n: Double(rows), sum: sum, outer: m.gram())
        count += Double(rows)
    }

    /// Accumulates the im2col patches of a convolution's NCHW input `x`, per group, with the
    /// convolution's kernel size, stride, padding (zeros enter the patches as they enter the
    /// convolution) and dilation.
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` when `x` does not fit the
    ///   convolution or `d ≠ (C/g)·kh·kw`, ``NNLayersError/statistics(_:)`` for non-finite activations.
    public mutating func accumulate<Scalar: BLASScalar>(patchesOf x: Tensor<Scalar>, for conv: Conv2D<Scalar>) throws {
        let groupIn = conv.inChannels / conv.groups
        let patch = groupIn * conv.kernelSize.height * conv.kernelSize.width
        guard groups == conv.groups, dimension == patch, x.order == 4, x.shape[1] == conv.inChannels else {
            throw NNLayersError.inputShape(layer: "InputStatistics (\(groups) groups, d = \(dimension)) for \(conv.summary)",
                                           expected: "(N, \(conv.inChannels), H, W) with d = \(patch)", actual: x.shape)
        }
        if let index = x.firstNonFiniteIndex { throw NNLayersError.statistics(.nonFiniteActivation(index: index)) }
        let (batch, height, width) = (x.shape[0], x.shape[2], x.shape[3])
        let out = try conv.outputSize(height: height, width: width)
        let pixels = out.height * out.width
        guard batch > 0, pixels > 0 else { return }
        var columns = [Scalar](repeating: 0, count: patch * pixels)
        var block = [Double](repeating: 0, count: patch * pixels)
        for g in 0..<conv.groups {
            var sum = [Double](repeating: 0, count: patch)
            var outer = Matrix<Double>.zeros(rows: patch, columns: patch)
            for n in 0..<batch {
                x.withUnsafeBufferPointer { xp in
                    columns.withUnsafeMutableBufferPointer { cp in
                        conv.im2col(input: xp.baseAddress! + (n * conv.inChannels + g * groupIn) * height * width, channels: groupIn,
                                    height: height, width: width, out: out, rows: 0..<out.height, columns: cp.baseAddress!)
                    }
                }
                for k in 0..<block.count { block[k] = Double(columns[k]) }
                for i in 0..<patch {
                    var s = 0.0
                    for k in 0..<pixels { s += block[i * pixels + k] }
                    sum[i] += s
                }
                // outer += P Pᵀ with P the (patch × pixels) block.
                block.withUnsafeBufferPointer { bp in
                    outer.withUnsafeMutableBufferPointer { op in
                        Double.syrk(transpose: false, n: patch, k: pixels, alpha: 1, a: bp.baseAddress!, lda: pixels,
                                    beta: 1, c: op.baseAddress!, ldc: patch)
                    }
                }
            }
            outer.withUnsafeMutableBufferPointer { op in
                for i in 0..<patch { for j in 0..<i { op[i * patch + j] = op[j * patch + i] } }
            }
            add(group: g, n: Double(batch * pixels), sum: sum, outer: outer)
        }
        count += Double(batch * pixels)
    }
}
