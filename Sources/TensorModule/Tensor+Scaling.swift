/// Power-of-two rescaling, which is exact: `x·2ᵉ` changes only the exponent of every scalar, so a
/// computation on the scaled tensor rounds exactly as on the original (barring overflow and
/// underflow, which is what the scaling avoids).
extension Tensor {
    /// The largest `|x|`, or `0` for an empty tensor.
    @inlinable
    public var maximumMagnitude: Scalar {
        storage.withUnsafeBufferPointer { p in p.isEmpty ? 0 : Scalar.maximumMagnitude(n: p.count, x: p.baseAddress!) }
    }

    /// The exponent `e` such that the tensor divided by `2ᵉ` has its largest magnitude in
    /// `[0.5, 1)`, when that magnitude lies outside `[2⁻³², 2³²)`; `nil` when it lies inside
    /// (or the tensor is zero), where sums of squares of any realistic size stay in range.
    ///
    /// ```swift
    /// if let e = x.rangeExponent { y = f(x.scaled(byPowerOfTwo: -e)).scaled(byPowerOfTwo: e) }
    /// ```
    @inlinable
    public var rangeExponent: Int? { Self.rangeExponent(ofMagnitude: maximumMagnitude) }

    /// ``rangeExponent`` for a tensor whose largest magnitude is `largest`.
    @inlinable
    static func rangeExponent(ofMagnitude largest: Scalar) -> Int? {
        guard largest > 0, largest.isFinite, largest >= 0x1p32 || largest < 0x1p-32 else { return nil }
        return Int(largest.exponent) + 1
    }

    /// Every scalar multiplied by `2ᵉ` (exact unless the result overflows or underflows); the
    /// tensor itself, without a copy, for `e = 0`.
    @inlinable
    public func scaled(byPowerOfTwo exponent: Int) -> Tensor {
        if exponent == 0 { return self }
        return map { Scalar(sign: .plus, exponent: Scalar.Exponent(exponent), significand: $0) }
    }
}
