import Foundation

// Shape inference of constants, elementwise operators and broadcasting arithmetic.

extension ONNXShapeInference {
    /// The outputs of `node` when it is one of constants, elementwise operators and broadcasting arithmetic; `false` when it is not.
    // swiftlint:disable:next cyclomatic_complexity function_body_length
    mutating func inferElementwise(_ node: ONNXNode, _ op: String, _ ins: [String], _ out: String, _ opset: Int) throws -> Bool {
        switch op {
        case "Constant":
            guard let tensor = ONNXGraph.constantValue(node) else { throw ShapeInferenceProblem.missingValue }
            record(out, tensor)
        case "Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Exp", "Log", "Sqrt", "Neg", "Abs",
             "Erf", "Reciprocal", "Clip", "Identity", "Dropout", "Softmax", "LogSoftmax", "Not", "Floor", "Ceil", "Round", "Sign",
             "Gelu", "Mish", "Softplus", "Softsign", "BatchNormalization", "InstanceNormalization", "LayerNormalization",
             "LpNormalization", "Cast", "CastLike", "Trilu", "Sin", "Cos", "IsNaN", "IsInf", "PRelu", "ThresholdedRelu", "Celu",
             "Hardmax", "Shrink":
            let s = try shape(ins[0])
            var value = values[ins[0]]
            if op == "Neg" { value = value?.map { -$0 } }
            if op == "Not" { value = value?.map { $0 == 0 ? 1 : 0 } }
            if op == "Cast", let to = node.int("to"), ![1, 10, 11, 16].contains(to) {
                value = value?.map { to == 9 ? ($0 != 0 ? 1 : 0) : $0.rounded(.towardZero) }   // 9: BOOL
            }
            if !["Cast", "CastLike", "Identity", "Neg", "Not", "Dropout"].contains(op) { value = nil }
            if op == "PRelu" { try set(out, try Self.broadcast([s, try shape(ins[1])])) } else { try set(out, s, value: value) }
        case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less", "Greater", "And", "Or",
             "Xor", "Mod", "GreaterOrEqual", "LessOrEqual", "BitShift":
            let s = try Self.broadcast(try ins.filter { !$0.isEmpty }.map(shape))
            var value: [Double]?
            let computed = ["Add", "Sub", "Mul", "Div", "Equal", "Less", "Greater", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor"]
            if computed.contains(op), node.inputs.count == 2, let a = values[ins[0]], let b = values[ins[1]] {
                let count = try Self.product(s)
                if count <= Self.valueLimit, a.count == 1 || a.count == count, b.count == 1 || b.count == count {
                    value = (0..<count).map { k in
                        let (x, y) = (a[a.count == 1 ? 0 : k], b[b.count == 1 ? 0 : k])
                        func truth(_ v: Bool) -> Double { v ? 1 : 0 }
                        switch op {
                        case "Add": return x + y
                        case "Sub": return x - y
                        case "Mul": return x * y
                        case "Div": return y == 0 ? .nan : (x / y).rounded(.down)
                        case "Equal": return truth(x == y)
                        case "Less": return truth(x < y)
                        case "Greater": return truth(x > y)
                        case "GreaterOrEqual": return truth(x >= y)
                        case "LessOrEqual": return truth(x <= y)
                        case "And": return truth(x != 0 && y != 0)
                        case "Or": return truth(x != 0 || y != 0)
                        default: return truth((x != 0) != (y != 0))   // Xor
                        }
                    }
                }
            }
            try set(out, s, value: value)
        default:
            return false
        }
        return true
    }
}
