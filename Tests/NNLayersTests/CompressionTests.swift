import Foundation
import Testing
import TensorModule
import Decompositions
import NNLayers
import TestSupport

@Suite("Factorized layers")
struct CompressionTests {
    static func makeConv<S: BLASScalar>(_: S.Type, _ setting: ConvSetting, inChannels: Int = 8, outChannels: Int = 12, weight: Tensor<S>? = nil) throws -> Conv2D<S> {
        let w = weight ?? Tensor<S>.randomNormal(shape: [outChannels, inChannels / setting.groups, setting.kernel.height, setting.kernel.width], seed: 5)
        let bias = setting.bias ? Tensor<S>.randomNormal(shape: [outChannels], seed: 6).scalars.map { $0 } : nil
        return try Conv2D(weight: w, bias: bias, stride: setting.stride, padding: setting.padding, dilation: setting.dilation, groups: setting.groups)
    }

    static func input<S: BLASScalar>(_: S.Type, _ setting: ConvSetting, channels: Int = 8) -> Tensor<S> {
        Tensor<S>.randomNormal(shape: [setting.batch, channels, setting.input.height, setting.input.width], seed: 7)
    }

    static func bound<S: BLASScalar>(_: S.Type) -> S { S.self == Float.self ? 1e-4 : 1e-10 }

    func checkTucker2FullRank<S: BLASScalar>(_: S.Type, _ setting: ConvSetting) throws {
        let conv = try Self.makeConv(S.self, setting)
        let x = Self.input(S.self, setting)
        // Full multilinear ranks: min(T_g, S_g·kh·kw) and min(S_g, T_g·kh·kw).
        let (tg, sg, area) = (12 / setting.groups, 8 / setting.groups, setting.kernel.height * setting.kernel.width)
        let (rOut, rIn) = (min(tg, sg * area), min(sg, tg * area))
        let compressed = try conv.compressed(by: .tucker2(.fixed([rOut, rIn])))
        // A full output or input rank folds its factor into the core (Tucker-1).
        #expect(compressed.stack.layers.count == (rOut == tg || rIn == sg ? 2 : 3))
        let error = try compressed.stack(x).relativeError(to: conv(x))
        #expect(error < Self.bound(S.self), "Tucker-2 at full rank, \(setting): \(error)")
    }

    func checkCPMapping<S: BLASScalar>(_: S.Type, _ setting: ConvSetting) throws {
        // A kernel that is exactly CP of rank 5 in every group: the stack must reproduce the conv exactly.
        let (tg, sg) = (12 / setting.groups, 8 / setting.groups)
        let factors = try (0..<setting.groups).map { g in
            try CPTensor<S>(weights: [1, 2, 3, 4, 5].map { S($0) }, factors: [tg, sg, setting.kernel.height, setting.kernel.width].enumerated().map {
                Matrix<S>.randomNormal(rows: $0.element, columns: 5, seed: UInt64(10 * g + $0.offset))
            })
        }
        let kernel = try factors.map { try Tensor($0).scalars }.reduce([], +)
        let conv = try Self.makeConv(S.self, setting, weight: Tensor(shape: [12, sg, setting.kernel.height, setting.kernel.width], scalars: kernel))
        let stack = try LayerStack(cp: factors, replacing: conv)
        let x = Self.input(S.self, setting)
        let error = try stack(x).relativeError(to: conv(x))
        #expect(error < Self.bound(S.self), "CP layers for an exactly CP kernel, \(setting): \(error)")
        // A depthwise layer for each axis along which the convolution acts, between two pointwise ones.
        #expect(stack.layers.count == 2 + (conv.cpActsVertically ? 1 : 0) + (conv.cpActsHorizontally ? 1 : 0))
        let kernels = stack.layers.dropFirst().dropLast().map { layer -> Size2D in
            guard case let .conv2d(depthwise) = layer else { return Size2D(0) }
            return depthwise.kernelSize
        }
        #expect(kernels == (conv.cpActsVertically ? [Size2D(setting.kernel.height, 1)] : []) + (conv.cpActsHorizontally ? [Size2D(1, setting.kernel.width)] : []))
    }

    func checkTTFullRank<S: BLASScalar>(_: S.Type, _ setting: ConvSetting) throws {
        var ungrouped = setting
        ungrouped.groups = 1
        let conv = try Self.makeConv(S.self, ungrouped)
        let x = Self.input(S.self, ungrouped)
        let compressed = try conv.compressed(by: .tensorTrain(outputModes: [3, 4], inputModes: [2, 4]))
        let error = try compressed.stack(x).relativeError(to: conv(x))
        #expect(error < Self.bound(S.self), "TT-conv at full rank, \(ungrouped): \(error)")
    }

    @Test(arguments: ConvSetting.grid)
    func fullRankStacksReproduceTheConvolution(setting: ConvSetting) throws {
        try checkTucker2FullRank(Float.self, setting)
        try checkTucker2FullRank(Double.self, setting)
        try checkCPMapping(Float.self, setting)
        try checkCPMapping(Double.self, setting)
        try checkTTFullRank(Float.self, setting)
        try checkTTFullRank(Double.self, setting)
    }

    func checkCPDecomposition<S: BLASScalar>(_: S.Type) throws {
        // CP-ALS on an exactly rank-4 kernel, then the layers: output error follows the kernel error.
        let setting = ConvSetting(kernel: Size2D(3), stride: Size2D(2, 1), padding: Padding(top: 0, bottom: 1, left: 1, right: 0),
                                  dilation: Size2D(1, 2), groups: 1, bias: true, batch: 2, input: Size2D(12, 15))
        let factors = [12, 8, 3, 3].enumerated().map { Matrix<S>.randomNormal(rows: $0.element, columns: 4, seed: UInt64(40 + $0.offset)) }
        let conv = try Self.makeConv(S.self, setting, weight: Reference.cpTensor(factors: factors))
        let compressed = try conv.compressed(by: .cp(.fixed([4]), maxIterations: 3000))
        let x = Self.input(S.self, setting)
        let outputError = Double(try compressed.stack(x).relativeError(to: conv(x)))
        #expect(compressed.kernelRelativeError < (S.self == Float.self ? 1e-3 : 1e-6))
        #expect(outputError < 3 * compressed.kernelRelativeError + 10 * Double(S.ulpOfOne).squareRoot())
    }

    @Test func cpOfALowRankKernel() throws {
        try checkCPDecomposition(Float.self)
        try checkCPDecomposition(Double.self)
    }

    func checkLowerRanks<S: BLASScalar>(_: S.Type) throws {
        // A kernel with decaying channel spectrum; errors shrink as the ranks grow and follow the kernel error.
        let setting = ConvSetting(kernel: Size2D(3), stride: Size2D(1), padding: .symmetric(1), dilation: Size2D(1),
                                  groups: 1, bias: true, batch: 2, input: Size2D(10, 9))
        let core = Tensor<S>.randomNormal(shape: [12, 8, 3, 3], seed: 1)
        let decay = { (n: Int) in Matrix<S>.identity(n).scalingColumns(by: (0..<n).map { S(Double.pow(0.6, Double($0))) }) }
        let conv = try Self.makeConv(S.self, setting, weight: core.multiModeProduct([decay(12), decay(8)], modes: [0, 1]))
        let x = Self.input(S.self, setting)
        let y = try conv(x)
        var previous = (kernel: Double.infinity, output: Double.infinity)
        for (rOut, rIn) in [(2, 1), (3, 2), (6, 4), (9, 6), (12, 8)] {
            let compressed = try conv.compressed(by: .tucker2(.fixed([rOut, rIn])))
            let outputError = Double(try compressed.stack(x).relativeError(to: y))
            #expect(compressed.kernelRelativeError <= previous.kernel + 1e-6)
            #expect(outputError <= previous.output + 1e-6, "output error shrinks with the rank")
            #expect(outputError <= 2 * compressed.kernelRelativeError + 1e-5, "output error \(outputError), kernel error \(compressed.kernelRelativeError)")
            previous = (compressed.kernelRelativeError, outputError)
        }
        #expect(previous.output < Double(Self.bound(S.self)), "full ranks reproduce the layer")
    }

    @Test func lowerRanksTradeErrorForSize() throws {
        try checkLowerRanks(Float.self)
        try checkLowerRanks(Double.self)
    }

    func checkLinear<S: BLASScalar>(_: S.Type) throws {
        let fc = try Linear(weight: Matrix<S>.randomNormal(rows: 24, columns: 30, seed: 1), bias: (0..<24).map { S($0) })
        let x = Tensor<S>.randomNormal(shape: [5, 30], seed: 2)
        let full = try fc.compressed(by: .svd(.fixed([24])))
        #expect(try full.stack(x).relativeError(to: fc(x)) < Self.bound(S.self))
        #expect(full.stack.layers.count == 2)
        let tt = try fc.compressed(by: .tensorTrain(outputModes: [2, 3, 4], inputModes: [5, 3, 2]))
        #expect(try tt.stack(x).relativeError(to: fc(x)) < Self.bound(S.self))
        var previous = Double.infinity
        for r in [2, 6, 12, 24] {
            let c = try fc.compressed(by: .svd(.fixed([r])))
            let e = Double(try c.stack(x).relativeError(to: fc(x)))
            #expect(e <= previous + 1e-9)
            previous = e
        }
    }

    @Test func linearStacks() throws {
        try checkLinear(Float.self)
        try checkLinear(Double.self)
    }

    @Test func parameterAndFLOPCountsMatchHandComputedValues() throws {
        let conv = try Conv2D(weight: Tensor<Float>.randomNormal(shape: [128, 64, 3, 3], seed: 1), bias: [Float](repeating: 0, count: 128),
                              padding: .symmetric(1))
        let original = try Layer.conv2d(conv).cost(input: [64, 56, 56])
        #expect(original == LayerCost(parameters: 73_856, flops: 462_422_016, outputShape: [128, 56, 56]))

        let tucker = try LayerStack(tucker2: [hosvd(conv.weight, ranks: [32, 16], modes: [0, 1])], replacing: conv)
        let tuckerCost = try tucker.cost(input: [64, 56, 56])
        #expect(tuckerCost == LayerCost(parameters: 1_024 + 4_608 + 4_096 + 128, flops: 6_422_528 + 28_901_376 + 25_690_112, outputShape: [128, 56, 56]))

        let cp = try LayerStack(cp: [cpDecompose(conv.weight, rank: 16, options: CPOptions(maxIterations: 2)).cp], replacing: conv)
        let cpCost = try cp.cost(input: [64, 56, 56])
        #expect(cpCost == LayerCost(parameters: 1_024 + 48 + 48 + 2_048 + 128, flops: 6_422_528 + 301_056 + 301_056 + 12_845_056, outputShape: [128, 56, 56]))

        let fc = try Linear(weight: Matrix<Float>.randomNormal(rows: 1000, columns: 512, seed: 2), bias: [Float](repeating: 0, count: 1000))
        let svdStack = try fc.compressed(by: .svd(.fixed([64])))
        let report = try svdStack.report(input: [512])
        #expect(report == CompressionReport(originalParameters: 513_000, parameters: 97_768, originalFLOPs: 1_024_000, flops: 193_536))
        #expect(abs(report.predictedSpeedup - 1_024_000 / 193_536) < 1e-9)

        // Stride 2 halves the output: 28×28.
        let strided = try Conv2D(weight: Tensor<Float>.zeros(shape: [8, 4, 3, 3]), stride: Size2D(2), padding: .symmetric(1))
        #expect(try Layer.conv2d(strided).cost(input: [4, 56, 56]) == LayerCost(parameters: 288, flops: 2 * 8 * 4 * 9 * 28 * 28, outputShape: [8, 28, 28]))
    }

    /// Channel counts far apart on a small kernel: the proportional ranks are cut to what a Tucker-2
    /// core holds (R_in ≤ R_out·kh·kw), as PP-OCRv4's 1×3 convolutions need.
    @Test(arguments: [0.25, 0.5, 0.9])
    func flopBudgetRanksFitTheCore(fraction: Double) throws {
        let conv = try Conv2D(weight: Tensor<Double>.randomNormal(shape: [16, 256, 1, 3], seed: 3), padding: Padding(top: 0, bottom: 0, left: 1, right: 1))
        let compressed = try conv.compressed(by: .tucker2(.flopBudget(fraction)))
        let (rOut, rIn) = (compressed.ranks[0], compressed.ranks[1])
        #expect(rIn <= rOut * 3 && rOut <= rIn * 3, "ranks \(compressed.ranks)")
        let report = try compressed.report(input: [256, 8, 64])
        #expect(Double(report.flops) <= fraction * Double(report.originalFLOPs))
    }

    @Test(arguments: [0.1, 0.25, 0.5])
    func flopBudgetsBoundTheStackCost(fraction: Double) throws {
        for (stride, groups) in [(Size2D(1), 1), (Size2D(2), 1), (Size2D(1), 2)] {
            let conv = try Conv2D(weight: Tensor<Float>.randomNormal(shape: [48, 32 / groups, 3, 3], seed: 1), bias: [Float](repeating: 0, count: 48),
                                  stride: stride, padding: .symmetric(1), groups: groups)
            for method in [ConvDecomposition.tucker2(.flopBudget(fraction)), .cp(.flopBudget(fraction), maxIterations: 2)] {
                let compressed = try conv.compressed(by: method)
                let report = try compressed.report(input: [32, 64, 64])
                #expect(Double(report.flops) <= fraction * Double(report.originalFLOPs), "\(method) stride \(stride) groups \(groups)")
                #expect(Double(report.flops) > 0.5 * fraction * Double(report.originalFLOPs), "the budget is used, not wasted")
                #expect(compressed.reasons.first?.contains("budget \(fraction)") == true)
                if case .cp = method {
                    let larger = try LayerStack(cp: (0..<groups).map { _ in try CPTensor<Float>(factors: [48 / groups, 32 / groups, 3, 3].map {
                        Matrix<Float>.randomNormal(rows: $0, columns: compressed.ranks[0] + 1, seed: 1) }) }, replacing: conv)
                    #expect(Double(try larger.cost(input: [32, 64, 64]).flops) > fraction * Double(report.originalFLOPs), "one more rank would not fit")
                }
            }
        }
        let fc = try Linear(weight: Matrix<Float>.randomNormal(rows: 96, columns: 64, seed: 2))
        let svd = try fc.compressed(by: .svd(.flopBudget(fraction)))
        let report = try svd.report(input: [64])
        #expect(Double(report.flops) <= fraction * Double(report.originalFLOPs))
        #expect(Double(2 * (svd.ranks[0] + 1) * (96 + 64)) > fraction * Double(report.originalFLOPs))
        #expect(throws: NNLayersError.invalidBudget(1.5)) { try fc.compressed(by: .svd(.flopBudget(1.5))) }
    }

    @Test func stacksRoundTripThroughJSON() throws {
        let setting = ConvSetting.grid[7]
        let conv = try Self.makeConv(Float.self, setting)
        let x = Self.input(Float.self, setting)
        for method in [ConvDecomposition.tucker2(.fixed([2, 2])), .cp(.fixed([3]), maxIterations: 5)] {
            let stack = try conv.compressed(by: method).stack
            let data = try JSONEncoder().encode(stack)
            let decoded = try JSONDecoder().decode(LayerStack<Float>.self, from: data)
            #expect(decoded == stack)
            #expect(try decoded(x) == stack(x))
            #expect(String(decoding: data, as: UTF8.self).contains("\"kind\":\"conv2d\""))
        }
        var ungrouped = setting
        ungrouped.groups = 1
        let tt = try Self.makeConv(Float.self, ungrouped).compressed(by: .tensorTrain(maxRank: 4)).stack
        let decoded = try JSONDecoder().decode(LayerStack<Float>.self, from: JSONEncoder().encode(tt))
        #expect(try decoded(x) == tt(x))
        // Decoding checks the settings.
        let bad = #"{"layers":[{"kind":"conv2d","weight":{"shape":[2,1,1,1],"scalars":[1,2]},"stride":[0,1],"padding":[0,0,0,0]},"dilation":{"height":1,"width":1},"groups":1}]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(LayerStack<Float>.self, from: Data(bad.utf8)) }
    }

    @Test func unsupportedDecompositionsSaySo() throws {
        let depthwise = try Conv2D.depthwise(weight: Tensor<Float>.randomNormal(shape: [8, 1, 3, 3], seed: 1), channels: 8)
        #expect(throws: NNLayersError.self) { try depthwise.compressed(by: .tucker2(.fixed([2, 1]))) }
        let grouped = try Conv2D(weight: Tensor<Float>.randomNormal(shape: [8, 2, 3, 3], seed: 1), groups: 2)
        #expect(throws: NNLayersError.self) { try grouped.compressed(by: .tensorTrain()) }
        let conv = try Conv2D(weight: Tensor<Float>.randomNormal(shape: [8, 4, 3, 3], seed: 1))
        #expect(throws: DecompositionError.self) { try conv.compressed(by: .tucker2(.fixed([9, 2]))) }
        #expect(throws: NNLayersError.self) { try conv.compressed(by: .tensorTrain(outputModes: [3, 3], inputModes: [2, 2])) }
        #expect(balancedFactorization(64, count: 3) == [4, 4, 4])
        #expect(balancedFactorization(3, count: 3) == [1, 1, 3])
        #expect(balancedFactorization(1536, count: 3).reduce(1, *) == 1536)
    }
}
