import Foundation
import NNLayers
import Testing
@testable import ModelCompression
@testable import ONNX
import TensorIO
import TensorModule
#if canImport(Glibc)
import Glibc
#endif

/// Issue 21 on the library: adversarial graphs give unknown values or thrown errors, never a trap,
/// and the rewrites refuse what they cannot do exactly.
@Suite("Reliability: ONNX graphs")
struct GraphReliabilityTests {
    static let big = 1 << 62

    /// A graph reading `x` of `inputShape` through `nodes`, whose last output is `y`.
    static func graph(_ nodes: [ONNXNode], _ initializers: [ONNXTensor] = [], inputShape: [Int] = [1, 4, 8, 8]) -> ONNXGraph {
        ONNXGraph(name: "g", nodes: nodes, initializers: initializers,
                  inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: inputShape.map { .value($0) })],
                  outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: nil)])
    }

    static func ints(_ name: String, _ values: [Int], shape: [Int]? = nil) -> ONNXTensor { ONNXTensor(name: name, int64: values, shape: shape) }

    static func floats(_ name: String, _ values: [Float], shape: [Int]? = nil) throws -> ONNXTensor {
        try ONNXTensor(name: name, Tensor<Float>(shape: shape ?? [values.count], scalars: values))
    }

    static func node(_ op: String, _ inputs: [String], _ outputs: [String] = ["y"], _ attributes: [(String, ONNXAttribute)] = []) -> ONNXNode {
        ONNXNode(opType: op, name: op.lowercased(), inputs: inputs, outputs: outputs, attributes: attributes)
    }

    /// Every case of the issue's first class: inference returns, and `y` (when listed) is unknown.
    static func trapCases() throws -> [(String, ONNXGraph, [Int]?)] {
        let w = try ONNXTensor(name: "w", Tensor<Float>.zeros(shape: [4, 4, 3, 3]))
        let shapeOfX = node("Shape", ["x"], ["s"])
        let nan = node("Div", ["s", "zero"], ["nan"])          // Shape ÷ 0: NaN values
        let zero = ints("zero", [0], shape: [])
        return [
            ("Conv stride 0", graph([node("Conv", ["x", "w"], ["y"], [("strides", .ints([0, 1]))])], [w]), nil),
            ("MaxPool stride 0", graph([node("MaxPool", ["x"], ["y"], [("kernel_shape", .ints([2, 2])), ("strides", .ints([0, 0]))])]), nil),
            ("Conv pads near 2⁶²", graph([node("Conv", ["x", "w"], ["y"], [("pads", .ints([big, big, big, big]))])], [w]), nil),
            ("Conv dilation near 2⁶²", graph([node("Conv", ["x", "w"], ["y"], [("dilations", .ints([big, 1]))])], [w]), nil),
            ("ConvTranspose short strides", graph([node("ConvTranspose", ["x", "w"], ["y"], [("strides", .ints([2]))])], [w]), nil),
            ("ConvTranspose short pads", graph([node("ConvTranspose", ["x", "w"], ["y"], [("pads", .ints([1]))])], [w]), nil),
            ("ConvTranspose short output_padding", graph([node("ConvTranspose", ["x", "w"], ["y"], [("output_padding", .ints([1]))])], [w]), nil),
            ("ConvTranspose short kernel_shape", graph([node("ConvTranspose", ["x", "w"], ["y"], [("kernel_shape", .ints([3]))])], [w]), nil),
            ("ConvTranspose short output_shape", graph([node("ConvTranspose", ["x", "w"], ["y"], [("output_shape", .ints([3]))])], [w]), nil),
            ("ConvTranspose huge strides", graph([node("ConvTranspose", ["x", "w"], ["y"], [("strides", .ints([big, big]))])], [w]), nil),
            ("Shape start > end", graph([node("Shape", ["x"], ["y"], [("start", .int(3)), ("end", .int(1))])]), [0]),
            ("Gather index out of range", graph([shapeOfX, node("Gather", ["s", "ten"], ["y"])], [ints("ten", [10], shape: [])]), nil),
            ("Gather NaN index", graph([shapeOfX, nan, node("Gather", ["s", "nan"], ["y"])], [zero]), nil),
            ("Resize scales 1e30", graph([node("Resize", ["x", "", "scales"], ["y"])], [try floats("scales", [1, 1, 1e30, 1e30])]), nil),
            ("Resize scales NaN", graph([node("Resize", ["x", "", "scales"], ["y"])], [try floats("scales", [1, 1, .nan, 2])]), nil),
            ("Resize sizes 1e30", graph([node("Resize", ["x", "", "", "sizes"], ["y"])], [try floats("sizes", [1, 1, 1e30, 1e30])]), nil),
            ("Range 0..<2⁶²", graph([node("Range", ["a", "b", "c"], ["y"])], [ints("a", [0], shape: []), ints("b", [big], shape: []), ints("c", [1], shape: [])]), [big]),
            ("Range empty operand", graph([node("Range", ["a", "b", "c"], ["y"])], [ints("a", [], shape: [0]), ints("b", [4], shape: []), ints("c", [1], shape: [])]), nil),
            ("Range overflowing", graph([node("Range", ["a", "b", "c"], ["y"])], [ints("a", [Int.min], shape: []), ints("b", [Int.max], shape: []), ints("c", [1], shape: [])]), nil),
            ("ConstantOfShape [-1]", graph([node("ConstantOfShape", ["shape"], ["y"])], [ints("shape", [-1])]), nil),
            ("ConstantOfShape [2⁴⁰, 2⁴⁰]", graph([node("ConstantOfShape", ["shape"], ["y"])], [ints("shape", [1 << 40, 1 << 40])]), nil),
            ("Slice starts shorter than axes", graph([node("Slice", ["x", "st", "en", "ax"], ["y"])], [ints("st", [0]), ints("en", [2, 2]), ints("ax", [2, 3])]), nil),
            ("Split without outputs", graph([node("Split", ["x"], [], [("axis", .int(1))])]), nil),
            ("Concat of different ranks", graph([shapeOfX, node("Concat", ["x", "s"], ["y"], [("axis", .int(0))])]), nil),
            ("DepthToSpace blocksize 0", graph([node("DepthToSpace", ["x"], ["y"], [("blocksize", .int(0))])]), nil),
            ("SpaceToDepth blocksize 0", graph([node("SpaceToDepth", ["x"], ["y"], [("blocksize", .int(0))])]), nil),
            ("Reshape to NaN", graph([shapeOfX, nan, node("Reshape", ["x", "nan"], ["y"])], [zero]), nil),
            ("Reshape overflowing", graph([node("Reshape", ["x", "t"], ["y"])], [ints("t", [big, 4, -1])]), nil),
            ("Expand NaN", graph([shapeOfX, nan, node("Expand", ["x", "nan"], ["y"])], [zero]), nil),
            ("Tile overflowing", graph([node("Tile", ["x", "r"], ["y"])], [ints("r", [big, big, 1, 1])]), nil),
            ("Pad overflowing", graph([node("Pad", ["x", "p"], ["y"])], [ints("p", [0, 0, big, big, 0, 0, big, big])]), nil),
            ("Size of an overflowing value", graph([node("Tile", ["x", "r"], ["t"]), node("Size", ["t"], ["y"])], [ints("r", [1, 1, big, big])]), nil),
        ]
    }

    @Test func shapeInferenceNeverTraps() throws {
        for (label, graph, expected) in try Self.trapCases() {
            let inferred = try ONNXShapeInference(graph: graph)
            #expect(inferred.shapes["y"] == expected, "\(label): \(inferred.shapes["y"] as Any)")
            if expected == nil { #expect(!inferred.failures.isEmpty, "\(label): no failure listed") }
        }
    }

    /// Nodes with fewer inputs or outputs than their operator needs (fuzzing findings: a `Pad` with
    /// one input, a `Constant` without an output) are unknown to inference and left alone by the
    /// rewrites and the analysis, never indexed past their end.
    @Test func nodesMissingInputsOrOutputsAreUnknown() throws {
        let ops = ["Pad", "Range", "Slice", "Conv", "ConvTranspose", "Gemm", "MatMul", "Reshape", "Gather", "Expand", "Tile", "PRelu",
                   "Resize", "Squeeze", "Unsqueeze", "Split", "ConstantOfShape", "Add", "Where", "BatchNormalization", "LSTM"]
        for op in ops {
            let g = Self.graph([Self.node(op, ["x"]), ONNXNode(opType: "Constant", name: "empty", inputs: [], outputs: [],
                                                             attributes: [("value", .tensor(try Self.floats("v", [1])))])])
            let inferred = try ONNXShapeInference(graph: g)
            let needsTwo = ["Pad", "Range", "Slice", "Conv", "ConvTranspose", "Gemm", "MatMul", "Reshape", "Gather", "Expand", "Tile", "PRelu"]
            if needsTwo.contains(op) { #expect(inferred.shapes["y"] == nil, "\(op)") }
            var simplified = g
            _ = try simplified.simplify(opset: 13)
            var options = CompressionOptions()
            options.minimumParameters = 0
            _ = try ModelCompressor(options: options).layers(in: ONNXModel(graph: g, opset: 13), estimateRanks: true)
        }
    }

    /// The onnx-fuzzer's findings (their inputs are kept as `Fuzzing/corpus/finding_*.seed`), each
    /// as a graph: inference, simplify and the layer analysis return, and simplify keeps shapes.
    @Test func fuzzingFindingsAreHandled() throws {
        let scalar = try Self.floats("s", [2], shape: [])
        let big = Self.big
        var noData = try ONNXTensor(name: "w", Tensor<Float>.zeros(shape: [4]))
        noData.proto.dims = [4_027_847_555_986_489_343, 1, 1]
        let graphs: [(String, ONNXGraph)] = [
            ("Slice of a scalar", Self.graph([Self.node("Slice", ["s", "st", "en"])], [scalar, Self.ints("st", [7_484_951_447_797_759]), Self.ints("en", [-4])])),
            ("Split of a scalar", Self.graph([Self.node("Split", ["s"], ["a", "b", "c"], [("axis", .int(0))])], [scalar])),
            ("Split into 2⁶³ − 2 outputs", Self.graph([Self.node("Split", ["x"], ["a"], [("axis", .int(1)), ("num_outputs", .int(Int.max - 1))])])),
            ("Concat of scalars", Self.graph([Self.node("Concat", ["s", "s"])], [scalar])),
            ("ConvTranspose pads near Int.min", Self.graph([Self.node("ConvTranspose", ["x", "w"], ["y"], [("pads", .ints([1, 0, Int.min + 1, 0]))])],
                                                          [try ONNXTensor(name: "w", Tensor<Float>.zeros(shape: [4, 3, 1, 1]))])),
            ("ConvTranspose kernel Int.min", Self.graph([Self.node("ConvTranspose", ["x", "w"], ["y"], [("kernel_shape", .ints([2, Int.min]))])],
                                                       [try ONNXTensor(name: "w", Tensor<Float>.zeros(shape: [4, 3, 1, 1]))])),
            ("1-D value times a scalar", Self.graph([Self.node("Mul", ["x", "s"])], [scalar], inputShape: [4])),
            ("Clip without an output", Self.graph([Self.node("Add", ["x", "three"], ["a"]), Self.node("Clip", ["a", "lo", "hi"], [])],
                                                 [try Self.floats("three", [3], shape: []), try Self.floats("lo", [0], shape: []), try Self.floats("hi", [6], shape: [])])),
            ("Conv weight without data", Self.graph([Self.node("Conv", ["x", "w"], ["c"]), Self.node("Mul", ["c", "s"])], [noData, scalar])),
            ("a node that reads its own output", Self.graph([Self.node("Div", ["x", "s"], ["v"]), Self.node("Mul", ["v", "s"], ["v"]),
                                                             Self.node("Conv", ["v", "w"], ["y"])],
                                                            [scalar, try ONNXTensor(name: "w", Tensor<Float>.zeros(shape: [4, 4, 1, 1]))])),
            ("a Conv without inputs beside an initializer named \"\"", Self.graph([Self.node("Conv", [], ["y"])],
                                                                                [try ONNXTensor(name: "", Tensor<Float>.zeros(shape: [4, 4, 1, 1]))])),
            ("SAME padding with a dilation near 2⁶²", Self.graph([Self.node("Conv", ["x", "w"], ["y"], [("dilations", .ints([2, big + 1])), ("auto_pad", .string("SAME_LOWER"))])],
                                                                [try ONNXTensor(name: "w", Tensor<Float>.zeros(shape: [4, 4, 3, 3]))])),
            ("SAME padding with a stride near 2⁶³", Self.graph([Self.node("Conv", ["x", "w"], ["y"], [("strides", .ints([1, Int.max - 1])), ("auto_pad", .string("SAME_UPPER"))])],
                                                              [try ONNXTensor(name: "w", Tensor<Float>.zeros(shape: [4, 4, 3, 3]))], inputShape: [1, 4, 1, 1 << 58])),
        ]
        var options = CompressionOptions()
        options.minimumParameters = 0
        for (label, graph) in graphs {
            _ = try ONNXShapeInference(graph: graph)
            var simplified = graph
            _ = try simplified.simplify(opset: 18)
            _ = try ModelCompressor(options: options).layers(in: ONNXModel(graph: graph, opset: 18), estimateRanks: true)
            _ = label
        }
        // Hard-swish on a value whose rank is unknown (a ReduceMean without keepdims): rank-1
        // constants would turn a scalar into [1], so the pattern stays.
        let nodes = [Self.node("ReduceMean", ["x"], ["m"], [("keepdims", .int(0))]), Self.node("Add", ["m", "three"], ["a"]),
                     Self.node("Clip", ["a", "lo", "hi"], ["c"]), Self.node("Mul", ["m", "c"], ["p"]), Self.node("Div", ["p", "six"])]
        var swish = Self.graph(nodes, try [("three", 3), ("lo", 0), ("hi", 6), ("six", 6)].map { try Self.floats($0.0, [$0.1], shape: [1]) })
        let before = try ONNXShapeInference(graph: swish).shapes["y"]
        #expect(try swish.simplify(opset: 13).hardSwishes == 0)
        #expect(try ONNXShapeInference(graph: swish).shapes["y"] == before)
    }

    /// A slice of a declared dimension of 2⁴⁰ is counted, not enumerated (it used to spin).
    @Test func hugeSlicesAreCountedNotEnumerated() throws {
        let g = Self.graph([Self.node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
                           [Self.ints("st", [1]), Self.ints("en", [Int.max]), Self.ints("ax", [1]), Self.ints("sp", [3])], inputShape: [1, 1 << 40])
        let inferred = try ONNXShapeInference(graph: g)
        #expect(inferred.shapes["y"] == [1, ((1 << 40) - 2) / 3 + 1])
        let backwards = Self.graph([Self.node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
                                   [Self.ints("st", [-1]), Self.ints("en", [Int.min]), Self.ints("ax", [1]), Self.ints("sp", [-2])], inputShape: [1, 7])
        #expect(try ONNXShapeInference(graph: backwards).shapes["y"] == [1, 4])   // 6, 4, 2, 0
    }

    /// Input shapes whose element count overflows are refused with their numbers.
    @Test func overflowingInputShapesAreRefused() throws {
        let g = Self.graph([Self.node("Relu", ["x"])], inputShape: [1, 16, 3_037_000_500, 3_037_000_500])
        #expect(throws: ONNXError.invalidShape(tensor: "x", shape: [1, 16, 3_037_000_500, 3_037_000_500])) { try ONNXShapeInference(graph: g) }
        let dynamic = ONNXGraph(name: "g", nodes: [Self.node("Relu", ["x"])], initializers: [],
                                inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.parameter("n"), .value(16)])], outputs: [])
        #expect(throws: ONNXError.invalidShape(tensor: "x", shape: [1 << 62, 16])) { try ONNXShapeInference(graph: dynamic, inputShapes: ["x": [1 << 62, 16]]) }
    }

    /// Weights with missing or short data, negative or overflowing dimensions are listed as not
    /// compressible with the reason; counts that overflow are unknown, never a trap.
    @Test func unusableWeightsAreNotCompressible() throws {
        var short = try ONNXTensor(name: "short", Tensor<Float>.zeros(shape: [8, 4, 3, 3]))
        short.proto.rawData = short.proto.rawData.prefix(10)
        var negative = try ONNXTensor(name: "negative", Tensor<Float>.zeros(shape: [4]))
        negative.proto.dims = [-4, 1, 1, 1]
        var huge = try ONNXTensor(name: "huge", Tensor<Float>.zeros(shape: [4]))
        huge.proto.dims = [4, Int64(Self.big)]
        var wide = try ONNXTensor(name: "wide", Tensor<Float>.zeros(shape: [4]))
        wide.proto.dims = [1 << 32, 1 << 32]
        let nodes = [
            Self.node("Conv", ["x", "short"], ["a"]), Self.node("Conv", ["x", "negative"], ["b"]),
            ONNXNode(opType: "Flatten", name: "flat", inputs: ["x"], outputs: ["f"]),
            ONNXNode(opType: "MatMul", name: "m1", inputs: ["f", "huge"], outputs: ["c"]),
            ONNXNode(opType: "Gemm", name: "m2", inputs: ["f", "wide"], outputs: ["d"], attributes: [("transB", .int(1))]),
        ]
        let model = ONNXModel(graph: Self.graph(nodes, [short, negative, huge, wide]), opset: 13)
        var options = CompressionOptions()
        options.minimumParameters = 0
        let layers = try ModelCompressor(options: options).layers(in: model)
        #expect(layers.count == 4)
        for layer in layers {
            #expect(!layer.compressible, "\(layer.name) is listed as compressible")
            #expect(layer.reason?.contains("unusable") == true || layer.reason?.contains("shape") == true, "\(layer.name): \(layer.reason ?? "")")
            #expect((layer.macs ?? 0) >= 0)
        }
        let result = try ModelCompressor(options: options).compress(onnx: model)
        #expect(result.totals.replacedLayers == 0)
    }

    /// An initializer that is also a graph input (IR ≥ 4) may be fed at run time: it is no
    /// constant to factor or fold. Before IR 4 it is.
    @Test func overridableInitializersAreInputs() throws {
        let weight = try ONNXTensor(name: "w", Tensor<Float>.randomNormal(shape: [16, 4, 3, 3], seed: 3))
        let scale = try Self.floats("s", [2], shape: [])
        let nodes = [Self.node("Conv", ["x", "w"], ["c"]), Self.node("Mul", ["c", "s"], ["y"])]
        var graph = Self.graph(nodes, [weight, scale])
        graph.proto.input.append(ONNXValueInfo(name: "w", elementType: .float, shape: [.value(16), .value(4), .value(3), .value(3)]).proto)
        graph.proto.input.append(ONNXValueInfo(name: "s", elementType: .float, shape: []).proto)
        var model = ONNXModel(graph: graph, opset: 13)
        #expect(model.graph.overridableInitializerNames == ["w", "s"])
        #expect(model.graph.constants()["w"] == nil)
        var options = CompressionOptions()
        options.minimumParameters = 0
        let layers = try ModelCompressor(options: options).layers(in: model)
        #expect(layers.first?.compressible == false)
        var simplified = model
        #expect(try simplified.simplify().isEmpty)
        // IR 3: every initializer had to be listed as an input; they are constants.
        model.proto.irVersion = 3
        #expect(model.graph.overridableInitializerNames.isEmpty)
        #expect(try ModelCompressor(options: options).layers(in: model).first?.compressible == true)
        #expect(try model.simplify().foldedIntoPrecedingConvolution == 1)
    }

    /// `x [1, 1, H, W] · s [1, C, 1, 1]` widens x to C channels: the Conv after it cannot read x,
    /// so the scale is not folded; neither into the Conv of an unbatched x [C, H, W].
    @Test func broadcastsThatWidenTheInputAreNotFolded() throws {
        let weight = try ONNXTensor(name: "w", Tensor<Float>.randomNormal(shape: [8, 4, 3, 3], seed: 4))
        let scale = try Self.floats("s", [1, 2, 3, 4], shape: [1, 4, 1, 1])
        let nodes = [Self.node("Mul", ["x", "s"], ["m"]), Self.node("Conv", ["m", "w"], ["y"])]
        for shape in [[1, 1, 8, 8], [4, 8, 8]] {
            var narrow = Self.graph(nodes, [weight, scale], inputShape: shape)
            #expect(try narrow.simplify(opset: 13).isEmpty, "\(shape)")
        }
        var exact = Self.graph(nodes, [weight, scale], inputShape: [1, 4, 8, 8])
        #expect(try exact.simplify(opset: 13).foldedIntoFollowingConvolutions == 1)
        // A symbolic batch and spatial size still fold: the rank and the channels are declared.
        var symbolic = Self.graph(nodes, [weight, scale])
        symbolic.proto.input[0] = ONNXValueInfo(name: "x", elementType: .float, shape: [.parameter("n"), .value(4), .unknown, .unknown]).proto
        #expect(try symbolic.simplify(opset: 13).foldedIntoFollowingConvolutions == 1)
    }

    /// Hard-swish whose constants have a higher rank than x keeps its four nodes: the rewrite
    /// would change the output's rank.
    @Test func hardSwishWithHigherRankConstantsIsKept() throws {
        func hardSwish(_ three: ONNXTensor) throws -> ONNXGraph {
            let nodes = [Self.node("Add", ["x", "three"], ["a"]), Self.node("Clip", ["a", "lo", "hi"], ["c"]),
                         Self.node("Mul", ["x", "c"], ["m"]), Self.node("Div", ["m", "six"], ["y"])]
            return Self.graph(nodes, [three, try Self.floats("lo", [0], shape: []), try Self.floats("hi", [6], shape: []),
                                      try Self.floats("six", [6], shape: [])])
        }
        var high = try hardSwish(try Self.floats("three", [3], shape: [1, 1, 1, 1, 1]))
        #expect(try high.simplify(opset: 13).hardSwishes == 0)
        var plain = try hardSwish(try Self.floats("three", [3], shape: []))
        #expect(try plain.simplify(opset: 13).hardSwishes == 1)
    }

    /// A scale that takes a float16 weight past 65504 is not folded (the weight would be infinite).
    @Test func foldsThatOverflowTheWeightTypeAreSkipped() throws {
        let weight = try ONNXTensor(name: "w", Tensor<Float>(shape: [4, 4, 1, 1], scalars: [Float](repeating: 1000, count: 16)), dataType: .float16)
        let nodes = [Self.node("Conv", ["x", "w"], ["c"]), Self.node("Mul", ["c", "s"], ["y"])]
        var big = Self.graph(nodes, [weight, try Self.floats("s", [100], shape: [])])
        #expect(try big.simplify(opset: 13).isEmpty)
        var fine = Self.graph(nodes, [weight, try Self.floats("s", [10], shape: [])])
        #expect(try fine.simplify(opset: 13).foldedIntoPrecedingConvolution == 1)
    }

    /// Removing what a rewrite released keeps values read by subgraphs through the outer scope.
    @Test func removeUnusedKeepsWhatSubgraphsRead() throws {
        let inner = ONNXGraph(name: "body", nodes: [Self.node("Add", ["outer", "outer"], ["z"])], initializers: [], inputs: [],
                              outputs: [ONNXValueInfo(name: "z", elementType: .float, shape: nil)])
        var proto = Self.node("If", ["cond"], ["y"]).proto
        var attribute = Onnx_AttributeProto()
        attribute.name = "then_branch"
        attribute.type = .graph
        attribute.g = inner.proto
        proto.attribute = [attribute]
        var graph = Self.graph([ONNXNode(proto: proto)], [try Self.floats("outer", [1]), try Self.floats("unused", [2])])
        graph.removeUnused(["outer", "unused"])
        #expect(graph.initializers.map(\.name) == ["outer"])
    }

    /// A 1-D convolution is analysed as a 2-D one of height 1 and written back as 1-D nodes
    /// (onnxruntime conformance: `Tests/ONNXConformance/onnx_conformance.py`, the `conv1d-*` cases).
    @Test func oneDimensionalConvolutionsAreAnalysedAsHeightOne() throws {
        let weight = try ONNXTensor(name: "w", Tensor<Float>.randomNormal(shape: [8, 6, 3], seed: 6))
        let conv = ONNXNode(opType: "Conv", name: "conv1d", inputs: ["x", "w"], outputs: ["y"],
                            attributes: [("pads", .ints([2, 1])), ("strides", .ints([2])), ("dilations", .ints([2]))])
        let model = ONNXModel(graph: Self.graph([conv], [weight], inputShape: [2, 6, 23]), opset: 13)
        var options = CompressionOptions()
        (options.minimumParameters, options.rankSelection, options.allowGrowth) = (0, .kernel(.energy(1)), true)
        let layer = try #require(try ModelCompressor(options: options).layers(in: model).first)
        #expect(layer.compressible && layer.kernel == [1, 3] && layer.stride == [1, 2] && layer.dilation == [1, 2])
        #expect(layer.padding == [0, 0, 2, 1] && layer.macs == 2 * 8 * 6 * 3 * 11)
        let result = try ModelCompressor(options: options).compress(onnx: model)
        let convs = result.model.graph.nodes.filter { $0.opType == "Conv" }
        #expect(result.totals.replacedLayers == 1, "\(result.layers.map(\.status))")
        #expect(convs.count >= 2 && convs.allSatisfy { $0.ints("kernel_shape")?.count == 1 })
        let spatial = try #require(convs.first { $0.ints("kernel_shape") == [3] })
        #expect(spatial.ints("pads") == [2, 1] && spatial.ints("strides") == [2] && spatial.ints("dilations") == [2])
        #expect(try ONNXShapeInference(graph: result.model.graph).shapes["y"] == [2, 8, 11])
        options.conv = .tt
        #expect(try ModelCompressor(options: options).layers(in: model).first?.compressible == false)
    }

    /// An inference BatchNormalization after a Conv folds into its weight and bias by the closed
    /// form; Constant nodes become initializers from IR 4 on (onnxruntime conformance: the
    /// `simplify-batchnorm` case).
    @Test func batchNormalizationFoldsAndConstantsBecomeInitializers() throws {
        let weight = Tensor<Float>.randomNormal(shape: [3, 2, 1, 1], seed: 7)
        let parameters: [(String, [Float])] = [("g", [1, 2, -1]), ("b", [0.5, 0, 1]), ("m", [0.1, -0.2, 0.3]), ("v", [1, 4, 0.25])]
        let constants = try parameters.map { name, values in
            ONNXNode(opType: "Constant", name: name, inputs: [], outputs: [name], attributes: [("value", .tensor(try Self.floats(name, values)))])
        }
        let nodes = constants + [Self.node("Conv", ["x", "w"], ["c"]),
                                 Self.node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], [("epsilon", .float(0))])]
        var graph = Self.graph(nodes, [try ONNXTensor(name: "w", weight)], inputShape: [1, 2, 4, 4])
        let result = try graph.simplify(opset: 13)
        // The folded parameters' Constant nodes are read by nothing any more: removed, not moved.
        #expect(result.foldedIntoPrecedingConvolution == 1 && result.batchNormalizations == 1 && result.constantsToInitializers == 0)
        #expect(graph.nodes.map(\.opType) == ["Conv"])
        let folded = try #require(graph.initializer(named: graph.nodes[0].inputs[1])).tensor(as: Double.self)
        let bias = try #require(graph.initializer(named: graph.nodes[0].inputs[2])).tensor(as: Double.self)
        for o in 0..<3 {
            let s = Double(parameters[0].1[o]) / Double(parameters[3].1[o]).squareRoot()
            #expect(abs(bias.scalars[o] - (Double(parameters[1].1[o]) - Double(parameters[2].1[o]) * s)) < 1e-6)
            for i in 0..<2 { #expect(abs(folded.scalars[o * 2 + i] - Double(weight.scalars[o * 2 + i]) * s) < 1e-6) }
        }
        var read = Self.graph(constants + [Self.node("Sum", ["g", "b", "m", "v"], ["y"])])
        #expect(try read.simplify(opset: 13).constantsToInitializers == 4 && read.nodes.map(\.opType) == ["Sum"])
        #expect(read.initializers.map(\.name) == ["g", "b", "m", "v"])
        // Before IR 4 every initializer must be a graph input too: Constant nodes stay.
        var old = Self.graph(constants + [Self.node("Sum", ["g", "b", "m", "v"], ["y"])])
        old.initializersCanBeOverridden = false
        #expect(try old.simplify(opset: 13).constantsToInitializers == 0 && old.nodes.count == 5)
    }

    /// A stride-1 ConvTranspose equals the convolution by its equivalent kernel, padded by
    /// d·(k − 1) − p, against a naive transposed-convolution loop (groups 2, dilation 2).
    @Test(arguments: [Float.self, Double.self] as [any BLASScalar.Type])
    func transposedConvolutionsAreTheirEquivalentConvolution(_ type: any BLASScalar.Type) throws {
        func check<Scalar: BLASScalar>(_: Scalar.Type) throws {
            let (cIn, cOutPerGroup, groups, k, d, h, w) = (4, 3, 2, 3, 2, 6, 5)
            let pads = [1, 0, 2, 1]   // top, left, bottom, right
            let weight = Tensor<Scalar>.randomNormal(shape: [cIn, cOutPerGroup, k, k], seed: 11)
            let x = Tensor<Scalar>.randomNormal(shape: [1, cIn, h, w], seed: 12)
            let outH = h + d * (k - 1) - pads[0] - pads[2], outW = w + d * (k - 1) - pads[1] - pads[3]
            var naive = [Double](repeating: 0, count: groups * cOutPerGroup * outH * outW)
            let inPerGroup = cIn / groups
            for c in 0..<cIn { for o in 0..<cOutPerGroup { for i in 0..<h { for j in 0..<w { for a in 0..<k { for b in 0..<k {
                let (r, q) = (i + a * d - pads[0], j + b * d - pads[1])
                guard r >= 0, r < outH, q >= 0, q < outW else { continue }
                let channel = (c / inPerGroup) * cOutPerGroup + o
                naive[(channel * outH + r) * outW + q] += Double(x.scalars[(c * h + i) * w + j]) * Double(weight.scalars[((c * cOutPerGroup + o) * k + a) * k + b])
            } } } } } }
            let kernel = ModelCompressor.equivalentConvolutionKernel(weight, groups: groups)
            let conv = try Conv2D(weight: kernel, bias: nil, stride: Size2D(1),
                                  padding: Padding(top: d * (k - 1) - pads[0], bottom: d * (k - 1) - pads[2], left: d * (k - 1) - pads[1], right: d * (k - 1) - pads[3]),
                                  dilation: Size2D(d), groups: groups)
            let y = try conv(x)
            #expect(y.shape == [1, groups * cOutPerGroup, outH, outW])
            let scale = naive.map(abs).max()!
            for (a, b) in zip(y.scalars, naive) { #expect(abs(Double(a) - b) <= 64 * Double(Scalar.ulpOfOne) * scale) }
        }
        if type == Float.self { try check(Float.self) } else { try check(Double.self) }
    }

    // MARK: - External data

    var directory: URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-reliability-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A model whose `conv.weight` is stored in `location` with the given offset and length.
    func externalModel(in folder: URL, location: String, offset: String, length: String) throws -> URL {
        var model = try smallModel()
        var graph = model.graph
        let k = graph.proto.initializer.firstIndex { $0.name == "conv.weight" }!
        graph.proto.initializer[k].clearRawData()
        graph.proto.initializer[k].dataLocation = .external
        graph.proto.initializer[k].externalData = [("location", location), ("offset", offset), ("length", length)].map { key, value in
            var entry = Onnx_StringStringEntryProto()
            (entry.key, entry.value) = (key, value)
            return entry
        }
        model.graph = graph
        let url = folder.appendingPathComponent("m.onnx")
        try model.serializedData().write(to: url)
        return url
    }

    @Test func externalDataOutOfRangeOrOutsideIsRefused() throws {
        let folder = directory
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(count: 4096).write(to: folder.appendingPathComponent("w.bin"))
        // Offset 8 and length 2⁶³ − 1: refused with the numbers, no overflow while saying so.
        let url = try externalModel(in: folder, location: "w.bin", offset: "8", length: "\(Int.max)")
        #expect(throws: ONNXError.self) { try ONNXModel(contentsOf: url) }
        // A symlink to a file outside the model's directory, and a linked directory.
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-outside-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: outside) }
        try Data(count: 8 * 4 * 9 * 4).write(to: outside.appendingPathComponent("secret.bin"))
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("link.bin").path, withDestinationPath: outside.appendingPathComponent("secret.bin").path)
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("sub").path, withDestinationPath: outside.path)
        for location in ["link.bin", "sub/secret.bin"] {
            let linked = try externalModel(in: folder, location: location, offset: "0", length: "\(8 * 4 * 9 * 4)")
            #expect { try ONNXModel(contentsOf: linked) } throws: { error in
                "\(error)".contains("outside the model's directory")
            }
        }
        // A link that stays inside the directory is fine.
        try Data(count: 8 * 4 * 9 * 4).write(to: folder.appendingPathComponent("inside.bin"))
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("alias.bin").path, withDestinationPath: "inside.bin")
        let aliased = try externalModel(in: folder, location: "alias.bin", offset: "0", length: "\(8 * 4 * 9 * 4)")
        #expect(try ONNXModel(contentsOf: aliased).externalDataFiles.map(\.lastPathComponent) == ["inside.bin"])
        // A FIFO is refused before it is opened (opening it would wait for a writer forever).
        #expect(mkfifo(folder.appendingPathComponent("pipe.bin").path, 0o600) == 0)
        let piped = try externalModel(in: folder, location: "pipe.bin", offset: "0", length: "16")
        #expect { try ONNXModel(contentsOf: piped) } throws: { error in "\(error)".contains("FIFO") }
    }

    /// The data file is named by its content and written before the model; the replaced model's
    /// own data file is removed afterwards, unless the run read it.
    @Test func dataFilesAreNamedByContentAndReplacedSafely() throws {
        let folder = directory
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("m.onnx")
        let first = try smallModel()
        try first.write(to: url, externalData: .separateFile(minimumBytes: 64))
        let files = { try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".data") }.sorted() }
        let firstData = try files()
        #expect(firstData.count == 1 && firstData[0].hasPrefix("m.onnx.") && firstData[0].count == "m.onnx.".count + 16 + ".data".count)
        // The same model again: the same name, the same bytes.
        try first.write(to: url, externalData: .separateFile(minimumBytes: 64))
        #expect(try files() == firstData)
        // Another model in its place: a new data file, the old one removed once the model points away.
        let second = try smallModel(convWeight: .randomNormal(shape: [8, 4, 3, 3], seed: 9))
        try second.write(to: url, externalData: .separateFile(minimumBytes: 64))
        let secondData = try files()
        #expect(secondData.count == 1 && secondData != firstData)
        #expect(try ONNXModel(contentsOf: url).graph.initializer(named: "conv.weight")!.tensor(as: Float.self)
                == second.graph.initializer(named: "conv.weight")!.tensor(as: Float.self))
        // A model read from here and written over itself keeps the data it read (another model may share it).
        let read = try ONNXModel(contentsOf: url)
        var changed = read
        changed.setMetadata("x", forKey: "changed")
        try changed.write(to: url, externalData: .separateFile(minimumBytes: 64))
        #expect(try files() == secondData)
    }

    // MARK: - Statistics

    /// Counts beyond `Int`, negative variances and Gram entries beyond Cauchy–Schwarz.
    @Test func statisticsThatNoInputsCouldGiveAreRefused() throws {
        let g = try Matrix<Double>(rows: 2, columns: 2, scalars: [1, 0, 0, 1])
        let huge = try InputStatistics(count: 1e300, means: [[0, 0]], grams: [g])
        #expect(huge.countDescription == "1e+300")
        #expect(try InputStatistics(count: 12, means: [[0, 0]], grams: [g]).countDescription == "12")
        let negative = try Matrix<Double>(rows: 2, columns: 2, scalars: [-1, 0, 0, -1])
        #expect(throws: NNLayersError.self) { try InputStatistics(count: 1, means: [[0, 0]], grams: [negative]) }
        let indefinite = try Matrix<Double>(rows: 2, columns: 2, scalars: [1, 2, 2, 1])
        #expect(throws: NNLayersError.self) { try InputStatistics(count: 1, means: [[0, 0]], grams: [indefinite]) }
        #expect(throws: NNLayersError.self) { try InputStatistics(count: 1, means: [[2, 0]], grams: [g]) }   // E[x²] = 1 < μ² = 4
    }

    /// The same for a state dict: a statistics mean of 1e150 would make the corrected Float bias infinite.
    @Test func unrepresentableStateDictFactorsAreRefused() throws {
        let folder = directory
        defer { try? FileManager.default.removeItem(at: folder) }
        var writer = SafetensorsWriter()
        try writer.add("fc.weight", Tensor<Float>.randomNormal(shape: [16, 32], seed: 8))
        let url = folder.appendingPathComponent("m.safetensors")
        try writer.write(to: url)
        var options = CompressionOptions()
        (options.minimumParameters, options.rank) = (0, 4)
        var gram = Matrix<Double>.zeros(rows: 32, columns: 32)
        for i in 0..<32 { for j in 0..<32 { gram[i, j] = 1e300 }; gram[i, i] = 2e300 }
        options.statistics = CalibrationStatistics(layers: ["fc": try InputStatistics(count: 8, means: [[Double](repeating: 1e150, count: 32)], grams: [gram])])
        // Decomposed in Float, the corrected bias overflows while the stack is built (a thrown
        // NNLayersError), or at the latest when it is written: never an infinite tensor in the file.
        #expect { try ModelCompressor(options: options).compress(try SafetensorsFile(contentsOf: url)) } throws: { error in
            if case ModelCompressionError.unrepresentableFactors(layer: "fc", _, _, _) = error { return true }
            return error is NNLayersError && "\(error)".contains("non-finite")
        }
    }

    /// Data-aware factors that float16 cannot hold are an error naming the layer, not an inf weight.
    @Test func unrepresentableFactorsAreRefused() throws {
        let weight = try ONNXTensor(name: "w", Tensor<Float>.randomNormal(shape: [16, 32], seed: 5) * 100, dataType: .float16)
        let nodes = [ONNXNode(opType: "Flatten", name: "flat", inputs: ["x"], outputs: ["f"]),
                     ONNXNode(opType: "MatMul", name: "fc", inputs: ["f", "w"], outputs: ["y"])]
        let model = ONNXModel(graph: Self.graph(nodes, [weight], inputShape: [2, 16]), opset: 13)
        var options = CompressionOptions()
        options.minimumParameters = 0
        options.rank = 4
        let mean = [Double](repeating: 1e150, count: 16)
        var gram = Matrix<Double>.zeros(rows: 16, columns: 16)
        for i in 0..<16 { for j in 0..<16 { gram[i, j] = 1e300 } ; gram[i, i] = 2e300 }
        options.statistics = CalibrationStatistics(layers: ["fc": try InputStatistics(count: 8, means: [mean], grams: [gram])])
        #expect { try ModelCompressor(options: options).compress(onnx: model) } throws: { error in
            guard case ModelCompressionError.unrepresentableFactors(layer: "fc", _, _, _) = error else { return false }
            return true
        }
    }
}
