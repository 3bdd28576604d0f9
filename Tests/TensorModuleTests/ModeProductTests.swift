import Testing
import TensorModule
import TestSupport

@Suite("Mode products")
struct ModeProductTests {
    func checkModeProduct<S: BLASScalar>(_: S.Type, shape: [Int]) throws {
        let x = Tensor<S>.randomNormal(shape: shape, seed: 3)
        for mode in 0..<shape.count {
            for j in [1, 2, 5] {
                let m = Matrix<S>.randomNormal(rows: j, columns: shape[mode], seed: UInt64(10 * mode + j))
                let expected = Reference.modeProduct(x, m, mode: mode)
                let y = try x.modeProduct(m, mode: mode)
                #expect(y.shape == expected.shape)
                #expect(try y.relativeError(to: expected) <= Reference.tolerance(S.self, ulps: 100), "mode \(mode), J = \(j), \(shape)")
                let yt = try x.modeProduct(m.transposed(), mode: mode, transposed: true)
                #expect(try yt.relativeError(to: expected) <= Reference.tolerance(S.self, ulps: 100))
            }
        }
    }

    @Test(arguments: TestShapes.all + [[3, 20, 17], [20, 3, 40], [6, 30, 2, 3]])
    func modeProductMatchesLoops(shape: [Int]) throws {
        try checkModeProduct(Float.self, shape: shape)
        try checkModeProduct(Double.self, shape: shape)
    }

    func checkCommute<S: BLASScalar>(_: S.Type) throws {
        let x = Tensor<S>.randomNormal(shape: [4, 5, 6, 3], seed: 1)
        let a = Matrix<S>.randomNormal(rows: 2, columns: 5, seed: 2)
        let b = Matrix<S>.randomNormal(rows: 7, columns: 3, seed: 3)
        let c = Matrix<S>.randomNormal(rows: 3, columns: 4, seed: 4)
        let ab = try x.modeProduct(a, mode: 1).modeProduct(b, mode: 3).modeProduct(c, mode: 0)
        let ba = try x.modeProduct(c, mode: 0).modeProduct(b, mode: 3).modeProduct(a, mode: 1)
        #expect(try ab.relativeError(to: ba) <= Reference.tolerance(S.self, ulps: 100))
        let multi = try x.multiModeProduct([a, b, c], modes: [1, 3, 0])
        #expect(try multi.relativeError(to: ab) <= Reference.tolerance(S.self, ulps: 100))
        // unfold(Y, n) = M · unfold(X, n)
        let y = try x.modeProduct(a, mode: 1)
        let direct = a.matmul(x.unfolded(mode: 1))
        #expect(Reference.relativeDifference(y.unfolded(mode: 1), direct) <= Reference.tolerance(S.self, ulps: 100))
        // skipping form
        let all = [c, a, Matrix<S>.identity(6), b]
        let skipped = try x.multiModeProduct(all, skipping: 2)
        #expect(try skipped.relativeError(to: ab) <= Reference.tolerance(S.self, ulps: 100))
    }

    @Test func productsInDifferentModesCommute() throws {
        try checkCommute(Float.self)
        try checkCommute(Double.self)
    }

    @Test func mismatchedMatrixThrows() throws {
        let x = Tensor<Double>.zeros(shape: [3, 4, 2])
        let m = Matrix<Double>.zeros(rows: 5, columns: 3)
        #expect(throws: TensorError.shapeMismatch(operation: "mode-1 product with a tensor of shape [3, 4, 2]", expected: [5, 4], actual: [5, 3])) {
            try x.modeProduct(m, mode: 1)
        }
        #expect(throws: TensorError.countMismatch(operation: "multiModeProduct: matrices for modes [0, 1]", expected: 2, actual: 1)) {
            try x.multiModeProduct([m], modes: [0, 1])
        }
    }

    /// Modes are indices chosen by the programmer: out of range or repeated, they stop the process.
    @Test func badModesArePreconditions() async {
        await #expect(processExitsWith: .failure) {
            _ = try? Tensor<Double>.zeros(shape: [3, 4, 2]).multiModeProduct([.zeros(rows: 3, columns: 3)], modes: [5])
        }
        await #expect(processExitsWith: .failure) {
            let m = Matrix<Double>.zeros(rows: 3, columns: 3)
            _ = try? Tensor<Double>.zeros(shape: [3, 4, 2]).multiModeProduct([m, m], modes: [0, 0])
        }
    }
}
