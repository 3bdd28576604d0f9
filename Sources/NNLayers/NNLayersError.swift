import TensorModule

/// Errors thrown for layer settings, weights and inputs that do not fit.
///
/// Every case carries the numbers, e.g. `"Conv2D: 3 biases for 4 output channels"`.
public enum NNLayersError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A weight of the wrong order or with an empty axis; `expected` names the layout.
    case invalidWeightShape(layer: String, shape: [Int], expected: String)
    /// A bias whose length is not the number of outputs.
    case biasCount(layer: String, count: Int, expected: Int)
    /// A weight or bias with a NaN or an infinity at a flat index.
    case nonFinite(layer: String, tensor: String, index: Int)
    /// A stride, dilation, padding or groups value outside its range.
    case invalidSetting(layer: String, setting: String, value: [Int], requirement: SettingRequirement)
    /// An input has the wrong shape for the layer.
    case inputShape(layer: String, expected: String, actual: [Int])
    /// A FLOP budget outside `(0, 1]`.
    case invalidBudget(Double)
    /// Channel factorizations of a TT layer that do not multiply to its channel counts.
    case channelModes(outputModes: [Int], inputModes: [Int], outChannels: Int, inChannels: Int)
    /// Factors (CP, Tucker, SVD, TT cores) whose shapes do not fit the layer they are to replace.
    case factorShapes(layer: String, shapes: [[Int]], expected: [[Int]])
    /// A depthwise convolution (one input channel per group) has no channel modes to factor.
    case depthwiseNotFactorable(groups: Int)
    /// Tensor-train decomposition of a grouped convolution is not supported.
    case groupedTensorTrain(groups: Int)
    /// A layer configuration (JSON) that cannot be read: where, and what is wrong there.
    case layerConfiguration(location: String, problem: LayerConfigurationProblem)
    /// A count (an output size, parameters, FLOPs) does not fit in a 64-bit integer.
    case countOverflow(quantity: String, factors: [Int])
    /// Calibration statistics that do not fit the layer, or that cannot be merged or read.
    case statistics(StatisticsProblem)
    /// SVD of a convolution needs a 1×1 kernel.
    case svdNeedsPointwise(kernel: [Int])

    public var description: String {
        switch self {
        case let .invalidWeightShape(layer, shape, expected): return "\(layer): weight shape \(shape) must be \(expected)"
        case let .biasCount(layer, count, expected): return "\(layer): \(count) biases for \(expected) outputs"
        case let .nonFinite(layer, tensor, index): return "\(layer): the \(tensor) has a non-finite value (NaN or infinity) at flat index \(index)"
        case let .invalidSetting(layer, setting, value, requirement): return "\(layer): \(setting) \(value) must be \(requirement)"
        case let .inputShape(layer, expected, actual): return "\(layer): expected input \(expected), got shape \(actual)"
        case let .invalidBudget(fraction): return "FLOP budget \(fraction) must be in (0, 1]"
        case let .channelModes(outputModes, inputModes, outChannels, inChannels):
            return "TT output modes \(outputModes) must multiply to \(outChannels) and input modes \(inputModes) to \(inChannels), with equal counts"
        case let .factorShapes(layer, shapes, expected): return "\(layer): factors of shapes \(shapes) do not fit; expected \(expected)"
        case let .depthwiseNotFactorable(groups):
            return "a depthwise convolution (groups = \(groups), one input channel per group) has no channel modes to factor; "
                + "CP, Tucker-2 and TT need at least two input channels per group"
        case let .groupedTensorTrain(groups):
            return "TT decomposition of grouped convolutions (groups = \(groups)) is not supported; use CP or Tucker-2"
        case let .layerConfiguration(location, problem):
            return "layer configuration\(location.isEmpty ? "" : " at " + location): \(problem)"
        case let .statistics(problem): return "calibration statistics: \(problem)"
        case let .svdNeedsPointwise(kernel):
            return "SVD of a convolution needs a 1×1 kernel, not \(kernel.map(String.init).joined(separator: "×")); use CP or Tucker-2"
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
