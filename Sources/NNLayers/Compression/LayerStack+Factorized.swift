import Decompositions
import TensorModule

extension LayerStack {
    /// The CP stack of Lebedev et al. for `conv`, from one CP tensor per group (each `(T/g, S/g, kh, kw)`, same rank):
    /// pointwise `S → g·R` (groups g), depthwise `kh×1` with the vertical stride, top/bottom padding
    /// and dilation, depthwise `1×kw` with the horizontal ones, pointwise `g·R → T` (groups g) with
    /// the weights `λ` folded in and the original bias.
    ///
    /// A depthwise layer that would not act (a kernel of 1 with stride 1 and no padding along its
    /// axis, as for a `1×k` kernel or a 1-D convolution) is a per-channel scale: it is folded into
    /// the first layer and left out, so a `1×k` kernel gives pointwise → depthwise `1×k` → pointwise.
    ///
    /// - Throws: ``NNLayersError/factorShapes(layer:shapes:expected:)`` when the factors do not fit the convolution.
    public init(cp factors: [CPTensor<Scalar>], replacing conv: Conv2D<Scalar>) throws {
        let g = conv.groups
        let (tg, sg, kh, kw) = (conv.outChannels / g, conv.weight.shape[1], conv.kernelSize.height, conv.kernelSize.width)
        guard factors.count == g, let rank = factors.first?.rank, factors.allSatisfy({ $0.rank == rank && $0.shape == [tg, sg, kh, kw] }) else {
            throw NNLayersError.factorShapes(layer: "LayerStack(cp:) for \(conv.summary)", shapes: factors.map(\.shape),
                                             expected: [[Int]](repeating: [tg, sg, kh, kw], count: g))
        }
        let (vertical, horizontal) = (conv.cpActsVertically, conv.cpActsHorizontally)
        var first = [Scalar](), heights = [Scalar](), widths = [Scalar](), last = [Scalar](repeating: 0, count: conv.outChannels * rank)
        for (group, cp) in factors.enumerated() {
            let (aT, aS, aH, aW) = (cp.factors[0], cp.factors[1], cp.factors[2], cp.factors[3])
            for r in 0..<rank {
                // The factor of an axis that does not act is the scalar a[0, r].
                let scale = (vertical ? 1 : aH[0, r]) * (horizontal ? 1 : aW[0, r])
                first += (0..<sg).map { scale * aS[$0, r] }
                if vertical { heights += (0..<kh).map { aH[$0, r] } }
                if horizontal { widths += (0..<kw).map { aW[$0, r] } }
            }
            for t in 0..<tg { for r in 0..<rank { last[(group * tg + t) * rank + r] = cp.weights[r] * aT[t, r] } }
        }
        let width = g * rank
        layers = [.conv2d(try Conv2D(weight: Tensor(shape: [width, sg, 1, 1], scalars: first), groups: g))]
        if vertical {
            layers.append(.conv2d(try Conv2D.depthwise(
                weight: Tensor(shape: [width, 1, kh, 1], scalars: heights), channels: width, stride: Size2D(conv.stride.height, 1),
                padding: Padding(top: conv.padding.top, bottom: conv.padding.bottom, left: 0, right: 0), dilation: Size2D(conv.dilation.height, 1))))
        }
        if horizontal {
            layers.append(.conv2d(try Conv2D.depthwise(
                weight: Tensor(shape: [width, 1, 1, kw], scalars: widths), channels: width, stride: Size2D(1, conv.stride.width),
                padding: Padding(top: 0, bottom: 0, left: conv.padding.left, right: conv.padding.right), dilation: Size2D(1, conv.dilation.width))))
        }
        layers.append(.conv2d(try Conv2D(weight: Tensor(shape: [conv.outChannels, rank, 1, 1], scalars: last), bias: conv.bias, groups: g)))
    }

    /// The Tucker-2 stack of Kim et al. for `conv`, from one Tucker tensor per group over modes
    /// `[0, 1]` (core `(R_out, R_in, kh, kw)`, factors `U_T`, `U_S`): pointwise `S → g·R_in`
    /// (groups g), a `kh×kw` conv `g·R_in → g·R_out` (groups g) with the original stride, padding and
    /// dilation, pointwise `g·R_out → T` (groups g) with the bias. A full output rank (`R_out = T/g`)
    /// folds `U_T` into the core and drops the last layer; a full input rank (`R_in = S/g`) folds
    /// `U_S` and drops the first (Tucker-1, with fewer MACs and the same function).
    ///
    /// - Throws: ``NNLayersError/factorShapes(layer:shapes:expected:)`` when the factors do not fit the convolution.
    public init(tucker2 factors: [TuckerTensor<Scalar>], replacing conv: Conv2D<Scalar>) throws {
        let g = conv.groups
        let (tg, sg, kh, kw) = (conv.outChannels / g, conv.weight.shape[1], conv.kernelSize.height, conv.kernelSize.width)
        guard factors.count == g, let ranks = factors.first?.ranks,
              factors.allSatisfy({ $0.modes == [0, 1] && $0.ranks == ranks && $0.shape == [tg, sg, kh, kw] }) else {
            throw NNLayersError.factorShapes(layer: "LayerStack(tucker2:) over modes [0, 1] for \(conv.summary)", shapes: factors.map(\.shape),
                                             expected: [[Int]](repeating: [tg, sg, kh, kw], count: g))
        }
        let (rOut, rIn) = (ranks[0], ranks[1])
        var first = [Scalar](), core = [Scalar](), last = [Scalar](repeating: 0, count: conv.outChannels * rOut)
        // A full rank needs no factor layer: U_T (or U_S) is folded into the core, exactly.
        let foldOutput = rOut == tg, foldInput = rIn == sg && !foldOutput
        var folded = [Scalar]()
        for (group, t) in factors.enumerated() {
            let (uT, uS) = (t.factors[0], t.factors[1])
            for b in 0..<rIn { first += (0..<sg).map { uS[$0, b] } }
            core += t.core.scalars
            for row in 0..<tg { for a in 0..<rOut { last[(group * tg + row) * rOut + a] = uT[row, a] } }
            if foldOutput { folded += try t.core.modeProduct(uT, mode: 0).scalars }
            if foldInput { folded += try t.core.modeProduct(uS, mode: 1).scalars }
        }
        let firstLayer = Layer.conv2d(try Conv2D(weight: Tensor(shape: [g * rIn, sg, 1, 1], scalars: first), groups: g))
        let lastLayer = Layer.conv2d(try Conv2D(weight: Tensor(shape: [conv.outChannels, rOut, 1, 1], scalars: last), bias: conv.bias, groups: g))
        if foldOutput {
            layers = [firstLayer, .conv2d(try Conv2D(weight: Tensor(shape: [conv.outChannels, rIn, kh, kw], scalars: folded), bias: conv.bias,
                                                     stride: conv.stride, padding: conv.padding, dilation: conv.dilation, groups: g))]
        } else if foldInput {
            layers = [.conv2d(try Conv2D(weight: Tensor(shape: [g * rOut, sg, kh, kw], scalars: folded), stride: conv.stride,
                                         padding: conv.padding, dilation: conv.dilation, groups: g)), lastLayer]
        } else {
            layers = [
                firstLayer,
                .conv2d(try Conv2D(weight: Tensor(shape: [g * rOut, rIn, kh, kw], scalars: core), stride: conv.stride,
                                   padding: conv.padding, dilation: conv.dilation, groups: g)),
                lastLayer,
            ]
        }
    }

    /// The stack with its last layer's bias replaced.
    func replacingLastBias(_ bias: [Scalar]?) throws -> LayerStack {
        guard case let .conv2d(last) = layers.last else { preconditionFailure("replacingLastBias: the stack ends in a convolution") }
        var copy = self
        copy.layers[copy.layers.count - 1] = .conv2d(try Conv2D(weight: last.weight, bias: bias, stride: last.stride, padding: last.padding,
                                                                dilation: last.dilation, groups: last.groups))
        return copy
    }

    /// The SVD stack for a 1×1 convolution, from one factorization per group (each of the group's
    /// `(T/g, S/g)` matrix, same rank t): pointwise `S → g·t` (groups g) with `Σ_t V_tᵀ` and the
    /// original stride and padding, then pointwise `g·t → T` (groups g) with `U_t` and the bias.
    ///
    /// - Throws: ``NNLayersError/svdNeedsPointwise(kernel:)`` for a kernel that is not 1×1,
    ///   ``NNLayersError/factorShapes(layer:shapes:expected:)`` when the factors do not fit.
    public init(svd factors: [SVDFactors<Scalar>], replacing conv: Conv2D<Scalar>) throws {
        guard conv.kernelSize == Size2D(1) else { throw NNLayersError.svdNeedsPointwise(kernel: conv.kernelSize.array) }
        let g = conv.groups
        let (tg, sg) = (conv.outChannels / g, conv.weight.shape[1])
        guard factors.count == g, let rank = factors.first?.rank, factors.allSatisfy({ $0.rank == rank && $0.shape == [tg, sg] }) else {
            throw NNLayersError.factorShapes(layer: "LayerStack(svd:) for \(conv.summary)", shapes: factors.map(\.shape),
                                             expected: [[Int]](repeating: [tg, sg], count: g))
        }
        var first = [Scalar](), last = [Scalar]()
        first.reserveCapacity(g * rank * sg)
        last.reserveCapacity(conv.outChannels * rank)
        for f in factors {
            first += f.vt.scalingRows(by: f.singularValues).scalars
            last += f.u.scalars
        }
        layers = [
            .conv2d(try Conv2D(weight: Tensor(shape: [g * rank, sg, 1, 1], scalars: first), stride: conv.stride, padding: conv.padding, groups: g)),
            .conv2d(try Conv2D(weight: Tensor(shape: [conv.outChannels, rank, 1, 1], scalars: last), bias: conv.bias, groups: g)),
        ]
    }

    /// The SVD stack for a linear layer: Linear(in → t, `Σ_t V_tᵀ`, no bias), then Linear(t → out, `U_t`, original bias).
    public init(svd f: SVDFactors<Scalar>, replacing linear: Linear<Scalar>) throws {
        guard f.shape == linear.weight.shape else {
            throw NNLayersError.factorShapes(layer: "LayerStack(svd:) for \(linear.summary)", shapes: [f.shape], expected: [linear.weight.shape])
        }
        layers = [
            .linear(try Linear(weight: f.vt.scalingRows(by: f.singularValues))),
            .linear(try Linear(weight: f.u, bias: linear.bias)),
        ]
    }
}
