import Foundation

// Shape inference of gathers, slices, splits and reductions.

extension ONNXShapeInference {
    /// The outputs of `node` when it is one of gathers, slices, splits and reductions; `false` when it is not.
    // swiftlint:disable:next cyclomatic_complexity function_body_length
    mutating func inferIndexing(_ node: ONNXNode, _ op: String, _ ins: [String], _ out: String, _ opset: Int) throws -> Bool {
        switch op {
        case "Gather":
            let data = try shape(ins[0]), indices = try shape(ins[1])
            let axis = try Self.normalized(node.int("axis") ?? 0, rank: data.count)
            let s = Array(data.prefix(axis)) + indices + Array(data.dropFirst(axis + 1))
            var value: [Double]?
            if data.count == 1, let d = values[ins[0]], let i = values[ins[1]] {
                value = try i.map { index in
                    let k = try Self.integer(index, "the index")
                    guard k >= -d.count, k < d.count else { throw ShapeInferenceProblem.indexOutside(index: k, count: d.count) }
                    return d[k < 0 ? k + d.count : k]
                }
            }
            try set(out, s, value: value)
        case "Slice":
            let x = try shape(ins[0])
            let starts: [Int], ends: [Int], axes: [Int], steps: [Int]
            if opset >= 10 {
                starts = try integers(ins[1], "starts")
                ends = try integers(ins[2], "ends")
                axes = ins.count > 3 && !ins[3].isEmpty ? try integers(ins[3], "axes") : Array(0..<starts.count)
                steps = ins.count > 4 && !ins[4].isEmpty ? try integers(ins[4], "steps") : [Int](repeating: 1, count: starts.count)
            } else {
                starts = node.ints("starts") ?? []
                ends = node.ints("ends") ?? []
                axes = node.ints("axes") ?? Array(0..<starts.count)
                steps = [Int](repeating: 1, count: starts.count)
            }
            guard starts.count == axes.count, ends.count == axes.count, steps.count == axes.count else {
                throw ShapeInferenceProblem.sliceLengths(starts: starts, ends: ends, axes: axes, steps: steps)
            }
            var s = x
            var ranges: [Int: (start: Int, step: Int, count: Int)] = [:]
            for (k, a) in axes.enumerated() {
                let axis = try Self.normalized(a, rank: x.count)
                let d = x[axis], step = steps[k]
                guard step != 0, step != Int.min else { throw ShapeInferenceProblem.sliceStep(step) }
                func clamp(_ v: Int, _ low: Int, _ high: Int) -> Int { min(max(v, low), high) }
                // Starts and ends near ±2⁶³ are clamped before the dimension is added.
                var start = clamp(starts[k], -d, d), end = clamp(ends[k], -d - 1, d)
                start = start < 0 ? start + d : start
                end = end < 0 ? end + d : end
                if step > 0 { start = clamp(start, 0, d); end = clamp(end, 0, d) } else { start = clamp(start, 0, d - 1); end = clamp(end, -1, d - 1) }
                // The count in closed form: a slice of a huge dimension is never enumerated.
                let count = step > 0 ? (end > start ? (end - start - 1) / step + 1 : 0) : (start > end ? (start - end - 1) / -step + 1 : 0)
                s[axis] = count
                ranges[axis] = (start, step, count)
            }
            let value = values[ins[0]].flatMap { v in Self.remapped(v, shape: x, to: s) { o in
                o.enumerated().map { axis, k in ranges[axis].map { $0.start + k * $0.step } ?? k }
            } }
            try set(out, s, value: value)
        case "Split":
            let x = try shape(ins[0])
            let axis = try Self.normalized(node.int("axis") ?? 0, rank: x.count)
            var sizes: [Int]
            if opset >= 13, ins.count > 1, !ins[1].isEmpty { sizes = try integers(ins[1], "split") } else if let split = node.ints("split") { sizes = split } else {
                let n = node.int("num_outputs") ?? node.outputs.count
                guard n > 0, n <= node.outputs.count else {
                    throw ShapeInferenceProblem.splitOutputs(numOutputs: n, outputs: node.outputs.count)
                }
                let chunk = (x[axis] - 1) / n + 1
                sizes = try (0..<n).map { min(chunk, max(0, x[axis] - (try Self.mul($0, chunk)))) }
            }
            for (o, size) in zip(node.outputs, sizes) {
                var s = x
                s[axis] = size
                try set(o, s)
            }
        case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
             "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin":
            let x = try shape(ins[0])
            let keep = (node.int("keepdims") ?? 1) == 1
            var axes: [Int]?
            if op == "ArgMax" || op == "ArgMin" { axes = [node.int("axis") ?? 0] } else if let a = node.ints("axes") { axes = a } else if ins.count > 1, !ins[1].isEmpty {
                axes = try integers(ins[1], "axes")
            }
            if axes?.isEmpty ?? true {
                if node.int("noop_with_empty_axes") == 1 { try set(out, x); return true }
                axes = Array(x.indices)
            }
            let reduced = try Set(axes!.map { try Self.normalized($0, rank: x.count) })
            try set(out, keep ? x.indices.map { reduced.contains($0) ? 1 : x[$0] } : x.indices.filter { !reduced.contains($0) }.map { x[$0] })
        default:
            return false
        }
        return true
    }
}
