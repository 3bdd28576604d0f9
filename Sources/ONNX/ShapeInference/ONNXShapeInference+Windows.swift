import Foundation

// Shape inference of convolutions, pooling, matrix products and recurrent layers.

extension ONNXShapeInference {
    /// The outputs of `node` when it is one of convolutions, pooling, matrix products and recurrent layers; `false` when it is not.
    // swiftlint:disable:next cyclomatic_complexity function_body_length
    mutating func inferWindows(_ node: ONNXNode, _ op: String, _ ins: [String], _ out: String, _ opset: Int) throws -> Bool {
        switch op {
        case "Conv", "ConvInteger":
            let x = try shape(ins[0]), w = try shape(ins[1])
            guard x.count >= 3, w.count == x.count else { throw ShapeInferenceProblem.inputAndWeight(input: x, weight: w) }
            let window = ONNXConvAttributes(node, spatialAxes: x.count - 2)
            let kernel = window.kernelShape ?? Array(w.dropFirst(2))
            try set(out, [x[0], w[0]] + (try Self.windowed(input: Array(x.dropFirst(2)), kernel: kernel, window: window)))
        case "ConvTranspose":
            let x = try shape(ins[0]), w = try shape(ins[1])
            guard x.count >= 3, w.count == x.count else { throw ShapeInferenceProblem.inputAndWeight(input: x, weight: w) }
            let n = x.count - 2, window = ONNXConvAttributes(node, spatialAxes: n)
            let kernel = window.kernelShape ?? Array(w.dropFirst(2))
            let channels = try Self.mul(w[1], window.group)
            if let outputShape = window.outputShape {
                guard outputShape.count >= n else { throw ShapeInferenceProblem.outputShapeLength(outputShape: outputShape, spatialAxes: n) }
                try set(out, [x[0], channels] + outputShape.suffix(n))
                return true
            }
            let (strides, dilations, pads) = (window.strides, window.dilations, window.pads)
            let (outputPadding, autoPad) = (window.outputPadding, window.autoPad)
            guard kernel.count == n, strides.count == n, dilations.count == n, pads.count == 2 * n, outputPadding.count == n else {
                throw ShapeInferenceProblem.transposedWindowLengths(kernel: kernel, strides: strides, dilations: dilations, pads: pads, outputPadding: outputPadding, spatialAxes: n)
            }
            guard (kernel + strides + dilations).allSatisfy({ $0 >= 1 }), (pads + outputPadding).allSatisfy({ $0 >= 0 }) else {
                throw ShapeInferenceProblem.transposedWindowValues(kernel: kernel, strides: strides, dilations: dilations, pads: pads, outputPadding: outputPadding)
            }
            let spatial = try (0..<n).map { k -> Int in
                if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" { return try Self.mul(x[k + 2], strides[k]) }
                var size = try Self.add(try Self.mul(strides[k], x[k + 2] - 1), outputPadding[k])
                size = try Self.add(size, try Self.add(try Self.mul(kernel[k] - 1, dilations[k]), 1))
                return autoPad == "VALID" ? size : size - (try Self.add(pads[k], pads[k + n]))   // pads ≥ 0, size ≥ 0: no overflow
            }
            try set(out, [x[0], channels] + spatial)
        case "MaxPool", "AveragePool", "LpPool":
            let x = try shape(ins[0])
            let window = ONNXConvAttributes(node, spatialAxes: x.count - 2)
            guard let kernel = window.kernelShape, x.count == kernel.count + 2 else {
                throw ShapeInferenceProblem.poolingKernel(input: x)
            }
            let s = [x[0], x[1]] + (try Self.windowed(input: Array(x.dropFirst(2)), kernel: kernel, window: window, ceilMode: node.int("ceil_mode") == 1))
            for o in node.outputs { try set(o, s) }
        case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
            let x = try shape(ins[0])
            try set(out, Array(x.prefix(2)) + [Int](repeating: 1, count: max(0, x.count - 2)))
        case "MatMul", "MatMulInteger":
            var a = try shape(ins[0]), b = try shape(ins[1])
            let (aVector, bVector) = (a.count == 1, b.count == 1)
            if aVector { a = [1] + a }
            if bVector { b = b + [1] }
            guard a.count >= 2, b.count >= 2, a.last == b[b.count - 2] else {
                throw ShapeInferenceProblem.notMultipliable(try shape(ins[0]), try shape(ins[1]))
            }
            var s = try Self.broadcast([Array(a.dropLast(2)), Array(b.dropLast(2))]) + [a[a.count - 2], b[b.count - 1]]
            if aVector { s.remove(at: s.count - 2) }
            if bVector { s.removeLast() }
            try set(out, s)
        case "LSTM", "GRU", "RNN":
            // X [seq, batch, I] (layout 1: [batch, seq, I]); Y [seq, directions, batch, H] and the last
            // state(s) [directions, batch, H] (layout 1: [batch, seq, directions, H], [batch, directions, H]).
            let x = try shape(ins[0])
            guard x.count == 3 else { throw ShapeInferenceProblem.recurrentInput(input: x) }
            let directions = node.string("direction") == "bidirectional" ? 2 : 1
            let hidden: Int
            if let h = node.int("hidden_size") {
                hidden = h
            } else if ins.count > 2, !ins[2].isEmpty, let r = shapes[ins[2]], r.count == 3 {
                hidden = r[2]
            } else {
                throw ShapeInferenceProblem.missingValue
            }
            let batchFirst = node.int("layout") == 1
            let (steps, batch) = batchFirst ? (x[1], x[0]) : (x[0], x[1])
            let outputs = node.outputs
            if let y = outputs.first { try set(y, batchFirst ? [batch, steps, directions, hidden] : [steps, directions, batch, hidden]) }
            for state in outputs.dropFirst() { try set(state, batchFirst ? [batch, directions, hidden] : [directions, batch, hidden]) }
        case "Gemm":
            let a = try shape(ins[0]), b = try shape(ins[1])
            guard a.count == 2, b.count == 2 else { throw ShapeInferenceProblem.gemmOperands(a, b) }
            let m = node.int("transA") == 1 ? a[1] : a[0]
            let n = node.int("transB") == 1 ? b[0] : b[1]
            try set(out, [m, n])
        default:
            return false
        }
        return true
    }
}
