import Foundation
import Testing
@testable import ONNX
import TensorModule
import TensorIO

/// A small model: Conv (3×3, pads, bias) → Relu → Flatten → Gemm, weights as initializers.
func smallModel(convWeight: Tensor<Float> = .randomNormal(shape: [8, 4, 3, 3], seed: 1)) throws -> ONNXModel {
    let nodes = [
        ONNXNode(opType: "Conv", name: "conv", inputs: ["x", "conv.weight", "conv.bias"], outputs: ["c"],
                 attributes: [("kernel_shape", .ints([3, 3])), ("pads", .ints([1, 1, 1, 1])), ("strides", .ints([2, 2]))]),
        ONNXNode(opType: "Relu", name: "relu", inputs: ["c"], outputs: ["r"]),
        ONNXNode(opType: "Flatten", name: "flatten", inputs: ["r"], outputs: ["f"], attributes: [("axis", .int(1))]),
        ONNXNode(opType: "Gemm", name: "fc", inputs: ["f", "fc.weight", "fc.bias"], outputs: ["y"], attributes: [("transB", .int(1))]),
    ]
    let initializers = [
        try ONNXTensor(name: "conv.weight", convWeight),
        try ONNXTensor(name: "conv.bias", Tensor<Float>.randomNormal(shape: [8], seed: 2)),
        try ONNXTensor(name: "fc.weight", Tensor<Float>.randomNormal(shape: [10, 8 * 4 * 4], seed: 3)),
        try ONNXTensor(name: "fc.bias", Tensor<Float>.randomNormal(shape: [10], seed: 4)),
    ]
    let graph = ONNXGraph(name: "small", nodes: nodes, initializers: initializers,
                          inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.parameter("batch"), .value(4), .value(8), .value(8)])],
                          outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: [.parameter("batch"), .value(10)])])
    var model = ONNXModel(graph: graph, opset: 13)
    model.setMetadata("a b c", forKey: "character")
    return model
}

@Suite("ONNX models")
struct ONNXModelTests {
    @Test func serializationRoundTripKeepsEverything() throws {
        let model = try smallModel()
        let data = try model.serializedData()
        let read = try ONNXModel(serializedData: data)
        #expect(read.graph == model.graph)
        #expect(read.metadata == ["character": "a b c"])
        #expect(read.opsetVersion == 13 && read.irVersion == 8)
        #expect(try read.serializedData() == data)
        #expect(read.graph.nodes.map(\.name) == ["conv", "relu", "flatten", "fc"])
        #expect(read.graph.nodes[0].ints("pads") == [1, 1, 1, 1])
        #expect(read.graph.inputs.first?.shapeDescription == "[batch, 4, 8, 8]")
    }

    func tensorRoundTrip<Scalar: BLASScalar>(_: Scalar.Type) throws {
        let t = Tensor<Scalar>.randomNormal(shape: [3, 5], seed: 9)
        for type in [ONNXDataType.float, .double, .float16, .bfloat16] {
            let encoded = try ONNXTensor(name: "t", t, dataType: type)
            #expect(encoded.dataType == type && encoded.shape == [3, 5])
            let decoded = try encoded.tensor(as: Scalar.self)
            let tolerance: Double = type == .bfloat16 ? 1e-2 : type == .float16 ? 1e-3 : (type == .float ? 1e-6 : Double(Scalar.ulpOfOne))
            for (a, b) in zip(t.scalars, decoded.scalars) { #expect(abs(Double(a) - Double(b)) <= tolerance * max(1, abs(Double(a)))) }
        }
        #expect(throws: ONNXError.self) { try ONNXTensor(name: "t", t, dataType: .int64) }
    }

    @Test func tensorsRoundTripInEveryFloatType() throws {
        try tensorRoundTrip(Float.self)
        try tensorRoundTrip(Double.self)
    }

    func subnormalsFlushed<Scalar: BLASScalar>(_: Scalar.Type) throws {
        let tiny = Scalar(Double(Float.leastNormalMagnitude))
        let values: [Scalar] = [1, -0.5, tiny, -tiny, tiny / 4, -tiny / 1024, 0, 3e-30]
        let t = try Tensor<Scalar>(shape: [2, 4], scalars: values)
        let written = try ONNXTensor(name: "w", t, dataType: .float).tensor(as: Float.self)
        #expect(Array(written.scalars) == [1, -0.5, Float.leastNormalMagnitude, -Float.leastNormalMagnitude, 0, 0, 0, 3e-30])
        #expect(written.scalars.allSatisfy { !$0.isSubnormal })
        let kept = try ONNXTensor(name: "w", t, dataType: .float, flushingSubnormals: false).tensor(as: Float.self)
        #expect(kept.scalars[4] == Float.leastNormalMagnitude / 4 && kept.scalars[4].isSubnormal)
        // As DOUBLE only the values subnormal in Double go: a Float subnormal is a normal Double.
        let double = try ONNXTensor(name: "w", t, dataType: .double).tensor(as: Double.self)
        #expect(Array(double.scalars) == values.map(Double.init))
    }

    @Test("FLOAT and DOUBLE weights are written without subnormals unless asked, for Float and Double sources")
    func subnormalWeightsAreWrittenAsZero() throws {
        try subnormalsFlushed(Float.self)
        try subnormalsFlushed(Double.self)
        let deep = try Tensor<Double>(shape: [3], scalars: [1e-310, -2e-320, 1e-300])
        #expect(Array(try ONNXTensor(name: "d", deep, dataType: .double).tensor(as: Double.self).scalars) == [0, 0, 1e-300])
    }

    @Test func typedFieldsAreRead() throws {
        var proto = Onnx_TensorProto()
        proto.name = "typed"
        proto.dims = [2, 2]
        proto.dataType = Int32(ONNXDataType.float.rawValue)
        proto.floatData = [1, 2, 3, 4]
        #expect(try ONNXTensor(proto: proto).tensor(as: Double.self).scalars == [1, 2, 3, 4])
        proto.dataType = Int32(ONNXDataType.float16.rawValue)
        proto.floatData = []
        proto.int32Data = [0x3C00, 0x4000, 0xC000, 0]          // 1, 2, −2, 0 as binary16 bit patterns
        #expect(try ONNXTensor(proto: proto).tensor(as: Float.self).scalars == [1, 2, -2, 0])
        proto.dataType = Int32(ONNXDataType.bfloat16.rawValue)
        proto.int32Data = [0x3F80, 0x4040, 0, 0xBF80]          // 1, 3, 0, −1
        #expect(try ONNXTensor(proto: proto).tensor(as: Float.self).scalars == [1, 3, 0, -1])
        proto.dataType = Int32(ONNXDataType.int64.rawValue)
        proto.int32Data = []
        proto.int64Data = [4, -1, 0, 7]
        #expect(try ONNXTensor(proto: proto).integers() == [4, -1, 0, 7])
        proto.int64Data = [4, -1, 0]
        #expect(throws: ONNXError.dataSize(tensor: "typed", expected: 32, actual: 24)) { try ONNXTensor(proto: proto).integers() }
    }

    @Test func malformedBytesThrow() {
        #expect(throws: ONNXError.self) { try ONNXModel(serializedData: Data([0xFF, 0xFF, 0xFF, 0x01, 0x02])) }
        #expect(throws: ONNXError.missingGraph) { try ONNXModel(serializedData: Data()) }
    }

    @Test func constantsResolveThroughConstantNodesAndIdentity() throws {
        var model = try smallModel()
        var graph = model.graph
        var nodes = graph.nodes
        let weight = graph.initializer(named: "conv.weight")!
        nodes.insert(ONNXNode(opType: "Constant", name: "w", inputs: [], outputs: ["w.value"], attributes: [("value", .tensor(weight))]), at: 0)
        nodes.insert(ONNXNode(opType: "Identity", name: "id", inputs: ["w.value"], outputs: ["conv.weight.alias"]), at: 1)
        nodes[2].inputs[1] = "conv.weight.alias"
        graph.nodes = nodes
        graph.initializers.removeAll { $0.name == "conv.weight" }
        model.graph = graph
        let constants = model.graph.constants()
        let alias = try #require(constants["conv.weight.alias"])
        #expect(alias.constantNode == 0 && alias.identities == [1] && alias.sourceName == "w.value")
        #expect(try alias.tensor.tensor(as: Float.self) == weight.tensor(as: Float.self))
        // Once nothing reads the alias, the Identity and the Constant node go too.
        graph.nodes[2].inputs[1] = "other"
        graph.removeUnused(["conv.weight.alias"])
        #expect(!graph.nodes.contains { $0.opType == "Constant" || $0.opType == "Identity" })
    }

    /// A [2, 3, 4] tensor of 0…23 (or of the given values) in `dataType`.
    static func counting(_ name: String, _ dataType: ONNXDataType) throws -> ONNXTensor {
        try ONNXTensor(name: name, Tensor<Double>(shape: [2, 3, 4], scalars: (0..<24).map(Double.init)), dataType: dataType)
    }

    @Test("constants computed by moving data only are folded, exactly as a loop over the indices gives them",
          arguments: [ONNXDataType.float, .double])
    func dataMovesAreFolded(dataType: ONNXDataType) throws {
        let a = try Self.counting("a", dataType)
        let nodes = [
            ONNXNode(opType: "Transpose", name: "t", inputs: ["a"], outputs: ["t"], attributes: [("perm", .ints([2, 0, 1]))]),   // [4, 2, 3]
            ONNXNode(opType: "Slice", name: "s", inputs: ["t", "starts", "ends", "axes", "steps"], outputs: ["s"]),               // [4, 2, 2]
            ONNXNode(opType: "Concat", name: "c", inputs: ["s", "s"], outputs: ["c"], attributes: [("axis", .int(-1))]),          // [4, 2, 4]
            ONNXNode(opType: "Reshape", name: "r", inputs: ["c", "shape"], outputs: ["r"]),                                       // [4, 8]
            ONNXNode(opType: "Unsqueeze", name: "u", inputs: ["r", "axes0"], outputs: ["u"]),                                     // [1, 4, 8]
            ONNXNode(opType: "Squeeze", name: "q", inputs: ["u"], outputs: ["q"]),                                                // [4, 8]
            ONNXNode(opType: "Flatten", name: "f", inputs: ["u"], outputs: ["f"], attributes: [("axis", .int(2))]),               // [4, 8]
            ONNXNode(opType: "Slice", name: "x", inputs: ["input", "starts", "ends", "axes", "steps"], outputs: ["x"]),
        ]
        let graph = ONNXGraph(name: "g", nodes: nodes, initializers: [
            a, ONNXTensor(name: "starts", int64: [-1, 0]), ONNXTensor(name: "ends", int64: [-100, 2]), ONNXTensor(name: "axes", int64: [2, 1]),
            ONNXTensor(name: "steps", int64: [-2, 1]), ONNXTensor(name: "shape", int64: [0, -1]), ONNXTensor(name: "axes0", int64: [0]),
        ], inputs: [ONNXValueInfo(name: "input", elementType: dataType, shape: [.value(4), .value(2), .value(3)])],
           outputs: [ONNXValueInfo(name: "q", elementType: dataType, shape: nil), ONNXValueInfo(name: "f", elementType: dataType, shape: nil)])
        #expect(graph.constants()["t"] == nil, "folding is asked for")
        let folded = graph.constants(folding: true)
        #expect(folded["x"] == nil, "a graph input is not a constant")
        // s[i, j, k] = t[i, j, 2 − 2k] = a[j, 2 − 2k, i] (axis 2 from its last index down by 2; axis 1 its first two).
        var expected: [Double] = []
        for i in 0..<4 { for j in 0..<2 { for k in [0, 1, 0, 1] { expected.append(Double(j * 12 + (2 - 2 * k) * 4 + i)) } } }
        for name in ["q", "f"] {
            let c = try #require(folded[name])
            #expect(c.tensor.shape == [4, 8] && c.tensor.dataType == dataType && c.foldedNode != nil)
            #expect(Array(try c.tensor.tensor(as: Double.self).scalars) == expected, "\(name)")
        }
        #expect(folded["u"]?.tensor.shape == [1, 4, 8] && folded["s"]?.tensor.shape == [4, 2, 2])
        // Once the outputs are released, every folded node goes, and the initializers they read.
        var emptied = ONNXGraph(name: "g", nodes: graph.nodes, initializers: graph.initializers, inputs: graph.inputs, outputs: [])
        let escaped = emptied.removeUnused(["q", "f", "outside"])
        #expect(emptied.nodes.map(\.name) == ["x"] && emptied.initializers.map(\.name).sorted() == ["axes", "ends", "starts", "steps"])
        #expect(escaped == ["outside"], "a name this graph does not define goes up to the graphs around it")
    }

    @Test("folding follows the spec's edge cases and refuses what would overflow, never trapping")
    func foldingEdgeCases() throws {
        let row = ONNXTensor(name: "row", int64: [1, 2, 3])
        func folded(_ node: ONNXNode, _ extra: [ONNXTensor] = [], data: ONNXTensor = row) -> ONNXTensor? {
            let graph = ONNXGraph(name: "g", nodes: [node], initializers: [data] + extra, inputs: [],
                                  outputs: [ONNXValueInfo(name: "out", elementType: data.dataType, shape: nil)])
            return graph.constants(folding: true)["out"]?.tensor
        }
        // A negative step's start is clamped to [0, n − 1]: starts −4 on [1, 2, 3] reads element 0.
        let reverse = folded(ONNXNode(opType: "Slice", name: "s", inputs: ["row", "b", "e", "", "step"], outputs: ["out"]),
                             [ONNXTensor(name: "b", int64: [-4]), ONNXTensor(name: "e", int64: [Int(Int64.min)]), ONNXTensor(name: "step", int64: [-1])])
        #expect(try reverse?.integers() == [1])
        // Flatten's axis −1 is the last axis: [2, 3, 4] → [6, 4].
        let cube = try ONNXTensor(name: "cube", Tensor<Float>.zeros(shape: [2, 3, 4]))
        #expect(folded(ONNXNode(opType: "Flatten", name: "f", inputs: ["cube"], outputs: ["out"], attributes: [("axis", .int(-1))]), data: cube)?.shape == [6, 4])
        // A reshape whose product overflows, and an empty tensor with a huge dimension, are not folded.
        #expect(folded(ONNXNode(opType: "Reshape", name: "r", inputs: ["row", "shape"], outputs: ["out"]),
                       [ONNXTensor(name: "shape", int64: [1 << 32, 1 << 32])]) == nil)
        var empty = Onnx_TensorProto()
        (empty.name, empty.dataType, empty.dims) = ("row", Int32(ONNXDataType.float.rawValue), [0, 1 << 62, 4])
        #expect(folded(ONNXNode(opType: "Transpose", name: "t", inputs: ["row"], outputs: ["out"]), data: ONNXTensor(proto: empty)) == nil)
    }

    @Test("a value that a subgraph lists as its output is read: removeUnused keeps it")
    func subgraphOutputsAreReaders() throws {
        var branch = Onnx_AttributeProto()
        let body = ONNXGraph(name: "else", nodes: [], initializers: [], inputs: [], outputs: [ONNXValueInfo(name: "wt", elementType: .float, shape: nil)])
        (branch.name, branch.type, branch.g) = ("else_branch", .graph, body.proto)
        var then = branch
        then.name = "then_branch"
        var ifNode = ONNXNode(opType: "If", name: "if", inputs: ["flag"], outputs: ["y"]).proto
        ifNode.attribute = [then, branch]
        var graph = ONNXGraph(name: "g", nodes: [ONNXNode(opType: "Transpose", name: "t", inputs: ["w"], outputs: ["wt"]), ONNXNode(proto: ifNode)],
                              initializers: [try ONNXTensor(name: "w", Tensor<Float>.zeros(shape: [2, 3]))],
                              inputs: [ONNXValueInfo(name: "flag", elementType: .bool, shape: [])],
                              outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: nil)])
        graph.removeUnused(["wt"])
        #expect(graph.nodes.count == 2 && graph.initializers.count == 1)
    }
}

@Suite("ONNX external data")
final class ONNXExternalDataTests: Sendable {
    let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-external-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()
    deinit { try? FileManager.default.removeItem(at: directory) }   // one instance per test: its folder goes, used or not

    @Test func writtenAndReadBack() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try smallModel()
        let url = directory.appendingPathComponent("m.onnx")
        try model.write(to: url, externalData: .separateFile(minimumBytes: 64))
        func dataFiles(_ prefix: String) throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(prefix + ".") && $0.hasSuffix(".data") }
        }
        #expect(try dataFiles("m.onnx").count == 1)
        let read = try ONNXModel(contentsOf: url)
        #expect(read.hadExternalData)
        for name in ["conv.weight", "fc.weight"] {
            #expect(try read.graph.initializer(named: name)!.tensor(as: Float.self) == model.graph.initializer(named: name)!.tensor(as: Float.self))
        }
        // .automatic keeps external data external.
        let again = directory.appendingPathComponent("again.onnx")
        try read.write(to: again)
        #expect(try dataFiles("again.onnx").count == 1)
        // Without a directory the data cannot be found.
        #expect(throws: ONNXError.self) { try ONNXModel(serializedData: Data(contentsOf: url)) }
    }

    @Test func modelsBeyondTheOneFileLimitGetExternalData() throws {
        let model = try smallModel()
        let size = try model.serializedData().count
        // With a limit below the model's size, .automatic moves the weights out; .none refuses.
        let encoding = try model.encoded(fileName: "m.onnx", externalData: .automatic, limit: size / 2)
        #expect(encoding.externalData != nil && encoding.model.count < size / 2)
        #expect(throws: ONNXError.self) { try model.encoded(fileName: "m.onnx", externalData: .none, limit: size / 2) }
        #expect(try model.encoded(fileName: "m.onnx", externalData: .automatic, limit: size * 4).externalData == nil)
    }

    /// The model's `conv.weight` stored externally with the given fields.
    func writeExternal(_ fields: [(String, String)], dataBytes: Int = 8 * 4 * 9 * 4) throws -> URL {
        var model = try smallModel()
        var graph = model.graph
        let k = graph.proto.initializer.firstIndex { $0.name == "conv.weight" }!
        graph.proto.initializer[k].clearRawData()
        graph.proto.initializer[k].dataLocation = .external
        graph.proto.initializer[k].externalData = fields.map { key, value in
            var e = Onnx_StringStringEntryProto()
            e.key = key
            e.value = value
            return e
        }
        model.graph = graph
        try Data(count: dataBytes).write(to: directory.appendingPathComponent("w.bin"))
        let url = directory.appendingPathComponent("broken.onnx")
        try model.serializedData().write(to: url)
        return url
    }

    @Test func badLocationsAndRangesThrowWithTheNumbers() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let cases: [([(String, String)], String)] = [
            ([("location", "../w.bin")], "relative path inside"),
            ([("location", "/etc/passwd")], "relative path inside"),
            ([("location", "missing.bin")], "no such file"),
            ([("location", "w.bin"), ("offset", "2000")], "offset 2000 is beyond the file's 1152 bytes"),
            ([("location", "w.bin"), ("offset", "8"), ("length", "1152")], "offset 8 + length 1152 reaches beyond the file's 1152 bytes"),
            ([("location", "w.bin"), ("offset", "-1")], "not a non-negative integer"),
            ([("location", "w.bin"), ("length", "100")], "holds 100 bytes of data where its shape and type need 1152"),
        ]
        for (fields, message) in cases {
            let url = try writeExternal(fields)
            do {
                _ = try ONNXModel(contentsOf: url)
                Issue.record("\(fields) was accepted")
            } catch {
                #expect("\(error)".contains(message), "\(fields): \(error)")
            }
        }
    }

    /// Issue 24, item 3: the refusal carries an ``ExternalDataProblem`` with the values.
    @Test func externalDataProblemsCarryTheirValues() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        func problem(_ fields: [(String, String)]) throws -> ExternalDataProblem? {
            let url = try writeExternal(fields)
            do {
                _ = try ONNXModel(contentsOf: url)
                return nil
            } catch let ONNXError.externalData(tensor, location, problem) {
                #expect(tensor == "conv.weight" && location == (fields.first { $0.0 == "location" }?.1 ?? ""))
                return problem
            }
        }
        #expect(try problem([]) == .noLocation)
        #expect(try problem([("location", "../w.bin")]) == .outsideDirectory)
        #expect(try problem([("location", "/etc/passwd")]) == .outsideDirectory)
        #expect(try problem([("location", "missing.bin")]) == .missingFile(directory: directory.path))
        #expect(try problem([("location", "w.bin"), ("offset", "2000")]) == .offsetBeyondFile(offset: 2000, fileSize: 1152))
        #expect(try problem([("location", "w.bin"), ("offset", "8"), ("length", "1152")]) == .rangeBeyondFile(offset: 8, length: 1152, fileSize: 1152))
        #expect(try problem([("location", "w.bin"), ("offset", "-1")]) == .notNonNegativeInteger(field: "offset", value: "-1"))
        #expect(try problem([("location", "w.bin"), ("length", "x")]) == .notNonNegativeInteger(field: "length", value: "x"))
        // A symlink to a file outside the model's directory, and a FIFO inside it.
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-outside-\(UUID().uuidString).bin")
        try Data(count: 1152).write(to: outside)
        defer { try? FileManager.default.removeItem(at: outside) }
        try FileManager.default.createSymbolicLink(atPath: directory.appendingPathComponent("link.bin").path, withDestinationPath: outside.path)
        #expect(try problem([("location", "link.bin")])
                == .symlinkOutside(resolved: OutputFile.canonicalPath(outside.path), root: OutputFile.canonicalPath(directory.path)))
        let pipe = directory.appendingPathComponent("pipe.bin").path
        #expect(mkfifo(pipe, 0o600) == 0)
        #expect(try problem([("location", "pipe.bin")])
                == .unreadable(.fileSystem(path: OutputFile.canonicalPath(pipe), problem: .notRegularInput(.fifo))))
        #expect("\(ONNXError.externalData(tensor: "w", location: "w.bin", problem: .offsetBeyondFile(offset: 2000, fileSize: 1152)))"
                == "onnx: external data of w at w.bin: offset 2000 is beyond the file's 1152 bytes")
    }

    @Test func protobufAndNodeErrorsCarryTheirValues() {
        #expect {
            try ONNXModel(serializedData: Data([0xFF, 0xFF, 0xFF, 0x01, 0x02]))
        } throws: { error in
            guard case let .invalidProtobuf(decoderError)? = error as? ONNXError else { return false }
            return !decoderError.isEmpty && "\(error)" == "onnx: not a valid ONNX model (\(decoderError))"
        }
        #expect("\(ONNXError.invalidNode(node: "n", opType: "Foo", problem: .unsupportedOperator))"
                == "onnx: node n (Foo): operator not covered by shape inference")
    }
}

/// The ONNX catalog's landing-page snippet, as written.
@Suite("ONNX landing page")
struct ONNXLandingPageTests {
    @Test func snippet() throws {
        let weight = try ONNXTensor(name: "w", Tensor<Float>.randomNormal(shape: [8, 4, 3, 3], seed: 1))
        let graph = ONNXGraph(
            name: "g",
            nodes: [ONNXNode(opType: "Conv", name: "conv", inputs: ["x", "w"], outputs: ["y"],
                             attributes: [("pads", .ints([1, 1, 1, 1]))])],
            initializers: [weight],
            inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.parameter("batch"), .value(4), .value(16), .value(16)])],
            outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: nil)])
        let model = ONNXModel(graph: graph, opset: 13)

        let read = try ONNXModel(serializedData: try model.serializedData())
        let shapes = try ONNXShapeInference(graph: read.graph, inputShapes: ["x": [2, 4, 16, 16]])
        let w = try read.graph.constants()["w"]!.tensor.tensor(as: Float.self)
        #expect(shapes.shapes["y"]! == [2, 8, 16, 16] && w.shape == [8, 4, 3, 3])
    }
}
