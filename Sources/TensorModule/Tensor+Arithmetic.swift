extension Tensor {
    @inlinable
    static func elementwise(_ lhs: Tensor, _ rhs: Tensor, _ name: String, _ op: (Scalar, Scalar) -> Scalar) -> Tensor {
        precondition(lhs.shape == rhs.shape, "\(name): shapes \(lhs.shape) and \(rhs.shape) differ")
        var result = lhs
        result.storage.withUnsafeMutableBufferPointer { r in
            rhs.storage.withUnsafeBufferPointer { o in
                for i in r.indices { r[i] = op(r[i], o[i]) }
            }
        }
        return result
    }

    /// Elementwise sum. - Precondition: equal shapes.
    @inlinable
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor { elementwise(lhs, rhs, "+", +) }

    /// Elementwise difference. - Precondition: equal shapes.
    @inlinable
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor { elementwise(lhs, rhs, "-", -) }

    /// Elementwise (Hadamard) product. - Precondition: equal shapes.
    @inlinable
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor { elementwise(lhs, rhs, "*", *) }

    /// Adds `rhs` in place. - Precondition: equal shapes.
    @inlinable
    public static func += (lhs: inout Tensor, rhs: Tensor) { lhs = lhs + rhs }

    /// Subtracts `rhs` in place. - Precondition: equal shapes.
    @inlinable
    public static func -= (lhs: inout Tensor, rhs: Tensor) { lhs = lhs - rhs }

    /// Every scalar multiplied by `factor`.
    @inlinable
    public static func * (factor: Scalar, tensor: Tensor) -> Tensor {
        var result = tensor
        result.storage.withUnsafeMutableBufferPointer { r in
            for i in r.indices { r[i] *= factor }
        }
        return result
    }

    /// Every scalar multiplied by `factor`.
    @inlinable
    public static func * (tensor: Tensor, factor: Scalar) -> Tensor { factor * tensor }

    /// Every scalar divided by `divisor`.
    @inlinable
    public static func / (tensor: Tensor, divisor: Scalar) -> Tensor { tensor.map { $0 / divisor } }

    /// Every scalar negated.
    @inlinable
    public static prefix func - (tensor: Tensor) -> Tensor { tensor.map { -$0 } }

    /// The Frobenius norm `‖X‖_F = √(Σ x²)`, computed by BLAS `nrm2` without overflow.
    @inlinable
    public var frobeniusNorm: Scalar {
        if scalarCount == 0 { return 0 }
        return storage.withUnsafeBufferPointer { Scalar.nrm2(n: scalarCount, x: $0.baseAddress!, incx: 1) }
    }

    /// The inner product `⟨X, Y⟩ = Σ x·y` of two tensors of equal shape.
    ///
    /// - Precondition: equal shapes.
    @inlinable
    public func inner(_ other: Tensor) -> Scalar {
        precondition(shape == other.shape, "inner: shapes \(shape) and \(other.shape) differ")
        if scalarCount == 0 { return 0 }
        return storage.withUnsafeBufferPointer { x in
            other.storage.withUnsafeBufferPointer { y in
                Scalar.dot(n: scalarCount, x: x.baseAddress!, incx: 1, y: y.baseAddress!, incy: 1)
            }
        }
    }

    /// The relative error `‖self − reference‖_F / ‖reference‖_F`.
    ///
    /// When `reference` is zero the result is `0` if `self` is zero too, and `+∞` otherwise. Both
    /// tensors are rescaled by one power of two first when their magnitudes are far from 1, so the
    /// error is right for any finite scalars (near `Float.greatestFiniteMagnitude` too).
    ///
    /// - Throws: ``TensorError/shapeMismatch(operation:expected:actual:)`` when the shapes differ.
    @inlinable
    public func relativeError(to reference: Tensor) throws -> Scalar {
        guard shape == reference.shape else {
            throw TensorError.shapeMismatch(operation: "relativeError", expected: reference.shape, actual: shape)
        }
        if let exponent = Self.rangeExponent(ofMagnitude: Swift.max(maximumMagnitude, reference.maximumMagnitude)) {
            return try scaled(byPowerOfTwo: -exponent).relativeError(to: reference.scaled(byPowerOfTwo: -exponent))
        }
        let difference = (self - reference).frobeniusNorm
        let norm = reference.frobeniusNorm
        if norm == 0 { return difference == 0 ? 0 : .infinity }
        return difference / norm
    }

    /// Whether `‖self − other‖_F ≤ relativeTolerance · max(‖self‖_F, ‖other‖_F)`, with equal shapes.
    ///
    /// - Parameters:
    ///   - other: The tensor to compare with.
    ///   - relativeTolerance: Defaults to `√ε` of `Scalar`.
    @inlinable
    public func isApproximatelyEqual(to other: Tensor, relativeTolerance: Scalar = Scalar.ulpOfOne.squareRoot()) -> Bool {
        guard shape == other.shape else { return false }
        let difference = (self - other).frobeniusNorm
        return difference <= relativeTolerance * Swift.max(frobeniusNorm, other.frobeniusNorm)
    }
}
