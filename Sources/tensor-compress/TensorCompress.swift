import ArgumentParser
import Foundation

struct TensorCompress: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tensor-compress",
        abstract: "Inspect, decompose and compress the weights of neural networks (ONNX, safetensors, sharded checkpoints).",
        discussion: """
            4-D weights are treated as convolution kernels (OIHW), 2-D weights as linear layers (out, in). \
            OPENBLAS_NUM_THREADS sets the BLAS thread count. Every error prints one line \
            'tensor-compress: error: …' on standard error and exits with status 1, writing nothing.
            """,
        version: "0.4.0",
        subcommands: [Inspect.self, Decompose.self, Compress.self, Simplify.self, MergeIndex.self, GenerateModel.self]
    )

    /// Without a subcommand: the help on standard error, and a failure status.
    func run() throws {
        FileHandle.standardError.write(Data((Self.helpMessage() + "\n").utf8))
        throw ExitCode(1)
    }
}

/// The entry point: argument-parser's parsing and running, with every error turned into one line
/// and exit status 1 (argument-parser's own default prints the usage and exits 64).
@main
enum Main {
    static func main() {
        do {
            var command = try TensorCompress.parseAsRoot()
            try command.run()
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch {
            let code = TensorCompress.exitCode(for: error)
            if code == .success {
                TensorCompress.exit(withError: error)   // --help, --version: argument-parser prints them
            }
            let message = (commandLineMessage(for: error) ?? TensorCompress.message(for: error))
                .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                .joined(separator: " ")
            printError("tensor-compress: error: \(message)")
            Foundation.exit(1)
        }
    }
}
