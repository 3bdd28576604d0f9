import Decompositions
import TensorModule

/// The tensor-train convolution of Garipov, Podoprikhin, Novikov and Vetrov (2016,
/// arXiv:1611.03214): the kernel reshaped to `(kh·kw, t_1 s_1, …, t_d s_d)` in TT format, with
/// `T = ∏ t_k` output and `S = ∏ s_k` input channels.
///
/// The forward pass applies the spatial core as a depthwise convolution with multiplier `r_0`
/// (every input channel gets the same `r_0` spatial filters, with the layer's stride, padding and
/// dilation), then the channel cores as a TT-matrix product per output pixel:
///
/// ```text
/// K[t, s, p, q] = Σ G_0[(p, q), r_0] · C_1[r_0, t_1, s_1, r_1] ⋯ C_d[r_{d−1}, t_d, s_d, 1]
/// z[n, (s, r_0), i, j] = Σ_{p,q} G_0[(p, q), r_0] · x[n, s, i·s_h + p·d_h − top, j·s_w + q·d_w − left]
/// y[n, t, i, j] = b[t] + Σ_{r_0, s} C[r_0; t, s] · z[n, (s, r_0), i, j]
/// ```
public struct TTConv2D<Scalar: BLASScalar>: Sendable, Equatable, Codable {
    /// The spatial core as a depthwise weight: `(S·r_0, 1, kh, kw)`, the same `r_0` filters for every input channel.
    public let spatial: Conv2D<Scalar>
    /// The channel cores as a TT-matrix with `r_0` folded into the first input mode:
    /// rows `(t_1, …, t_d)`, columns `(r_0·s_1, s_2, …, s_d)`.
    public let channels: TTMatrix<Scalar>
    /// The rank between the spatial and the first channel core.
    public let spatialRank: Int
    /// `[t_1, …, t_d]`.
    public let outputModes: [Int]
    /// `[s_1, …, s_d]`.
    public let inputModes: [Int]
    /// One bias per output channel, or `nil`.
    public let bias: [Scalar]?

    /// Builds the layer from the TT cores of the reshaped kernel.
    ///
    /// - Parameters:
    ///   - cores: `G_0` of shape `(1, kh·kw, r_0)` and `C_k` of shape `(r_{k−1}, t_k·s_k, r_k)` (TT-SVD output).
    ///   - kernelSize: The spatial size `(kh, kw)` of the original kernel.
    ///   - outputModes: `[t_1, …, t_d]`, the factorization of the output channels.
    ///   - inputModes: `[s_1, …, s_d]`, the factorization of the input channels.
    ///   - stride: The original convolution's stride.
    ///   - padding: The original convolution's padding.
    ///   - dilation: The original convolution's dilation.
    ///   - bias: The original convolution's bias, or `nil`.
    /// - Throws: ``NNLayersError/factorShapes(layer:shapes:expected:)`` for cores that do not fit,
    ///   ``NNLayersError/biasCount(layer:count:expected:)``.
    public init(
        cores: [Tensor<Scalar>], kernelSize: Size2D, outputModes: [Int], inputModes: [Int],
        stride: Size2D, padding: Padding, dilation: Size2D, bias: [Scalar]?
    ) throws {
        let d = outputModes.count
        // The expected shapes, with −1 for the ranks that the cores choose.
        let expected = [[1, kernelSize.height * kernelSize.width, -1]] + zip(outputModes, inputModes).map { [-1, $0 * $1, -1] }
        guard cores.count == d + 1, inputModes.count == d, cores.allSatisfy({ $0.order == 3 }),
              cores[0].shape[0] == 1, cores[0].shape[1] == kernelSize.height * kernelSize.width,
              (0..<d).allSatisfy({ cores[$0 + 1].shape[1] == outputModes[$0] * inputModes[$0] }) else {
            throw NNLayersError.factorShapes(layer: "TTConv2D", shapes: cores.map(\.shape), expected: expected)
        }
        let r0 = cores[0].shape[2]
        let s = inputModes.reduce(1, *)
        // Spatial core → depthwise weight (S·r0, 1, kh, kw): channel s·r0 + r holds G_0[:, r].
        let g0 = try Matrix(reshaping: cores[0], rows: kernelSize.height * kernelSize.width, columns: r0).transposed()   // r0 × (kh·kw)
        var spatialWeight = [Scalar]()
        spatialWeight.reserveCapacity(s * g0.scalars.count)
        for _ in 0..<s { spatialWeight.append(contentsOf: g0.scalars) }
        spatial = try Conv2D.depthwise(
            weight: Tensor(shape: [s * r0, 1, kernelSize.height, kernelSize.width], scalars: spatialWeight),
            channels: s, stride: stride, padding: padding, dilation: dilation)
        // Channel cores → TT-matrix cores (r, t_k, s_k, r'); the first folds r0 into its input mode.
        var matrixCores: [Tensor<Scalar>] = []
        for k in 0..<d {
            let core = cores[k + 1]
            let (ra, rb) = (core.shape[0], core.shape[2])
            let split = try core.reshaped(to: [ra, outputModes[k], inputModes[k], rb])
            if k == 0 {
                // (r0, t_1, s_1, r_1) → (1, t_1, r0·s_1, r_1)
                let moved = try split.transposed(permutation: [1, 0, 2, 3])
                matrixCores.append(try moved.reshaped(to: [1, outputModes[0], ra * inputModes[0], rb]))
            } else {
                matrixCores.append(split)
            }
        }
        channels = try TTMatrix(cores: matrixCores)
        spatialRank = r0
        self.outputModes = outputModes
        self.inputModes = inputModes
        if let bias, bias.count != outputModes.reduce(1, *) {
            throw NNLayersError.biasCount(layer: "TTConv2D", count: bias.count, expected: outputModes.reduce(1, *))
        }
        self.bias = bias
    }

    /// Input channels `S = ∏ s_k`.
    public var inChannels: Int { inputModes.reduce(1, *) }
    /// Output channels `T = ∏ t_k`.
    public var outChannels: Int { outputModes.reduce(1, *) }

    /// The convolution of an NCHW batch, without forming the kernel.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func callAsFunction(_ x: Tensor<Scalar>) throws -> Tensor<Scalar> {
        guard x.order == 4, x.shape[1] == inChannels else {
            throw NNLayersError.inputShape(layer: "TTConv2D", expected: "(N, \(inChannels), H, W)", actual: x.shape)
        }
        let z = try spatial(x)                                          // (N, S·r0, Ho, Wo), channel s·r0 + r
        let (n, pixels) = (z.shape[0], z.shape[2] * z.shape[3])
        // (N, S, r0, Ho·Wo) → (r0, S, N, Ho·Wo): one column per output pixel, rows r0-major as the
        // channel cores expect. Whole rows of Ho·Wo scalars move; for N = 1 the result is (T, Ho·Wo) already.
        let columns = try z.reshaped(to: [n, inChannels, spatialRank, pixels]).transposed(permutation: [2, 1, 0, 3])
        let product = try channels.applied(toColumns: Matrix(reshaping: columns, rows: spatialRank * inChannels, columns: n * pixels))
        var y = try Tensor(product).reshaped(to: [outChannels, n, pixels]).transposed(permutation: [1, 0, 2])
            .reshaped(to: [n, outChannels, z.shape[2], z.shape[3]])
        if let bias { y = y.addingBias(bias, axis: 1) }
        return y
    }

    /// Parameters: the spatial core once (the depthwise weight repeats it for every input
    /// channel), the channel cores and the bias.
    public var parameterCount: Int {
        spatialRank * spatial.kernelSize.height * spatial.kernelSize.width + channels.parameterCount + (bias?.count ?? 0)
    }

    /// Parameters, FLOPs and output shape for one sample of shape `[C, H, W]`.
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` when the shape does not fit,
    ///   ``NNLayersError/countOverflow(quantity:factors:)`` for counts beyond `Int`.
    public func cost(input shape: [Int]) throws -> LayerCost {
        guard shape.count == 3, shape[0] == inChannels else {
            throw NNLayersError.inputShape(layer: summary, expected: "[\(inChannels), H, W]", actual: shape)
        }
        let out = try spatial.outputSize(height: shape[1], width: shape[2])
        let pixels = try checkedProduct([out.height, out.width], "the output pixels of \(summary) for input \(shape)")
        let spatialFlops = try checkedProduct([2, spatial.outChannels, spatial.kernelSize.height, spatial.kernelSize.width, pixels],
                                              "the FLOP count of \(summary) for input \(shape)")
        let channelFlops: Int
        do { channelFlops = try channels.flops(batch: pixels) } catch {
            throw NNLayersError.countOverflow(quantity: "the FLOP count of \(summary) for input \(shape)", factors: [pixels, inChannels, outChannels])
        }
        let flops = try checkedSum(spatialFlops, channelFlops, "the FLOP count of \(summary) for input \(shape)")
        return LayerCost(parameters: parameterCount, flops: flops, outputShape: [outChannels, out.height, out.width])
    }

    /// The TT cores of the reshaped kernel, as given to ``init(cores:kernelSize:outputModes:inputModes:stride:padding:dilation:bias:)``.
    public var rawCores: [Tensor<Scalar>] {
        let (kh, kw) = (spatial.kernelSize.height, spatial.kernelSize.width)
        // Depthwise channel r of input channel 0 holds G_0[:, r]: the first r0 rows of the depthwise weight.
        let first = Matrix(uncheckedRows: spatialRank, columns: kh * kw, scalars: ContiguousArray(spatial.weight.scalars.prefix(spatialRank * kh * kw)))
        var cores = [Tensor(uncheckedShape: [1, kh * kw, spatialRank], scalars: first.transposed().scalars)]
        for (k, core) in channels.cores.enumerated() {
            let (ra, t, s, rb) = (core.shape[0], core.shape[1], core.shape[2], core.shape[3])
            if k == 0 {
                // (1, t_1, r0·s_1, r_1) → (r0, t_1, s_1, r_1) → (r0, t_1·s_1, r_1)
                let split = Tensor(uncheckedShape: [t, spatialRank, s / spatialRank, rb], scalars: core.scalars).permutedUnchecked([1, 0, 2, 3])
                cores.append(Tensor(uncheckedShape: [spatialRank, t * (s / spatialRank), rb], scalars: split.scalars))
            } else {
                cores.append(Tensor(uncheckedShape: [ra, t * s, rb], scalars: core.scalars))
            }
        }
        return cores
    }

    /// A one-line description.
    public var summary: String {
        "tt-conv \(inChannels)→\(outChannels) \(spatial.kernelSize.height)×\(spatial.kernelSize.width) modes \(inputModes)→\(outputModes) ranks \([spatialRank] + Array(channels.ranks.dropFirst()))"
    }
}
