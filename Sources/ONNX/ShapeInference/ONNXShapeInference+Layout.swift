import Foundation

// Shape inference of shapes, reshapes, transposes, squeezes and concatenation.

extension ONNXShapeInference {
    /// The outputs of `node` when it is one of shapes, reshapes, transposes, squeezes and concatenation; `false` when it is not.
    // swiftlint:disable:next cyclomatic_complexity function_body_length
    mutating func inferLayout(_ node: ONNXNode, _ op: String, _ ins: [String], _ out: String, _ opset: Int) throws -> Bool {
        switch op {
        case "Shape":
            let x = try shape(ins[0])
            let rank = x.count
            var start = node.int("start") ?? 0, end = node.int("end") ?? rank
            if start < 0 { start += rank }
            if end < 0 { end += rank }
            let low = min(max(start, 0), rank)
            let slice = Array(x[low..<max(low, min(max(end, 0), rank))])
            try set(out, [slice.count], value: slice.map(Double.init))
        case "Size":
            try set(out, [], value: [Double(try Self.product(try shape(ins[0])))])
        case "Reshape":
            let x = try shape(ins[0])
            var target = try integers(ins[1], "the target shape")
            let allowZero = node.int("allowzero") == 1
            for k in target.indices where target[k] == 0 && !allowZero {
                guard k < x.count else { throw ShapeInferenceProblem.reshapeCopy(target: target, input: x) }
                target[k] = x[k]
            }
            let total = try Self.product(x)
            guard target.allSatisfy({ $0 >= -1 }), target.filter({ $0 == -1 }).count <= 1 else {
                throw ShapeInferenceProblem.reshape(input: x, target: target)
            }
            if let k = target.firstIndex(of: -1) {
                let known = try Self.product(target.enumerated().filter { $0.offset != k }.map(\.element))
                guard known > 0, total % known == 0 else { throw ShapeInferenceProblem.reshape(input: x, target: target) }
                target[k] = total / known
            }
            guard try Self.product(target) == total else { throw ShapeInferenceProblem.reshape(input: x, target: target) }
            try set(out, target, value: values[ins[0]])
        case "Flatten":
            let x = try shape(ins[0])
            let axis = try Self.normalized(node.int("axis") ?? 1, rank: x.count + 1)
            try set(out, [try Self.product(Array(x.prefix(axis))), try Self.product(Array(x.dropFirst(axis)))], value: values[ins[0]])
        case "Transpose":
            let x = try shape(ins[0])
            let perm = node.ints("perm") ?? Array((0..<x.count).reversed())
            guard perm.sorted() == Array(0..<x.count) else { throw ShapeInferenceProblem.permutation(perm, input: x) }
            let permuted = perm.map { x[$0] }
            // Small constant tensors are permuted too (PyTorch's pad arguments pass through a Transpose).
            let value = values[ins[0]].flatMap { v in Self.remapped(v, shape: x, to: permuted) { o in
                var i = [Int](repeating: 0, count: x.count)
                for (k, axis) in perm.enumerated() { i[axis] = o[k] }
                return i
            } }
            try set(out, permuted, value: value)
        case "Squeeze", "Unsqueeze":
            let x = try shape(ins[0])
            let axes: [Int]? = opset >= 13 ? (ins.count > 1 && !ins[1].isEmpty ? try integers(ins[1], "axes") : nil) : node.ints("axes")
            if op == "Squeeze" {
                let rank = x.count
                let drop = try axes.map { try Set($0.map { try Self.normalized($0, rank: rank) }) } ?? Set(x.indices.filter { x[$0] == 1 })
                try set(out, x.indices.filter { !drop.contains($0) }.map { x[$0] }, value: values[ins[0]])
            } else {
                guard let axes else { throw ShapeInferenceProblem.missingAxes }
                let rank = x.count + axes.count
                let inserted = try Set(axes.map { try Self.normalized($0, rank: rank) })
                var rest = x.makeIterator()
                try set(out, (0..<rank).map { inserted.contains($0) ? 1 : rest.next() ?? 1 }, value: values[ins[0]])
            }
        case "Concat":
            let parts = try ins.filter { !$0.isEmpty }.map(shape)
            guard let first = parts.first else { throw ShapeInferenceProblem.missingInputs }
            let axis = try Self.normalized(node.int("axis") ?? 0, rank: first.count)
            guard parts.allSatisfy({ part in part.count == first.count && part.indices.allSatisfy { k in k == axis || part[k] == first[k] } }) else {
                throw ShapeInferenceProblem.notConcatenable(shapes: parts, axis: axis)
            }
            var s = first
            s[axis] = try parts.reduce(0) { try Self.add($0, $1[axis]) }
            let pieces = ins.filter { !$0.isEmpty }.map { values[$0] }
            let value: [Double]? = first.count == 1 && pieces.allSatisfy { $0 != nil } ? pieces.flatMap { $0! } : nil
            try set(out, s, value: value)
        default:
            return false
        }
        return true
    }
}
