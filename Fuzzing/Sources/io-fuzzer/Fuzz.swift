import Foundation
import TensorIO
import TensorModule

/// libFuzzer entry point: the first byte picks the reader, the rest is the file. Every input must
/// load or throw a `TensorIOError`; anything else (a crash, a trap, another error) is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    let data = Data(bytes[1...])
    do {
        if bytes[0] % 2 == 0 {
            _ = try Tensor<Float>(npyData: data)
        } else {
            let file = try SafetensorsFile(data: data)
            for name in file.names { _ = try file.tensor(named: name, as: Float.self) }
        }
    } catch is TensorIOError {
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
