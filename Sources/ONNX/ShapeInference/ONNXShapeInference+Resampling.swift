import Foundation

// Shape inference of resizes, expansions, generated tensors, tiles, pads and depth/space moves.

extension ONNXShapeInference {
    /// The outputs of `node` when it is one of resizes, expansions, generated tensors, tiles, pads and depth/space moves; `false` when it is not.
    // swiftlint:disable:next cyclomatic_complexity function_body_length
    mutating func inferResampling(_ node: ONNXNode, _ op: String, _ ins: [String], _ out: String, _ opset: Int) throws -> Bool {
        switch op {
        case "Resize", "Upsample":
            let x = try shape(ins[0])
            if op == "Resize", opset >= 11, ins.count > 3, !ins[3].isEmpty, let sizes = values[ins[3]], sizes.count == x.count {
                try set(out, try sizes.map { try Self.integer($0, "sizes") })
                return true
            }
            let scalesName = op == "Upsample" || opset < 11 ? (ins.count > 1 ? ins[1] : "") : (ins.count > 2 ? ins[2] : "")
            let scales: [Double]
            if let v = values[scalesName] { scales = v } else if let a = node.attribute("scales"), case let .floats(f) = a {
                scales = f.map(Double.init)
            } else {
                throw ShapeInferenceProblem.scalesNotConstant
            }
            guard scales.count == x.count else { throw ShapeInferenceProblem.scales(scales, input: x) }
            try set(out, try zip(x, scales).map { try Self.integer((Double($0) * $1).rounded(.down), "a scaled size") })
        case "Expand":
            let x = try shape(ins[0])
            try set(out, try Self.broadcast([x, try integers(ins[1], "the shape")]))
        case "ConstantOfShape":
            let s = try integers(ins[0], "the shape")
            guard s.allSatisfy({ $0 >= 0 }) else { throw ShapeInferenceProblem.negativeDimension(shape: s) }
            let count = try Self.product(s)
            var fill = 0.0
            if let t = node.tensor("value"), let v = try? t.tensor(as: Double.self).scalars.first { fill = v }
            try set(out, s, value: count <= Self.valueLimit ? [Double](repeating: fill, count: count) : nil)
        case "Range":
            let bounds = try [(ins[0], "start"), (ins[1], "limit"), (ins[2], "delta")].map { name, what -> Double in
                guard let v = values[name], v.count == 1, v[0].isFinite else { throw ShapeInferenceProblem.notConstantScalar(role: what) }
                return v[0]
            }
            let (start, limit, delta) = (bounds[0], bounds[1], bounds[2])
            guard delta != 0 else { throw ShapeInferenceProblem.zeroDelta }
            // The count in floating point: only a count of at most valueLimit is materialised.
            let count = max(0, ((limit - start) / delta).rounded(.up))
            guard count <= 0x1p62 else { throw ShapeInferenceProblem.rangeLength(count) }
            let n = Int(count)
            try set(out, [n], value: n <= Self.valueLimit ? (0..<n).map { start + Double($0) * delta } : nil)
        case "Tile":
            let x = try shape(ins[0]), repeats = try integers(ins[1], "repeats")
            guard repeats.count == x.count, repeats.allSatisfy({ $0 >= 0 }) else { throw ShapeInferenceProblem.repeats(repeats, input: x) }
            try set(out, try zip(x, repeats).map { try Self.mul($0, $1) })
        case "Pad":
            let x = try shape(ins[0])
            let pads = opset >= 11 ? try integers(ins[1], "pads") : (node.ints("pads") ?? [])
            var axes = Array(x.indices)
            if opset >= 18, ins.count > 3, !ins[3].isEmpty { axes = try integers(ins[3], "axes").map { try Self.normalized($0, rank: x.count) } }
            guard pads.count == 2 * axes.count else { throw ShapeInferenceProblem.pads(pads, input: x) }
            var s = x
            for (k, a) in axes.enumerated() { s[a] = try Self.add(s[a], try Self.add(pads[k], pads[k + axes.count])) }
            try set(out, s)
        case "DepthToSpace", "SpaceToDepth":
            let x = try shape(ins[0])
            guard x.count == 4, let b = node.int("blocksize"), b >= 1 else { throw ShapeInferenceProblem.blocksize }
            let square = try Self.mul(b, b)
            try set(out, op == "DepthToSpace" ? [x[0], x[1] / square, try Self.mul(x[2], b), try Self.mul(x[3], b)]
                                               : [x[0], try Self.mul(x[1], square), x[2] / b, x[3] / b])
        default:
            return false
        }
        return true
    }
}
