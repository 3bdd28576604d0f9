/// Errors thrown for layer settings and inputs that do not fit.
public enum NNLayersError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A layer setting is invalid; the message says which and why.
    case invalidConfiguration(String)
    /// An input has the wrong shape for the layer.
    case inputShape(layer: String, expected: String, actual: [Int])
    /// The layer cannot be decomposed as asked; the message says why and what is supported.
    case unsupported(String)
    /// A count (an output size, parameters, FLOPs) does not fit in a 64-bit integer.
    case countOverflow(quantity: String, factors: [Int])

    public var description: String {
        switch self {
        case let .invalidConfiguration(message): return message
        case let .inputShape(layer, expected, actual): return "\(layer): expected input \(expected), got shape \(actual)"
        case let .unsupported(message): return message
        case let .countOverflow(quantity, factors):
            return "\(quantity) does not fit in a 64-bit integer: \(factors.map(String.init).joined(separator: " × "))"
        }
    }
}

/// The product of `factors`, or ``NNLayersError/countOverflow(quantity:factors:)``.
@usableFromInline
func checkedProduct(_ factors: [Int], _ quantity: @autoclosure () -> String) throws -> Int {
    var product = 1
    for factor in factors {
        let (next, overflow) = product.multipliedReportingOverflow(by: factor)
        if overflow { throw NNLayersError.countOverflow(quantity: quantity(), factors: factors) }
        product = next
    }
    return product
}

/// `a + b`, or ``NNLayersError/countOverflow(quantity:factors:)``.
@usableFromInline
func checkedSum(_ a: Int, _ b: Int, _ quantity: @autoclosure () -> String) throws -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    if overflow { throw NNLayersError.countOverflow(quantity: quantity() + " (a sum)", factors: [a, b]) }
    return sum
}
