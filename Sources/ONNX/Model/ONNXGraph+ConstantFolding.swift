import Foundation

// Constants computed in the graph by moving data only: an exporter's `Slice` → `Concat` →
// `Unsqueeze` of a weight (PyTorch writes an LSTM's gates reordered that way inside `If` bodies).

extension ONNXGraph {
    /// The operators whose output ``constants(folding:outer:)`` computes when every data input is a
    /// constant: they move or relabel elements, never compute new ones.
    public static let foldedOperators: Set<String> = ["Unsqueeze", "Squeeze", "Reshape", "Flatten", "Transpose", "Slice", "Concat"]

    /// The largest constant ``constants(folding:outer:)`` computes, in elements.
    static let foldedElementLimit = 1 << 24

    /// Every value whose content is fixed, as ``constants()`` finds them, and with `folding` also
    /// the outputs of ``foldedOperators`` nodes whose inputs are all fixed (computed here, each
    /// marked with ``ONNXConstant/foldedNode``; sizes up to 2²⁴ elements). `outer` holds the
    /// constants visible from the graphs around a subgraph; what this graph defines shadows them.
    public func constants(folding: Bool, outer: [String: ONNXConstant] = [:]) -> [String: ONNXConstant] {
        var result = constants()
        guard folding else { return result }
        let inputs = Set(proto.input.map(\.name))
        func constant(_ name: String) -> ONNXConstant? {
            if let c = result[name] { return c }
            guard !inputs.contains(name) else { return nil }
            return outer[name]
        }
        for (k, node) in proto.node.enumerated() where node.output.count == 1 && Self.foldedOperators.contains(node.opType)
            && (node.domain.isEmpty || node.domain == "ai.onnx") && result[node.output[0]] == nil {
            let n = ONNXNode(proto: node)
            let operands = n.inputs.map { $0.isEmpty ? nil : constant($0) }
            guard !n.inputs.isEmpty, operands.enumerated().allSatisfy({ $0.element != nil || n.inputs[$0.offset].isEmpty }),
                  var tensor = try? Self.folded(n, operands.map { $0?.tensor }) else { continue }
            tensor.name = node.output[0]
            result[node.output[0]] = ONNXConstant(tensor: tensor, initializer: nil, constantNode: nil, identities: [],
                                                  sourceName: node.output[0], foldedNode: k)
        }
        return result
    }

    /// The output of a ``foldedOperators`` node on constant operands (`nil` for an absent
    /// optional one); `nil` when the node's settings do not fit them or the data cannot be read
    /// as bytes (it is then not a constant here).
    static func folded(_ node: ONNXNode, _ operands: [ONNXTensor?]) throws -> ONNXTensor? {
        guard let data = operands.first ?? nil, let (bytes, size) = data.littleEndianBytes() else { return nil }
        let shape = data.shape
        let rank = shape.count
        func axis(_ a: Int, _ rank: Int) -> Int? { (-rank..<rank).contains(a) ? (a + rank) % rank : nil }
        func ints(_ index: Int, _ attribute: String) throws -> [Int]? {
            if let values = node.ints(attribute) { return values }
            guard index < operands.count, let t = operands[index] else { return nil }
            return try t.integers()
        }
        let target: [Int]
        switch node.opType {
        case "Unsqueeze":
            guard let axes = try ints(1, "axes") else { return nil }
            let outRank = rank + axes.count
            let normalized = Set(axes.compactMap { axis($0, outRank) })
            guard normalized.count == axes.count else { return nil }
            var rest = shape.makeIterator()
            target = (0..<outRank).map { normalized.contains($0) ? 1 : rest.next()! }
        case "Squeeze":
            let axes = try ints(1, "axes").map { $0.compactMap { axis($0, rank) } } ?? shape.indices.filter { shape[$0] == 1 }
            guard axes.allSatisfy({ shape[$0] == 1 }) else { return nil }
            target = shape.indices.filter { !axes.contains($0) }.map { shape[$0] }
        case "Reshape":
            guard let requested = try ints(1, "") else { return nil }
            let allowZero = node.int("allowzero") == 1
            var dims = requested.enumerated().map { k, d in d == 0 && !allowZero ? (k < rank ? shape[k] : -2) : d }
            let count = shape.reduce(1, *)
            if let unknown = dims.firstIndex(of: -1) {
                guard let known = Self.checkedProduct(dims.enumerated().filter { $0.offset != unknown }.map(\.element)),
                      known > 0, count % known == 0 else { return nil }
                dims[unknown] = count / known
            }
            guard dims.allSatisfy({ $0 >= 0 }), Self.checkedProduct(dims) == count else { return nil }
            target = dims
        case "Flatten":
            // axis in [−rank, rank]; a negative one counts from the end (−1: the last axis).
            let requested = node.int("axis") ?? 1
            guard (-rank...rank).contains(requested) else { return nil }
            let a = requested < 0 ? requested + rank : requested
            target = [shape.prefix(a).reduce(1, *), shape.dropFirst(a).reduce(1, *)]
        case "Transpose":
            let perm = node.ints("perm") ?? Array((0..<rank).reversed())
            guard perm.sorted() == Array(0..<rank) else { return nil }
            let strides = Self.strides(shape)
            return ONNXTensor(name: "", dataType: data.dataType, shape: perm.map { shape[$0] },
                              bytes: Self.gathered(bytes, size: size, offsets: perm.map { p in (0..<shape[p]).map { $0 * strides[p] } }))
        case "Slice":
            // Opset 10 on: starts, ends, axes, steps as inputs; before: attributes.
            guard let starts = try ints(1, "starts"), let ends = try ints(2, "ends"), starts.count == ends.count else { return nil }
            let axes = try ints(3, "axes") ?? Array(0..<starts.count)
            let steps = try ints(4, "") ?? [Int](repeating: 1, count: starts.count)
            guard axes.count == starts.count, steps.count == starts.count else { return nil }
            var indices = shape.map { Array(0..<$0) }
            for (k, a) in axes.enumerated() {
                guard let a = axis(a, rank), steps[k] != 0 else { return nil }
                let n = shape[a], step = steps[k]
                func clamp(_ v: Int, _ low: Int, _ high: Int) -> Int { Swift.min(Swift.max(v < 0 ? v + n : v, low), high) }
                // The spec's clamps: a positive step's start and end to [0, n]; a negative step's start
                // to [0, n − 1] and end to [−1, n − 1].
                let (start, end) = step > 0 ? (clamp(starts[k], 0, n), clamp(ends[k], 0, n)) : (clamp(starts[k], 0, n - 1), clamp(ends[k], -1, n - 1))
                indices[a] = Array(stride(from: start, to: end, by: step))
            }
            let strides = Self.strides(shape)
            return ONNXTensor(name: "", dataType: data.dataType, shape: indices.map(\.count),
                              bytes: Self.gathered(bytes, size: size, offsets: indices.enumerated().map { a, list in list.map { $0 * strides[a] } }))
        case "Concat":
            guard let a = node.int("axis").flatMap({ axis($0, rank) }) else { return nil }
            let parts = operands.map { t -> (Data, [Int])? in
                guard let t, t.dataType == data.dataType, let (b, _) = t.littleEndianBytes() else { return nil }
                return (b, t.shape)
            }
            guard parts.allSatisfy({ part in
                guard let s = part?.1, s.count == rank else { return false }
                return s.indices.allSatisfy { $0 == a || s[$0] == shape[$0] }
            }) else { return nil }
            guard let total = Self.checkedProduct([parts.reduce(0) { $0 + ($1.map { $0.0.count / size } ?? 0) }]),
                  total <= foldedElementLimit else { return nil }
            let outer = shape.prefix(a).reduce(1, *)
            var out = Data()
            for o in 0..<outer {
                for case let (b, s)? in parts {
                    let run = s.dropFirst(a).reduce(1, *) * size
                    out.append(b[b.startIndex + o * run ..< b.startIndex + (o + 1) * run])
                }
            }
            var result = shape
            result[a] = parts.reduce(0) { $0 + $1!.1[a] }
            return ONNXTensor(name: "", dataType: data.dataType, shape: result, bytes: out)
        default:
            return nil
        }
        return ONNXTensor(name: "", dataType: data.dataType, shape: target, bytes: bytes)
    }

    /// The product of `values`, `nil` when it overflows `Int`.
    static func checkedProduct(_ values: [Int]) -> Int? {
        var product = 1
        for v in values {
            let (p, overflow) = product.multipliedReportingOverflow(by: v)
            guard !overflow else { return nil }
            product = p
        }
        return product
    }

    /// Row-major element strides of `shape`.
    static func strides(_ shape: [Int]) -> [Int] {
        var result = [Int](repeating: 1, count: shape.count)
        for a in stride(from: shape.count - 2, through: 0, by: -1) { result[a] = result[a + 1] * shape[a + 1] }
        return result
    }

    /// The elements of `bytes` (each `size` bytes) at every combination of the per-axis element
    /// `offsets` (added up), in row-major order of the output; runs along the last axis are copied
    /// whole when its offsets are consecutive.
    static func gathered(_ bytes: Data, size: Int, offsets: [[Int]]) -> Data {
        let count = offsets.reduce(1) { $0 * $1.count }
        var out = Data(count: count * size)
        guard count > 0 else { return out }
        let last = offsets.last ?? [0]
        let contiguous = last.enumerated().allSatisfy { $0.element == last[0] + $0.offset }
        let outerAxes = Array(offsets.dropLast())
        var index = [Int](repeating: 0, count: outerAxes.count)
        var written = 0
        bytes.withUnsafeBytes { source in
            out.withUnsafeMutableBytes { target in
                repeat {
                    let base = zip(outerAxes, index).reduce(0) { $0 + $1.0[$1.1] }
                    if contiguous {
                        let run = last.count * size
                        target.baseAddress!.advanced(by: written).copyMemory(from: source.baseAddress!.advanced(by: (base + last[0]) * size), byteCount: run)
                        written += run
                    } else {
                        for offset in last {
                            target.baseAddress!.advanced(by: written).copyMemory(from: source.baseAddress!.advanced(by: (base + offset) * size), byteCount: size)
                            written += size
                        }
                    }
                    var a = outerAxes.count - 1
                    while a >= 0 {
                        index[a] += 1
                        if index[a] < outerAxes[a].count { break }
                        index[a] = 0
                        a -= 1
                    }
                    if a < 0 { break }
                } while true
            }
        }
        return out
    }
}

extension ONNXTensor {
    /// A tensor of `dataType` and `shape` holding `bytes` as `raw_data` (little-endian).
    init(name: String, dataType: ONNXDataType, shape: [Int], bytes: Data) {
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dataType = Int32(dataType.rawValue)
        proto.dims = shape.map { Int64($0) }
        proto.rawData = bytes
        self.init(proto: proto)
    }

    /// The data as little-endian bytes and the element size, when it is stored in this file (raw
    /// data or the typed float, double and int64 fields), fits its shape, and is at most
    /// 2²⁴ elements; `nil` otherwise.
    func littleEndianBytes() -> (Data, Int)? {
        // Empty tensors are not folded: their other dimensions could be anything, up to 2⁶².
        guard let dtype = dataType.dtype, !isExternal, let count = try? elementCount(), count >= 1, count <= ONNXGraph.foldedElementLimit else { return nil }
        if proto.hasRawData { return proto.rawData.count == count * dtype.size ? (proto.rawData, dtype.size) : nil }
        var bytes = Data(capacity: count * dtype.size)
        switch dtype {
        case .float32 where proto.floatData.count == count:
            for v in proto.floatData { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        case .float64 where proto.doubleData.count == count:
            for v in proto.doubleData { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        case .int64 where proto.int64Data.count == count:
            for v in proto.int64Data { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        default:
            return nil
        }
        return (bytes, dtype.size)
    }
}
