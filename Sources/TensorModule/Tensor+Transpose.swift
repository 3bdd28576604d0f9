extension Tensor {
    /// The tensor with its axes permuted: axis `i` of the result is axis `permutation[i]` of `self`.
    ///
    /// Equivalent to NumPy's `np.transpose(x, permutation)` followed by a contiguous copy.
    /// Adjacent axes that stay adjacent are merged first; the copy is then either a sequence of
    /// contiguous row copies or a cache-blocked 2-D transpose between the input's and the
    /// output's fastest axes.
    ///
    /// ```swift
    /// let x = Tensor<Float>.zeros(shape: [2, 3, 4])
    /// try x.transposed(permutation: [2, 0, 1]).shape   // [4, 2, 3]
    /// ```
    ///
    /// - Throws: ``TensorError/invalidPermutation(_:order:)`` if `permutation` is not a
    ///   permutation of `0..<order`.
    /// - Complexity: O(scalarCount), one read and one write of every scalar.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func transposed(permutation: [Int]) throws -> Tensor {
        guard permutation.count == order, Set(permutation) == Set(0..<order) else {
            throw TensorError.invalidPermutation(permutation, order: order)
        }
        return permutedUnchecked(permutation)
    }

    /// For a matrix-shaped (order-2) tensor, the transpose.
    ///
    /// - Precondition: `order == 2`.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func transposed() -> Tensor {
        precondition(order == 2, "transposed() needs an order-2 tensor, got shape \(shape); use transposed(permutation:)")
        return permutedUnchecked([1, 0])
    }

    /// Permutes axes; `permutation` must be valid.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    package func permutedUnchecked(_ permutation: [Int]) -> Tensor {
        let newShape = permutation.map { shape[$0] }
        if permutation == Array(0..<order) || scalarCount <= 1 {
            return Tensor(uncheckedShape: newShape, scalars: scalars)
        }
        let result = ContiguousArray<Scalar>(unsafeUninitializedCapacity: scalarCount) { buffer, count in
            let inputStrides = strides
            storage.withUnsafeBufferPointer { source in
                permuteCopy(
                    source: source.baseAddress!, destination: buffer.baseAddress!,
                    outputShape: newShape, inputStrides: permutation.map { inputStrides[$0] })
            }
            count = scalarCount
        }
        return Tensor(uncheckedShape: newShape, scalars: result)
    }
}

/// Copies a strided view into a contiguous row-major destination.
///
/// `outputShape[i]` is the size of output axis `i` and `inputStrides[i]` the stride (in scalars) of
/// that axis in the source. Axes of size one are dropped and axes that are contiguous in both
/// layouts are merged before copying.
func permuteCopy<Scalar>(
    source: UnsafePointer<Scalar>, destination: UnsafeMutablePointer<Scalar>,
    outputShape: [Int], inputStrides: [Int]
) {
    // Drop unit axes, then merge axes that are adjacent in both layouts.
    var sizes: [Int] = []
    var inStrides: [Int] = []
    for (size, stride) in zip(outputShape, inputStrides) where size != 1 {
        if let lastSize = sizes.last, let lastStride = inStrides.last, lastStride == stride * size {
            sizes[sizes.count - 1] = lastSize * size
            inStrides[inStrides.count - 1] = stride
        } else {
            sizes.append(size)
            inStrides.append(stride)
        }
    }
    let total = sizes.reduce(1, *)
    if total == 0 { return }
    if sizes.isEmpty {
        destination.initialize(to: source.pointee)
        return
    }
    let depth = sizes.count
    var outStrides = [Int](repeating: 1, count: depth)
    for axis in stride(from: depth - 2, through: 0, by: -1) { outStrides[axis] = outStrides[axis + 1] * sizes[axis + 1] }

    if inStrides[depth - 1] == 1 {
        // Rows of the output are contiguous in the input: copy them whole.
        let rowLength = sizes[depth - 1]
        var odometer = OffsetOdometer(sizes: Array(sizes.dropLast()), firstStrides: Array(inStrides.dropLast()),
                                      secondStrides: Array(outStrides.dropLast()))
        if odometer.isEmpty { return }
        repeat {
            (destination + odometer.second).initialize(from: source + odometer.first, count: rowLength)
        } while odometer.advance()
        return
    }
    // The input's fastest axis is some other output axis `j`: transpose (j, last) tiles.
    let j = inStrides.firstIndex(of: 1) ?? 0
    let rowsA = sizes[j], colsB = sizes[depth - 1]
    let inStrideB = inStrides[depth - 1], inStrideA = inStrides[j], outStrideA = outStrides[j]
    var outerSizes: [Int] = [], outerIn: [Int] = [], outerOut: [Int] = []
    for axis in 0..<(depth - 1) where axis != j {
        outerSizes.append(sizes[axis]); outerIn.append(inStrides[axis]); outerOut.append(outStrides[axis])
    }
    // Each tile goes through a small contiguous buffer: read along the input's fastest axis, write
    // along the output's. Both sides then touch whole cache lines in order, which avoids the
    // cache-set conflicts of power-of-two strides (e.g. reversing the axes of 128³).
    let tile = 64
    if rowsA < 8 || colsB < 8 {
        // Thin tiles gain nothing from staging: copy directly, writing contiguously.
        var odometer = OffsetOdometer(sizes: outerSizes, firstStrides: outerIn, secondStrides: outerOut)
        if odometer.isEmpty { return }
        repeat {
            let (inBase, outBase) = (odometer.first, odometer.second)
            for a in 0..<rowsA {
                let src = source + inBase + a * inStrideA
                let dst = destination + outBase + a * outStrideA
                for b in 0..<colsB { (dst + b).initialize(to: src[b * inStrideB]) }
            }
        } while odometer.advance()
        return
    }
    let staging = UnsafeMutablePointer<Scalar>.allocate(capacity: tile * tile)
    defer { staging.deallocate() }
    var odometer = OffsetOdometer(sizes: outerSizes, firstStrides: outerIn, secondStrides: outerOut)
    if odometer.isEmpty { return }
    repeat {
        let (inBase, outBase) = (odometer.first, odometer.second)
        var b0 = 0
        while b0 < colsB {
            let b1 = min(b0 + tile, colsB)
            var a0 = 0
            while a0 < rowsA {
                let a1 = min(a0 + tile, rowsA)
                let height = a1 - a0
                for b in b0..<b1 {
                    let src = source + inBase + b * inStrideB + a0 * inStrideA
                    let row = staging + (b - b0) * tile
                    for a in 0..<height { row[a] = src[a] }
                }
                for a in 0..<height {
                    let dst = destination + outBase + (a0 + a) * outStrideA + b0
                    for b in 0..<(b1 - b0) { (dst + b).initialize(to: staging[b * tile + a]) }
                }
                a0 = a1
            }
            b0 = b1
        }
    } while odometer.advance()
}

/// An odometer over the multi-indices of `sizes` in row-major order, tracking two offsets
/// (one per layout). A struct rather than a closure-taking helper, so that the copy loops stay in
/// the caller's specialized body.
@usableFromInline
struct OffsetOdometer {
    @usableFromInline let sizes: [Int]
    @usableFromInline let firstStrides: [Int]
    @usableFromInline let secondStrides: [Int]
    @usableFromInline var index: [Int]
    /// The offset of the current multi-index in the first layout.
    @usableFromInline var first = 0
    /// The offset of the current multi-index in the second layout.
    @usableFromInline var second = 0
    /// Whether there is no multi-index at all (a zero size).
    @usableFromInline let isEmpty: Bool

    @inlinable
    init(sizes: [Int], firstStrides: [Int], secondStrides: [Int]) {
        self.sizes = sizes
        self.firstStrides = firstStrides
        self.secondStrides = secondStrides
        self.index = [Int](repeating: 0, count: sizes.count)
        self.isEmpty = sizes.contains(0)
    }

    /// Moves to the next multi-index; returns `false` after the last one.
    @inlinable
    mutating func advance() -> Bool {
        var axis = sizes.count - 1
        while axis >= 0 {
            index[axis] += 1
            first += firstStrides[axis]
            second += secondStrides[axis]
            if index[axis] < sizes[axis] { return true }
            first -= firstStrides[axis] * sizes[axis]
            second -= secondStrides[axis] * sizes[axis]
            index[axis] = 0
            axis -= 1
        }
        return false
    }
}
