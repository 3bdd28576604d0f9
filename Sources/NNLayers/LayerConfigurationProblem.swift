/// What is wrong at one place of a layer configuration (the `--layer-config` JSON): the payload
/// of ``NNLayersError/layerConfiguration(location:problem:)``, which says where.
public enum LayerConfigurationProblem: Sendable, Equatable, CustomStringConvertible {
    /// A key that is not a setting (stride, padding, dilation, groups).
    case unknownSetting
    /// A setting of `actual` integers where it takes `expected` (2 for stride and dilation, 4 for padding).
    case count(expected: Int, actual: Int)
    /// JSON that Foundation's decoder refuses (not JSON, a value of the wrong type): its `description`.
    case decoding(description: String)

    /// The problem in one line.
    public var description: String {
        switch self {
        case .unknownSetting: return "not a setting (stride, padding, dilation, groups)"
        case let .count(expected, actual): return "expected \(expected) integers, got \(actual)"
        case let .decoding(description): return description
        }
    }
}
