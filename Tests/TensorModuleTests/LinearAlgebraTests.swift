import Foundation
import Testing
import TensorModule
import TestSupport

@Suite("Matrix products and LAPACK wrappers")
struct LinearAlgebraTests {
    func checkProducts<S: BLASScalar>(_: S.Type) throws {
        let a = Matrix<S>.randomNormal(rows: 5, columns: 3, seed: 1)
        let b = Matrix<S>.randomNormal(rows: 3, columns: 4, seed: 2)
        let rows = (0..<5).map { a.row($0) }
        #expect(Reference.relativeDifference(a.matmul(b), Reference.matmul(rows, b)) <= Reference.tolerance(S.self))
        #expect(Reference.relativeDifference(a.transposed().matmul(b, transposeSelf: true), a.matmul(b)) <= Reference.tolerance(S.self))
        #expect(Reference.relativeDifference(a.matmul(b.transposed(), transposeOther: true), a.matmul(b)) <= Reference.tolerance(S.self))
        #expect(Reference.relativeDifference(a.gram(), a.matmul(a, transposeSelf: true)) <= Reference.tolerance(S.self))
        let v = a.matvec([1, 2, 3])
        for i in 0..<5 { #expect(abs(v[i] - (a[i, 0] + 2 * a[i, 1] + 3 * a[i, 2])) <= Reference.tolerance(S.self, ulps: 100)) }
        #expect(a.transposed().transposed() == a)
        #expect(a.columnNorms().count == 3)
    }

    @Test func products() throws {
        try checkProducts(Float.self)
        try checkProducts(Double.self)
    }

    func checkSolvers<S: BLASScalar>(_: S.Type) throws {
        let a = Matrix<S>.randomNormal(rows: 8, columns: 4, seed: 3)
        let spd = a.gram() + Matrix<S>.identity(4)
        let b = Matrix<S>.randomNormal(rows: 4, columns: 3, seed: 4)
        let tolerance = Reference.tolerance(S.self, ulps: 2000)
        let x = try spd.choleskySolve(b)
        #expect(Reference.relativeDifference(spd.matmul(x), b) <= tolerance)
        let bt = b.transposed()
        let y = try spd.choleskySolve(bt, side: .right)
        #expect(Reference.relativeDifference(y.matmul(spd), bt) <= tolerance)
        let general = Matrix<S>.randomNormal(rows: 4, columns: 4, seed: 5)
        let z = try general.luSolve(b)
        #expect(Reference.relativeDifference(general.matmul(z), b) <= tolerance)
        let w = try general.luSolve(bt, side: .right)
        #expect(Reference.relativeDifference(w.matmul(general), bt) <= tolerance)
        #expect(throws: LinearAlgebraError.notPositiveDefinite(order: 2, pivot: 2)) {
            try Matrix<S>([[1, 2], [2, 1]]).choleskySolve(.identity(2))
        }
        #expect(throws: LinearAlgebraError.self) { try Matrix<S>([[1, 2], [2, 4]]).luSolve(.identity(2)) }
    }

    @Test func solvers() throws {
        try checkSolvers(Float.self)
        try checkSolvers(Double.self)
    }

    func checkFactorizations<S: BLASScalar>(_: S.Type) throws {
        let tolerance = Reference.tolerance(S.self, ulps: 2000)
        for (m, n) in [(6, 4), (4, 6), (5, 5), (1, 7)] {
            let a = Matrix<S>.randomNormal(rows: m, columns: n, seed: UInt64(m * 10 + n))
            // Pseudo-inverse: A A⁺ A = A and A⁺ A A⁺ = A⁺.
            let p = try a.pseudoInverse()
            #expect(p.shape == [n, m])
            #expect(Reference.relativeDifference(a.matmul(p).matmul(a), a) <= tolerance)
            #expect(Reference.relativeDifference(p.matmul(a).matmul(p), p) <= tolerance)
            // QR: Q orthonormal, R upper triangular, QR = A.
            let (q, r) = try a.qr()
            #expect(Reference.relativeDifference(q.gram(), .identity(min(m, n))) <= tolerance)
            #expect(Reference.relativeDifference(q.matmul(r), a) <= tolerance)
            for i in 0..<r.rows { for j in 0..<min(i, r.columns) { #expect(r[i, j] == 0) } }
            // Singular values: their squares sum to ‖A‖²; they are descending.
            let s = try a.singularValues()
            #expect(s.count == min(m, n))
            #expect(zip(s, s.dropFirst()).allSatisfy { $0 >= $1 })
            let energy = s.reduce(0) { $0 + $1 * $1 }
            #expect(abs(energy - a.frobeniusNorm * a.frobeniusNorm) <= tolerance * energy)
        }
        // Symmetric eigendecomposition: A V = V Λ.
        let b = Matrix<S>.randomNormal(rows: 5, columns: 5, seed: 9)
        let sym = b + b.transposed()
        let (values, vectors) = try sym.symmetricEigen()
        #expect(zip(values, values.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(Reference.relativeDifference(sym.matmul(vectors), vectors.scalingColumns(by: values)) <= tolerance)
        // Rank-deficient pseudo-inverse stays finite.
        let deficient = try Matrix<S>([[1, 2], [2, 4], [3, 6]])
        let pd = try deficient.pseudoInverse()
        #expect(pd.scalars.allSatisfy { $0.isFinite })
        #expect(Reference.relativeDifference(deficient.matmul(pd).matmul(deficient), deficient) <= tolerance)
    }

    @Test func factorizations() throws {
        try checkFactorizations(Float.self)
        try checkFactorizations(Double.self)
    }

    /// Float wide matrices take their left singular vectors from a Gram matrix in Double. On a
    /// graded spectrum (σ from 1 down to 1e-6) both the vectors and the values must be at least as
    /// close to a Double SVD of the same Float data as Float's own QR-and-SVD route is.
    @Test(arguments: [(12, 40), (20, 20), (30, 200)])
    func gramRouteIsAsAccurateAsFloatSVD(rows: Int, columns: Int) throws {
        let q1 = try Matrix<Double>.randomNormal(rows: rows, columns: rows, seed: 31).qr().q
        let q2 = try Matrix<Double>.randomNormal(rows: columns, columns: rows, seed: 32).qr().q
        let sigma = (0..<rows).map { Foundation.pow(10, -6 * Double($0) / Double(rows - 1)) }
        let exact = q1.scalingColumns(by: sigma).matmul(q2, transposeOther: true)
        let data = try Matrix<Float>(rows: rows, columns: columns, scalars: exact.scalars.map { Float($0) })
        let reference = try Matrix<Double>(rows: rows, columns: columns, scalars: data.scalars.map { Double($0) })
            .lapackThinSVD(computeU: true, computeVT: false)
        let gram = try data.gramLeftSingularVectors()
        let floatSVD = try data.lapackThinSVD(computeU: true, computeVT: false)
        #expect(try data.lapackLeftSingularVectors().s == gram.s, "Float wide matrices take the Gram route")
        func vectorError(_ u: Matrix<Float>, _ column: Int) -> Double {
            let dot = (0..<rows).reduce(0.0) { $0 + Double(u[$1, column]) * reference.u[$1, column] }
            return 1 - Swift.abs(dot)
        }
        for i in 0..<rows {
            let valueError = Swift.abs(Double(gram.s[i]) - reference.s[i])
            let floatValueError = Swift.abs(Double(floatSVD.s[i]) - reference.s[i])
            #expect(valueError <= Swift.max(2 * floatValueError, 1e-7), "σ_\(i) = \(reference.s[i])")
            #expect(vectorError(gram.u, i) <= Swift.max(2 * vectorError(floatSVD.u, i), 1e-6), "u_\(i), σ = \(reference.s[i])")
        }
        // Orthonormal columns.
        let gramOfU = gram.u.matmul(gram.u, transposeSelf: true)
        for i in 0..<rows {
            for j in 0..<rows { #expect(Swift.abs(gramOfU[i, j] - (i == j ? 1 : 0)) <= 1e-5) }
        }
    }

    /// The Gram route computes only the `k` leading vectors (inverse iteration below k = n/2,
    /// divide and conquer above), also when the tridiagonal form splits into blocks (block-diagonal
    /// Gram matrix) or the singular values repeat. Each vector must satisfy `A Aᵀ u = σ² u`.
    @Test(arguments: [
        ("random", [1, 5, 14, 15, 16, 29, 30]), ("blocks", [1, 3, 10, 13, 24]), ("repeated", [1, 4, 8, 16]),
    ])
    func gramRouteComputesTheLeadingVectors(kind: String, counts: [Int]) throws {
        let data: Matrix<Float>
        switch kind {
        case "random":
            data = Matrix<Float>.randomNormal(rows: 30, columns: 80, seed: 41)
        case "blocks":
            // Rows 0–7, 8–15, 16–23 live on disjoint columns: A Aᵀ is block diagonal.
            var m = Matrix<Float>.zeros(rows: 24, columns: 60)
            let values = Matrix<Float>.randomNormal(rows: 24, columns: 20, seed: 42)
            for i in 0..<24 { for j in 0..<20 { m[i, (i / 8) * 20 + j] = values[i, j] * Float(1 + i / 8) } }
            data = m
        default:
            // Orthonormal rows times 3: every singular value is 3.
            let q = try Matrix<Double>.randomNormal(rows: 64, columns: 16, seed: 43).qr().q
            data = try Matrix<Float>(rows: 16, columns: 64, scalars: q.transposed().scalars.map { Float(3 * $0) })
        }
        let exact = try Matrix<Double>(rows: data.rows, columns: data.columns, scalars: data.scalars.map { Double($0) })
        let reference = try exact.lapackThinSVD(computeU: false, computeVT: false).s
        let gram = exact.matmul(exact, transposeOther: true)
        for count in counts {
            let (u, s) = try data.gramLeftSingularVectors { _ in count }
            #expect(u.rows == data.rows && u.columns == count)
            #expect(s.count == data.rows)
            for i in 0..<data.rows { #expect(Swift.abs(Double(s[i]) - reference[i]) <= 1e-6 * reference[0], "\(kind) σ_\(i)") }
            let ud = try Matrix<Double>(rows: u.rows, columns: u.columns, scalars: u.scalars.map { Double($0) })
            let residual = gram.matmul(ud) - ud.scalingColumns(by: (0..<count).map { Double(s[$0]) * Double(s[$0]) })
            #expect(residual.frobeniusNorm <= 1e-5 * reference[0] * reference[0], "\(kind), k = \(count)")
            let identity = ud.matmul(ud, transposeSelf: true)
            for i in 0..<count {
                for j in 0..<count { #expect(Swift.abs(identity[i, j] - (i == j ? 1 : 0)) <= 1e-6, "\(kind), k = \(count)") }
            }
        }
    }

    @Test func errorMessagesCarryNumbers() {
        #expect("\(LinearAlgebraError.lapack(routine: "gesdd", info: 3))" == "gesdd failed to converge (info = 3)")
        #expect("\(LinearAlgebraError.lapack(routine: "potrs", info: -4))" == "potrs: argument 4 had an illegal value (info = -4)")
    }
}
