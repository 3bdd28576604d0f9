import ArgumentParser
import Foundation
import TensorDecompositions

struct Simplify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fold elementwise scales, shifts and BatchNormalization into convolutions and Gemm, shorten hard-swish, make Constant nodes initializers (exact rewrites of an ONNX graph).",
        discussion: """
            The rewrites of compress --simplify, alone: a Mul/Add/Sub/Div by a per-channel constant or an inference \
            BatchNormalization right after a Conv \
            goes into its weight and bias; a chain of them read only by convolutions goes into theirs (before a padded \
            convolution only the scale does, and the chain becomes one Add); per-column ones (and BatchNormalization) after \
            a Gemm with constant B and C go into B and C; x·clip(x+3, 0, 6)/6 becomes x·HardSigmoid(x); \
            Constant nodes become initializers (IR 4 and later), which onnxruntime's quantizer needs. \
            Outputs change only by floating-point rounding. Useful as the baseline of a compressed model simplified the same way.
            """)

    @Argument(help: "The model (.onnx).") var model: String
    @Option(help: "The simplified model (.onnx).") var output: String
    @Flag(help: "Allow --output to be the input model itself (it is replaced only when everything succeeded).") var inPlace = false
    @Flag(help: "Print one JSON document on standard output.") var json = false

    func validate() throws {
        guard isONNX(model), isONNX(output) else { throw ValidationError("simplify reads and writes .onnx models (\(model) → \(output))") }
    }

    func run() throws {
        let outputFile = try OutputFile(path: output)
        if outputFile.isSameFile(as: model) && !inPlace {
            throw ValidationError("--output \(output) is the input model; pass --in-place to replace it")
        }
        var source = try ONNXModel(contentsOf: URL(fileURLWithPath: model))
        let inputs = [model] + source.externalDataFiles.map(\.path)
        let result = try source.simplify()
        let previous = ONNXModel.ownDataFiles(ofModelAt: outputFile.target)
        let outputs = try source.outputFiles(for: outputFile)
        try OutputFile.checkNotReading(outputs.map(\.0).filter { $0 != outputFile }, inputs: inputs)
        try OutputFile.write(outputs)
        ONNXModel.removeReplacedData(previous, of: outputFile.target, keeping: inputs)
        if json { print(try jsonString(result)); return }
        print(Self.summary(result))
        print("wrote \(output)")
    }

    static func summary(_ r: ONNXSimplification) -> String {
        "simplified: \(r.foldedIntoPrecedingConvolution) elementwise nodes folded into the convolution before them, "
            + "\(r.foldedIntoFollowingConvolutions) into the convolutions after them"
            + (r.foldedIntoPrecedingGemm > 0 ? ", \(r.foldedIntoPrecedingGemm) into the Gemm before them" : "")
            + " (\(r.batchNormalizations) of them BatchNormalization), "
            + "\(r.hardSwishes) hard-swishes shortened, \(r.constantsToInitializers) Constant nodes made initializers; nodes \(r.nodesBefore) → \(r.nodesAfter)"
    }
}
