@_exported import TensorModule
@_exported import Decompositions
