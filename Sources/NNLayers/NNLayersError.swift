/// Errors thrown for layer settings and inputs that do not fit.
public enum NNLayersError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A layer setting is invalid; the message says which and why.
    case invalidConfiguration(String)
    /// An input has the wrong shape for the layer.
    case inputShape(layer: String, expected: String, actual: [Int])
    /// The layer cannot be decomposed as asked; the message says why and what is supported.
    case unsupported(String)

    public var description: String {
        switch self {
        case let .invalidConfiguration(message): return message
        case let .inputShape(layer, expected, actual): return "\(layer): expected input \(expected), got shape \(actual)"
        case let .unsupported(message): return message
        }
    }
}
