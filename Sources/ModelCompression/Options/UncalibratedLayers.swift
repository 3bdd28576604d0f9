/// What a data-aware run does with the candidate layers that its calibration statistics do not
/// name: the nodes of an `If` branch that no calibration input took (a model's 8 kHz path when
/// it was calibrated at 16 kHz), of a loop body nested too deep to expose, or layers left out of
/// the calibration.
///
/// ```swift
/// var options = CompressionOptions()
/// options.statistics = try CalibrationStatistics(contentsOf: url)
/// options.budget = .macs(0.67)
/// options.uncalibratedLayers = .skip   // the budget is spent over the calibrated layers only
/// ```
public enum UncalibratedLayers: String, Sendable, Equatable, CaseIterable {
    /// Compress them from their weights alone, beside the data-aware ones, and count them in the
    /// budget (with the ``CompressionWarning/statisticsMissing(layers:candidates:)`` warning).
    /// Data-free factors can break the path through them: Silero VAD's 8 kHz branch, compressed
    /// so beside a 16 kHz calibration, agrees with the original on 15% of its decisions.
    case compress
    /// Leave them as they are (``LayerStatus/skippedUncalibrated``), outside the budget as
    /// layers that `exclude` names are: a budget's fraction is then of the calibrated layers' MACs
    /// (or parameters), and the paths no calibration input reached compute what they did
    /// (``CompressionWarning/uncalibratedSkipped(layers:candidates:)``).
    case skip
}
