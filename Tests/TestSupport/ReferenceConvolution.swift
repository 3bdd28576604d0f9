import TensorModule

extension Reference {
    /// The convolution by its definition, with direct loops over every index:
    /// `y[n,t,i,j] = b[t] + Σ_{s∈group(t)} Σ_p Σ_q W[t,s,p,q]·x[n, s, i·sh + p·dh − top, j·sw + q·dw − left]`, zero outside.
    public static func conv2d<S: BLASScalar>(
        _ x: Tensor<S>, weight: Tensor<S>, bias: [S]?, stride: (Int, Int), padding: (top: Int, bottom: Int, left: Int, right: Int),
        dilation: (Int, Int), groups: Int
    ) -> Tensor<S> {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (t, sg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        let ho = (h + padding.top + padding.bottom - dilation.0 * (kh - 1) - 1) / stride.0 + 1
        let wo = (w + padding.left + padding.right - dilation.1 * (kw - 1) - 1) / stride.1 + 1
        let tg = t / groups
        precondition(c == sg * groups)
        let xs = Array(x.scalars), ws = Array(weight.scalars)
        var ys = [S](repeating: 0, count: n * t * ho * wo)
        for b in 0..<n { for o in 0..<t {
            let g = o / tg
            for i in 0..<ho { for j in 0..<wo {
                var sum: S = bias?[o] ?? 0
                for s in 0..<sg {
                    let channel = g * sg + s
                    for p in 0..<kh { for q in 0..<kw {
                        let ii = i * stride.0 + p * dilation.0 - padding.top
                        let jj = j * stride.1 + q * dilation.1 - padding.left
                        if ii < 0 || ii >= h || jj < 0 || jj >= w { continue }
                        sum += ws[((o * sg + s) * kh + p) * kw + q] * xs[((b * c + channel) * h + ii) * w + jj]
                    } }
                }
                ys[((b * t + o) * ho + i) * wo + j] = sum
            } }
        } }
        return try! Tensor(shape: [n, t, ho, wo], scalars: ys)
    }
}
