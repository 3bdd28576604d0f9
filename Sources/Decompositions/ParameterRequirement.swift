/// The range a numeric option must lie in: the payload of
/// ``DecompositionError/invalidParameter(operation:name:value:requirement:)``, rendered after "must be".
public enum ParameterRequirement: Sendable, Equatable, CustomStringConvertible {
    /// `x ≥ 0` (a NaN fails).
    case nonNegative
    /// `x > 0`.
    case positive
    /// `0 ≤ x < ∞`.
    case finiteAndNonNegative
    /// `0 < x < ∞`.
    case positiveAndFinite
    /// `0 < x ≤ 1`.
    case unitInterval
    /// An eigenvalue of the input metric not below `−10⁻⁹·largestEigenvalue`: the metric is
    /// positive semidefinite up to rounding.
    case semidefinite(largestEigenvalue: Double)

    /// The requirement as a phrase: "finite and non-negative", "in (0, 1]", ….
    public var description: String {
        switch self {
        case .nonNegative: return "non-negative"
        case .positive: return "positive"
        case .finiteAndNonNegative: return "finite and non-negative"
        case .positiveAndFinite: return "positive and finite"
        case .unitInterval: return "in (0, 1]"
        case let .semidefinite(largest): return "a positive semidefinite metric (largest eigenvalue \(largest))"
        }
    }
}
