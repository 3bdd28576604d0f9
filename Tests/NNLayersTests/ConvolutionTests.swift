import Testing
import TensorModule
import NNLayers
import TestSupport

/// One convolution setting of the test grid.
struct ConvSetting: Sendable, CustomStringConvertible {
    var kernel: Size2D
    var stride: Size2D
    var padding: Padding
    var dilation: Size2D
    var groups: Int
    var bias: Bool
    var batch: Int
    var input: Size2D
    var description: String {
        "k\(kernel) s\(stride) p\(padding) d\(dilation) g\(groups) bias \(bias) n\(batch) in\(input)"
    }

    /// A deterministic sample of the grid that covers every value of every axis several times:
    /// kernels 1×1, 3×3, 5×5, 3×5; strides 1, 2, (2, 1); paddings 0, 1, (0, 1, 1, 0), "same";
    /// dilations 1, 2; groups 1, 2, 4; with and without bias; batch 1 and 3; non-square inputs.
    static let grid: [ConvSetting] = {
        let kernels = [Size2D(1), Size2D(3), Size2D(5), Size2D(3, 5)]
        let strides = [Size2D(1), Size2D(2), Size2D(2, 1)]
        let dilations = [Size2D(1), Size2D(2)]
        var settings: [ConvSetting] = []
        for index in 0..<48 {
            let kernel = kernels[index % 4]
            let dilation = dilations[(index / 4) % 2]
            let paddings = [Padding.zero, .symmetric(1), Padding(top: 0, bottom: 1, left: 1, right: 0), .same(kernel: kernel, dilation: dilation)]
            settings.append(ConvSetting(
                kernel: kernel, stride: strides[(index / 2) % 3], padding: paddings[(index / 8) % 4], dilation: dilation,
                groups: [1, 2, 4][(index / 3) % 3], bias: index % 5 != 0, batch: index % 2 == 0 ? 1 : 3,
                input: Size2D(11 + index % 3, 13 + index % 4)))
        }
        // Kernels of height or width 1 without stride or padding on that axis (a CP stack leaves
        // that depthwise layer out), and one with a stride there (it keeps it).
        settings += [
            ConvSetting(kernel: Size2D(1, 3), stride: Size2D(1), padding: Padding(top: 0, bottom: 0, left: 1, right: 1), dilation: Size2D(1),
                        groups: 2, bias: true, batch: 2, input: Size2D(9, 12)),
            ConvSetting(kernel: Size2D(3, 1), stride: Size2D(2, 1), padding: .zero, dilation: Size2D(2, 1),
                        groups: 1, bias: false, batch: 1, input: Size2D(12, 10)),
            ConvSetting(kernel: Size2D(1), stride: Size2D(1), padding: .zero, dilation: Size2D(1),
                        groups: 4, bias: true, batch: 1, input: Size2D(7, 8)),
            ConvSetting(kernel: Size2D(1, 3), stride: Size2D(2, 1), padding: Padding(top: 0, bottom: 0, left: 0, right: 2), dilation: Size2D(1, 2),
                        groups: 1, bias: true, batch: 1, input: Size2D(9, 11)),
        ]
        return settings
    }()
}

@Suite("Conv2D forward pass")
struct ConvolutionTests {
    func checkForward<S: BLASScalar>(_: S.Type, _ setting: ConvSetting, channels: (Int, Int) = (8, 12)) throws {
        let (inChannels, outChannels) = channels
        let weight = Tensor<S>.randomNormal(shape: [outChannels, inChannels / setting.groups, setting.kernel.height, setting.kernel.width], seed: 1)
        let bias = setting.bias ? Tensor<S>.randomNormal(shape: [outChannels], seed: 2).scalars.map { $0 } : nil
        let conv = try Conv2D(weight: weight, bias: bias, stride: setting.stride, padding: setting.padding,
                              dilation: setting.dilation, groups: setting.groups)
        let x = Tensor<S>.randomNormal(shape: [setting.batch, inChannels, setting.input.height, setting.input.width], seed: 3)
        let y = try conv(x)
        let p = setting.padding
        let expected = Reference.conv2d(x, weight: weight, bias: bias, stride: (setting.stride.height, setting.stride.width),
                                        padding: (p.top, p.bottom, p.left, p.right),
                                        dilation: (setting.dilation.height, setting.dilation.width), groups: setting.groups)
        #expect(y.shape == expected.shape, "\(setting)")
        #expect(try y.relativeError(to: expected) <= Reference.tolerance(S.self, ulps: 200), "\(setting)")
        let out = try conv.outputSize(height: setting.input.height, width: setting.input.width)
        #expect([out.height, out.width] == Array(expected.shape[2...]))
    }

    @Test(arguments: ConvSetting.grid)
    func matchesTheDefinition(setting: ConvSetting) throws {
        try checkForward(Float.self, setting)
        try checkForward(Double.self, setting)
    }

    @Test(arguments: [1, 2])
    func depthwiseMatchesTheDefinition(multiplier: Int) throws {
        for setting in ConvSetting.grid.prefix(12) {
            var depthwise = setting
            depthwise.groups = 6
            try checkForward(Float.self, depthwise, channels: (6, 6 * multiplier))
            try checkForward(Double.self, depthwise, channels: (6, 6 * multiplier))
        }
    }

    @Test func samePaddingKeepsTheSize() throws {
        for (kernel, dilation) in [(Size2D(3), Size2D(1)), (Size2D(4), Size2D(1)), (Size2D(3, 5), Size2D(2))] {
            let conv = try Conv2D(weight: Tensor<Float>.zeros(shape: [2, 2, kernel.height, kernel.width]),
                                  padding: .same(kernel: kernel, dilation: dilation), dilation: dilation)
            #expect(try conv.outputSize(height: 9, width: 10) == Size2D(9, 10))
        }
    }

    @Test func badSettingsAndInputsThrow() throws {
        let w = Tensor<Float>.zeros(shape: [4, 2, 3, 3])
        #expect(throws: NNLayersError.biasCount(layer: "Conv2D", count: 3, expected: 4)) { try Conv2D(weight: w, bias: [0, 0, 0]) }
        #expect(throws: NNLayersError.self) { try Conv2D(weight: w, groups: 3) }
        #expect(throws: NNLayersError.self) { try Conv2D(weight: w, stride: Size2D(0, 1)) }
        #expect(throws: NNLayersError.self) { try Conv2D(weight: w, padding: Padding(top: -1, bottom: 0, left: 0, right: 0)) }
        #expect(throws: NNLayersError.self) { try Conv2D(weight: Tensor<Float>.zeros(shape: [4, 2, 3])) }
        var nan = w
        nan[0, 0, 0, 0] = .nan
        #expect(throws: NNLayersError.self) { try Conv2D(weight: nan) }
        let conv = try Conv2D(weight: w)
        #expect(throws: NNLayersError.inputShape(layer: "Conv2D conv 2→4 3×3", expected: "(N, 2, H, W)", actual: [1, 3, 8, 8])) {
            try conv(Tensor<Float>.zeros(shape: [1, 3, 8, 8]))
        }
        #expect(throws: NNLayersError.self) { try conv(Tensor<Float>.zeros(shape: [1, 2, 2, 8])) }
        #expect(throws: NNLayersError.self) { try conv(Tensor<Float>.zeros(shape: [2, 8, 8])) }
        let fc = try Linear(weight: Matrix<Float>.zeros(rows: 3, columns: 4))
        #expect(throws: NNLayersError.self) { try fc(Tensor<Float>.zeros(shape: [2, 5])) }
        #expect(throws: NNLayersError.self) { try Linear(weight: Matrix<Float>.zeros(rows: 3, columns: 4), bias: [1]) }
    }

    func checkLinear<S: BLASScalar>(_: S.Type) throws {
        let w = Matrix<S>.randomNormal(rows: 5, columns: 7, seed: 1)
        let fc = try Linear(weight: w, bias: [1, 2, 3, 4, 5])
        let x = Tensor<S>.randomNormal(shape: [2, 3, 7], seed: 2)
        let y = try fc(x)
        #expect(y.shape == [2, 3, 5])
        for a in 0..<2 { for b in 0..<3 { for o in 0..<5 {
            var sum = S(o + 1)
            for i in 0..<7 { sum += w[o, i] * x[a, b, i] }
            #expect(abs(y[a, b, o] - sum) <= Reference.tolerance(S.self, ulps: 200) * 10)
        } } }
    }

    @Test func linearMatchesTheDefinition() throws {
        try checkLinear(Float.self)
        try checkLinear(Double.self)
    }
}
