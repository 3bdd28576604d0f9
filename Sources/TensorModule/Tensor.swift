/// A dense, row-major (C-order) tensor of `Float` or `Double`.
///
/// `Tensor` is a value type over contiguous storage with copy-on-write, like `Array`.
/// The last index varies fastest, as in NumPy, `.npy`, safetensors and PyTorch.
///
/// ```swift
/// let x = try Tensor<Double>(shape: [3, 4, 2], scalars: (0..<24).map(Double.init))
/// x[1, 2, 0]            // 12.0
/// x.strides             // [8, 2, 1]
/// let m = x.unfolded(mode: 1)   // 4 × 6 matrix, TensorLy's convention
/// ```
///
/// `==` compares shapes and scalars exactly; use ``isApproximatelyEqual(to:relativeTolerance:)``
/// or ``relativeError(to:)`` for floating-point comparisons.
public struct Tensor<Scalar: BLASScalar>: Sendable, Equatable {
    /// The size of each dimension.
    public let shape: [Int]
    /// The row-major scalars.
    @usableFromInline var storage: ContiguousArray<Scalar>

    /// The scalars in row-major order.
    @inlinable public var scalars: ContiguousArray<Scalar> { storage }

    /// Creates a tensor without checking that `scalars.count` matches `shape`.
    @inlinable
    package init(uncheckedShape shape: [Int], scalars: ContiguousArray<Scalar>) {
        self.shape = shape
        self.storage = scalars
    }

    /// Creates a tensor from a shape and its scalars in row-major order.
    ///
    /// - Parameters:
    ///   - shape: The dimensions; each must be non-negative. An empty shape is a scalar (0-d tensor).
    ///   - scalars: Exactly `shape.reduce(1, *)` values in row-major order.
    /// - Throws: ``TensorError/scalarCountMismatch(shape:count:)``, ``TensorError/negativeDimension(shape:)``
    ///   or ``TensorError/shapeOverflow(shape:)``.
    @inlinable
    public init(shape: [Int], scalars: some Sequence<Scalar>) throws {
        let count = try Self.validatedCount(of: shape)
        let storage = ContiguousArray(scalars)
        guard storage.count == count else {
            throw TensorError.scalarCountMismatch(shape: shape, count: storage.count)
        }
        self.init(uncheckedShape: shape, scalars: storage)
    }

    /// Creates a tensor of the given shape with every scalar equal to `value`.
    ///
    /// - Precondition: Every dimension is non-negative.
    @inlinable
    public init(repeating value: Scalar, shape: [Int]) {
        let count: Int
        do { count = try Self.validatedCount(of: shape) } catch { preconditionFailure("\(error)") }
        self.init(uncheckedShape: shape, scalars: ContiguousArray(repeating: value, count: count))
    }

    /// A tensor of zeros.
    @inlinable
    public static func zeros(shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }

    /// A tensor of independent normal samples, reproducible from `seed`.
    ///
    /// Samples are drawn in `Double` and rounded, so a `Float` and a `Double` tensor made with
    /// the same seed agree to `Float` precision.
    @inlinable
    public static func randomNormal(
        shape: [Int], mean: Scalar = 0, standardDeviation: Scalar = 1, seed: UInt64
    ) -> Tensor {
        var generator = SeededGenerator(seed: seed)
        return randomNormal(shape: shape, mean: mean, standardDeviation: standardDeviation, using: &generator)
    }

    /// A tensor of independent normal samples drawn from `generator`.
    @inlinable
    public static func randomNormal(
        shape: [Int], mean: Scalar = 0, standardDeviation: Scalar = 1, using generator: inout SeededGenerator
    ) -> Tensor {
        var result = zeros(shape: shape)
        let (m, s) = (Double(mean), Double(standardDeviation))
        for i in result.storage.indices { result.storage[i] = Scalar(m + s * generator.nextNormal()) }
        return result
    }

    /// A tensor of independent uniform samples in `range`, reproducible from `seed`.
    @inlinable
    public static func randomUniform(shape: [Int], in range: Range<Scalar> = 0..<1, seed: UInt64) -> Tensor {
        var generator = SeededGenerator(seed: seed)
        var result = zeros(shape: shape)
        let (low, width) = (Double(range.lowerBound), Double(range.upperBound - range.lowerBound))
        for i in result.storage.indices { result.storage[i] = Scalar(low + width * generator.nextUniform()) }
        return result
    }

    /// Checks a shape and returns its scalar count.
    @inlinable
    static func validatedCount(of shape: [Int]) throws -> Int {
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else { throw TensorError.negativeDimension(shape: shape) }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw TensorError.shapeOverflow(shape: shape) }
            count = product
        }
        return count
    }
}

extension Tensor {
    /// The number of dimensions.
    @inlinable
    public var order: Int { shape.count }

    /// The number of scalars, `shape.reduce(1, *)`.
    @inlinable
    public var scalarCount: Int { scalars.count }

    /// Row-major strides in scalars: the last stride is 1.
    @inlinable
    public var strides: [Int] { Self.strides(of: shape) }

    /// Row-major strides of a shape.
    @inlinable
    static func strides(of shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var stride = 1
        for axis in shape.indices.reversed() {
            strides[axis] = stride
            stride *= shape[axis]
        }
        return strides
    }

    /// The flat offset of a multi-index, checking every index.
    @inlinable
    func offset(of indices: [Int]) -> Int {
        precondition(indices.count == shape.count,
                     "\(indices.count) indices given for a tensor of order \(shape.count) and shape \(shape)")
        var offset = 0
        for axis in indices.indices {
            let index = indices[axis]
            precondition(index >= 0 && index < shape[axis],
                         "index \(index) is out of range 0..<\(shape[axis]) for axis \(axis) of shape \(shape)")
            offset = offset * shape[axis] + index
        }
        return offset
    }

    /// The scalar at a multi-index.
    @inlinable
    public subscript(indices: Int...) -> Scalar {
        get { storage[offset(of: indices)] }
        set { storage[offset(of: indices)] = newValue }
    }

    /// The scalar at a multi-index given as an array.
    @inlinable
    public subscript(indices indices: [Int]) -> Scalar {
        get { storage[offset(of: indices)] }
        set { storage[offset(of: indices)] = newValue }
    }

    /// The same scalars viewed with another shape (no copy).
    ///
    /// One dimension may be `-1`; it is inferred from the others, as in NumPy.
    ///
    /// - Throws: ``TensorError/scalarCountMismatch(shape:count:)`` when the counts differ, or
    ///   ``TensorError/ambiguousReshape(shape:)`` for more than one `-1`.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func reshaped(to newShape: [Int]) throws -> Tensor {
        var shape = newShape
        let inferred = shape.indices.filter { shape[$0] == -1 }
        if inferred.count > 1 {
            throw TensorError.ambiguousReshape(shape: newShape)
        }
        if let axis = inferred.first {
            shape[axis] = 1
            let known = try Self.validatedCount(of: shape)
            guard known > 0, scalarCount % known == 0 else {
                throw TensorError.scalarCountMismatch(shape: newShape, count: scalarCount)
            }
            shape[axis] = scalarCount / known
        }
        guard try Self.validatedCount(of: shape) == scalarCount else {
            throw TensorError.scalarCountMismatch(shape: shape, count: scalarCount)
        }
        return Tensor(uncheckedShape: shape, scalars: scalars)
    }

    /// Calls `body` with a pointer to the row-major scalars.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Scalar>) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer(body)
    }

    /// Calls `body` with a mutable pointer to the row-major scalars.
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (inout UnsafeMutableBufferPointer<Scalar>) throws -> R
    ) rethrows -> R {
        try storage.withUnsafeMutableBufferPointer(body)
    }

    /// A tensor of the same shape with `transform` applied to every scalar.
    @inlinable
    public func map(_ transform: (Scalar) throws -> Scalar) rethrows -> Tensor {
        Tensor(uncheckedShape: shape, scalars: ContiguousArray(try storage.map(transform)))
    }

    /// The flat index of the first non-finite scalar, or `nil` when all are finite.
    @inlinable
    public var firstNonFiniteIndex: Int? {
        storage.withUnsafeBufferPointer { p in p.isEmpty ? nil : Scalar.firstNonFiniteIndex(n: p.count, x: p.baseAddress!) }
    }

    /// Throws ``TensorError/nonFinite(operation:index:)`` when a scalar is NaN or infinite.
    @inlinable
    public func checkFinite(operation: String) throws {
        if let index = firstNonFiniteIndex { throw TensorError.nonFinite(operation: operation, index: index) }
    }
}

extension Tensor: CustomStringConvertible {
    @inlinable
    public var description: String {
        let preview = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        let more = scalarCount > 8 ? ", … (\(scalarCount) scalars)" : ""
        return "Tensor<\(Scalar.typeName)>(shape: \(shape), [\(preview)\(more)])"
    }
}
