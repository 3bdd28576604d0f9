import Foundation
import Testing
@testable import ONNX
import TensorModule

/// A direct evaluator of the few operators the simplify graphs use (Conv with zero padding and
/// groups, stride 1; Mul/Add/Sub/Div by per-channel or scalar constants or of two equal shapes;
/// Clip, Relu, HardSigmoid), in Double: the reference the rewritten graphs must reproduce.
struct Evaluator {
    struct Value { var shape: [Int]; var data: [Double] }
    let graph: ONNXGraph
    let opset: Int

    func run(_ x: Value) throws -> [String: Value] {
        var values: [String: Value] = [:]
        for (name, c) in graph.constants() {
            let t = try c.tensor.tensor(as: Double.self)
            values[name] = Value(shape: t.shape, data: Array(t.scalars))
        }
        values[graph.inputs[0].name] = x
        for node in graph.nodes where node.opType != "Constant" {
            let inputs = node.inputs.map { $0.isEmpty ? nil : values[$0] }
            let a = inputs[0]!
            let out: Value
            switch node.opType {
            case "Conv": out = conv(a, inputs[1]!, inputs.count > 2 ? inputs[2] : nil, pads: node.ints("pads") ?? [0, 0, 0, 0], groups: node.int("group") ?? 1)
            case "Mul", "Add", "Sub", "Div": out = binary(node.opType, a, inputs[1]!)
            case "Relu": out = Value(shape: a.shape, data: a.data.map { max($0, 0) })
            case "HardSigmoid":
                let (alpha, beta) = (Double(node.float("alpha") ?? 0.2), Double(node.float("beta") ?? 0.5))
                out = Value(shape: a.shape, data: a.data.map { min(max(alpha * $0 + beta, 0), 1) })
            case "Clip":
                let low = inputs.count > 1 ? inputs[1]!.data[0] : Double(node.float("min")!)
                let high = inputs.count > 2 ? inputs[2]!.data[0] : Double(node.float("max")!)
                out = Value(shape: a.shape, data: a.data.map { min(max($0, low), high) })
            default: throw ONNXError.invalidNode(node: node.name, opType: node.opType, problem: .unsupportedOperator)
            }
            values[node.outputs[0]] = out
        }
        return values
    }

    func binary(_ op: String, _ a: Value, _ b: Value) -> Value {
        // Either side may be the constant; it is a scalar, per channel (axis 1 of a 4-D value), or of equal shape.
        let (big, small, swapped) = a.data.count >= b.data.count ? (a, b, false) : (b, a, true)
        let channels = big.shape[1], area = big.shape[2] * big.shape[3]
        var data = big.data
        for i in data.indices {
            let c = (i / area) % channels
            let s = small.data.count == big.data.count ? small.data[i] : small.data.count == 1 ? small.data[0] : small.data[c]
            let (x, y) = swapped ? (s, big.data[i]) : (big.data[i], s)
            switch op {
            case "Mul": data[i] = x * y
            case "Add": data[i] = x + y
            case "Sub": data[i] = x - y
            default: data[i] = x / y
            }
        }
        return Value(shape: big.shape, data: data)
    }

    func conv(_ x: Value, _ w: Value, _ b: Value?, pads: [Int], groups: Int) -> Value {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let (oh, ow) = (h + pads[0] + pads[2] - kh + 1, wd + pads[1] + pads[3] - kw + 1)
        var y = [Double](repeating: 0, count: n * o * oh * ow)
        for s in 0..<n { for f in 0..<o {
            let g = f / (o / groups)
            for i in 0..<oh { for j in 0..<ow {
                var acc = b?.data[f] ?? 0
                for ci in 0..<cg { for p in 0..<kh { for q in 0..<kw {
                    let (r, col) = (i + p - pads[0], j + q - pads[1])
                    guard r >= 0, r < h, col >= 0, col < wd else { continue }
                    acc += w.data[((f * cg + ci) * kh + p) * kw + q] * x.data[((s * c + g * cg + ci) * h + r) * wd + col]
                } } }
                y[((s * o + f) * oh + i) * ow + j] = acc
            } }
        } }
        return Value(shape: [n, o, oh, ow], data: y)
    }
}

@Suite("ONNX graph simplification")
struct SimplifyTests {
    /// Conv → scalar·(constant first) → +per-channel → hard-swish → ·, + → 1×1 Conv → per-channel ·, +
    /// → Relu → ·, + → padded depthwise Conv, weights of element type `type`.
    func graph(_ type: ONNXDataType, clipAttributes: Bool = false, sixthAsMul: Bool = false) throws -> ONNXGraph {
        func t(_ name: String, _ shape: [Int], seed: UInt64) throws -> ONNXTensor {
            try ONNXTensor(name: name, Tensor<Double>.randomNormal(shape: shape, seed: seed), dataType: type)
        }
        func k(_ name: String, _ values: [Double], _ shape: [Int]) throws -> ONNXTensor {
            try ONNXTensor(name: name, Tensor<Double>(shape: shape, scalars: values), dataType: type)
        }
        let c = 6
        let clip = clipAttributes
            ? ONNXNode(opType: "Clip", name: "clip", inputs: ["h0"], outputs: ["h1"], attributes: [("min", .float(0)), ("max", .float(6))])
            : ONNXNode(opType: "Clip", name: "clip", inputs: ["h0", "zero", "six"], outputs: ["h1"])
        let sixth = sixthAsMul
            ? ONNXNode(opType: "Mul", name: "sixth", inputs: ["h2", "one_sixth"], outputs: ["h3"])
            : ONNXNode(opType: "Div", name: "sixth", inputs: ["h2", "six"], outputs: ["h3"])
        let nodes = [
            ONNXNode(opType: "Constant", name: "s1", inputs: [], outputs: ["s1"], attributes: [("value", .tensor(try k("s1v", [1.7], [1])))]),
            ONNXNode(opType: "Conv", name: "conv1", inputs: ["x", "W1", "B1"], outputs: ["a0"], attributes: [("pads", .ints([1, 1, 1, 1]))]),
            ONNXNode(opType: "Mul", name: "lab1.scale", inputs: ["s1", "a0"], outputs: ["a1"]),
            ONNXNode(opType: "Add", name: "lab1.bias", inputs: ["a1", "t1"], outputs: ["a2"]),
            ONNXNode(opType: "Add", name: "plus3", inputs: ["a2", "three"], outputs: ["h0"]),
            clip,
            ONNXNode(opType: "Mul", name: "times", inputs: ["h1", "a2"], outputs: ["h2"]),
            sixth,
            ONNXNode(opType: "Mul", name: "lab2.scale", inputs: ["h3", "s2"], outputs: ["b1"]),
            ONNXNode(opType: "Sub", name: "lab2.bias", inputs: ["b1", "t2"], outputs: ["b2"]),
            ONNXNode(opType: "Conv", name: "conv2", inputs: ["b2", "W2"], outputs: ["c0"]),
            ONNXNode(opType: "Div", name: "scale3", inputs: ["c0", "s3"], outputs: ["c1"]),
            ONNXNode(opType: "Add", name: "bias3", inputs: ["c1", "t3"], outputs: ["c2"]),
            ONNXNode(opType: "Relu", name: "relu", inputs: ["c2"], outputs: ["c3"]),
            ONNXNode(opType: "Mul", name: "lab4.scale", inputs: ["c3", "s4"], outputs: ["d1"]),
            ONNXNode(opType: "Add", name: "lab4.bias", inputs: ["d1", "t4"], outputs: ["d2"]),
            ONNXNode(opType: "Conv", name: "conv3", inputs: ["d2", "W3", "B3"], outputs: ["y"],
                     attributes: [("pads", .ints([1, 0, 1, 2])), ("group", .int(c))]),
        ]
        let initializers = [
            try t("W1", [c, 3, 3, 3], seed: 1), try t("B1", [c], seed: 2), try t("t1", [1, c, 1, 1], seed: 3),
            try k("three", [3], []), try k("zero", [0], []), try k("six", [6], []), try k("one_sixth", [1.0 / 6], [1]),
            try k("s2", [0.8], [1]), try k("t2", [-0.3], [1]), try t("W2", [c, c, 1, 1], seed: 4),
            try k("s3", (1...c).map { 0.5 + Double($0) / 4 }, [c, 1, 1]), try t("t3", [1, c, 1, 1], seed: 5),
            try k("s4", [1.25], [1]), try k("t4", [0.4], [1]), try t("W3", [c, 1, 3, 3], seed: 6), try t("B3", [c], seed: 7),
        ]
        return ONNXGraph(name: "g", nodes: nodes, initializers: initializers,
                         inputs: [ONNXValueInfo(name: "x", elementType: type, shape: [.value(2), .value(3), .value(7), .value(5)])],
                         outputs: [ONNXValueInfo(name: "y", elementType: type, shape: nil)])
    }

    func input() -> Evaluator.Value {
        let x = Tensor<Double>.randomNormal(shape: [2, 3, 7, 5], seed: 9)
        return Evaluator.Value(shape: x.shape, data: Array(x.scalars).map { 3 * $0 })
    }

    @Test(arguments: [ONNXDataType.float, .double])
    func everyRewriteKeepsTheOutputs(type: ONNXDataType) throws {
        for (attributes, mul) in [(false, false), (true, true)] {
            let original = try graph(type, clipAttributes: attributes, sixthAsMul: mul)
            var simplified = original
            let result = try simplified.simplify(opset: attributes ? 10 : 13)
            // Not in DOUBLE graphs: HardSigmoid's α = 1/6 is a FLOAT attribute.
            #expect(result.hardSwishes == (type == .double ? 0 : 1))
            #expect(result.foldedIntoPrecedingConvolution == 4)   // lab1.scale, lab1.bias, scale3, bias3
            // lab2 into conv2 (no padding; in DOUBLE the hard-swish's ÷6 too); lab4's scale into conv3, its shift one Add.
            #expect(result.foldedIntoFollowingConvolutions == (type == .double ? 4 : 3))
            let kept: Set<String> = type == .double ? ["Conv", "Add", "Clip", "Mul", "Relu"] : ["Conv", "HardSigmoid", "Mul", "Relu", "Add"]
            #expect(Set(simplified.nodes.map(\.opType)) == kept)
            #expect(result.nodesBefore == 17 && result.nodesAfter == (type == .double ? 8 : 7) && simplified.nodes.count == result.nodesAfter)
            // The Constant node and every folded constant are gone; the convolutions keep their names and the graph its output.
            #expect(!simplified.nodes.contains { $0.opType == "Constant" })
            #expect(simplified.initializer(named: "s3") == nil && simplified.initializer(named: "W1") == nil)
            // No initializer that the rewrites left unread (the hard-swish's 3, 0, 6 or 1/6 among them:
            // onnxruntime warns of each); this graph's variants leave some of them unread from the start.
            func unread(_ g: ONNXGraph) -> Set<String> {
                let read = Set(g.nodes.flatMap(\.inputs))
                return Set(g.initializers.map(\.name).filter { !read.contains($0) })
            }
            #expect(unread(simplified).isSubset(of: unread(original)))
            #expect(simplified.nodes.filter { $0.opType == "Conv" }.map(\.name) == ["conv1", "conv2", "conv3"])
            let x = input()
            let a = try Evaluator(graph: original, opset: 13).run(x)["y"]!, b = try Evaluator(graph: simplified, opset: 13).run(x)["y"]!
            #expect(a.shape == b.shape)
            let scale = a.data.map(abs).max()!
            let worst = zip(a.data, b.data).map { abs($0 - $1) }.max()! / scale
            #expect(worst <= (type == .double ? 1e-12 : 1e-5), "relative difference \(worst)")
        }
    }

    @Test func foldedWeightsFollowTheClosedForm() throws {
        // y = 2·conv(x) + t: W' = 2W, b' = 2b + t, exactly in Double.
        let w = Tensor<Double>.randomNormal(shape: [3, 2, 1, 1], seed: 3), b = Tensor<Double>.randomNormal(shape: [3], seed: 4)
        let t = [0.5, -1.0, 2.0]
        var graph = ONNXGraph(name: "g", nodes: [
            ONNXNode(opType: "Conv", name: "conv", inputs: ["x", "W", "B"], outputs: ["a"]),
            ONNXNode(opType: "Mul", name: "m", inputs: ["a", "two"], outputs: ["b"]),
            ONNXNode(opType: "Add", name: "p", inputs: ["b", "t"], outputs: ["y"]),
        ], initializers: [try ONNXTensor(name: "W", w), try ONNXTensor(name: "B", b), try ONNXTensor(name: "two", Tensor<Double>(shape: [], scalars: [2])),
                          try ONNXTensor(name: "t", Tensor<Double>(shape: [3, 1, 1], scalars: t))],
           inputs: [ONNXValueInfo(name: "x", elementType: .double, shape: [.value(1), .value(2), .value(4), .value(4)])],
           outputs: [ONNXValueInfo(name: "y", elementType: .double, shape: nil)])
        #expect(try graph.simplify(opset: 13).foldedIntoPrecedingConvolution == 2)
        #expect(graph.nodes.count == 1 && graph.nodes[0].outputs == ["y"])
        let newW = try graph.initializer(named: graph.nodes[0].inputs[1])!.tensor(as: Double.self)
        let newB = try graph.initializer(named: graph.nodes[0].inputs[2])!.tensor(as: Double.self)
        #expect(Array(newW.scalars) == w.scalars.map { 2 * $0 })
        #expect(Array(newB.scalars) == zip(b.scalars, t).map { 2 * $0 + $1 })
        #expect(graph.initializers.count == 2)
    }

    /// `Gemm → BatchNormalization → Mul` by a per-column constant, every combination of `transB`,
    /// a `C` or none, and `α, β ≠ 1`: one `Gemm` is left whose outputs equal the chain's in Double
    /// (a direct evaluation of both graphs); a `C` that varies along rows, or a Gemm output with two
    /// readers, stops the fold.
    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func batchNormalizationFoldsIntoTheGemmBefore(transB: Bool, withC: Bool) throws {
        let (n, k, m) = (3, 5, 4)
        let a = Tensor<Double>.randomNormal(shape: [n, k], seed: 1)
        let b = Tensor<Double>.randomNormal(shape: transB ? [m, k] : [k, m], seed: 2)
        let c = Tensor<Double>.randomNormal(shape: [m], seed: 3)
        let (gamma, beta, mean) = (Tensor<Double>.randomNormal(shape: [m], seed: 4), Tensor<Double>.randomNormal(shape: [m], seed: 5),
                                   Tensor<Double>.randomNormal(shape: [m], seed: 6))
        let variance = Tensor<Double>.randomNormal(shape: [m], seed: 7).scalars.map { abs($0) + 0.5 }
        let scale = Tensor<Double>.randomNormal(shape: [1, m], seed: 8)
        func evaluate(_ graph: ONNXGraph) throws -> [Double] {
            var values: [String: Tensor<Double>] = ["A": a]
            for (name, constant) in graph.constants() { values[name] = try constant.tensor.tensor(as: Double.self) }
            for node in graph.nodes {
                let x = values[node.inputs[0]]!
                var y = [Double](repeating: 0, count: n * m)
                switch node.opType {
                case "Gemm":
                    let w = values[node.inputs[1]]!, (alpha, beta) = (Double(node.float("alpha") ?? 1), Double(node.float("beta") ?? 1))
                    let trans = node.int("transB") == 1
                    for i in 0..<n {
                        for j in 0..<m {
                            var sum = 0.0
                            for p in 0..<k { sum += x.scalars[i * k + p] * (trans ? w.scalars[j * k + p] : w.scalars[p * m + j]) }
                            y[i * m + j] = alpha * sum + (node.inputs.count > 2 ? beta * values[node.inputs[2]]!.scalars[j] : 0)
                        }
                    }
                case "BatchNormalization":
                    let p = node.inputs.dropFirst().map { values[$0]!.scalars }
                    let epsilon = Double(node.float("epsilon")!)
                    for i in 0..<(n * m) { y[i] = p[0][i % m] * (x.scalars[i] - p[2][i % m]) / (p[3][i % m] + epsilon).squareRoot() + p[1][i % m] }
                default:   // Mul by a [1, M] constant
                    for i in 0..<(n * m) { y[i] = x.scalars[i] * values[node.inputs[1]]!.scalars[i % m] }
                }
                values[node.outputs[0]] = Tensor(uncheckedShape: [n, m], scalars: ContiguousArray(y))
            }
            return Array(values["y"]!.scalars)
        }
        var attributes: [(String, ONNXAttribute)] = [("alpha", .float(0.5)), ("beta", .float(2))]
        if transB { attributes.append(("transB", .int(1))) }
        var graph = ONNXGraph(name: "g", nodes: [
            ONNXNode(opType: "Gemm", name: "fc", inputs: ["A", "B"] + (withC ? ["C"] : []), outputs: ["g"], attributes: attributes),
            ONNXNode(opType: "BatchNormalization", name: "bn", inputs: ["g", "gamma", "beta", "mean", "var"], outputs: ["h"],
                     attributes: [("epsilon", .float(0.001))]),
            ONNXNode(opType: "Mul", name: "m", inputs: ["h", "s"], outputs: ["y"]),
        ], initializers: [try ONNXTensor(name: "B", b), try ONNXTensor(name: "C", c), try ONNXTensor(name: "gamma", gamma),
                          try ONNXTensor(name: "beta", beta), try ONNXTensor(name: "mean", mean),
                          try ONNXTensor(name: "var", Tensor(shape: [m], scalars: variance)), try ONNXTensor(name: "s", scale)],
           inputs: [ONNXValueInfo(name: "A", elementType: .double, shape: [.value(n), .value(k)])],
           outputs: [ONNXValueInfo(name: "y", elementType: .double, shape: nil)])
        let before = try evaluate(graph)
        let result = try graph.simplify(opset: 13)
        #expect(result.foldedIntoPrecedingGemm == 2 && result.batchNormalizations == 1)
        #expect(graph.nodes.map(\.opType) == ["Gemm"] && graph.nodes[0].outputs == ["y"] && graph.nodes[0].float("beta") == 1)
        let after = try evaluate(graph)
        let worst = zip(before, after).map { abs($0 - $1) }.max()! / before.map(abs).max()!
        #expect(worst < 1e-12, "relative difference \(worst)")

        // A C of shape [N, M] varies along rows: not folded. Two readers of the Gemm's output: not folded.
        var rows = ONNXGraph(name: "g", nodes: [
            ONNXNode(opType: "Gemm", name: "fc", inputs: ["A", "B", "C2"], outputs: ["g"], attributes: attributes),
            ONNXNode(opType: "Mul", name: "m", inputs: ["g", "s"], outputs: ["y"]),
            ONNXNode(opType: "Gemm", name: "fc2", inputs: ["A", "B"], outputs: ["g2"], attributes: attributes),
            ONNXNode(opType: "Mul", name: "m2", inputs: ["g2", "s"], outputs: ["y2"]),
            ONNXNode(opType: "Relu", name: "r", inputs: ["g2"], outputs: ["y3"]),
        ], initializers: [try ONNXTensor(name: "B", b), try ONNXTensor(name: "C2", Tensor<Double>.randomNormal(shape: [n, m], seed: 9)),
                          try ONNXTensor(name: "s", scale)],
           inputs: [ONNXValueInfo(name: "A", elementType: .double, shape: [.value(n), .value(k)])],
           outputs: ["y", "y2", "y3"].map { ONNXValueInfo(name: $0, elementType: .double, shape: nil) })
        #expect(try rows.simplify(opset: 13).foldedIntoPrecedingGemm == 0)
        #expect(rows.nodes.count == 5)
    }

    @Test func blockedPatternsAreLeftAlone() throws {
        // The conv output has two readers; an affine chain feeds a Relu; a Mul's output is a graph output;
        // a convolution with an impossible group count is followed by a scalar Mul;
        // a per-spatial constant (shape [1, 1, 4, 4]) is not per channel; a Div by zero does not fold.
        let w = try ONNXTensor(name: "W", Tensor<Float>.randomNormal(shape: [2, 2, 3, 3], seed: 1))
        let w2 = try ONNXTensor(name: "W2", Tensor<Float>.randomNormal(shape: [2, 2, 1, 1], seed: 2))
        let graph = ONNXGraph(name: "g", nodes: [
            ONNXNode(opType: "Conv", name: "conv", inputs: ["x", "W"], outputs: ["a"], attributes: [("pads", .ints([1, 1, 1, 1]))]),
            ONNXNode(opType: "Mul", name: "m", inputs: ["a", "two"], outputs: ["b"]),
            ONNXNode(opType: "Relu", name: "r", inputs: ["a"], outputs: ["r"]),
            ONNXNode(opType: "Add", name: "sum", inputs: ["b", "r"], outputs: ["c"]),
            ONNXNode(opType: "Add", name: "shift", inputs: ["c", "two"], outputs: ["d"]),
            ONNXNode(opType: "Relu", name: "r2", inputs: ["d"], outputs: ["e"]),
            ONNXNode(opType: "Mul", name: "out", inputs: ["e", "two"], outputs: ["y2"]),
            ONNXNode(opType: "Conv", name: "conv2", inputs: ["y2", "W2"], outputs: ["f"]),
            ONNXNode(opType: "Mul", name: "spatial", inputs: ["f", "map"], outputs: ["g"]),
            ONNXNode(opType: "Div", name: "zero", inputs: ["g", "zeros"], outputs: ["h"]),
            ONNXNode(opType: "Conv", name: "conv3", inputs: ["h", "W2"], outputs: ["y"]),
            // A group count that does not divide the output channels: not folded, never a crash.
            ONNXNode(opType: "Conv", name: "bad-groups", inputs: ["x", "W2"], outputs: ["q"], attributes: [("group", .int(3))]),
            ONNXNode(opType: "Mul", name: "after-bad", inputs: ["q", "two"], outputs: ["y4"]),
        ], initializers: [w, w2, try ONNXTensor(name: "two", Tensor<Float>(shape: [1], scalars: [2])),
                          try ONNXTensor(name: "map", Tensor<Float>.randomNormal(shape: [1, 1, 4, 4], seed: 3)),
                          try ONNXTensor(name: "zeros", Tensor<Float>(shape: [2, 1, 1], scalars: [1, 0]))],
           inputs: [ONNXValueInfo(name: "x", elementType: .float, shape: [.value(1), .value(2), .value(4), .value(4)])],
           outputs: [ONNXValueInfo(name: "y", elementType: .float, shape: nil), ONNXValueInfo(name: "y2", elementType: .float, shape: nil),
                     ONNXValueInfo(name: "y4", elementType: .float, shape: nil)])
        var simplified = graph
        let result = try simplified.simplify(opset: 13)
        #expect(result.isEmpty && simplified == graph)
    }
}
