import Decompositions
import Foundation
import NNLayers
import Synchronization
import TensorIO
import TensorModule

extension ModelCompressor {
    /// The new file's tensors laid out in the input's order as decompositions finish: a replaced
    /// weight's stack takes its place and its bias disappears; every other tensor is copied.
    struct FileLayout: Sendable {
        let file: SafetensorsFile
        /// The plan index deciding each weight and bias of a decomposition.
        let decidedBy: [String: Int]
        /// Per decomposition, its tensors (weight, bias) not laid out yet.
        var unplaced: [Int: Int]
        let plans: [PlannedLayer]
        /// Finished layers whose tensors are not all laid out yet.
        var outcomes: [Int: LayerOutcome] = [:]
        /// The layers finished so far.
        var finishedCount = 0
        /// The next input tensor to lay out.
        var position = 0
        /// Whether ``writer`` collects the runs (else they are only returned).
        let keepsTensors: Bool
        /// Every tensor laid out so far, when ``keepsTensors``.
        var writer = SafetensorsWriter()

        init(file: SafetensorsFile, plans: [PlannedLayer], keepsTensors: Bool) {
            self.file = file
            self.plans = plans
            self.keepsTensors = keepsTensors
            var decidedBy: [String: Int] = [:], unplaced: [Int: Int] = [:]
            for (k, plan) in plans.enumerated() {
                guard plan.isCandidate, case let .stateDict(_, name, bias) = plan.source else { continue }
                decidedBy[name] = k
                if let bias { decidedBy[bias] = k }
                unplaced[k] = bias == nil ? 1 : 2
            }
            self.decidedBy = decidedBy
            self.unplaced = unplaced
        }

        /// Lays out the input's tensors from `position` up to the first whose layer has not
        /// finished, and returns them.
        mutating func advance() throws -> SafetensorsWriter {
            var run = SafetensorsWriter()
            let names = file.names
            while position < names.count {
                let name = names[position]
                if let k = decidedBy[name] {
                    guard let outcome = outcomes[k] else { break }
                    guard case let .stateDict(_, weight, _) = plans[k].source else { preconditionFailure("decided by a decomposition") }
                    if !outcome.report.status.isReplaced {
                        try run.addRaw(name, from: file)
                    } else if name == weight {
                        try run.append(contentsOf: outcome.tensors)
                    }
                    // A layer leaves once its weight and bias are both laid out (in either order).
                    unplaced[k]! -= 1
                    if unplaced[k] == 0 { outcomes[k] = nil }
                } else {
                    try run.addRaw(name, from: file)
                }
                position += 1
            }
            if keepsTensors { try writer.append(contentsOf: run) }
            return run
        }
    }
}
