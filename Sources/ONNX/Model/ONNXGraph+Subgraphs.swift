/// One step from a graph into a subgraph: the node that holds it, its attribute, and the position
/// in a `GRAPHS` attribute (`nil` for a `GRAPH` attribute such as `If`'s `then_branch`).
public struct ONNXSubgraphStep: Sendable, Hashable {
    /// The holding node's index in its graph.
    public var node: Int
    /// The attribute's name (`then_branch`, `else_branch`, `body`).
    public var attribute: String
    /// The position in a list of graphs, `nil` for a single graph.
    public var index: Int?
}

extension ONNXGraph {
    /// Every subgraph (the bodies of `If`, `Loop`, `Scan` and any other graph attribute) at any
    /// depth, parents before their children, each with its path from this graph and a label that
    /// names it (`If_0/then_branch`, `If_0/then_branch/Loop_2/body`).
    ///
    /// ```swift
    /// for (path, label, body) in model.graph.subgraphs() { print(label, body.nodes.count, path.count) }
    /// ```
    public func subgraphs() -> [(path: [ONNXSubgraphStep], label: String, graph: ONNXGraph)] {
        var result: [(path: [ONNXSubgraphStep], label: String, graph: ONNXGraph)] = []
        func visit(_ graph: Onnx_GraphProto, _ path: [ONNXSubgraphStep], _ prefix: String) {
            for (k, node) in graph.node.enumerated() {
                let name = node.name.isEmpty ? "\(node.opType)_\(k)" : node.name
                for attribute in node.attribute {
                    var bodies: [(Int?, Onnx_GraphProto)] = attribute.hasG ? [(nil, attribute.g)] : []
                    bodies += attribute.graphs.enumerated().map { ($0.offset, $0.element) }
                    for (index, body) in bodies {
                        let step = ONNXSubgraphStep(node: k, attribute: attribute.name, index: index)
                        let label = prefix + name + "/" + attribute.name + (index.map { "[\($0)]" } ?? "")
                        result.append((path + [step], label, ONNXGraph(proto: body)))
                        visit(body, path + [step], label + "/")
                    }
                }
            }
        }
        visit(proto, [], "")
        return result
    }

    /// The subgraph at `path` (from ``subgraphs()``), or `nil` when the path does not lead to one.
    public func subgraph(at path: [ONNXSubgraphStep]) -> ONNXGraph? {
        var graph = proto
        for step in path {
            guard step.node < graph.node.count,
                  let attribute = graph.node[step.node].attribute.first(where: { $0.name == step.attribute }) else { return nil }
            if let index = step.index {
                guard index < attribute.graphs.count else { return nil }
                graph = attribute.graphs[index]
            } else {
                guard attribute.hasG else { return nil }
                graph = attribute.g
            }
        }
        return ONNXGraph(proto: graph)
    }

    /// Replaces the subgraph at `path` by `graph`; a path that leads nowhere changes nothing.
    public mutating func setSubgraph(_ graph: ONNXGraph, at path: [ONNXSubgraphStep]) {
        func set(_ target: inout Onnx_GraphProto, _ steps: ArraySlice<ONNXSubgraphStep>) {
            guard let step = steps.first, step.node < target.node.count,
                  let a = target.node[step.node].attribute.firstIndex(where: { $0.name == step.attribute }) else { return }
            if let index = step.index {
                guard index < target.node[step.node].attribute[a].graphs.count else { return }
                if steps.count == 1 { target.node[step.node].attribute[a].graphs[index] = graph.proto } else {
                    set(&target.node[step.node].attribute[a].graphs[index], steps.dropFirst())
                }
            } else {
                guard target.node[step.node].attribute[a].hasG else { return }
                if steps.count == 1 { target.node[step.node].attribute[a].g = graph.proto } else {
                    set(&target.node[step.node].attribute[a].g, steps.dropFirst())
                }
            }
        }
        set(&proto, path[...])
    }
}
