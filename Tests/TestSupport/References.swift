import TensorModule

/// Naive index-loop references, independent of the BLAS paths they check.
public enum Reference {
    /// Every multi-index of `shape` in row-major order.
    public static func indices(_ shape: [Int]) -> [[Int]] {
        if shape.contains(0) { return [] }
        var result: [[Int]] = []
        var index = [Int](repeating: 0, count: shape.count)
        while true {
            result.append(index)
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
            if axis < 0 { return result }
        }
    }

    /// Row-major flat position of `index` in `shape`.
    public static func flat(_ index: [Int], _ shape: [Int]) -> Int {
        zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 }
    }

    /// TensorLy's mode-n unfolding by loops: column = row-major index of the other indices.
    public static func unfold<S: BLASScalar>(_ x: Tensor<S>, mode: Int) -> [[S]] {
        let others = x.shape.enumerated().filter { $0.offset != mode }.map(\.element)
        let columns = others.reduce(1, *)
        var m = [[S]](repeating: [S](repeating: 0, count: columns), count: x.shape[mode])
        for index in indices(x.shape) {
            var rest = index
            rest.remove(at: mode)
            m[index[mode]][flat(rest, others)] = x[indices: index]
        }
        return m
    }

    /// The permuted tensor by loops.
    public static func transpose<S: BLASScalar>(_ x: Tensor<S>, _ permutation: [Int]) -> Tensor<S> {
        let shape = permutation.map { x.shape[$0] }
        var y = Tensor<S>.zeros(shape: shape)
        for index in indices(shape) {
            var source = [Int](repeating: 0, count: shape.count)
            for (axis, p) in permutation.enumerated() { source[p] = index[axis] }
            y[indices: index] = x[indices: source]
        }
        return y
    }

    /// `X ×_n M` by loops, `M` of shape `J × I_n`.
    public static func modeProduct<S: BLASScalar>(_ x: Tensor<S>, _ m: Matrix<S>, mode: Int) -> Tensor<S> {
        var shape = x.shape
        shape[mode] = m.rows
        var y = Tensor<S>.zeros(shape: shape)
        for index in indices(shape) {
            var sum: S = 0
            var source = index
            for i in 0..<x.shape[mode] {
                source[mode] = i
                sum += m[index[mode], i] * x[indices: source]
            }
            y[indices: index] = sum
        }
        return y
    }

    /// `A_0 ⊙ A_1 ⊙ ⋯` by loops, first row index slowest.
    public static func khatriRao<S: BLASScalar>(_ matrices: [Matrix<S>]) -> Matrix<S> {
        let r = matrices[0].columns
        let rowShape = matrices.map(\.rows)
        var result = Matrix<S>.zeros(rows: rowShape.reduce(1, *), columns: r)
        for index in indices(rowShape) {
            for column in 0..<r {
                var product: S = 1
                for (k, i) in index.enumerated() { product *= matrices[k][i, column] }
                result[flat(index, rowShape), column] = product
            }
        }
        return result
    }

    /// `A ⊗ B` by loops.
    public static func kronecker<S: BLASScalar>(_ a: Matrix<S>, _ b: Matrix<S>) -> Matrix<S> {
        var result = Matrix<S>.zeros(rows: a.rows * b.rows, columns: a.columns * b.columns)
        for i in 0..<a.rows { for j in 0..<a.columns { for k in 0..<b.rows { for l in 0..<b.columns {
            result[i * b.rows + k, j * b.columns + l] = a[i, j] * b[k, l]
        } } } }
        return result
    }

    /// `A · B` by loops.
    public static func matmul<S: BLASScalar>(_ a: [[S]], _ b: Matrix<S>) -> Matrix<S> {
        var result = Matrix<S>.zeros(rows: a.count, columns: b.columns)
        for i in 0..<a.count { for j in 0..<b.columns {
            var sum: S = 0
            for k in 0..<b.rows { sum += a[i][k] * b[k, j] }
            result[i, j] = sum
        } }
        return result
    }

    /// The full tensor `Σ_r λ_r a⁰_r ∘ a¹_r ∘ ⋯` of a CP model, by loops.
    public static func cpTensor<S: BLASScalar>(weights: [S]? = nil, factors: [Matrix<S>]) -> Tensor<S> {
        let shape = factors.map(\.rows)
        let r = factors[0].columns
        var x = Tensor<S>.zeros(shape: shape)
        for index in indices(shape) {
            var sum: S = 0
            for column in 0..<r {
                var product: S = weights?[column] ?? 1
                for (k, i) in index.enumerated() { product *= factors[k][i, column] }
                sum += product
            }
            x[indices: index] = sum
        }
        return x
    }

    /// The largest absolute difference between two matrices, relative to the larger norm.
    public static func relativeDifference<S: BLASScalar>(_ a: Matrix<S>, _ b: Matrix<S>) -> S {
        precondition(a.shape == b.shape, "relativeDifference: \(a.shape) vs \(b.shape)")
        let diff = (a - b).frobeniusNorm
        let scale = max(a.frobeniusNorm, b.frobeniusNorm)
        return scale == 0 ? diff : diff / scale
    }

    /// A tolerance of `factor` units in the last place for `S`.
    public static func tolerance<S: BLASScalar>(_: S.Type, ulps factor: S = 64) -> S { factor * S.ulpOfOne }
}

/// Shapes of orders 1 to 5 with sizes including 1, used across suites.
public enum TestShapes {
    public static let all: [[Int]] = [
        [5], [1], [3, 4], [1, 5], [4, 1], [3, 4, 2], [2, 1, 3], [1, 1, 1],
        [2, 3, 1, 4], [3, 2, 4, 2], [3, 2, 2, 1, 2], [2, 3, 2, 2, 3],
    ]
}
