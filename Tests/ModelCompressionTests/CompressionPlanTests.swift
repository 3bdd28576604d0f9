import Foundation
@testable import ModelCompression
import NNLayers
import ONNX
import TensorIO
import TensorModule
import Testing

/// The one pipeline: readers build the same plan from an ONNX graph and from the equivalent state
/// dict, the budget is allocated the same way over both, and the library checks its options.
@Suite("Compression plan")
struct CompressionPlanTests {
    /// Weights of a three-layer network: a 3×3 conv 8→16, a 1×1 conv 16→16, a linear 64→32.
    static let weights: [(name: String, tensor: Tensor<Float>)] = [
        ("conv1.weight", Tensor<Float>.randomNormal(shape: [16, 8, 3, 3], seed: 1)),
        ("conv2.weight", Tensor<Float>.randomNormal(shape: [16, 16, 1, 1], seed: 2)),
        ("fc.weight", Tensor<Float>.randomNormal(shape: [32, 64], seed: 3)),
    ]

    /// The network as an ONNX graph on a 1×8×H×W input (convs padded to keep the size; the linear
    /// layer as a MatMul on a [1, 64] input of its own, so that both read the same weights).
    static func model() throws -> ONNXModel {
        let fc = try Tensor(shape: [32, 64], scalars: weights[2].tensor.scalars)
        let nodes = [
            ONNXNode(opType: "Conv", name: "conv1", inputs: ["x", "conv1.weight"], outputs: ["a"], attributes: [("pads", .ints([1, 1, 1, 1]))]),
            ONNXNode(opType: "Conv", name: "conv2", inputs: ["a", "conv2.weight"], outputs: ["y"]),
            ONNXNode(opType: "MatMul", name: "fc", inputs: ["v", "fc.weightT"], outputs: ["z"]),
        ]
        let initializers = [
            try ONNXTensor(name: "conv1.weight", weights[0].tensor), try ONNXTensor(name: "conv2.weight", weights[1].tensor),
            try ONNXTensor(name: "fc.weightT", fc.transposed(permutation: [1, 0])),
        ]
        let graph = ONNXGraph(name: "g", nodes: nodes, initializers: initializers,
                              inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.value(1), .value(8), .value(12), .value(12)]),
                                       ONNXValueInfo(name: "v", elementType: .float, shape: [.value(1), .value(64)])],
                              outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: nil), ONNXValueInfo(name: "z", elementType: .float, shape: nil)])
        return ONNXModel(graph: graph, opset: 13)
    }

    static func stateDict() throws -> SafetensorsFile {
        var writer = SafetensorsWriter()
        for (name, tensor) in weights { try writer.add(name, tensor) }
        return try SafetensorsFile(data: try writer.encoded())
    }

    func options(_ configure: (inout CompressionOptions) -> Void = { _ in }) -> CompressionOptions {
        var options = CompressionOptions()
        options.minimumParameters = 0
        options.inputSize = Size2D(12, 12)
        configure(&options)
        return options
    }

    @Test("both readers plan the same candidates with the same shapes")
    func readersAgree() throws {
        let compressor = try ModelCompressor(options: options())
        let graph = try compressor.plan(onnx: try Self.model())
        let dict = try compressor.plan(stateDict: [try Self.stateDict()])
        #expect(graph.layers.map(\.name) == ["conv1", "conv2", "fc"])
        #expect(dict.layers.map(\.name) == ["conv1", "conv2", "fc"])
        #expect(graph.layers.allSatisfy(\.isCandidate) && dict.layers.allSatisfy(\.isCandidate))
        #expect(graph.candidateCount == 3 && dict.candidateCount == 3)
        #expect(dict.layers.map(\.shape) == Self.weights.map(\.tensor.shape))
        // The graph's MACs at its input shapes: 16·8·9·144, 16·16·144, 64·32.
        #expect(graph.layers.map(\.macs) == [16 * 8 * 9 * 144, 16 * 16 * 144, 64 * 32])
        #expect(graph.layers.map(\.op) == ["Conv", "Conv", "MatMul"])
    }

    @Test("a budget settles every candidate: allocated ranks or kept, the same over both readers", arguments: [0.3, 0.6])
    func budgetsAllocateOverThePlan(fraction: Double) throws {
        let compressor = try ModelCompressor(options: options {
            $0.budget = .macs(fraction)
            $0.dataFree = true
            $0.minimumBudgetShare = 0
        })
        var graph = try compressor.plan(onnx: try Self.model())
        var dict = try compressor.plan(stateDict: [try Self.stateDict()])
        try compressor.allocate(&graph)
        try compressor.allocate(&dict)
        for plan in [graph, dict] {
            for layer in plan.layers {
                switch layer.decision {
                case let .decompose(ranks): #expect(ranks != nil, "\(layer.name): a budget gives ranks")
                case let .settled(status): #expect(status == .keptByBudget, "\(layer.name): \(status)")
                }
            }
            #expect(plan.layers.contains { $0.isCandidate }, "a budget of \(fraction) replaces some layer")
        }
        // The graph's linear layer runs on one row, as the state dict's does; the 3×3 conv and the
        // 1×1 conv see 12×12 inputs in both, so the allocations agree.
        #expect(graph.layers.map(\.decision) == dict.layers.map(\.decision))
    }

    /// Per-channel statistics of the three layers' inputs (the 3×3 conv's expanded to patches).
    static func statistics() throws -> CalibrationStatistics {
        var layers: [String: InputStatistics] = [:]
        for (name, dimension, seed) in [("conv1", 8, 11), ("conv2", 16, 12), ("fc", 64, 13)] {
            var s = InputStatistics(dimension: dimension)
            let rows = Tensor<Double>.randomNormal(shape: [4 * dimension, dimension], seed: UInt64(seed))
            try s.accumulate(rows: rows + Tensor(repeating: 0.5, shape: rows.shape))
            layers[name] = s
        }
        return CalibrationStatistics(layers: layers)
    }

    @Test("a budget prepares each layer once: the decomposition reads the layer and expanded statistics it kept", arguments: [true, false])
    func budgetKeepsPreparedLayers(graphReader: Bool) throws {
        let compressor = try ModelCompressor(options: options {
            $0.budget = .macs(0.6)
            $0.statistics = try? Self.statistics()
            $0.minimumBudgetShare = 0
        })
        var plan = graphReader ? try compressor.plan(onnx: try Self.model()) : try compressor.plan(stateDict: [try Self.stateDict()])
        try compressor.allocate(&plan)
        let candidates = plan.layers.filter(\.isCandidate)
        #expect(!candidates.isEmpty)
        for planned in candidates {
            // An ONNX node is prepared in Double, a float32 state dict's weight in Float.
            let kept = try #require(planned.prepared)
            let statistics = graphReader ? kept.prepared(as: Double.self)?.statistics : kept.prepared(as: Float.self)?.statistics
            #expect(statistics?.corrected == true, "\(planned.name): statistics expanded once, with bias correction")
            var fresh = planned
            fresh.prepared = nil
            // The same factors up to the summation order: OpenBLAS runs a call on one thread when
            // another test holds its threads, so exact equality would depend on the test schedule.
            if graphReader {
                let (a, ra) = try compressor.decompose(planned, as: Double.self)
                let (b, rb) = try compressor.decompose(fresh, as: Double.self)
                #expect(ra.ranks == rb.ranks && Self.close(a?.stack, b?.stack, 1e-9), "\(planned.name)")
                #expect(abs((ra.outputError ?? 0) - (rb.outputError ?? 0)) <= 1e-9, "\(planned.name)")
            } else {
                let (a, ra) = try compressor.decompose(planned, as: Float.self)
                let (b, rb) = try compressor.decompose(fresh, as: Float.self)
                #expect(ra.ranks == rb.ranks && Self.close(a?.stack, b?.stack, 1e-4), "\(planned.name)")
                #expect(abs((ra.outputError ?? 0) - (rb.outputError ?? 0)) <= 1e-4, "\(planned.name)")
            }
        }
    }

    /// Whether two stacks have the same layers with weights and biases equal within `tolerance`
    /// (relative to the largest magnitude of each).
    static func close<S: BLASScalar>(_ a: LayerStack<S>?, _ b: LayerStack<S>?, _ tolerance: Double) -> Bool {
        guard let a, let b, a.layers.count == b.layers.count else { return a == nil && b == nil }
        func parts(_ layer: Layer<S>) -> [[Double]] {
            switch layer {
            case let .conv2d(c): return [c.weight.scalars.map { Double($0) }, (c.bias ?? []).map { Double($0) }]
            case let .linear(l): return [l.weight.scalars.map { Double($0) }, (l.bias ?? []).map { Double($0) }]
            default: return []
            }
        }
        return zip(a.layers, b.layers).allSatisfy { x, y in
            let (p, q) = (parts(x), parts(y))
            return p.count == q.count && zip(p, q).allSatisfy { u, v in
                let scale = max(u.map(abs).max() ?? 0, 1e-300)
                return u.count == v.count && zip(u, v).allSatisfy { abs($0 - $1) <= tolerance * scale }
            }
        }
    }

    /// Statistics of `conv1` and `conv2` only: `fc` is a candidate that no calibration reached.
    static func partialStatistics() throws -> CalibrationStatistics {
        var statistics = try Self.statistics()
        statistics.layers["fc"] = nil
        return statistics
    }

    @Test("uncalibrated layers: skipped and outside the budget as excluded ones are (the default), or compressed from their weights within it",
          arguments: [true, false])
    func uncalibratedLayers(graphReader: Bool) throws {
        func allocated(_ configure: (inout CompressionOptions) -> Void) throws -> (CompressionPlan, [CompressionWarning]) {
            let compressor = try ModelCompressor(options: options {
                // A parameter budget, in which fc (2048 weights against 1152 and 256) weighs most.
                $0.budget = .parameters(0.5)
                $0.statistics = try? Self.partialStatistics()
                $0.minimumBudgetShare = 0
                // fc's error weighs nothing: counted in the budget, it is cut first.
                $0.layerWeights = ["fc": 0]
                configure(&$0)
            })
            return try compressor.allocated(graphReader ? try compressor.plan(onnx: try Self.model()) : try compressor.plan(stateDict: [try Self.stateDict()]))
        }
        let (compressed, compressedWarnings) = try allocated { $0.uncalibratedLayers = .dataFree }
        #expect(compressedWarnings.contains(.statisticsMissing(layers: ["fc"], candidates: 3)))
        #expect(compressed.layers[2].ranks != nil, "fc is compressed from its weights within the budget")

        let (skipped, skippedWarnings) = try allocated { _ in }
        #expect(CompressionOptions().uncalibratedLayers == .skip)
        #expect(skippedWarnings.contains(.uncalibratedSkipped(layers: ["fc"], candidates: 3)))
        #expect(!skippedWarnings.contains { if case .statisticsMissing = $0 { return true } else { return false } })
        #expect(skipped.layers[2].decision == .settled(.skippedUncalibrated))
        #expect(skipped.candidateCount == 3, "a skipped layer is still counted as a candidate, as the warning says")
        // The budget is spent over the calibrated layers alone: the same ranks as when the
        // include/exclude filters leave fc out (and statistics cover every layer that is left).
        let (excluded, excludedWarnings) = try allocated { $0.exclude = "^fc" }
        #expect(excludedWarnings.isEmpty, "\(excludedWarnings)")
        #expect(skipped.layers[0..<2].map(\.decision) == excluded.layers[0..<2].map(\.decision))
        #expect(skipped.layers[0..<2].contains { $0.ranks != nil })

        // With statistics of every layer there is nothing to skip.
        let (all, allWarnings) = try allocated { $0.uncalibratedLayers = .skip; $0.statistics = try? Self.statistics() }
        #expect(allWarnings.isEmpty && !all.layers.contains { $0.decision == .settled(.skippedUncalibrated) })
    }

    @Test("a skipped uncalibrated layer is reported as skipped and left out of the compressible totals")
    func uncalibratedLayersInTheReport() throws {
        let compressor = try ModelCompressor(options: options {
            $0.rank = 4
            $0.statistics = try? Self.partialStatistics()
            $0.uncalibratedLayers = .skip
        })
        let result = try compressor.compress(onnx: try Self.model())
        let fc = try #require(result.layers.first { $0.name == "fc" })
        #expect(fc.status == .skippedUncalibrated && fc.status.kind == "skipped")
        #expect(fc.parametersAfter == fc.parametersBefore && fc.macsAfter == fc.macsBefore)
        #expect(result.totals.compressibleMACs == 16 * 8 * 9 * 144 + 16 * 16 * 144)
        #expect(result.warnings == [.uncalibratedSkipped(layers: ["fc"], candidates: 3)])
        #expect(CompressionWarning.uncalibratedSkipped(layers: ["fc"], candidates: 3).description
                == "the statistics name 2 of the 3 candidate layers; 1 are left as they are and outside the budget: fc")
        // The graph still reads fc's weight as it was.
        #expect(result.model.graph.nodes.contains { $0.name == "fc" && $0.inputs.contains("fc.weightT") })
    }

    @Test("refusals carry their values and render the reason")
    func refusalsAreTyped() throws {
        let compressor = try ModelCompressor(options: options { $0.minimumParameters = 1000; $0.exclude = "fc" })
        let plan = try compressor.plan(onnx: try Self.model())
        #expect(plan.layers[0].isCandidate)
        #expect(plan.layers[1].decision == .settled(.notCompressible(.belowMinimum(parameters: 256, minimum: 1000))))
        #expect(plan.layers[2].decision == .settled(.notCompressible(.filtered)))
        let layers = try compressor.layers(in: try Self.model())
        #expect(layers[1].reason == "256 weights, fewer than the minimum of 1000")
        #expect(LayerStatus.notCompressible(.filtered).description == "skipped: excluded by the include/exclude filters")
    }

    @Test("the library checks its own options, whoever built them")
    func optionsAreCheckedOnce() {
        func expectInvalid(_ name: CompressionOptionName, _ configure: (inout CompressionOptions) -> Void) {
            var options = CompressionOptions()
            options.dataFree = true
            configure(&options)
            #expect {
                try ModelCompressor(options: options)
            } throws: { error in
                guard case let .invalidOption(got, _, _) = error as? ModelCompressionError else { return false }
                return got == name
            }
        }
        expectInvalid(.budget) { $0.budget = .macs(-1) }
        expectInvalid(.budget) { $0.budget = .parameters(1.5) }
        expectInvalid(.budget) { $0.budget = .macs(.nan) }
        expectInvalid(.rank) { $0.rank = 0 }
        expectInvalid(.rankMultiple) { $0.rankMultiple = 0 }
        expectInvalid(.minimumBudgetShare) { $0.minimumBudgetShare = 1 }
        expectInvalid(.layerWeights) { $0.layerWeights = ["a": -1] }
        expectInvalid(.include) { $0.include = "(" }
        #expect(throws: ModelCompressionError.budgetWithoutStatistics) {
            var options = CompressionOptions()
            options.budget = .macs(0.5)
            _ = try ModelCompressor(options: options)
        }
        #expect(ModelCompressionError.invalidOption(.budget, value: "macs:-1.0", requirement: .fraction).description
                == "budget macs:-1.0 must be a fraction F with 0 < F ≤ 1")
    }

    @Test("a state dict's result and a graph's both warn when nothing is replaced")
    func nothingReplacedWarns() throws {
        let compressor = try ModelCompressor(options: options { $0.rank = 1; $0.include = "nothing-matches" })
        let graph = try compressor.compress(onnx: try Self.model())
        let dict = try compressor.compress(try Self.stateDict())
        #expect(graph.warnings == [.nothingReplaced(candidates: 0)])
        #expect(dict.warnings == [.nothingReplaced(candidates: 0)])
    }
}
