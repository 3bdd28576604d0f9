/// A pair of sizes for the two spatial axes: stride, dilation or kernel size.
public struct Size2D: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// The vertical size.
    public var height: Int
    /// The horizontal size.
    public var width: Int

    /// A pair of sizes.
    public init(_ height: Int, _ width: Int) {
        self.height = height
        self.width = width
    }

    /// The same size on both axes.
    public init(_ both: Int) { self.init(both, both) }

    public var description: String { "(\(height), \(width))" }

    /// `[height, width]`.
    public var array: [Int] { [height, width] }

    /// Decodes `[height, width]`, as PyTorch and ONNX write a stride or kernel size.
    public init(from decoder: any Decoder) throws {
        let values = try decoder.singleValueContainer().decode([Int].self)
        guard values.count == 2 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "expected [height, width], got \(values)"))
        }
        self.init(values[0], values[1])
    }

    /// Encodes `[height, width]`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(array)
    }
}

/// Zero padding on each side of the input, per axis and side (PyTorch's `padding=(h, w)` is
/// `Padding(top: h, bottom: h, left: w, right: w)`; asymmetric padding is what `F.pad` does).
public struct Padding: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// Rows of zeros above the input.
    public var top: Int
    /// Rows of zeros below the input.
    public var bottom: Int
    /// Columns of zeros left of the input.
    public var left: Int
    /// Columns of zeros right of the input.
    public var right: Int

    /// Padding on each side.
    public init(top: Int, bottom: Int, left: Int, right: Int) {
        (self.top, self.bottom, self.left, self.right) = (top, bottom, left, right)
    }

    /// No padding.
    public static let zero = Padding(top: 0, bottom: 0, left: 0, right: 0)

    /// `vertical` rows above and below, `horizontal` columns left and right.
    public static func symmetric(_ vertical: Int, _ horizontal: Int) -> Padding {
        Padding(top: vertical, bottom: vertical, left: horizontal, right: horizontal)
    }

    /// The same padding on all four sides.
    public static func symmetric(_ all: Int) -> Padding { symmetric(all, all) }

    /// "Same" padding for stride 1: the output has the input's size. When the dilated kernel
    /// extent `d·(k − 1)` is odd the extra row or column goes at the bottom or right, as in
    /// TensorFlow and PyTorch's `padding="same"`.
    public static func same(kernel: Size2D, dilation: Size2D = Size2D(1)) -> Padding {
        let vertical = dilation.height * (kernel.height - 1)
        let horizontal = dilation.width * (kernel.width - 1)
        return Padding(top: vertical / 2, bottom: vertical - vertical / 2, left: horizontal / 2, right: horizontal - horizontal / 2)
    }

    /// `[top, bottom, left, right]`.
    public var array: [Int] { [top, bottom, left, right] }

    public var description: String { "(\(top), \(bottom), \(left), \(right))" }

    /// Decodes `[top, bottom, left, right]`.
    public init(from decoder: any Decoder) throws {
        let values = try decoder.singleValueContainer().decode([Int].self)
        guard values.count == 4 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "expected [top, bottom, left, right], got \(values)"))
        }
        self.init(top: values[0], bottom: values[1], left: values[2], right: values[3])
    }

    /// Encodes `[top, bottom, left, right]`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(array)
    }
}
