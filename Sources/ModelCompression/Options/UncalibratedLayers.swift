/// What a data-aware run does with the candidate layers that its calibration statistics do not
/// name: the nodes of an `If` branch that no calibration input took (a model's 8 kHz path when
/// it was calibrated at 16 kHz), of a loop body nested too deep to expose, or layers left out of
/// the calibration.
///
/// ```swift
/// var options = CompressionOptions()
/// options.statistics = try CalibrationStatistics(contentsOf: url)
/// options.budget = .macs(0.67)
/// // the default, .skip: the budget is spent over the calibrated layers only
/// options.uncalibratedLayers = .dataFree   // also compress the others from their weights alone
/// ```
///
/// The default leaves them as they are, for the reason a budget without statistics needs
/// ``CompressionOptions/dataFree``: data-free factors can break the path through them, and a
/// budget spends the MACs they save where no calibration input shows the damage.
public enum UncalibratedLayers: String, Sendable, Equatable, CaseIterable {
    /// Leave them as they are (``LayerStatus/skippedUncalibrated``), outside the budget as
    /// layers that `exclude` names are: a budget's fraction is then of the calibrated layers' MACs
    /// (or parameters), and the paths no calibration input reached compute what they did
    /// (``CompressionWarning/uncalibratedSkipped(layers:candidates:)``). The default.
    case skip
    /// Compress them from their weights alone, beside the data-aware ones, and count them in the
    /// budget (with the ``CompressionWarning/statisticsMissing(layers:candidates:)`` warning).
    /// Data-free factors can break the path through them: Silero VAD's 8 kHz branch, compressed
    /// so beside a 16 kHz calibration, agrees with the original on 15% of its decisions.
    case dataFree = "data-free"
}
