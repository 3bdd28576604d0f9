/// The range a layer setting must lie in: the payload of
/// ``NNLayersError/invalidSetting(layer:setting:value:requirement:)``, rendered after "must be".
public enum SettingRequirement: Sendable, Equatable, CustomStringConvertible {
    /// Every entry at least 1 (strides, dilations).
    case atLeastOne
    /// Every entry at least 0 (padding).
    case nonNegative
    /// At least 1 and a divisor of the layer's `outputChannels` (groups).
    case dividesOutputChannels(Int)

    /// The requirement as a phrase: "at least 1", "non-negative", ….
    public var description: String {
        switch self {
        case .atLeastOne: return "at least 1"
        case .nonNegative: return "non-negative"
        case let .dividesOutputChannels(channels): return "at least 1 and divide the \(channels) output channels"
        }
    }
}
