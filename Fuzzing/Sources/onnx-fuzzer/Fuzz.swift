import Decompositions
import Foundation
import ModelCompression
import NNLayers
import ONNX
import TensorIO
import TensorModule

// libFuzzer target for the ONNX reader, shape inference and simplify.
//
// The first input byte picks the mode (or the environment variable ONNX_FUZZ_MODE does, and the
// first byte is then ignored, so that every seed works both ways):
//
// - 0 "reader": the rest is an ONNX protobuf. Every part of the model is read (nodes,
//   attributes, initializers decoded), the model is encoded again (inline and with external
//   data) and re-read, and shape inference, simplify and the compressor's layer analysis run on
//   its graph.
// - 1 "shape inference": the rest is a little program that builds a small graph with the public
//   API (1–6 operators of those shape inference covers, with attributes and constant inputs
//   whose values include 0, −1, 2³¹, 2⁴⁰, 2⁶², Int.max, Int.min, NaN, ±inf, 1e30, empty and
//   wrong-length tensors, huge input dimensions), then runs `ONNXShapeInference`.
// - 2 "simplify": the same kind of program biased to what `ONNXGraph.simplify(opset:)` rewrites
//   (convolutions with per-channel Mul/Add/Sub/Div around them, hard-swish chains, float16 /
//   double / bfloat16 weights, groups, pads, shared readers, graph outputs in the middle), then
//   simplify, shape inference before and after (the graph outputs must keep their shapes) and
//   `ModelCompressor.layers(in:estimateRanks: true)` on both graphs.
//
// Any error other than the expected types, a trap, a sanitizer report, a hang (-timeout) or
// huge memory (-rss_limit_mb) is a finding.
//
// Environment: ONNX_FUZZ_MODE=0|1|2 fixes the mode; ONNX_FUZZ_PRINT=1 prints the graph that
// modes 1 and 2 build (to decode a finding); ONNX_FUZZ_DUMP=PATH writes that graph as a model
// file (to make reader seeds).

enum Env {
    static let mode: Int? = ProcessInfo.processInfo.environment["ONNX_FUZZ_MODE"].flatMap { Int($0) }
    static let print = ProcessInfo.processInfo.environment["ONNX_FUZZ_PRINT"] != nil
    static let dump = ProcessInfo.processInfo.environment["ONNX_FUZZ_DUMP"]
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    let mode = Env.mode ?? Int(bytes[0] % 3)
    let rest = Array(bytes[1...])
    switch mode {
    case 0: fuzzReader(Data(rest))
    case 1: fuzzShapeInference(rest)
    default: fuzzSimplify(rest)
    }
    return 0
}

// MARK: - Expected errors

func isExpected(_ error: any Error) -> Bool {
    error is ONNXError || error is TensorIOError || error is ModelCompressionError || error is NNLayersError || error is DecompositionError
}

/// Runs `body`; an error of an unexpected type is a finding.
func expecting(_ what: String, _ body: () throws -> Void) {
    do { try body() } catch {
        guard isExpected(error) else { fatalError("\(what): unexpected error type \(type(of: error)): \(error)") }
    }
}

// MARK: - Mode 0: reader

func touch(_ tensor: ONNXTensor) {
    _ = tensor.name
    _ = tensor.shape
    _ = tensor.isExternal
    let type = tensor.dataType
    _ = type.description
    _ = type.largestFinite
    expecting("elementCount") { _ = try tensor.elementCount() }
    expecting("checkData") { try tensor.checkData() }
    if type.isFloatingPoint {
        expecting("tensor(as: Float)") { _ = try tensor.tensor(as: Float.self) }
    } else {
        expecting("integers") { _ = try tensor.integers() }
        expecting("tensor(as: Double)") { _ = try tensor.tensor(as: Double.self) }
    }
}

func touch(_ graph: ONNXGraph) {
    _ = graph.name
    for node in graph.nodes {
        _ = (node.name, node.opType, node.domain, node.isStandard, node.inputs, node.outputs)
        for name in node.attributeNames {
            switch node.attribute(name) {
            case let .tensor(t)?: touch(t)
            case let .string(s)?: _ = s.count
            default: break
            }
            _ = (node.int(name), node.ints(name), node.float(name), node.string(name))
        }
    }
    for tensor in graph.initializers { touch(tensor) }
    for info in graph.inputs + graph.outputs + graph.valueInfo { _ = (info.name, info.elementType, info.shape, info.shapeDescription) }
    _ = graph.consumers()
    _ = graph.producers()
    _ = graph.overridableInitializerNames
    for (_, constant) in graph.constants() { touch(constant.tensor) }
}

func fuzzReader(_ data: Data) {
    let model: ONNXModel
    do { model = try ONNXModel(serializedData: data) } catch {
        guard isExpected(error) else { fatalError("reader: unexpected error type \(type(of: error)): \(error)") }
        return
    }
    _ = (model.irVersion, model.producer, model.opsetImports, model.opsetVersion, model.metadata, model.hadExternalData)
    let graph = model.graph
    touch(graph)
    expecting("round trip") {
        let encoded = try model.encoded(fileName: "fuzz.onnx", externalData: .none)
        let again = try ONNXModel(serializedData: encoded.model)
        let twice = try again.encoded(fileName: "fuzz.onnx", externalData: .none)
        guard twice.model == encoded.model else {
            fatalError("reader: the re-read model encodes differently (\(encoded.model.count) → \(twice.model.count) bytes)")
        }
        _ = try model.encoded(fileName: "fuzz.onnx", externalData: .separateFile(minimumBytes: 1))
        _ = try model.encoded(fileName: "fuzz.onnx", externalData: .automatic)
    }
    let opset = min(max(model.opsetVersion, 1), 30)
    expecting("shape inference") {
        let shapes = try ONNXShapeInference(graph: graph, opset: opset)
        _ = (shapes.shapes.count, shapes.values.count, shapes.failures.count)
    }
    expecting("simplify") {
        var g = graph
        _ = try g.simplify(opset: opset)
        touch(g)
    }
    expecting("layers") {
        var options = CompressionOptions()
        options.minimumParameters = 0
        _ = try ModelCompressor(options: options).layers(in: model, estimateRanks: smallWeights(graph))
    }
}

/// Whether every initializer is small enough for rank estimation to be quick.
func smallWeights(_ graph: ONNXGraph) -> Bool {
    graph.initializers.allSatisfy { ((try? $0.elementCount()) ?? 0) <= 4096 }
}

// MARK: - Byte source

/// The fuzz input read as a sequence of choices; past the end every choice is 0.
struct Source {
    var bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var exhausted: Bool { index >= bytes.count }

    mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    /// 0 ..< n.
    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(byte()) % n }
    /// True with probability about k/256; false past the end.
    mutating func chance(_ k: Int) -> Bool { !exhausted && Int(byte()) < k }
    mutating func pick<T>(_ choices: [T]) -> T { choices[below(choices.count)] }

    mutating func raw64() -> Int {
        var v: UInt64 = 0
        for k in 0..<8 { v |= UInt64(byte()) << (8 * k) }
        return Int(bitPattern: UInt(v))
    }

    static let extremes: [Int] = [0, -1, 1, 2, -2, 1 << 31, (1 << 31) - 1, -(1 << 31), 1 << 32, 1 << 40, 1 << 62, -(1 << 62), (1 << 62) + 1,
                                  Int.max, Int.min, Int.max - 1, Int.min + 1, 3_037_000_500, 46341, 65536, 1 << 53, -(1 << 40), 3, 4, 6, 8]

    /// An extreme integer, or 8 raw bytes.
    mutating func wild() -> Int {
        let b = Int(byte())
        return b < 240 ? Self.extremes[b % Self.extremes.count] : raw64()
    }

    /// Usually a value in `typical`, sometimes an extreme one.
    mutating func int(_ typical: ClosedRange<Int>, wildness: Int = 40) -> Int {
        if exhausted { return typical.lowerBound }
        let b = Int(byte())
        if b < 256 - wildness { return typical.lowerBound + b % typical.count }
        return wild()
    }

    /// A list of `count` ints (sometimes another length).
    mutating func ints(_ count: Int, _ typical: ClosedRange<Int>, wildness: Int = 40) -> [Int] {
        let n = chance(24) ? below(7) : count
        return (0..<n).map { _ in int(typical, wildness: wildness) }
    }

    static let extremeFloats: [Float] = [0, -0.0, 1, -1, 0.5, 2, 3, 6, 1.0 / 6, .nan, .infinity, -.infinity, 1e30, -1e30, 1e-30,
                                         .greatestFiniteMagnitude, 65504, 65520, 1e-8, 3.0001, 1e38, -2]

    mutating func float(wildness: Int = 40) -> Float {
        if exhausted { return 1 }
        let b = Int(byte())
        if b < 256 - wildness { return Float(b % 33 - 16) / 8 }
        let c = Int(byte())
        if c < 240 { return Self.extremeFloats[c % Self.extremeFloats.count] }
        return Float(bitPattern: UInt32(truncatingIfNeeded: raw64()))
    }

    /// A dimension: usually 1…8, sometimes 0, 16, 224 or huge.
    mutating func dim(wildness: Int = 24) -> Int {
        if exhausted { return 1 }
        let b = Int(byte())
        if b < 256 - wildness { return [1, 2, 3, 4, 1, 2, 8, 0, 16, 3, 224, 5][b % 12] }
        return [1 << 31, 1 << 40, 1 << 62, Int.max, 3_037_000_500, 65536, 1 << 20, Int(Int32.max), -1][Int(byte()) % 9]
    }
}

// MARK: - Protobuf pieces (tensors the public initializers cannot make)

enum Proto {
    static func varint(_ value: UInt64) -> [UInt8] {
        var v = value, out: [UInt8] = []
        repeat {
            var b = UInt8(v & 0x7F)
            v >>= 7
            if v != 0 { b |= 0x80 }
            out.append(b)
        } while v != 0
        return out
    }
    static func key(_ field: Int, _ wire: Int) -> [UInt8] { varint(UInt64(field << 3 | wire)) }
    static func bytes(_ field: Int, _ payload: [UInt8]) -> [UInt8] { key(field, 2) + varint(UInt64(payload.count)) + payload }
    static func int(_ field: Int, _ v: Int) -> [UInt8] { key(field, 0) + varint(UInt64(bitPattern: Int64(v))) }

    /// A TensorProto with any dims, element type and data (raw or in the typed fields).
    static func tensor(name: String, dataType: Int, dims: [Int], raw: [UInt8]?, int64s: [Int] = [], int32s: [Int] = [], floats: [Float] = []) -> ONNXTensor? {
        var t: [UInt8] = []
        for d in dims { t += int(1, d) }
        t += int(2, dataType)
        for f in floats { t += key(4, 5) + withUnsafeBytes(of: f.bitPattern.littleEndian, Array.init) }
        for v in int32s { t += int(5, v) }
        for v in int64s { t += int(7, v) }
        t += bytes(8, Array(name.utf8))
        if let raw { t += bytes(9, raw) }
        let graph = bytes(5, t)
        let model = int(1, 8) + bytes(7, graph)
        return try? ONNXModel(serializedData: Data(model)).graph.initializers.first
    }
}

// MARK: - Graph builder

struct GraphBuilder {
    var src: Source
    var nodes: [ONNXNode] = []
    var initializers: [ONNXTensor] = []
    var inputs: [ONNXValueInfo] = []
    var outputs: [String] = []
    /// Values produced so far, newest last.
    var pool: [String] = []
    var counter = 0
    var opset = 13

    init(_ bytes: [UInt8]) { src = Source(bytes) }

    mutating func fresh(_ base: String) -> String {
        counter += 1
        return "\(base)\(counter)"
    }

    /// An existing value, biased to the newest.
    mutating func value() -> String {
        guard !pool.isEmpty else { return addInput(rank: 4) }
        let b = src.byte()
        if b < 150 { return pool[pool.count - 1] }
        if b < 200, pool.count > 1 { return pool[pool.count - 2] }
        return pool[Int(b) % pool.count]
    }

    /// A graph input with a declared shape of about `rank` dimensions.
    @discardableResult
    mutating func addInput(rank: Int, dims: [Int]? = nil, type: ONNXDataType = .float) -> String {
        let name = fresh("in")
        let shape: [ONNXDimension] = (dims ?? (0..<rank).map { _ in src.dim() }).map { d in
            let b = src.byte()
            if b < 4 { return .parameter("N") }
            if b < 6 { return .unknown }
            return .value(d)
        }
        inputs.append(ONNXValueInfo(name: name, elementType: type, shape: src.chance(3) ? nil : shape))
        pool.append(name)
        return name
    }

    /// The name of a new output value (sometimes an existing name, or empty).
    mutating func output() -> String {
        let b = src.byte()
        if b < 5, !pool.isEmpty { return pool[Int(src.byte()) % pool.count] }
        if b < 8 { return "" }
        return fresh("v")
    }

    mutating func add(_ op: String, _ ins: [String], outputs count: Int = 1, _ attributes: [(String, ONNXAttribute)] = []) -> [String] {
        // Sometimes fewer inputs than the operator takes.
        let ins = src.chance(4) ? Array(ins.prefix(src.below(ins.count))) : ins
        var outs = (0..<count).map { _ in output() }
        if src.chance(3) { outs = [] }
        nodes.append(ONNXNode(opType: op, name: fresh(op.lowercased() + "_"), inputs: ins, outputs: outs, attributes: attributes))
        pool.append(contentsOf: outs.filter { !$0.isEmpty })
        return outs
    }

    /// Stores a constant tensor in one of the ways a graph holds constants; returns its value name.
    mutating func store(_ tensor: ONNXTensor) -> String {
        var t = tensor
        switch src.below(10) {
        case 0, 1:
            // A Constant node.
            let name = fresh("const")
            t.name = ""
            nodes.append(ONNXNode(opType: "Constant", name: fresh("constant_"), inputs: [], outputs: [name], attributes: [("value", .tensor(t))]))
            return name
        case 2:
            // An Identity of an initializer.
            t.name = fresh("init")
            initializers.append(t)
            let name = fresh("id")
            nodes.append(ONNXNode(opType: "Identity", name: fresh("identity_"), inputs: [t.name], outputs: [name]))
            return name
        case 3 where src.chance(80):
            // An initializer that is also a graph input: overridable, not a constant.
            t.name = fresh("init")
            initializers.append(t)
            inputs.append(ONNXValueInfo(name: t.name, elementType: t.dataType, shape: t.shape.map { .value($0) }))
            return t.name
        default:
            t.name = fresh("init")
            initializers.append(t)
            return t.name
        }
    }

    /// An INT64 constant of `values` (1-D, scalar, 2-D; sometimes a float tensor, a Constant with
    /// value_ints, a raw tensor of another integer type or an odd shape).
    mutating func ints(_ values: [Int]) -> String {
        switch src.below(16) {
        case 0:
            // value_ints / value_int on a Constant node.
            let name = fresh("const")
            let attribute: (String, ONNXAttribute) = values.count == 1 && src.chance(128) ? ("value_int", .int(values[0])) : ("value_ints", .ints(values))
            nodes.append(ONNXNode(opType: "Constant", name: fresh("constant_"), inputs: [], outputs: [name], attributes: [attribute]))
            return name
        case 1:
            // The same numbers as FLOAT.
            return store((try? ONNXTensor(name: "", Tensor<Float>(shape: [values.count], scalars: values.map { Float($0) }))) ?? ONNXTensor(name: "", int64: values))
        case 2:
            // INT32 with raw data, or typed int64_data / int32_data, or a lying shape.
            let dims: [Int] = src.chance(128) ? [values.count] : [src.dim()]
            let type = src.pick([6, 7, 7, 2, 3, 9, 12, 13, 1, 10, 8, 0, 99])
            let tensor: ONNXTensor?
            switch src.below(3) {
            case 0:
                let size = src.pick([1, 2, 4, 8])
                var raw: [UInt8] = []
                for v in values { raw += withUnsafeBytes(of: Int64(v).littleEndian, Array.init).prefix(size) }
                tensor = Proto.tensor(name: "", dataType: type, dims: dims, raw: raw)
            case 1: tensor = Proto.tensor(name: "", dataType: type, dims: dims, raw: nil, int64s: values)
            default: tensor = Proto.tensor(name: "", dataType: type, dims: dims, raw: nil, int32s: values.map { Int(Int32(truncatingIfNeeded: $0)) })
            }
            return store(tensor ?? ONNXTensor(name: "", int64: values))
        case 3 where values.count == 1:
            return store(ONNXTensor(name: "", int64: values, shape: []))
        case 4:
            return store(ONNXTensor(name: "", int64: values, shape: [1, values.count]))
        case 5 where src.chance(64):
            // Not a constant at all.
            return addInput(rank: 1, dims: [values.count], type: .int64)
        default:
            return store(ONNXTensor(name: "", int64: values))
        }
    }

    /// A FLOAT (or other floating type) constant of the given shape; values from the input.
    mutating func floats(_ shape: [Int], type: ONNXDataType = .float, wildness: Int = 40) -> String {
        store(floatTensor(shape, type: type, wildness: wildness))
    }

    mutating func floatTensor(_ shape: [Int], type: ONNXDataType = .float, wildness: Int = 40) -> ONNXTensor {
        var count = 1
        for d in shape { count = d < 0 || count.multipliedReportingOverflow(by: d).overflow ? Int.max : min(count * d, Int.max) }
        if shape.contains(where: { $0 < 0 }) || count > 4096 {
            // Dims without data (or with too little).
            let raw = src.chance(128) ? [] : [UInt8](repeating: 0, count: src.below(16))
            if let t = Proto.tensor(name: "", dataType: type.rawValue, dims: shape, raw: raw) { return t }
            return ONNXTensor(name: "", int64: [])
        }
        let values = (0..<count).map { _ in src.float(wildness: wildness) }
        if let t = try? ONNXTensor(name: "", Tensor<Float>(shape: shape, scalars: values), dataType: type) { return t }
        return ONNXTensor(name: "", int64: [])
    }

    /// An integer for an attribute or a constant.
    mutating func attrInt(_ typical: ClosedRange<Int>) -> Int { src.int(typical) }

    mutating func autoPad() -> String { src.pick(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", "same", ""]) }

    func graph() -> ONNXGraph {
        let outs = outputs.isEmpty ? Array(pool.suffix(1)) : outputs
        var seen = Set<String>()
        let infos = outs.filter { !$0.isEmpty && seen.insert($0).inserted }.map { ONNXValueInfo(name: $0, elementType: .float, shape: nil) }
        return ONNXGraph(name: "fuzz", nodes: nodes, initializers: initializers, inputs: inputs, outputs: infos)
    }
}

// MARK: - Mode 1: shape inference

let shapeOps = ["Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "Gemm", "MatMul", "Reshape", "Shape", "Gather", "Slice",
                "Split", "Concat", "Range", "ConstantOfShape", "Tile", "Pad", "Expand", "Resize", "Upsample", "DepthToSpace",
                "SpaceToDepth", "Squeeze", "Unsqueeze", "Transpose", "Flatten", "Add", "Mul", "Div", "Sub", "Where", "ReduceMean",
                "ReduceSum", "ArgMax", "Size", "Cast", "Relu", "Neg", "Identity", "GlobalAveragePool", "Constant", "PRelu", "Softmax"]

extension GraphBuilder {
    /// Windowed-operator attributes for `n` spatial axes.
    mutating func windowAttributes(_ n: Int, kernel: Bool) -> [(String, ONNXAttribute)] {
        var a: [(String, ONNXAttribute)] = []
        if kernel { if src.chance(230) { a.append(("kernel_shape", .ints(src.ints(n, 1...3)))) } }
        if src.chance(100) { a.append(("strides", .ints(src.ints(n, 1...2)))) }
        if src.chance(60) { a.append(("dilations", .ints(src.ints(n, 1...2)))) }
        if src.chance(100) { a.append(("pads", .ints(src.ints(2 * n, 0...2)))) }
        if src.chance(50) { a.append(("auto_pad", .string(autoPad()))) }
        return a
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    mutating func shapeOp() {
        let op = src.pick(shapeOps)
        var a: [(String, ONNXAttribute)] = []
        switch op {
        case "Conv", "ConvTranspose":
            let x = value()
            let n = src.chance(200) ? 2 : src.below(4)
            let w: String
            switch src.below(3) {
            case 0: w = addInput(rank: n + 2)
            case 1: w = floats((0..<(n + 2)).map { _ in src.int(1...3, wildness: 8) })
            default: w = store(floatTensor((0..<(n + 2)).map { _ in src.dim() }))
            }
            a = windowAttributes(n, kernel: true)
            if src.chance(60) { a.append(("group", .int(attrInt(1...4)))) }
            if op == "ConvTranspose" {
                if src.chance(60) { a.append(("output_padding", .ints(src.ints(n, 0...1)))) }
                if src.chance(40) { a.append(("output_shape", .ints(src.ints(n, 1...16)))) }
            }
            var ins = [x, w]
            if src.chance(60) { ins.append(src.chance(128) ? floats([src.dim()]) : "") }
            _ = add(op, ins, a)
        case "MaxPool", "AveragePool", "LpPool":
            let n = src.chance(200) ? 2 : src.below(4)
            a = windowAttributes(n, kernel: true)
            if src.chance(60) { a.append(("ceil_mode", .int(attrInt(0...1)))) }
            _ = add(op, [value()], outputs: op == "MaxPool" && src.chance(60) ? 2 : 1, a)
        case "Gemm":
            if src.chance(100) { a.append(("transA", .int(attrInt(0...1)))) }
            if src.chance(100) { a.append(("transB", .int(attrInt(0...1)))) }
            if src.chance(40) { a.append(("alpha", .float(src.float()))) }
            let b = src.chance(128) ? value() : floats([src.int(1...4, wildness: 8), src.int(1...4, wildness: 8)])
            var ins = [value(), b]
            if src.chance(80) { ins.append(value()) }
            _ = add(op, ins, a)
        case "MatMul":
            let b = src.chance(128) ? value() : addInput(rank: src.below(5))
            _ = add(op, [value(), b])
        case "Reshape":
            let target = src.ints(src.below(6), -1...8)
            if src.chance(50) { a.append(("allowzero", .int(attrInt(0...1)))) }
            _ = add(op, [value(), ints(target)], a)
        case "Shape":
            if src.chance(80) { a.append(("start", .int(attrInt(-4...4)))) }
            if src.chance(80) { a.append(("end", .int(attrInt(-4...4)))) }
            _ = add(op, [value()], a)
        case "Gather":
            if src.chance(128) { a.append(("axis", .int(attrInt(-3...3)))) }
            let indices = src.chance(200) ? ints(src.ints(src.below(4), -4...4)) : value()
            _ = add(op, [value(), indices], a)
        case "Slice":
            let n = src.below(4)
            let x = value()
            if opset >= 10 {
                var ins = [x, ints(src.ints(n, -4...4)), ints(src.ints(n, -4...8))]
                if src.chance(160) { ins.append(ints(src.ints(n, -3...3))) }
                if src.chance(120) { ins.append(ints(src.ints(n, -2...2))) }
                _ = add(op, ins)
            } else {
                if src.chance(230) { a.append(("starts", .ints(src.ints(n, -4...4)))) }
                if src.chance(230) { a.append(("ends", .ints(src.ints(n, -4...8)))) }
                if src.chance(100) { a.append(("axes", .ints(src.ints(n, -3...3)))) }
                _ = add(op, [x], a)
            }
        case "Split":
            let k = 1 + src.below(4)
            if src.chance(128) { a.append(("axis", .int(attrInt(-3...3)))) }
            if src.chance(40) { a.append(("num_outputs", .int(attrInt(1...4)))) }
            var ins = [value()]
            if opset >= 13, src.chance(100) { ins.append(ints(src.ints(k, 0...4))) } else { if src.chance(80) { a.append(("split", .ints(src.ints(k, 0...4)))) } }
            _ = add(op, ins, outputs: k, a)
        case "Concat":
            if src.chance(220) { a.append(("axis", .int(attrInt(-3...3)))) }
            let ins = (0..<(1 + src.below(3))).map { _ in src.chance(200) ? value() : ints(src.ints(src.below(4), -1...8)) }
            _ = add(op, ins, a)
        case "Range":
            let bounds = (0..<3).map { _ -> String in
                if src.chance(160) { return ints([src.int(-4...8)]) }
                return floats(src.chance(200) ? [] : [src.below(3)])
            }
            _ = add(op, bounds)
        case "ConstantOfShape":
            if src.chance(100) { a.append(("value", .tensor(floatTensor(src.chance(200) ? [1] : [src.below(3)])))) }
            _ = add(op, [ints(src.ints(src.below(5), 0...8))], a)
        case "Tile":
            _ = add(op, [value(), ints(src.ints(src.below(5), 0...3))])
        case "Pad":
            let n = src.below(5)
            if opset >= 11 {
                var ins = [value(), ints(src.ints(2 * n, 0...2))]
                if src.chance(100) { ins.append(src.chance(128) ? floats([]) : "") }
                if opset >= 18, src.chance(100) { ins.append(ints(src.ints(n, -3...3))) }
                _ = add(op, ins)
            } else {
                if src.chance(220) { a.append(("pads", .ints(src.ints(2 * n, 0...2)))) }
                _ = add(op, [value()], a)
            }
        case "Expand":
            _ = add(op, [value(), ints(src.ints(src.below(5), 0...4))])
        case "Resize", "Upsample":
            let n = src.below(5)
            let x = value()
            let scales = floats([n])
            if op == "Upsample" || opset < 11 {
                if src.chance(60) { a.append(("scales", .floats((0..<n).map { _ in src.float() }))) ; _ = add(op, [x], a) } else { _ = add(op, [x, scales]) }
            } else {
                var ins = [x, src.chance(128) ? "" : floats([2 * n]), src.chance(150) ? scales : ""]
                if src.chance(120) { ins.append(ints(src.ints(n, 0...16))) }
                _ = add(op, ins)
            }
        case "DepthToSpace", "SpaceToDepth":
            if src.chance(230) { a.append(("blocksize", .int(attrInt(1...3)))) }
            _ = add(op, [value()], a)
        case "Squeeze", "Unsqueeze":
            let axes = src.ints(src.below(3), -3...3)
            if opset >= 13 {
                _ = add(op, src.chance(200) || op == "Unsqueeze" ? [value(), ints(axes)] : [value()])
            } else {
                if src.chance(200) { a.append(("axes", .ints(axes))) }
                _ = add(op, [value()], a)
            }
        case "Transpose":
            if src.chance(200) { a.append(("perm", .ints(src.ints(src.below(5), 0...4)))) }
            _ = add(op, [value()], a)
        case "Flatten":
            if src.chance(200) { a.append(("axis", .int(attrInt(-3...4)))) }
            _ = add(op, [value()], a)
        case "Add", "Mul", "Div", "Sub", "Where", "PRelu":
            let count = op == "Where" ? 3 : 2
            let ins = (0..<count).map { _ -> String in
                switch src.below(4) {
                case 0: return ints(src.ints(src.below(4), -4...8))
                case 1: return floats((0..<src.below(5)).map { _ in src.int(1...3, wildness: 8) })
                default: return value()
                }
            }
            _ = add(op, ins)
        case "ReduceMean", "ReduceSum":
            if src.chance(100) { a.append(("keepdims", .int(attrInt(0...1)))) }
            if src.chance(40) { a.append(("noop_with_empty_axes", .int(attrInt(0...1)))) }
            var ins = [value()]
            if src.chance(128) { if src.chance(100) { a.append(("axes", .ints(src.ints(src.below(4), -3...3)))) } } else { ins.append(ints(src.ints(src.below(4), -3...3))) }
            _ = add(op, ins, a)
        case "ArgMax":
            if src.chance(100) { a.append(("axis", .int(attrInt(-3...3)))) }
            if src.chance(100) { a.append(("keepdims", .int(attrInt(0...1)))) }
            _ = add(op, [value()], a)
        case "Cast":
            if src.chance(230) { a.append(("to", .int(src.pick([1, 7, 6, 10, 11, 9, 16, 0, -1])))) }
            _ = add(op, [value()], a)
        case "Constant":
            let name = output()
            switch src.below(5) {
            case 0: a = [("value", .tensor(floatTensor((0..<src.below(3)).map { _ in src.dim() })))]
            case 1: a = [("value_float", .float(src.float()))]
            case 2: a = [("value_floats", .floats((0..<src.below(5)).map { _ in src.float() }))]
            case 3: a = [("value_int", .int(src.int(-4...8)))]
            default: a = [("value_ints", .ints(src.ints(src.below(5), -4...8)))]
            }
            if src.chance(10) { a = [] }
            nodes.append(ONNXNode(opType: op, name: fresh("constant_"), inputs: [], outputs: src.chance(4) ? [] : [name], attributes: a))
            if !name.isEmpty { pool.append(name) }
        default:
            if op == "Softmax" { if src.chance(100) { a.append(("axis", .int(attrInt(-3...3)))) } }
            _ = add(op, [value()], a)
        }
    }
}

func fuzzShapeInference(_ bytes: [UInt8]) {
    var b = GraphBuilder(bytes)
    b.opset = b.src.pick([13, 13, 17, 18, 11, 10, 9, 7, 21, 12])
    for _ in 0..<(1 + b.src.below(3)) { b.addInput(rank: b.src.pick([4, 4, 1, 2, 3, 0, 5])) }
    for k in 0..<(1 + b.src.below(6)) where k == 0 || !b.src.exhausted { b.shapeOp() }
    if b.src.chance(60), let v = b.pool.first { b.outputs.append(v) }
    b.outputs.append(contentsOf: b.pool.suffix(1))
    var given: [String: [Int]] = [:]
    if b.src.chance(40), let input = b.inputs.first {
        given[b.src.chance(230) ? input.name : "nope"] = (0..<b.src.below(5)).map { _ in b.src.dim() }
    }
    let graph = b.graph()
    let opset = b.opset
    report(graph, opset: opset, given: given)
    expecting("shape inference") {
        let shapes = try ONNXShapeInference(graph: graph, inputShapes: given, opset: opset)
        _ = (shapes.shapes.count, shapes.values.count, shapes.failures.count)
    }
    // The built graph as a file, read back: the reader must give the same graph.
    expecting("round trip") {
        let data = try ONNXModel(graph: graph, opset: opset).serializedData()
        let again = try ONNXModel(serializedData: data)
        guard try again.serializedData() == data else { fatalError("round trip: the re-read model encodes differently") }
    }
}

// MARK: - Mode 2: simplify

extension GraphBuilder {
    /// `[1, C, 1, …]`, `[C, 1, …]`, `[C]`, a scalar, … for a per-channel constant on a rank-`rank` value.
    mutating func channelShape(_ c: Int, rank: Int) -> [Int] {
        let r = max(rank, 2)
        switch src.below(12) {
        case 0: return []
        case 1: return [1]
        case 2: return [c]
        case 3: return [c] + [Int](repeating: 1, count: r - 2)
        case 4: return [Int](repeating: 1, count: r)
        case 5: return [1, c] + [Int](repeating: 1, count: r - 2) + [1]      // higher rank
        case 6: return [2, c] + [Int](repeating: 1, count: r - 2)            // along the batch axis
        case 7: return [1, c] + [Int](repeating: 1, count: max(r - 3, 0)) + [c]   // along a spatial axis
        case 8: return [1, c &+ 1] + [Int](repeating: 1, count: r - 2)        // wrong channel count
        default: return [1, c] + [Int](repeating: 1, count: r - 2)
        }
    }

    /// A constant of `shape` for an elementwise op: in the graph's float type mostly.
    mutating func affineConstant(_ shape: [Int], type: ONNXDataType, value: Float? = nil) -> String {
        let t = src.chance(20) ? src.pick([ONNXDataType.float, .double, .float16, .bfloat16]) : type
        if let value, src.chance(220) {
            let count = shape.reduce(1, *)
            if let tensor = try? ONNXTensor(name: "", Tensor<Float>(shape: shape, scalars: [Float](repeating: value, count: count)), dataType: t) {
                return store(tensor)
            }
        }
        return floats(shape, type: t)
    }

    /// An inference BatchNormalization with constant parameters (mostly of shape [channels], a
    /// variance that may be negative or zero, a training mode now and then).
    mutating func batchNormalization(_ x: String, channels: Int, type: ONNXDataType) -> String {
        let ins = [x] + (0..<4).map { _ in affineConstant(src.chance(230) ? [channels] : [src.int(0...3, wildness: 0)], type: type) }
        var attributes: [(String, ONNXAttribute)] = []
        if src.chance(128) { attributes.append(("epsilon", .float(src.chance(200) ? 1e-5 : src.float()))) }
        if src.chance(10) { attributes.append(("training_mode", .int(1))) }
        return add("BatchNormalization", ins, attributes).first ?? x
    }

    mutating func affine(_ x: String, channels: Int, rank: Int, type: ONNXDataType) -> String {
        let op = src.pick(["Mul", "Add", "Sub", "Div"])
        let c = affineConstant(channelShape(channels, rank: rank), type: type)
        let ins = src.chance(64) ? [c, x] : [x, c]
        return add(op, ins).first ?? x
    }

    mutating func conv(_ x: String, channels: Int, rank: Int, type: ONNXDataType) -> (String, Int) {
        let outChannels = src.int(1...4, wildness: 8)
        var group = 1
        if src.chance(60) { group = src.chance(128) ? channels : src.int(1...4, wildness: 16) }
        let inPer = group > 0 && channels % group == 0 ? channels / group : src.int(1...3, wildness: 0)
        let k = src.int(1...3, wildness: 4)
        var shape = [group > 0 && outChannels % group == 0 ? outChannels : outChannels &* max(min(group, 4), 1), inPer]
            + [Int](repeating: k, count: max(rank - 2, 1))
        if src.chance(10) { shape = (0..<src.below(6)).map { _ in src.int(0...3) } }
        let w: String
        switch src.below(8) {
        case 0 where !initializers.isEmpty && src.chance(128):
            // A weight shared with another node.
            w = src.pick(initializers).name
        case 1 where src.chance(64):
            w = addInput(rank: shape.count, dims: shape)
        default:
            w = floats(shape, type: type, wildness: 24)
        }
        var ins = [x, w]
        let o = shape.first ?? 1
        if src.chance(150) {
            let biasType = src.chance(230) ? type : src.pick([ONNXDataType.float, .double, .float16])
            ins.append(src.chance(230) ? floats([o], type: biasType) : floats([o &+ 1], type: biasType))
        } else if src.chance(20) { ins.append("") }
        var a: [(String, ONNXAttribute)] = []
        let n = max(rank - 2, 1)
        if group != 1 || src.chance(20) { a.append(("group", .int(group))) }
        if src.chance(100) { a.append(("pads", .ints(src.ints(2 * n, 0...1)))) }
        if src.chance(40) { a.append(("strides", .ints(src.ints(n, 1...2)))) }
        if src.chance(30) { a.append(("dilations", .ints(src.ints(n, 1...2)))) }
        if src.chance(30) { a.append(("auto_pad", .string(autoPad()))) }
        if src.chance(30) { a.append(("kernel_shape", .ints(src.ints(n, 1...3)))) }
        return (add("Conv", ins, a).first ?? x, o)
    }

    /// Add(x, 3) → Clip(0, 6) → Mul(x, ·) → Div(6) (or ×1/6, or the other order).
    mutating func hardSwish(_ x: String, rank: Int, type: ONNXDataType) -> String {
        func scalarShape() -> [Int] { src.pick([[], [1], [1], [1, 1], [1, 1, 1, 1], [1, 1, 1, 1, 1]]) }
        let three = affineConstant(scalarShape(), type: type, value: src.chance(240) ? 3 : src.float())
        let added = add("Add", src.chance(64) ? [three, x] : [x, three]).first ?? ""
        var clipIns = [added]
        var clipAttributes: [(String, ONNXAttribute)] = []
        if opset >= 11 && src.chance(220) {
            clipIns += [affineConstant(scalarShape(), type: type, value: src.chance(240) ? 0 : src.float()),
                        affineConstant(scalarShape(), type: type, value: src.chance(240) ? 6 : src.float())]
        } else {
            clipAttributes = [("min", .float(src.chance(240) ? 0 : src.float())), ("max", .float(src.chance(240) ? 6 : src.float()))]
        }
        let clipped = add("Clip", clipIns, clipAttributes).first ?? ""
        if src.chance(20) { outputs.append(clipped) }
        func sixth() -> (String, String) {
            if src.chance(128) { return ("Div", affineConstant(scalarShape(), type: type, value: src.chance(240) ? 6 : src.float())) }
            return ("Mul", affineConstant(scalarShape(), type: type, value: src.chance(240) ? Float(1.0 / 6) : src.float()))
        }
        if src.chance(128) {
            let m = add("Mul", src.chance(128) ? [x, clipped] : [clipped, x]).first ?? ""
            let (op, c) = sixth()
            return add(op, src.chance(200) || op == "Div" ? [m, c] : [c, m]).first ?? x
        } else {
            let (op, c) = sixth()
            let d = add(op, [clipped, c]).first ?? ""
            return add("Mul", src.chance(128) ? [x, d] : [d, x]).first ?? x
        }
    }
}

func fuzzSimplify(_ bytes: [UInt8]) {
    var b = GraphBuilder(bytes)
    b.opset = b.src.pick([13, 13, 17, 11, 9, 18, 21])
    let type = b.src.chance(200) ? ONNXDataType.float : b.src.pick([ONNXDataType.double, .float16, .bfloat16])
    var rank = b.src.chance(200) ? 4 : b.src.pick([3, 5, 2, 1, 0])
    var channels = b.src.int(1...4, wildness: 8)
    let dims = (0..<rank).map { k -> Int in k == 1 ? channels : b.src.int(1...6, wildness: 8) }
    var x = b.addInput(rank: rank, dims: dims, type: type)
    for k in 0..<(1 + b.src.below(7)) where k == 0 || !b.src.exhausted {
        switch b.src.below(12) {
        case 0, 1, 2:
            (x, channels) = b.conv(x, channels: channels, rank: rank, type: type)
            rank = max(rank, 3)
        case 3, 4, 5:
            x = b.affine(x, channels: channels, rank: rank, type: type)
        case 6, 7:
            x = b.hardSwish(x, rank: rank, type: type)
        case 8:
            x = b.add(b.src.pick(["Relu", "Sigmoid", "Identity", "Neg", "Cast"]), [x]).first ?? x
        case 9:
            // Change the rank: the layouts lose track, shape inference does not.
            switch b.src.below(4) {
            case 0: x = b.add("ReduceMean", [x], [("keepdims", .int(0))]).first ?? x; rank = 0
            case 1: x = b.add("Flatten", [x]).first ?? x; rank = 2
            case 2: x = b.add("GlobalAveragePool", [x]).first ?? x
            default:
                x = b.add("ReduceMean", [x], [("keepdims", .int(b.src.below(2))), ("axes", .ints([b.src.int(-1...3)]))]).first ?? x
                rank = max(rank - 1, 0)
            }
        case 10:
            // A second reader, or a graph output in the middle.
            if b.src.chance(128) { b.outputs.append(x) } else { b.outputs += b.add("Relu", [x]) }
        default:
            // Two convolutions reading the same value, summed.
            let (y1, c1) = b.conv(x, channels: channels, rank: rank, type: type)
            let (y2, _) = b.conv(x, channels: channels, rank: rank, type: type)
            x = b.add("Add", [y1, y2]).first ?? y1
            channels = c1
            rank = max(rank, 3)
        }
        if b.src.chance(20), !b.pool.isEmpty { x = b.value() }
    }
    if b.src.chance(40) {
        // A linear layer at the end.
        x = b.add("Flatten", [b.add("GlobalAveragePool", [x]).first ?? x]).first ?? x
        let k = b.src.int(1...4, wildness: 8)
        if b.src.chance(128) {
            x = b.add("MatMul", [x, b.floats([channels, k], type: type)]).first ?? x
        } else {
            var attributes: [(String, ONNXAttribute)] = [("transB", .int(1))]
            if b.src.chance(60) { attributes.append(("beta", .float(b.src.float()))) }
            var ins = [x, b.floats([k, channels], type: type)]
            if b.src.chance(100) { ins.append(b.affineConstant(b.src.pick([[k], [1, k], [], [1], [2, k]]), type: type)) }
            x = b.add("Gemm", ins, attributes).first ?? x
            // Per-column chains after it, which simplify folds into B and C.
            for _ in 0..<b.src.int(0...2, wildness: 0) {
                x = b.src.chance(128) ? b.affine(x, channels: k, rank: 2, type: type) : b.batchNormalization(x, channels: k, type: type)
            }
        }
    }
    b.outputs.append(x)
    let graph = b.graph()
    let opset = b.opset
    report(graph, opset: opset, given: [:])

    let before = try? ONNXShapeInference(graph: graph, opset: opset)
    var simplified = graph
    var changed = false
    expecting("simplify") {
        let result = try simplified.simplify(opset: opset)
        changed = !result.isEmpty
        _ = (result.nodesBefore, result.nodesAfter)
    }
    if Env.print { print("simplified (changed: \(changed)):\n\(describe(simplified))"); fflush(nil) }
    if changed, let before, isSSA(graph), isSSA(simplified) {
        // Every graph output must still be produced, and keep the shape it had.
        let produced = Set(simplified.nodes.flatMap(\.outputs) + simplified.inputs.map(\.name) + simplified.initializers.map(\.name))
        let after = try? ONNXShapeInference(graph: simplified, opset: opset)
        for output in graph.outputs.map(\.name) {
            guard produced.contains(output) else { fatalError("simplify: graph output \(output) is no longer produced") }
            if let shape = before.shapes[output], after?.shapes[output] != shape {
                fatalError("simplify: graph output \(output) had shape \(shape), now \(after?.shapes[output].map { "\($0)" } ?? "unknown")")
            }
        }
    }
    var options = CompressionOptions()
    options.minimumParameters = 0
    for g in changed ? [graph, simplified] : [graph] {
        expecting("layers") {
            _ = try ModelCompressor(options: options).layers(in: ONNXModel(graph: g, opset: opset), estimateRanks: smallWeights(g))
        }
    }
}

/// Whether every value has one producer: node outputs are distinct, non-empty and not graph
/// inputs or initializers (a graph that writes a name twice has no well-defined shapes to compare).
func isSSA(_ graph: ONNXGraph) -> Bool {
    var names = Set(graph.inputs.map(\.name) + graph.initializers.map(\.name))
    for node in graph.nodes { for output in node.outputs { guard !output.isEmpty, names.insert(output).inserted else { return false } } }
    return true
}

// MARK: - Decoding a finding

func describe(_ t: ONNXTensor) -> String {
    var s = "\(t.dataType)\(t.shape)"
    if let n = try? t.elementCount(), n <= 16 {
        if t.dataType.isFloatingPoint, let v = try? t.tensor(as: Double.self) { s += " = \(Array(v.scalars))" } else if let v = try? t.integers() { s += " = \(v)" }
    } else if (try? t.checkData()) == nil { s += " (data does not fit)" }
    return s
}

func describe(_ graph: ONNXGraph) -> String {
    var lines: [String] = []
    for i in graph.inputs { lines.append("  input \(i.name): \(i.elementType) \(i.shapeDescription)") }
    let overridable = graph.overridableInitializerNames
    for t in graph.initializers { lines.append("  initializer \(t.name)\(overridable.contains(t.name) ? " (also an input)" : ""): \(describe(t))") }
    for n in graph.nodes {
        let attributes = n.attributeNames.map { name -> String in
            switch n.attribute(name) {
            case let .tensor(t)?: return "\(name)=tensor \(describe(t))"
            case let .ints(v)?: return "\(name)=\(v)"
            case let .int(v)?: return "\(name)=\(v)"
            case let .float(v)?: return "\(name)=\(v)"
            case let .floats(v)?: return "\(name)=\(v)"
            case let .string(v)?: return "\(name)=\"\(v)\""
            default: return "\(name)=…"
            }
        }
        lines.append("  \(n.name): \(n.opType)(\(n.inputs.joined(separator: ", "))) -> \(n.outputs)  \(attributes.joined(separator: " "))")
    }
    lines.append("  outputs: \(graph.outputs.map(\.name))")
    return lines.joined(separator: "\n")
}

func report(_ graph: ONNXGraph, opset: Int, given: [String: [Int]]) {
    if Env.print {
        print("opset \(opset), input shapes given: \(given)\n\(describe(graph))")
        fflush(nil)
        if let shapes = try? ONNXShapeInference(graph: graph, inputShapes: given, opset: opset) {
            print("  inferred shapes: \(shapes.shapes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
            fflush(nil)
        }
    }
    if let path = Env.dump, let data = try? ONNXModel(graph: graph, opset: opset).serializedData() {
        try? data.write(to: URL(fileURLWithPath: path))
    }
}

// MARK: - Driver

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafeRawPointer, Int) -> CInt
) -> CInt

/// SwiftPM links executables with `main` defined as `<target>_main`; hand control to libFuzzer's driver.
@_cdecl("onnx_fuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { start, size in fuzz(start, size) }
}
