import TensorModule

extension TTMatrix: Codable {
    enum CodingKeys: String, CodingKey { case cores }

    /// Decodes `{"cores": [...]}`, checking the cores.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(cores: container.decode([Tensor<Scalar>].self, forKey: .cores))
    }

    /// Encodes `{"cores": [...]}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(cores, forKey: .cores)
    }
}
