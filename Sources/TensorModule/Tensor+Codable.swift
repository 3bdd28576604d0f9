extension Tensor: Codable {
    enum CodingKeys: String, CodingKey { case shape, scalars }

    /// Decodes `{"shape": [...], "scalars": [...]}`, checking the count.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let shape = try container.decode([Int].self, forKey: .shape)
        let scalars = try container.decode([Scalar].self, forKey: .scalars)
        do { try self.init(shape: shape, scalars: scalars) } catch {
            throw DecodingError.dataCorruptedError(forKey: .scalars, in: container, debugDescription: "\(error)")
        }
    }

    /// Encodes `{"shape": [...], "scalars": [...]}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(shape, forKey: .shape)
        try container.encode(Array(storage), forKey: .scalars)
    }
}

extension Matrix: Codable {
    /// Decodes the form of an order-2 ``Tensor``.
    public init(from decoder: any Decoder) throws {
        let tensor = try Tensor<Scalar>(from: decoder)
        guard tensor.order == 2 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a matrix needs an order-2 shape, got \(tensor.shape)"))
        }
        self.init(tensor)
    }

    /// Encodes the form of an order-2 ``Tensor``.
    public func encode(to encoder: any Encoder) throws { try Tensor(self).encode(to: encoder) }
}
