import ArgumentParser

@main
struct TensorCompress: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tensor-compress",
        abstract: "Inspect, decompose and compress the weights of neural networks (safetensors).",
        discussion: """
            4-D weights are treated as convolution kernels (OIHW), 2-D weights as linear layers (out, in).
            OPENBLAS_NUM_THREADS sets the BLAS thread count.
            """,
        subcommands: [Inspect.self, Decompose.self, Compress.self, GenerateModel.self]
    )
}
