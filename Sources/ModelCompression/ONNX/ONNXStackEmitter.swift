import NNLayers
import ONNX
import TensorModule

/// Writes a compressed layer's stack as standard ONNX nodes in place of the node it replaces.
///
/// - Convolution stacks (CP, Tucker-2, SVD of a 1×1 kernel) become `Conv` nodes with each
///   layer's kernel, stride, padding (`pads` in ONNX's `[top, left, bottom, right]` order),
///   dilation and groups; the bias goes on the last. A `SAME_UPPER`/`SAME_LOWER` node with a
///   stride above 1 (whose padding depends on the input size) keeps its `auto_pad` on the layers
///   that act spatially; per axis, a 1-wide kernel with stride 1 is padded by 0 in that mode, so
///   each layer gets exactly its share.
/// - Linear stacks (SVD) become `MatMul` → `MatMul` (from a `MatMul`) or `MatMul` → `Gemm` (from
///   a `Gemm`, which keeps its C and beta on the last node; a mean-shift correction is folded into
///   a constant row C, or becomes C when there is none).
/// - A recurrent node's input projection (SVD) becomes `MatMul` by the first factor, then the
///   node itself with the second as its W.
/// - A 3-D convolution's or strided `ConvTranspose`'s stack (Tucker-2, SVD) keeps the original
///   node for its spatial layer and writes the others as pointwise `Conv`s; a 3-D convolution's
///   CP stack is pointwise → one depthwise `Conv` per spatial axis → pointwise.
/// - A TT-linear layer becomes a chain of `Reshape`, `MatMul` and `Transpose` over the features
///   axis, core by core, never forming the weight; a TT-conv layer a depthwise `Conv` (the
///   spatial core) and that chain over the channels at each pixel.
///
/// New names are `<node>/<method>/<k>` for nodes, with `.weight`, `.bias` and `.out` suffixes for
/// their values; the last node writes the replaced node's output.
struct ONNXStackEmitter {
    let base: String
    let method: CompressionMethod
    let dataType: ONNXDataType
    let site: GraphLayer.Site
    var nodes: [ONNXNode] = []
    var initializers: [ONNXTensor] = []
    /// Inputs of the replaced node that the new nodes no longer read (a `Gemm`'s C, once folded).
    var replacedInputs: [String] = []
    var counter = 0

    init(base: String, method: CompressionMethod, dataType: ONNXDataType, site: GraphLayer.Site) {
        (self.base, self.method, self.dataType, self.site) = (base, method, dataType, site)
    }

    var prefix: String { "\(base)/\(method.rawValue)" }

    mutating func nextName() -> String {
        defer { counter += 1 }
        return "\(prefix)/\(counter)"
    }

    mutating func constant<Scalar: BLASScalar>(_ name: String, _ tensor: Tensor<Scalar>) throws -> String {
        initializers.append(try ONNXTensor(name: name, tensor, dataType: dataType))
        return name
    }

    mutating func shapeConstant(_ values: [Int]) -> String {
        let name = "\(prefix)/shape\(initializers.count)"
        initializers.append(ONNXTensor(name: name, int64: values))
        return name
    }

    /// Appends a node reading `inputs`; returns its output's name (`output` when given).
    @discardableResult
    mutating func node(_ opType: String, _ inputs: [String], output: String? = nil, attributes: [(String, ONNXAttribute)] = []) -> String {
        let name = nextName()
        let out = output ?? name + ".out"
        nodes.append(ONNXNode(opType: opType, name: name, inputs: inputs, outputs: [out], attributes: attributes))
        return out
    }

    /// The nodes and initializers that compute `stack` from the site's input into its output.
    mutating func emit<Scalar: BLASScalar>(_ stack: LayerStack<Scalar>, rank inputRank: Int?) throws {
        if case let .recurrent(node, directions) = site.kind {
            try emitRecurrent(stack, node: node, directions: directions)
            return
        }
        if let proxy = site.proxy {
            try emitThroughStandIn(stack, proxy)
            return
        }
        var value = site.input
        for (k, layer) in stack.layers.enumerated() {
            let last = k == stack.layers.count - 1
            let output = last ? site.output : nil
            switch layer {
            case let .conv2d(conv):
                value = try emitConv(conv, input: value, output: output)
            case let .linear(linear):
                value = try emitLinear(linear, input: value, output: output, isLast: last)
            case let .ttLinear(tt):
                guard let inputRank else { throw ModelCompressionError.unknownInputRank(node: base) }
                var y = try emitTTChain(tt.weight.cores, input: value, leading: inputRank - 1, output: nil)
                y = try emitLinearTail(bias: tt.bias, value: y, output: output, addingGemmC: true)
                value = y
            case let .ttConv2d(tt):
                value = try emitTTConv(tt, input: value, output: output)
            }
        }
    }

    /// `auto_pad` is kept on spatial layers only for SAME modes with a stride above 1.
    var keptAutoPad: String? {
        guard case let .conv(stride, _, _, _, autoPad) = site.kind, autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER",
              stride != Size2D(1) else { return nil }
        return autoPad
    }

    mutating func emitConv<Scalar: BLASScalar>(_ conv: Conv2D<Scalar>, input: String, output: String?) throws -> String {
        let name = "\(prefix)/\(counter)"
        // A 1-D site's layers are 2-D of height 1: written back with their width axis alone.
        let oneD = site.spatialRank == 1
        if oneD {
            precondition(conv.kernelSize.height == 1 && conv.stride.height == 1 && conv.dilation.height == 1
                         && conv.padding.top == 0 && conv.padding.bottom == 0,
                         "a 1-D site's layer has height settings: kernel \(conv.kernelSize), stride \(conv.stride), padding \(conv.padding)")
        }
        let weight = oneD ? try conv.weight.reshaped(to: [conv.weight.shape[0], conv.weight.shape[1], conv.weight.shape[3]]) : conv.weight
        var inputs = [input, try constant(name + ".weight", weight)]
        if let bias = conv.bias {
            // The original bias value is reused as it is when unchanged (it may be shared).
            if let biasName = site.biasName, let original = site.bias,
               let values = try? original.tensor.tensor(as: Scalar.self), Array(values.scalars) == bias {
                inputs.append(biasName)
            } else {
                inputs.append(try constant(name + ".bias", Tensor(uncheckedShape: [bias.count], scalars: ContiguousArray(bias))))
            }
        }
        func axes(_ size: Size2D) -> [Int] { oneD ? [size.width] : size.array }
        var attributes: [(String, ONNXAttribute)] = [("kernel_shape", .ints(axes(conv.kernelSize)))]
        let spatial = conv.kernelSize != Size2D(1) || conv.stride != Size2D(1) || conv.padding != .zero
        if spatial, let autoPad = keptAutoPad {
            attributes.append(("auto_pad", .string(autoPad)))
        } else {
            let p = conv.padding
            attributes.append(("pads", .ints(oneD ? [p.left, p.right] : [p.top, p.left, p.bottom, p.right])))
        }
        attributes += [("strides", .ints(axes(conv.stride))), ("dilations", .ints(axes(conv.dilation))), ("group", .int(conv.groups))]
        return node("Conv", inputs, output: output, attributes: attributes)
    }

    /// A linear layer `y = x Wᵀ (+ b)`: `MatMul` with `Wᵀ`, or for the last layer of a `Gemm`
    /// site a `Gemm` with the site's C and beta.
    mutating func emitLinear<Scalar: BLASScalar>(_ linear: Linear<Scalar>, input: String, output: String?, isLast: Bool) throws -> String {
        let name = "\(prefix)/\(counter)"
        if isLast, case let .gemm(_, _, beta, c) = site.kind {
            var inputs = [input, try constant(name + ".weight", Tensor(linear.weight))]
            // A mean-shift correction goes into C when it can: C absent, or a constant row [N] or [1, N]
            // (then C' = beta·C + shift with beta 1); else an Add after the Gemm.
            var (bias, gemmBeta) = (linear.bias, beta)
            if let shift = bias, c == nil {
                inputs.append(try constant(name + ".C", Tensor(uncheckedShape: [shift.count], scalars: ContiguousArray(shift))))
                (bias, gemmBeta) = (nil, 1)
            } else if let shift = bias, let c, let given = try? site.gemmC?.tensor.tensor(as: Scalar.self),
                      given.shape == [shift.count] || given.shape == [1, shift.count] {
                let scale = Scalar(Double(beta))
                let folded = ContiguousArray(zip(given.scalars, shift).map { scale * $0 + $1 })
                inputs.append(try constant(name + ".C", Tensor(uncheckedShape: given.shape, scalars: folded)))
                replacedInputs.append(c)
                (bias, gemmBeta) = (nil, 1)
            } else if let c {
                inputs.append(c)
            }
            let y = node("Gemm", inputs, output: bias == nil ? output : nil,
                         attributes: [("alpha", .float(1)), ("beta", .float(gemmBeta)), ("transA", .int(0)), ("transB", .int(1))])
            return try emitLinearTail(bias: bias, value: y, output: output)
        }
        let y = node("MatMul", [input, try constant(name + ".weight", Tensor(linear.weight.transposed()))],
                     output: linear.bias == nil ? output : nil)
        return try emitLinearTail(bias: linear.bias, value: y, output: output)
    }

    /// The stack of a 3-D convolution's or strided `ConvTranspose`'s 2-D stand-in: its spatial
    /// layer as the original node, every attribute kept, with the kernel laid back out (3-D:
    /// `[T, S/g, kd, kh, kw]`; transposed: the `ConvTranspose` kernel of the stand-in's), the
    /// other layers as pointwise `Conv`s of the original's rank; the bias stays on the last layer.
    mutating func emitThroughStandIn<Scalar: BLASScalar>(_ stack: LayerStack<Scalar>, _ proxy: GraphLayer.Site.Proxy) throws {
        let layers = stack.layers.map { layer -> Conv2D<Scalar> in
            guard case let .conv2d(conv) = layer else { preconditionFailure("a stand-in's stack is convolutions") }
            return conv
        }
        if let axes = proxy.axes, method == .cp {
            try emitSeparable(layers, axes)
            return
        }
        let spatial = proxy.spatialIndex(layers)
        let kernel = Array(site.weight.tensor.shape.dropFirst(2))
        var value = site.input
        for (k, conv) in layers.enumerated() {
            let name = "\(prefix)/\(counter)"
            let output = k == layers.count - 1 ? site.output : nil
            var weight = conv.weight
            if k == spatial {
                weight = proxy.transposed ? ModelCompressor.equivalentConvolutionKernel(weight, groups: conv.groups)
                    : try weight.reshaped(to: Array(weight.shape.prefix(2)) + kernel)
            } else {
                weight = try weight.reshaped(to: Array(weight.shape.prefix(2)) + [Int](repeating: 1, count: kernel.count))
            }
            var inputs = [value, try constant(name + ".weight", weight)]
            if let bias = conv.bias {
                inputs.append(try constant(name + ".bias", Tensor(uncheckedShape: [bias.count], scalars: ContiguousArray(bias))))
            }
            if k == spatial {
                var node = proxy.node
                node.name = nextName()
                node.inputs = inputs
                node.outputs = [output ?? node.name + ".out"]
                nodes.append(node)
                value = node.outputs[0]
            } else {
                value = node("Conv", inputs, output: output, attributes: conv.groups > 1 ? [("group", .int(conv.groups))] : [])
            }
        }
    }

    /// A 3-D convolution's CP stack, from its stand-in's (pointwise, depthwise `(kd·kh)×1`,
    /// depthwise `1×kw`, pointwise; a depthwise layer of kernel 1 folded away): pointwise `Conv`, one depthwise `Conv` per spatial axis with
    /// that axis's kernel, stride, pads and dilation, and pointwise `Conv` with the bias. Each
    /// channel's `kd × kh` kernel is rank one (the Khatri-Rao product of the depth and height
    /// factors) and is split back into its two factors. An axis of kernel 1 with stride 1 and no
    /// padding is a per-channel scale, folded into the last layer instead of written.
    mutating func emitSeparable<Scalar: BLASScalar>(_ layers: [Conv2D<Scalar>], _ axes: GraphLayer.Site.Proxy.Axes) throws {
        let (first, last) = (layers.first!, layers.last!)
        let channels = first.outChannels
        let (kd, kh, kw) = (axes.kernel[0], axes.kernel[1], axes.kernel[2])
        // The stand-in's depthwise layers; one whose kernel is 1 was folded into the first layer
        // (its factors are 1 here).
        let middle = layers.dropFirst().dropLast()
        let merged = middle.first { $0.kernelSize == Size2D(kd * kh, 1) && kd * kh > 1 }
        let across = middle.first { $0.kernelSize == Size2D(1, kw) && kw > 1 }
        precondition(middle.count == [merged, across].compactMap { $0 }.count, "a CP stack's middle layers are its depthwise ones")
        // Split each channel's rank-one kd×kh kernel m (m[i, j] = a_d[i]·a_h[j]) at its largest row.
        var depth = [Double](repeating: 1, count: channels * kd), height = [Double](repeating: 1, count: channels * kh)
        for c in 0..<channels {
            guard let merged else { break }
            let m = (0..<(kd * kh)).map { Double(merged.weight.scalars[c * kd * kh + $0]) }
            let norms = (0..<kd).map { i in (0..<kh).reduce(0.0) { $0 + m[i * kh + $1] * m[i * kh + $1] } }
            let row = norms.indices.max { norms[$0] < norms[$1] }!
            let squared = norms[row]
            for j in 0..<kh { height[c * kh + j] = m[row * kh + j] }
            for i in 0..<kd {
                depth[c * kd + i] = squared > 0 ? (0..<kh).reduce(0.0) { $0 + m[i * kh + $1] * m[row * kh + $1] } / squared : 0
            }
        }
        let factors = [depth, height, across.map { $0.weight.scalars.map { Double($0) } } ?? [Double](repeating: 1, count: channels)]
        var scale = [Double](repeating: 1, count: channels)
        var value = try emitConv3D(first.weight, bias: nil, shape: [channels, first.weight.shape[1], 1, 1, 1], input: site.input,
                                   attributes: first.groups > 1 ? [("group", .int(first.groups))] : [])
        for axis in 0..<3 {
            let k = axes.kernel[axis]
            let (before, after) = (axes.pads[2 * axis], axes.pads[2 * axis + 1])
            if !axes.written(axis) {
                for c in 0..<channels { scale[c] *= factors[axis][c] }
                continue
            }
            var shape = [channels, 1, 1, 1, 1], strides = [1, 1, 1], dilations = [1, 1, 1], pads = [0, 0, 0, 0, 0, 0]
            shape[2 + axis] = k
            strides[axis] = axes.strides[axis]
            dilations[axis] = axes.dilations[axis]
            (pads[axis], pads[3 + axis]) = (before, after)
            let weight = Tensor(uncheckedShape: shape, scalars: ContiguousArray(factors[axis].map { Scalar($0) }))
            value = try emitConv3D(weight, bias: nil, shape: shape, input: value,
                                   attributes: [("kernel_shape", .ints(Array(shape[2...]))), ("strides", .ints(strides)), ("pads", .ints(pads)),
                                                ("dilations", .ints(dilations)), ("group", .int(channels))])
        }
        // The last pointwise layer reads channel g·R + r of its group g: its column r times the scale.
        let (outChannels, rank) = (last.outChannels, last.weight.shape[1])
        let perGroup = outChannels / last.groups
        var weight = last.weight.scalars
        for t in 0..<outChannels {
            for r in 0..<rank { weight[t * rank + r] = Scalar(Double(weight[t * rank + r]) * scale[(t / perGroup) * rank + r]) }
        }
        _ = try emitConv3D(Tensor(uncheckedShape: last.weight.shape, scalars: weight), bias: last.bias, shape: [outChannels, rank, 1, 1, 1],
                           input: value, output: site.output, attributes: last.groups > 1 ? [("group", .int(last.groups))] : [])
    }

    /// A `Conv` node of `weight` laid out as `shape`, with its bias, reading `input`.
    mutating func emitConv3D<Scalar: BLASScalar>(_ weight: Tensor<Scalar>, bias: [Scalar]?, shape: [Int], input: String, output: String? = nil,
                                                 attributes: [(String, ONNXAttribute)]) throws -> String {
        let name = "\(prefix)/\(counter)"
        var inputs = [input, try constant(name + ".weight", try weight.reshaped(to: shape))]
        if let bias { inputs.append(try constant(name + ".bias", Tensor(uncheckedShape: [bias.count], scalars: ContiguousArray(bias)))) }
        return node("Conv", inputs, output: output, attributes: attributes)
    }

    /// A recurrent node's input projection: the stack's layers but the last as `MatMul`s on the
    /// steps' features (the first factor, `I → k`), then the node itself reading that projection,
    /// its W the last layer's weight `[directions·gates·H, k]` as `[directions, gates·H, k]` and a
    /// bias of the last layer (the mean-shift correction) added to the input half of B
    /// (`[directions, 2·gates·H]`, `Wb` then `Rb`). Every other input, attribute and output is
    /// the node's own.
    mutating func emitRecurrent<Scalar: BLASScalar>(_ stack: LayerStack<Scalar>, node original: ONNXNode, directions: Int) throws {
        guard case let .linear(last)? = stack.layers.last, last.outFeatures % directions == 0 else {
            preconditionFailure("a recurrent site's stack is linear layers (the options refuse tensor-train ones)")
        }
        var value = site.input
        for layer in stack.layers.dropLast() {
            guard case let .linear(linear) = layer else { preconditionFailure("a recurrent site's stack is linear layers") }
            value = try emitLinear(linear, input: value, output: nil, isLast: false)
        }
        let name = nextName()
        var inputs = original.inputs
        inputs[0] = value
        inputs[1] = try constant(name + ".W", Tensor(uncheckedShape: [directions, last.outFeatures / directions, last.inFeatures],
                                                    scalars: last.weight.scalars))
        if let shift = last.bias {
            let rows = last.outFeatures / directions
            var b = ContiguousArray<Scalar>(repeating: 0, count: directions * 2 * rows)
            if let old = site.bias { b = try old.tensor.tensor(as: Scalar.self).scalars }
            for d in 0..<directions {
                for j in 0..<rows {
                    let at = d * 2 * rows + j
                    b[at] += shift[d * rows + j]
                }
            }
            while inputs.count < 4 { inputs.append("") }
            inputs[3] = try constant(name + ".B", Tensor(uncheckedShape: [directions, 2 * rows], scalars: b))
        }
        var node = original
        node.name = name
        node.inputs = inputs
        nodes.append(node)
    }

    /// `Add(value, bias)` when there is a bias (on the last axis), and, after a TT chain that
    /// replaces a `Gemm`, `+ beta · C`.
    mutating func emitLinearTail<Scalar: BLASScalar>(bias: [Scalar]?, value: String, output: String?, addingGemmC: Bool = false) throws -> String {
        var y = value
        if addingGemmC, case let .gemm(_, _, beta, c?) = site.kind {
            var term = c
            if beta != 1 {
                term = node("Mul", [c, try constant("\(prefix)/beta", Tensor<Float>(uncheckedShape: [], scalars: [beta]))])
            }
            y = node("Add", [y, term], output: bias == nil ? output : nil)
        }
        guard let bias else {
            if let output, y != output { return node("Identity", [y], output: output) }
            return y
        }
        let name = "\(prefix)/\(counter)"
        return node("Add", [y, try constant(name + ".bias", Tensor(uncheckedShape: [bias.count], scalars: ContiguousArray(bias)))], output: output)
    }

    /// `y = x Wᵀ` for a TT-matrix `W` with cores `(r_{k−1}, m_k, n_k, r_k)` over the last axis of
    /// `input`, which has `leading` axes before it (kept as they are, whatever their sizes).
    ///
    /// The running value has the layout `(…, N_{<k}, M_{>k}, n_k·r_k)`; each core is one `MatMul`
    /// with `C_k[(j, b), (a, i)] = G_k[a, i, j, b]`, then a `Reshape`, `Transpose` and `Reshape`
    /// move the new output mode out and the next input mode in.
    mutating func emitTTChain<Scalar: BLASScalar>(_ cores: [Tensor<Scalar>], input: String, leading: Int, output: String?) throws -> String {
        let d = cores.count
        let m = cores.map { $0.shape[1] }, n = cores.map { $0.shape[2] }
        let keep = [Int](repeating: 0, count: leading)
        let nBefore = (0...d).map { n.prefix($0).reduce(1, *) }      // N_{<k+1} for 0-based k
        var value = node("Reshape", [input, shapeConstant(keep + [nBefore[d - 1], 1, n[d - 1]])])
        var mAfter = 1
        for k in stride(from: d - 1, through: 0, by: -1) {
            let core = cores[k]
            let (ra, rb) = (core.shape[0], core.shape[3])
            // (a, i, j, b) → (j, b, a, i) → ((j, b), (a, i))
            let moved = core.permutedUnchecked([2, 3, 0, 1])
            let weightName = "\(prefix)/\(counter).core\(k)"
            let c = try constant(weightName, Tensor(uncheckedShape: [n[k] * rb, ra * m[k]], scalars: moved.scalars))
            value = node("MatMul", [value, c])
            if k > 0 {
                let (np, nk) = (nBefore[k - 1], n[k - 1])
                value = node("Reshape", [value, shapeConstant(keep + [np, nk, mAfter, ra, m[k]])])
                value = node("Transpose", [value], attributes: [("perm", .ints(Array(0..<leading) + [0, 4, 2, 1, 3].map { $0 + leading }))])
                mAfter *= m[k]
                value = node("Reshape", [value, shapeConstant(keep + [np, mAfter, nk * ra])])
            } else {
                if mAfter > 1 {
                    value = node("Reshape", [value, shapeConstant(keep + [mAfter, m[0]])])
                    value = node("Transpose", [value], attributes: [("perm", .ints(Array(0..<leading) + [leading + 1, leading]))])
                }
                value = node("Reshape", [value, shapeConstant(keep + [mAfter * m[0]])], output: output)
            }
        }
        return value
    }

    /// The TT-conv layer: the spatial core as a depthwise `Conv`, its `(s, r_0)` channels reordered to
    /// `(r_0, s)` at each pixel, the channel cores as a TT chain over them, back to NCHW, plus the bias.
    mutating func emitTTConv<Scalar: BLASScalar>(_ tt: TTConv2D<Scalar>, input: String, output: String?) throws -> String {
        let s = tt.inChannels, r0 = tt.spatialRank
        var value = try emitConv(tt.spatial, input: input, output: nil)           // (N, S·r0, Ho, Wo)
        value = node("Transpose", [value], attributes: [("perm", .ints([0, 2, 3, 1]))])
        value = node("Reshape", [value, shapeConstant([0, 0, 0, s, r0])])
        value = node("Transpose", [value], attributes: [("perm", .ints([0, 1, 2, 4, 3]))])
        value = node("Reshape", [value, shapeConstant([0, 0, 0, r0 * s])])
        value = try emitTTChain(tt.channels.cores, input: value, leading: 3, output: nil)   // (N, Ho, Wo, T)
        let transposedOutput = tt.bias == nil ? output : nil
        value = node("Transpose", [value], output: transposedOutput, attributes: [("perm", .ints([0, 3, 1, 2]))])
        guard let bias = tt.bias else { return value }
        let name = "\(prefix)/\(counter)"
        let b = try constant(name + ".bias", Tensor(uncheckedShape: [1, bias.count, 1, 1], scalars: ContiguousArray(bias)))
        return node("Add", [value, b], output: output)
    }
}
