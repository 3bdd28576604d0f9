import Foundation
import SwiftProtobuf

/// The value of a node attribute.
public enum ONNXAttribute: Sendable, Equatable {
    /// `FLOAT`, e.g. `Gemm`'s `alpha`.
    case float(Float)
    /// `INT`, e.g. `Conv`'s `group`.
    case int(Int)
    /// `STRING`, e.g. `Conv`'s `auto_pad`.
    case string(String)
    /// `TENSOR`, e.g. `Constant`'s `value`.
    case tensor(ONNXTensor)
    /// `FLOATS`.
    case floats([Float])
    /// `INTS`, e.g. `Conv`'s `pads`.
    case ints([Int])
    /// `STRINGS`.
    case strings([String])
    /// A subgraph, sparse tensor, type or list of them: kept as it is, not decoded here.
    case other(type: Int)
}

/// One node of a graph: an operator applied to named inputs, producing named outputs.
///
/// A node read from a model keeps every field it was read with (doc string, metadata, subgraph
/// attributes); one made with ``init(opType:name:inputs:outputs:attributes:domain:)`` has what it is given.
///
/// ```swift
/// let node = ONNXNode(opType: "Conv", name: "conv1/tucker2/0", inputs: ["x", "conv1/tucker2/0.weight"],
///                     outputs: ["conv1/tucker2/0.out"], attributes: [("kernel_shape", .ints([1, 1]))])
/// let strides = node.ints("strides") ?? [1, 1]
/// ```
public struct ONNXNode: Sendable, Equatable {
    var proto: Onnx_NodeProto

    init(proto: Onnx_NodeProto) { self.proto = proto }

    /// A new node; attributes keep the order given.
    public init(opType: String, name: String, inputs: [String], outputs: [String],
                attributes: [(String, ONNXAttribute)] = [], domain: String = "") {
        var proto = Onnx_NodeProto()
        proto.opType = opType
        proto.name = name
        proto.input = inputs
        proto.output = outputs
        if !domain.isEmpty { proto.domain = domain }
        proto.attribute = attributes.map { Self.encode($0.0, $0.1) }
        self.proto = proto
    }

    /// The node's name (may be empty in a model).
    public var name: String {
        get { proto.name }
        set { proto.name = newValue }
    }
    /// The operator, e.g. `Conv`.
    public var opType: String { proto.opType }
    /// The operator's domain: empty (or `ai.onnx`) for the standard operators.
    public var domain: String { proto.domain }
    /// Whether the operator is a standard ONNX one.
    public var isStandard: Bool { proto.domain.isEmpty || proto.domain == "ai.onnx" }
    /// Input value names; an empty name is an omitted optional input.
    public var inputs: [String] {
        get { proto.input }
        set { proto.input = newValue }
    }
    /// Output value names.
    public var outputs: [String] {
        get { proto.output }
        set { proto.output = newValue }
    }

    /// The attribute names, in the node's order.
    public var attributeNames: [String] { proto.attribute.map(\.name) }

    /// The attribute called `name`, decoded.
    public func attribute(_ name: String) -> ONNXAttribute? {
        guard let a = proto.attribute.first(where: { $0.name == name }) else { return nil }
        switch a.type {
        case .float: return .float(a.f)
        case .int: return .int(Int(clamping: a.i))
        case .string: return .string(String(decoding: a.s, as: UTF8.self))
        case .tensor: return .tensor(ONNXTensor(proto: a.t))
        case .floats: return .floats(a.floats)
        case .ints: return .ints(a.ints.map { Int(clamping: $0) })
        case .strings: return .strings(a.strings.map { String(decoding: $0, as: UTF8.self) })
        case .undefined:
            // Very old exporters leave the type out: infer it from the field that is set.
            if a.hasT { return .tensor(ONNXTensor(proto: a.t)) }
            if !a.ints.isEmpty { return .ints(a.ints.map { Int(clamping: $0) }) }
            if !a.floats.isEmpty { return .floats(a.floats) }
            if a.hasI { return .int(Int(clamping: a.i)) }
            if a.hasF { return .float(a.f) }
            if a.hasS { return .string(String(decoding: a.s, as: UTF8.self)) }
            return .other(type: 0)
        default: return .other(type: a.type.rawValue)
        }
    }

    /// An `INT` attribute.
    public func int(_ name: String) -> Int? {
        if case let .int(v) = attribute(name) { return v }
        return nil
    }
    /// An `INTS` attribute.
    public func ints(_ name: String) -> [Int]? {
        if case let .ints(v) = attribute(name) { return v }
        return nil
    }
    /// A `FLOAT` attribute.
    public func float(_ name: String) -> Float? {
        if case let .float(v) = attribute(name) { return v }
        return nil
    }
    /// A `STRING` attribute.
    public func string(_ name: String) -> String? {
        if case let .string(v) = attribute(name) { return v }
        return nil
    }
    /// A `TENSOR` attribute.
    public func tensor(_ name: String) -> ONNXTensor? {
        if case let .tensor(v) = attribute(name) { return v }
        return nil
    }

    /// Sets (or adds at the end) an attribute.
    public mutating func setAttribute(_ name: String, _ value: ONNXAttribute) {
        let encoded = Self.encode(name, value)
        if let k = proto.attribute.firstIndex(where: { $0.name == name }) { proto.attribute[k] = encoded } else { proto.attribute.append(encoded) }
    }

    /// Removes an attribute if present.
    public mutating func removeAttribute(_ name: String) {
        proto.attribute.removeAll { $0.name == name }
    }

    static func encode(_ name: String, _ value: ONNXAttribute) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        switch value {
        case let .float(v): a.type = .float; a.f = v
        case let .int(v): a.type = .int; a.i = Int64(v)
        case let .string(v): a.type = .string; a.s = Data(v.utf8)
        case let .tensor(v): a.type = .tensor; a.t = v.proto
        case let .floats(v): a.type = .floats; a.floats = v
        case let .ints(v): a.type = .ints; a.ints = v.map(Int64.init)
        case let .strings(v): a.type = .strings; a.strings = v.map { Data($0.utf8) }
        case .other: preconditionFailure("ONNXNode.setAttribute: \(name) cannot be set from .other")
        }
        return a
    }
}
