import Testing
import TensorModule
import TestSupport

@Suite("Tensor basics")
struct TensorTests {
    @Test func initThrowsOnWrongCount() {
        #expect(throws: TensorError.scalarCountMismatch(shape: [3, 4], count: 11)) {
            try Tensor<Float>(shape: [3, 4], scalars: [Float](repeating: 0, count: 11))
        }
        #expect(throws: TensorError.negativeDimension(shape: [3, -1])) {
            try Tensor<Double>(shape: [3, -1], scalars: [])
        }
        #expect(throws: TensorError.shapeOverflow(shape: [Int.max, 3])) {
            try Tensor<Double>(shape: [Int.max, 3], scalars: [])
        }
        let message = "\(TensorError.scalarCountMismatch(shape: [3, 4], count: 11))"
        #expect(message == "scalar count 11 does not match shape [3, 4] (12 scalars)")
    }

    @Test func stridesAndSubscripts() throws {
        let x = try Tensor<Double>(shape: [3, 4, 2], scalars: (0..<24).map(Double.init))
        #expect(x.strides == [8, 2, 1])
        #expect(x[1, 2, 0] == 12)
        #expect(x[2, 3, 1] == 23)
        var y = x
        y[0, 0, 1] = -1
        #expect(x[0, 0, 1] == 1, "copy-on-write keeps the original")
        #expect(y[0, 0, 1] == -1)
        let scalar = try Tensor<Float>(shape: [], scalars: [7])
        #expect(scalar.scalarCount == 1 && scalar.order == 0)
    }

    @Test func reshapeInfersAndRejects() throws {
        let x = Tensor<Float>.randomNormal(shape: [2, 3, 4], seed: 1)
        #expect(try x.reshaped(to: [6, -1]).shape == [6, 4])
        #expect(try x.reshaped(to: [24]).scalars == x.scalars)
        #expect(throws: TensorError.scalarCountMismatch(shape: [5, 5], count: 24)) { try x.reshaped(to: [5, 5]) }
        #expect(throws: TensorError.self) { try x.reshaped(to: [-1, -1]) }
        #expect(throws: TensorError.self) { try x.reshaped(to: [5, -1]) }
    }

    @Test func seededRandomIsReproducibleAcrossTypes() {
        let a = Tensor<Double>.randomNormal(shape: [50], seed: 42)
        let b = Tensor<Double>.randomNormal(shape: [50], seed: 42)
        let c = Tensor<Float>.randomNormal(shape: [50], seed: 42)
        #expect(a == b)
        for i in 0..<50 { #expect(Float(a.scalars[i]) == c.scalars[i]) }
        #expect(a != Tensor<Double>.randomNormal(shape: [50], seed: 43))
        let big = Tensor<Double>.randomNormal(shape: [20_000], seed: 7)
        let mean = big.scalars.reduce(0, +) / 20_000
        let variance = big.scalars.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 20_000
        #expect(abs(mean) < 0.05 && abs(variance - 1) < 0.05)
        let u = Tensor<Float>.randomUniform(shape: [1000], in: 2..<3, seed: 3)
        #expect(u.scalars.allSatisfy { $0 >= 2 && $0 < 3 })
    }

    func checkArithmetic<S: BLASScalar>(_: S.Type) throws {
        let x = Tensor<S>.randomNormal(shape: [3, 5, 2], seed: 1)
        let y = Tensor<S>.randomNormal(shape: [3, 5, 2], seed: 2)
        for i in 0..<x.scalarCount {
            #expect((x + y).scalars[i] == x.scalars[i] + y.scalars[i])
            #expect((x - y).scalars[i] == x.scalars[i] - y.scalars[i])
            #expect((x * y).scalars[i] == x.scalars[i] * y.scalars[i])
            #expect((3 * x).scalars[i] == 3 * x.scalars[i])
            #expect((-x).scalars[i] == -x.scalars[i])
        }
        let naiveNorm = x.scalars.reduce(0) { $0 + $1 * $1 }.squareRoot()
        #expect(abs(x.frobeniusNorm - naiveNorm) <= Reference.tolerance(S.self) * naiveNorm)
        let naiveInner = zip(x.scalars, y.scalars).reduce(0) { $0 + $1.0 * $1.1 }
        #expect(abs(x.inner(y) - naiveInner) <= Reference.tolerance(S.self) * 30)
        #expect(try x.relativeError(to: x) == 0)
        #expect(try abs((2 * x).relativeError(to: x) - 1) <= Reference.tolerance(S.self))
        #expect(try Tensor<S>.zeros(shape: [2]).relativeError(to: .zeros(shape: [2])) == 0)
        #expect(try x.relativeError(to: .zeros(shape: x.shape)) == .infinity)
        #expect(x.isApproximatelyEqual(to: x + 1e-3 * S.ulpOfOne * x))
        #expect(!x.isApproximatelyEqual(to: 1.01 * x))
        #expect(!x.isApproximatelyEqual(to: Tensor<S>.zeros(shape: [30])))
    }

    @Test func arithmetic() throws {
        try checkArithmetic(Float.self)
        try checkArithmetic(Double.self)
    }

    @Test func nonFiniteDetection() throws {
        var x = Tensor<Double>.zeros(shape: [2, 3])
        #expect(x.firstNonFiniteIndex == nil)
        x[1, 1] = .nan
        #expect(x.firstNonFiniteIndex == 4)
        #expect(throws: TensorError.nonFinite(operation: "test", index: 4)) { try x.checkFinite(operation: "test") }
    }

    /// The unrolled scans against one-scalar-at-a-time loops: every length up to 40 (whole blocks
    /// of eight and remainders), a NaN, an infinity or the largest magnitude at every position.
    func checkScans<S: BLASScalar>(_: S.Type) {
        func naiveMaximum(_ v: [S]) -> S { v.reduce(0) { Swift.max($0, Swift.abs($1)) } }
        for n in 1...40 {
            let base = Array(Tensor<S>.randomNormal(shape: [n], seed: UInt64(n)).scalars)
            #expect(base.withUnsafeBufferPointer { S.maximumMagnitude(n: n, x: $0.baseAddress!) } == naiveMaximum(base), "n = \(n)")
            #expect(base.withUnsafeBufferPointer { S.firstNonFiniteIndex(n: n, x: $0.baseAddress!) } == nil, "n = \(n)")
            for position in 0..<n {
                for special in [S.nan, -S.infinity, 1e6] {
                    var v = base
                    v[position] = special
                    if position + 1 < n { v[n - 1] = .infinity }   // a later one must not be reported first
                    let first = v.firstIndex { !$0.isFinite }
                    #expect(v.withUnsafeBufferPointer { S.firstNonFiniteIndex(n: n, x: $0.baseAddress!) } == first, "n = \(n), \(special) at \(position)")
                    let maximum = v.withUnsafeBufferPointer { S.maximumMagnitude(n: n, x: $0.baseAddress!) }
                    #expect(maximum == naiveMaximum(v) || (maximum.isNaN && naiveMaximum(v).isNaN), "n = \(n), \(special) at \(position)")
                }
            }
        }
    }

    @Test func scansEqualNaiveLoops() {
        checkScans(Float.self)
        checkScans(Double.self)
    }
}
