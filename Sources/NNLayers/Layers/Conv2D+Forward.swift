import TensorModule

extension Conv2D {
    /// The convolution of an NCHW batch.
    ///
    /// Pointwise convolutions run one GEMM per batch item and group; depthwise convolutions run
    /// direct loops whose inner loop is contiguous for stride 1; everything else runs im2col and
    /// one GEMM per batch item and group.
    ///
    /// - Throws: ``NNLayersError/inputShape(layer:expected:actual:)`` for an input that is not 4-D,
    ///   has the wrong channel count, or is smaller than the dilated kernel.
    /// - Complexity: the FLOPs of ``Layer/cost(input:)`` per batch item.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func callAsFunction(_ x: Tensor<Scalar>) throws -> Tensor<Scalar> {
        guard x.order == 4, x.shape[1] == inChannels else {
            throw NNLayersError.inputShape(layer: "Conv2D \(summary)", expected: "(N, \(inChannels), H, W)", actual: x.shape)
        }
        let (batch, height, width) = (x.shape[0], x.shape[2], x.shape[3])
        let out = try outputSize(height: height, width: width)
        var y = Tensor<Scalar>.zeros(shape: [batch, outChannels, out.height, out.width])
        if y.scalarCount == 0 { return y }
        x.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    if isDepthwise {
                        depthwiseForward(x: xp.baseAddress!, w: wp.baseAddress!, y: yp.baseAddress!, batch: batch,
                                         height: height, width: width, out: out)
                    } else {
                        gemmForward(x: xp.baseAddress!, w: wp.baseAddress!, y: yp.baseAddress!, batch: batch,
                                    height: height, width: width, out: out)
                    }
                }
            }
        }
        if let bias {
            let plane = out.height * out.width
            y.withUnsafeMutableBufferPointer { yp in
                for n in 0..<batch {
                    for t in 0..<outChannels {
                        let base = yp.baseAddress! + (n * outChannels + t) * plane
                        let b = bias[t]
                        for k in 0..<plane { base[k] += b }
                    }
                }
            }
        }
        return y
    }

    /// Pointwise and general convolutions: one GEMM per batch item and group, after im2col unless
    /// pointwise. The im2col matrix is built for a block of output rows at a time (about 256 KiB,
    /// but at least ~512 output pixels), so that it stays in cache for its GEMM, which writes that
    /// block of the output in place.
    func gemmForward(
        x: UnsafePointer<Scalar>, w: UnsafePointer<Scalar>, y: UnsafeMutablePointer<Scalar>,
        batch: Int, height: Int, width: Int, out: Size2D
    ) {
        let (kh, kw) = (kernelSize.height, kernelSize.width)
        let groupIn = inChannels / groups, groupOut = outChannels / groups
        let patch = groupIn * kh * kw
        let plane = out.height * out.width
        let inPlane = height * width
        // At least ~512 pixels per GEMM (narrower GEMMs lose more than the cache gains).
        let budgetRows = (256 * 1024 / MemoryLayout<Scalar>.size) / Swift.max(1, patch * out.width)
        let minimumRows = (512 + out.width - 1) / out.width
        let blockRows = Swift.max(1, Swift.min(out.height, Swift.max(budgetRows, minimumRows)))
        var columns = isPointwise ? [] : [Scalar](repeating: 0, count: patch * blockRows * out.width)
        for n in 0..<batch {
            for g in 0..<groups {
                let input = x + (n * inChannels + g * groupIn) * inPlane
                let output = y + (n * outChannels + g * groupOut) * plane
                let kernel = w + g * groupOut * patch
                if isPointwise {
                    // Y_g (T_g × HW) = W_g (T_g × S_g) · X_g (S_g × HW)
                    Scalar.gemm(transposeA: false, transposeB: false, m: groupOut, n: plane, k: groupIn, alpha: 1,
                                a: kernel, lda: groupIn, b: input, ldb: inPlane, beta: 0, c: output, ldc: plane)
                    continue
                }
                columns.withUnsafeMutableBufferPointer { cp in
                    var row0 = 0
                    while row0 < out.height {
                        let row1 = Swift.min(out.height, row0 + blockRows)
                        let pixels = (row1 - row0) * out.width
                        im2col(input: input, channels: groupIn, height: height, width: width, out: out,
                               rows: row0..<row1, columns: cp.baseAddress!)
                        Scalar.gemm(transposeA: false, transposeB: false, m: groupOut, n: pixels, k: patch, alpha: 1,
                                    a: kernel, lda: patch, b: cp.baseAddress!, ldb: pixels, beta: 0,
                                    c: output + row0 * out.width, ldc: plane)
                        row0 = row1
                    }
                }
            }
        }
    }

    /// Fills the `(channels·kh·kw) × (rows·W_out)` patch matrix of output rows `rows` of one batch
    /// item and group.
    func im2col(
        input: UnsafePointer<Scalar>, channels: Int, height: Int, width: Int, out: Size2D, rows: Range<Int>,
        columns: UnsafeMutablePointer<Scalar>
    ) {
        let (kh, kw) = (kernelSize.height, kernelSize.width)
        let (sh, sw, dh, dw) = (stride.height, stride.width, dilation.height, dilation.width)
        let pixels = rows.count * out.width
        for c in 0..<channels {
            let channel = input + c * height * width
            for p in 0..<kh {
                for q in 0..<kw {
                    let row = columns + ((c * kh + p) * kw + q) * pixels
                    let columnOffset = q * dw - padding.left
                    // Output columns j with 0 ≤ j·sw + columnOffset < width.
                    let jLow = columnOffset >= 0 ? 0 : (-columnOffset + sw - 1) / sw
                    let jHigh = Swift.min(out.width, width - 1 - columnOffset < 0 ? 0 : (width - 1 - columnOffset) / sw + 1)
                    for i in rows {
                        let target = row + (i - rows.lowerBound) * out.width
                        let ii = i * sh + p * dh - padding.top
                        if ii < 0 || ii >= height || jLow >= jHigh {
                            for j in 0..<out.width { target[j] = 0 }
                            continue
                        }
                        let source = channel + ii * width + columnOffset
                        for j in 0..<jLow { target[j] = 0 }
                        if sw == 1 {
                            for j in jLow..<jHigh { target[j] = source[j] }
                        } else {
                            for j in jLow..<jHigh { target[j] = source[j * sw] }
                        }
                        for j in jHigh..<out.width { target[j] = 0 }
                    }
                }
            }
        }
    }

    /// Depthwise convolution (one input channel per group) by direct loops.
    func depthwiseForward(
        x: UnsafePointer<Scalar>, w: UnsafePointer<Scalar>, y: UnsafeMutablePointer<Scalar>,
        batch: Int, height: Int, width: Int, out: Size2D
    ) {
        let (kh, kw) = (kernelSize.height, kernelSize.width)
        let (sh, sw, dh, dw) = (stride.height, stride.width, dilation.height, dilation.width)
        let multiplier = outChannels / groups
        let plane = out.height * out.width
        for n in 0..<batch {
            for t in 0..<outChannels {
                let channel = x + (n * inChannels + t / multiplier) * height * width
                let output = y + (n * outChannels + t) * plane
                for p in 0..<kh {
                    for q in 0..<kw {
                        let value = w[(t * kh + p) * kw + q]
                        if value == 0 { continue }
                        let columnOffset = q * dw - padding.left
                        let jLow = columnOffset >= 0 ? 0 : (-columnOffset + sw - 1) / sw
                        let jHigh = Swift.min(out.width, width - 1 - columnOffset < 0 ? 0 : (width - 1 - columnOffset) / sw + 1)
                        if jLow >= jHigh { continue }
                        for i in 0..<out.height {
                            let ii = i * sh + p * dh - padding.top
                            if ii < 0 || ii >= height { continue }
                            let source = channel + ii * width + columnOffset
                            let target = output + i * out.width
                            if sw == 1 {
                                for j in jLow..<jHigh { target[j] += value * source[j] }
                            } else {
                                for j in jLow..<jHigh { target[j] += value * source[j * sw] }
                            }
                        }
                    }
                }
            }
        }
    }
}
