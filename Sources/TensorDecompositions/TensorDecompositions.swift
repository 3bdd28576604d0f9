@_exported import TensorModule
@_exported import Decompositions
@_exported import TensorIO
@_exported import NNLayers
@_exported import ONNX
@_exported import ModelCompression
