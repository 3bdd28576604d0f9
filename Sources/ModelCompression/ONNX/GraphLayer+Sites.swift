import Decompositions
import NNLayers
import ONNX
import TensorModule

// What a compressible node becomes in NNLayers: its layer, its padding, EVBMF ranks, and the
// equivalent convolution of a transposed one.

extension ModelCompressor {
    /// The kernel of the convolution that a `ConvTranspose` with kernel `w` (`[C_in, C_out/g, kh,
    /// kw]`) computes on its input upsampled by its strides: `[C_out, C_in/g, kh, kw]`, flipped in
    /// both spatial axes, channels transposed within each group. The map is its own inverse: a
    /// convolution kernel gives the `ConvTranspose` kernel of the same channels and groups.
    static func equivalentConvolutionKernel<Scalar: BLASScalar>(_ w: Tensor<Scalar>, groups: Int) -> Tensor<Scalar> {
        let (inChannels, outPerGroup, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let inPerGroup = inChannels / groups
        var scalars = ContiguousArray<Scalar>(repeating: 0, count: w.scalarCount)
        w.withUnsafeBufferPointer { source in
            for g in 0..<groups {
                for i in 0..<inPerGroup {
                    for o in 0..<outPerGroup {
                        for a in 0..<kh {
                            for b in 0..<kw {
                                let from = (((g * inPerGroup + i) * outPerGroup + o) * kh + a) * kw + b
                                let to = (((g * outPerGroup + o) * inPerGroup + i) * kh + (kh - 1 - a)) * kw + (kw - 1 - b)
                                scalars[to] = source[from]
                            }
                        }
                    }
                }
            }
        }
        return Tensor(uncheckedShape: [outPerGroup * groups, inPerGroup, kh, kw], scalars: scalars)
    }

    /// The product of `factors` (a MAC count), `nil` when a factor is negative or twice the
    /// product (the FLOPs) overflows `Int`.
    static func macs(_ factors: [Int]) -> Int? {
        var product = 1
        for f in factors {
            guard f >= 0 else { return nil }
            let (p, overflow) = product.multipliedReportingOverflow(by: f)
            guard !overflow else { return nil }
            product = p
        }
        return product <= Int.max / 2 ? product : nil
    }

    /// `[top, bottom, left, right]` of a 2-D `Conv` node (see ``resolvedPads(_:kernel:strides:dilations:input:)``).
    static func resolvedPadding(_ window: ONNXConvAttributes, kernel: [Int], strides: [Int], dilations: [Int], input: [Int]?) -> Padding? {
        guard let p = resolvedPads(window, kernel: kernel, strides: strides, dilations: dilations, input: input) else { return nil }
        return Padding(top: p[0], bottom: p[1], left: p[2], right: p[3])
    }

    /// Each spatial axis's padding at its beginning and end (`[top, bottom, left, right]` in 2-D)
    /// of a `Conv` node: explicit `pads` (ONNX order: the beginnings, then the ends), or
    /// `auto_pad` resolved at the input's spatial size (for stride 1 the size does not matter;
    /// without a size, the stride-1 split is used); `nil` when a count of the `SAME` padding
    /// overflows (a fuzzing finding: a size or stride near `Int.max`).
    static func resolvedPads(_ window: ONNXConvAttributes, kernel: [Int], strides: [Int], dilations: [Int], input: [Int]?) -> [Int]? {
        let n = kernel.count
        switch window.autoPad {
        case "VALID": return [Int](repeating: 0, count: 2 * n)
        case "SAME_UPPER", "SAME_LOWER":
            // Counts with overflow checks: a size or stride near Int.max has no padding (nil).
            func total(_ k: Int) -> Int? {
                let extent = dilations[k] * (kernel[k] - 1) + 1   // the caller checked that d·(k − 1) fits
                guard let input, input.count == n else { return extent - 1 }
                let (sum, o1) = input[k].addingReportingOverflow(strides[k] - 1)
                guard !o1, strides[k] >= 1 else { return nil }
                let (span, o2) = (sum / strides[k] - 1).multipliedReportingOverflow(by: strides[k])
                let (reach, o3) = span.addingReportingOverflow(extent)
                guard !o2, !o3 else { return nil }
                return max(0, reach - input[k])
            }
            var result: [Int] = []
            for k in 0..<n {
                guard let t = total(k) else { return nil }
                let begin = window.autoPad == "SAME_UPPER" ? t / 2 : t - t / 2
                result += [begin, t - begin]
            }
            return result
        default:
            let pads = window.pads
            guard pads.count == 2 * n else { return [Int](repeating: 0, count: 2 * n) }
            return (0..<n).flatMap { [pads[$0], pads[n + $0]] }
        }
    }

    /// EVBMF ranks of a compressible site's weight: `[R_out, R_in]` of a k×k kernel (the largest
    /// over groups), one rank of a matrix or 1×1 kernel.
    func estimatedRanks(_ site: GraphLayer.Site) throws -> [Int] {
        let layer: Layer<Float> = try self.layer(site, as: Float.self)
        switch layer {
        case let .conv2d(conv):
            let kernels = try (0..<conv.groups).map { try conv.groupKernel($0) }
            if conv.kernelSize == Size2D(1) {
                return [try kernels.map { try evbmf(Matrix(reshaping: $0, rows: $0.shape[0], columns: $0.shape[1]), forceAtLeastOne: true).rank }.max()!]
            }
            let ranks = try kernels.map { try selectRanks(for: $0, modes: [0, 1], selection: .vbmf).ranks }
            return [ranks.map { $0[0] }.max()!, ranks.map { $0[1] }.max()!]
        case let .linear(linear):
            return [try evbmf(linear.weight, forceAtLeastOne: true).rank]
        default: return []
        }
    }

    /// The `NNLayers` layer of a compressible site, in `Scalar`.
    func layer<Scalar: BLASScalar>(_ site: GraphLayer.Site, as _: Scalar.Type) throws -> Layer<Scalar> {
        var w = try site.weight.tensor.tensor(as: Scalar.self)
        if site.spatialRank == 1 { w = try w.reshaped(to: [w.shape[0], w.shape[1], 1, w.shape[2]]) }
        if site.spatialRank == 3 { w = try w.reshaped(to: [w.shape[0], w.shape[1], w.shape[2] * w.shape[3], w.shape[4]]) }
        if site.transposed, case let .conv(_, _, _, groups, _) = site.kind { w = Self.equivalentConvolutionKernel(w, groups: groups) }
        switch site.kind {
        case let .conv(stride, padding, dilation, groups, _):
            let bias = try site.bias.map { Array(try $0.tensor.tensor(as: Scalar.self).scalars) }
            return .conv2d(try Conv2D(weight: w, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups))
        case let .gemm(transB, alpha, _, _):
            let m = Matrix(uncheckedRows: w.shape[0], columns: w.shape[1], scalars: w.scalars)
            let weight = transB ? m : m.transposed()
            return .linear(try Linear(weight: alpha == 1 ? weight : Scalar(Double(alpha)) * weight))
        case .matmul:
            return .linear(try Linear(weight: Matrix(uncheckedRows: w.shape[0], columns: w.shape[1], scalars: w.scalars).transposed()))
        case .recurrent:
            // W [directions, gates·H, I]: the rows of every direction's gates, one matrix (its bias stays in B).
            return .linear(try Linear(weight: Matrix(uncheckedRows: w.shape[0] * w.shape[1], columns: w.shape[2], scalars: w.scalars)))
        }
    }
}
