import Foundation
import NNLayers
import TensorIO
import TensorModule

/// libFuzzer entry point: the first byte picks the reader, the rest is the input. Every input must
/// load or throw the reader's own error type (`TensorIOError`, or `NNLayersError` for the layer
/// configuration); anything else (a crash, a trap, another error) is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    let data = Data(bytes[1...])
    do {
        switch bytes[0] % 4 {
        case 0:
            _ = try Tensor<Float>(npyData: data)
        case 1:
            let file = try SafetensorsFile(data: data)
            for name in file.names { _ = try file.tensor(named: name, as: Float.self) }
        case 2:
            let archive = try NPZFile(data: data)
            for name in archive.names { _ = try? archive.tensor(named: name, as: Float.self) }
        default:
            // A --layer-config document, applied to a 4×2×3×3 kernel and costed at a 224×224 input.
            let kernel = try Tensor<Float>(shape: [4, 2, 3, 3], scalars: (0..<72).map { Float($0) })
            for (_, settings) in try Conv2DSettings.configuration(json: data) {
                guard let conv = try? settings.convolution(weight: kernel, bias: nil) else { continue }
                _ = try? Layer.conv2d(conv).cost(input: [conv.inChannels, 224, 224])
            }
        }
    } catch is TensorIOError {
    } catch is NNLayersError {
    } catch {
        fatalError("unexpected error type: \(error)")
    }
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafeRawPointer, Int) -> CInt
) -> CInt

/// SwiftPM links executables with `main` defined as `<target>_main`; hand control to libFuzzer's driver.
@_cdecl("io_fuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { start, size in fuzz(start, size) }
}
