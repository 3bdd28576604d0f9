import Testing
import TensorModule
import Decompositions
import NNLayers

/// The cost functions of each factorized form against the stacks that the `LayerStack`
/// initializers build: MACs are half the stack's FLOPs and parameters its parameter count, at every
/// rank, full ranks (folded layers) included.
@Suite("Form costs")
struct FormCostTests {
    func checkConvForms<S: BLASScalar>(_: S.Type, _ setting: ConvSetting) throws {
        let conv = try CompressionTests.makeConv(S.self, setting)
        let (tg, sg) = (12 / setting.groups, 8 / setting.groups)
        let (kh, kw) = (setting.kernel.height, setting.kernel.width)
        let input = [8, setting.input.height, setting.input.width]
        func expectSame(_ cost: FormCost, _ stack: LayerStack<S>, _ form: String) throws {
            let actual = try stack.cost(input: input)
            #expect(cost.macs == Double(actual.flops) / 2, "\(form) MACs, \(setting)")
            #expect(cost.parameters == Double(actual.parameters), "\(form) parameters, \(setting)")
        }
        let original = try conv.cost(input: input)
        let own = try conv.formCost(input: setting.input)
        #expect(own.macs == Double(original.flops) / 2 && own.parameters == Double(original.parameters), "the layer's own cost, \(setting)")
        for rOut in Set([1, tg / 2, tg].filter { $0 >= 1 }) {
            for rIn in Set([1, sg / 2, sg].filter { $0 >= 1 }) {
                let factors = try (0..<setting.groups).map { g in
                    try TuckerTensor<S>(core: Tensor.randomNormal(shape: [rOut, rIn, kh, kw], seed: UInt64(g)),
                                        factors: [Matrix.randomNormal(rows: tg, columns: rOut, seed: 1), Matrix.randomNormal(rows: sg, columns: rIn, seed: 2)],
                                        modes: [0, 1])
                }
                try expectSame(try conv.tucker2Cost(ranks: [rOut, rIn], input: setting.input), try LayerStack(tucker2: factors, replacing: conv),
                               "Tucker-2 [\(rOut), \(rIn)]")
            }
        }
        for rank in [1, 3, 7] {
            let factors = try (0..<setting.groups).map { g in
                try CPTensor<S>(weights: [S](repeating: 1, count: rank),
                                factors: [tg, sg, kh, kw].map { Matrix<S>.randomNormal(rows: $0, columns: rank, seed: UInt64(g)) })
            }
            try expectSame(try conv.cpCost(rank: rank, input: setting.input), try LayerStack(cp: factors, replacing: conv), "CP \(rank)")
        }
        if setting.kernel == Size2D(1) {
            for rank in Set([1, min(tg, sg)]) {
                let factors = try (0..<setting.groups).map { _ in try svd(Matrix<S>.randomNormal(rows: tg, columns: sg, seed: 4), rank: rank) }
                try expectSame(try conv.svdCost(rank: rank, input: setting.input), try LayerStack(svd: factors, replacing: conv), "SVD \(rank)")
            }
        }
    }

    @Test("conv forms: cost functions equal the built stacks' costs", arguments: ConvSetting.grid)
    func convForms(_ setting: ConvSetting) throws {
        try checkConvForms(Float.self, setting)
        try checkConvForms(Double.self, setting)
    }

    func checkLinear<S: BLASScalar>(_: S.Type) throws {
        for bias in [false, true] {
            let linear = try Linear(weight: Matrix<S>.randomNormal(rows: 6, columns: 9, seed: 1), bias: bias ? [S](repeating: 1, count: 6) : nil)
            let input = [4, 5, 9]
            let original = try linear.cost(input: input)
            #expect(linear.formCost(rows: 20) == FormCost(macs: Double(original.flops) / 2, parameters: Double(original.parameters)))
            for rank in 1...6 {
                let stack = try LayerStack(svd: svd(linear.weight, rank: rank), replacing: linear)
                let cost = try stack.cost(input: input)
                #expect(linear.svdCost(rank: rank, rows: 20) == FormCost(macs: Double(cost.flops) / 2, parameters: Double(cost.parameters)),
                        "SVD rank \(rank), bias \(bias)")
            }
        }
    }

    @Test("linear SVD form: cost function equals the built stack's cost")
    func linearForm() throws {
        try checkLinear(Float.self)
        try checkLinear(Double.self)
    }
}
