/// A dense, row-major matrix of `Float` or `Double`: the 2-D case of ``Tensor``, with GEMM
/// products, transposes, Gram matrices and LAPACK solvers.
///
/// Factor matrices of decompositions are `Matrix` values; `Tensor(matrix)` and
/// `Matrix(tensor)` convert without copying the scalars.
///
/// ```swift
/// let a = Matrix<Double>.randomNormal(rows: 5, columns: 3, seed: 1)
/// let g = a.gram()                       // AᵀA, 3 × 3
/// let x = try g.choleskySolve(a.transposed())   // (AᵀA)⁻¹Aᵀ
/// ```
public struct Matrix<Scalar: BLASScalar>: Sendable, Equatable {
    /// The number of rows.
    public let rows: Int
    /// The number of columns.
    public let columns: Int
    /// The row-major scalars.
    @usableFromInline var storage: ContiguousArray<Scalar>

    /// The scalars in row-major order: element `(i, j)` is at `i * columns + j`.
    @inlinable public var scalars: ContiguousArray<Scalar> { storage }

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

    /// A matrix over `scalars`, whose count the caller has checked to be `rows · columns`.
    @inlinable
    package init(uncheckedRows rows: Int, columns: Int, scalars: ContiguousArray<Scalar>) {
        self.rows = rows
        self.columns = columns
        self.storage = scalars
    }

    /// Creates a matrix from row-major scalars.
    ///
    /// - Throws: ``TensorError/scalarCountMismatch(shape:count:)`` or ``TensorError/negativeDimension(shape:)``.
    @inlinable
    public init(rows: Int, columns: Int, scalars: some Sequence<Scalar>) throws {
        let count = try Tensor<Scalar>.validatedCount(of: [rows, columns])
        let storage = ContiguousArray(scalars)
        guard storage.count == count else {
            throw TensorError.scalarCountMismatch(shape: [rows, columns], count: storage.count)
        }
        self.init(uncheckedRows: rows, columns: columns, scalars: storage)
    }

    /// Creates a matrix from an array of rows of equal length.
    ///
    /// - Throws: ``TensorError/shapeMismatch(operation:expected:actual:)`` for ragged rows.
    @inlinable
    public init(_ rowArrays: [[Scalar]]) throws {
        let columns = rowArrays.first?.count ?? 0
        for (i, row) in rowArrays.enumerated() where row.count != columns {
            throw TensorError.shapeMismatch(operation: "Matrix(rows): row \(i)", expected: [columns], actual: [row.count])
        }
        self.init(uncheckedRows: rowArrays.count, columns: columns, scalars: ContiguousArray(rowArrays.joined()))
    }

    /// A matrix with every element equal to `value`.
    ///
    /// - Precondition: `rows >= 0` and `columns >= 0`.
    @inlinable
    public init(repeating value: Scalar, rows: Int, columns: Int) {
        precondition(rows >= 0 && columns >= 0, "matrix dimensions must be non-negative, got \(rows) × \(columns)")
        self.init(uncheckedRows: rows, columns: columns, scalars: ContiguousArray(repeating: value, count: rows * columns))
    }

    /// A matrix of zeros.
    @inlinable
    public static func zeros(rows: Int, columns: Int) -> Matrix { Matrix(repeating: 0, rows: rows, columns: columns) }

    /// The `n × n` identity.
    @inlinable
    public static func identity(_ n: Int) -> Matrix {
        var result = zeros(rows: n, columns: n)
        for i in 0..<n { result.storage[i * n + i] = 1 }
        return result
    }

    /// A matrix of independent standard normal samples, reproducible from `seed`.
    @inlinable
    public static func randomNormal(rows: Int, columns: Int, seed: UInt64) -> Matrix {
        Matrix(Tensor<Scalar>.randomNormal(shape: [rows, columns], seed: seed))
    }

    /// A matrix of independent standard normal samples drawn from `generator`.
    @inlinable
    public static func randomNormal(rows: Int, columns: Int, using generator: inout SeededGenerator) -> Matrix {
        Matrix(Tensor<Scalar>.randomNormal(shape: [rows, columns], using: &generator))
    }

    /// Views an order-2 tensor as a matrix (no copy).
    ///
    /// - Precondition: `tensor.order == 2`.
    @inlinable
    public init(_ tensor: Tensor<Scalar>) {
        precondition(tensor.order == 2, "Matrix(_:) needs an order-2 tensor, got shape \(tensor.shape)")
        self.init(uncheckedRows: tensor.shape[0], columns: tensor.shape[1], scalars: tensor.storage)
    }

    /// Views the scalars of a tensor of any order as a `rows × columns` matrix (no copy): the
    /// row-major reshape that groups the leading axes into rows and the trailing ones into columns.
    ///
    /// ```swift
    /// let core = Tensor<Float>.randomNormal(shape: [2, 5, 3], seed: 1)
    /// let left = try Matrix(reshaping: core, rows: 10, columns: 3)    // (r₀·n) × r₁
    /// ```
    ///
    /// - Throws: ``TensorError/scalarCountMismatch(shape:count:)`` when `rows · columns` differs
    ///   from the tensor's scalar count.
    @inlinable
    public init(reshaping tensor: Tensor<Scalar>, rows: Int, columns: Int) throws {
        guard rows >= 0, columns >= 0, try Tensor<Scalar>.validatedCount(of: [rows, columns]) == tensor.scalarCount else {
            throw TensorError.scalarCountMismatch(shape: [rows, columns], count: tensor.scalarCount)
        }
        self.init(uncheckedRows: rows, columns: columns, scalars: tensor.storage)
    }

    /// The same scalars as a `rows × columns` matrix (no copy).
    ///
    /// - Throws: ``TensorError/scalarCountMismatch(shape:count:)`` when the counts differ.
    @inlinable
    public func reshaped(rows: Int, columns: Int) throws -> Matrix {
        try Matrix(reshaping: Tensor(self), rows: rows, columns: columns)
    }

    /// A matrix of independent samples uniform in `[0, 1)` drawn from `generator`.
    @inlinable
    public static func randomUniform(rows: Int, columns: Int, using generator: inout SeededGenerator) -> Matrix {
        precondition(rows >= 0 && columns >= 0, "matrix dimensions must be non-negative, got \(rows) × \(columns)")
        var storage = ContiguousArray<Scalar>()
        storage.reserveCapacity(rows * columns)
        for _ in 0..<(rows * columns) { storage.append(Scalar(generator.nextUniform())) }
        return Matrix(uncheckedRows: rows, columns: columns, scalars: storage)
    }

    /// The shape `[rows, columns]`.
    @inlinable
    public var shape: [Int] { [rows, columns] }

    /// The element at row `i`, column `j`.
    @inlinable
    public subscript(i: Int, j: Int) -> Scalar {
        get {
            precondition(i >= 0 && i < rows && j >= 0 && j < columns,
                         "index (\(i), \(j)) is out of range for a \(rows) × \(columns) matrix")
            return storage[i * columns + j]
        }
        set {
            precondition(i >= 0 && i < rows && j >= 0 && j < columns,
                         "index (\(i), \(j)) is out of range for a \(rows) × \(columns) matrix")
            storage[i * columns + j] = newValue
        }
    }

    /// Column `j` as an array.
    @inlinable
    public func column(_ j: Int) -> [Scalar] {
        precondition(j >= 0 && j < columns, "column \(j) is out of range 0..<\(columns)")
        return (0..<rows).map { storage[$0 * columns + j] }
    }

    /// Row `i` as an array.
    @inlinable
    public func row(_ i: Int) -> [Scalar] {
        precondition(i >= 0 && i < rows, "row \(i) is out of range 0..<\(rows)")
        return Array(storage[(i * columns)..<((i + 1) * columns)])
    }

    /// The transpose, by a cache-blocked copy.
    @inlinable
    public func transposed() -> Matrix {
        Matrix(Tensor(self).transposed())
    }

    /// The first `count` columns.
    @inlinable
    public func leadingColumns(_ count: Int) -> Matrix {
        precondition(count >= 0 && count <= columns, "cannot take \(count) of \(columns) columns")
        if count == columns { return self }
        var result = Matrix.zeros(rows: rows, columns: count)
        for i in 0..<rows {
            for j in 0..<count { result.storage[i * count + j] = storage[i * columns + j] }
        }
        return result
    }

    /// The first `count` rows.
    @inlinable
    public func leadingRows(_ count: Int) -> Matrix {
        precondition(count >= 0 && count <= rows, "cannot take \(count) of \(rows) rows")
        return Matrix(uncheckedRows: count, columns: columns, scalars: ContiguousArray(scalars.prefix(count * columns)))
    }

    /// The rows at `indices`, in that order (repetitions allowed).
    ///
    /// - Precondition: every index in `0..<rows`.
    @inlinable
    public func selectingRows(_ indices: [Int]) -> Matrix {
        var values = ContiguousArray<Scalar>()
        values.reserveCapacity(indices.count * columns)
        for i in indices {
            precondition(i >= 0 && i < rows, "row \(i) is out of range 0..<\(rows)")
            values.append(contentsOf: storage[(i * columns)..<((i + 1) * columns)])
        }
        return Matrix(uncheckedRows: indices.count, columns: columns, scalars: values)
    }

    /// The columns at `indices`, in that order (repetitions allowed).
    ///
    /// - Precondition: every index in `0..<columns`.
    @inlinable
    public func selectingColumns(_ indices: [Int]) -> Matrix {
        for j in indices { precondition(j >= 0 && j < columns, "column \(j) is out of range 0..<\(columns)") }
        var values = ContiguousArray<Scalar>()
        values.reserveCapacity(rows * indices.count)
        for i in 0..<rows {
            let row = i * columns
            for j in indices { values.append(storage[row + j]) }
        }
        return Matrix(uncheckedRows: rows, columns: indices.count, scalars: values)
    }

    /// Every element multiplied by `2ᵉ`, exactly (see ``Tensor/scaled(byPowerOfTwo:)``).
    @inlinable
    public func scaled(byPowerOfTwo exponent: Int) -> Matrix {
        Matrix(Tensor(self).scaled(byPowerOfTwo: exponent))
    }

    /// Frobenius norm `‖A‖_F`.
    @inlinable
    public var frobeniusNorm: Scalar { Tensor(self).frobeniusNorm }

    /// Elementwise product with a matrix of the same shape.
    @inlinable
    public func hadamard(_ other: Matrix) -> Matrix {
        precondition(rows == other.rows && columns == other.columns,
                     "hadamard: shapes \(rows) × \(columns) and \(other.rows) × \(other.columns) differ")
        var result = self
        result.storage.withUnsafeMutableBufferPointer { r in
            other.storage.withUnsafeBufferPointer { o in
                for i in r.indices { r[i] *= o[i] }
            }
        }
        return result
    }

    /// Every element multiplied by `factor`.
    @inlinable
    public static func * (factor: Scalar, matrix: Matrix) -> Matrix {
        Matrix(factor * Tensor(matrix))
    }

    /// Elementwise sum.
    @inlinable
    public static func + (lhs: Matrix, rhs: Matrix) -> Matrix { Matrix(Tensor(lhs) + Tensor(rhs)) }

    /// Elementwise difference.
    @inlinable
    public static func - (lhs: Matrix, rhs: Matrix) -> Matrix { Matrix(Tensor(lhs) - Tensor(rhs)) }
}

extension Tensor {
    /// Views a matrix as an order-2 tensor (no copy).
    @inlinable
    public init(_ matrix: Matrix<Scalar>) {
        self.init(uncheckedShape: [matrix.rows, matrix.columns], scalars: matrix.storage)
    }
}

extension Matrix: CustomStringConvertible {
    @inlinable
    public var description: String {
        "Matrix<\(Scalar.typeName)>(\(rows) × \(columns))"
    }
}
