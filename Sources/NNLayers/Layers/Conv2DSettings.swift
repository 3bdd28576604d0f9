import Foundation
import TensorModule

/// The settings of a convolution that a weight file does not hold: stride, padding, dilation and
/// groups, each optional (a missing one takes PyTorch's default for `padding=k//2`).
///
/// Its JSON form is the `--layer-config` entry of the command line:
/// `{"stride": [sh, sw], "padding": [top, bottom, left, right], "dilation": [dh, dw], "groups": g}`.
///
/// ```swift
/// let settings = try Conv2DSettings.configuration(json: data)     // [weight name: settings]
/// let conv = try settings["conv1.weight", default: Conv2DSettings()].convolution(weight: w, bias: b)
/// ```
public struct Conv2DSettings: Sendable, Equatable, Codable {
    /// `[sh, sw]`; default `[1, 1]`.
    public var stride: [Int]?
    /// `[top, bottom, left, right]`; default `k//2` on each side of each axis.
    public var padding: [Int]?
    /// `[dh, dw]`; default `[1, 1]`.
    public var dilation: [Int]?
    /// Default 1.
    public var groups: Int?

    /// Settings from their parts; `nil` takes the default.
    public init(stride: [Int]? = nil, padding: [Int]? = nil, dilation: [Int]? = nil, groups: Int? = nil) {
        (self.stride, self.padding, self.dilation, self.groups) = (stride, padding, dilation, groups)
    }

    /// A JSON object keyed by weight name, each value a settings object.
    ///
    /// - Throws: ``NNLayersError/layerConfiguration(location:problem:)`` that says what is wrong
    ///   and where (not JSON, not an object of objects, an unknown key, a value of the wrong type or length).
    public static func configuration(json: Data) throws -> [String: Conv2DSettings] {
        do {
            return try JSONDecoder().decode([String: Conv2DSettings].self, from: json)
        } catch let error as DecodingError {
            let (path, description): ([any CodingKey], String)
            switch error {
            case let .typeMismatch(_, context), let .valueNotFound(_, context), let .keyNotFound(_, context), let .dataCorrupted(context):
                (path, description) = (context.codingPath, context.debugDescription)
            @unknown default:
                (path, description) = ([], "\(error)")
            }
            throw NNLayersError.layerConfiguration(location: location(path), problem: .decoding(description: description))
        }
    }

    /// A coding path as `name.stride` or `[0]`.
    static func location(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Decodes the JSON form, refusing unknown keys and arrays of the wrong length.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys where !["stride", "padding", "dilation", "groups"].contains(key.stringValue) {
            throw NNLayersError.layerConfiguration(location: Self.location(container.codingPath + [key]), problem: .unknownSetting)
        }
        func integers(_ name: String, count: Int) throws -> [Int]? {
            let key = Key(stringValue: name)
            guard let values = try container.decodeIfPresent([Int].self, forKey: key) else { return nil }
            guard values.count == count else {
                throw NNLayersError.layerConfiguration(location: Self.location(container.codingPath + [key]),
                                                       problem: .count(expected: count, actual: values.count))
            }
            return values
        }
        self.init(stride: try integers("stride", count: 2), padding: try integers("padding", count: 4),
                  dilation: try integers("dilation", count: 2), groups: try container.decodeIfPresent(Int.self, forKey: Key(stringValue: "groups")))
    }

    /// Stride, padding, dilation and groups for a kernel of `kernelShape` (OIHW), defaults filled in.
    func resolved(kernelShape: [Int]) throws -> (stride: Size2D, padding: Padding, dilation: Size2D, groups: Int) {
        guard kernelShape.count == 4 else {
            throw NNLayersError.invalidWeightShape(layer: "Conv2D", shape: kernelShape, expected: "(out, in/groups, kh, kw) with positive sizes")
        }
        let (kh, kw) = (kernelShape[2], kernelShape[3])
        let stride = self.stride ?? [1, 1], dilation = self.dilation ?? [1, 1]
        let padding = self.padding ?? [kh / 2, kh / 2, kw / 2, kw / 2]
        return (Size2D(stride[0], stride[1]), Padding(top: padding[0], bottom: padding[1], left: padding[2], right: padding[3]),
                Size2D(dilation[0], dilation[1]), groups ?? 1)
    }

    /// Checks these settings against a kernel shape (OIHW) without its weights.
    ///
    /// - Throws: the errors of ``Conv2D/validate(weightShape:biasCount:stride:padding:dilation:groups:)``.
    public func validate(kernelShape: [Int]) throws {
        let s = try resolved(kernelShape: kernelShape)
        try Conv2D<Float>.validate(weightShape: kernelShape, stride: s.stride, padding: s.padding, dilation: s.dilation, groups: s.groups)
    }

    /// The convolution of `weight` (OIHW) and `bias` with these settings.
    ///
    /// - Throws: the errors of ``Conv2D/init(weight:bias:stride:padding:dilation:groups:)``.
    public func convolution<Scalar: BLASScalar>(weight: Tensor<Scalar>, bias: [Scalar]?) throws -> Conv2D<Scalar> {
        let s = try resolved(kernelShape: weight.shape)
        return try Conv2D(weight: weight, bias: bias, stride: s.stride, padding: s.padding, dilation: s.dilation, groups: s.groups)
    }
}
