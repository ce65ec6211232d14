/// Header fields in the order they were received or added.
///
/// HTTP allows a field name to repeat and gives meaning to the order, so this is a list of
/// (name, value) pairs rather than a dictionary. Name lookups ignore ASCII case
/// (RFC 9110 §5.1); names keep the spelling they were given.
public struct HTTPHeaders: Sendable, Equatable, RandomAccessCollection, ExpressibleByDictionaryLiteral,
    CustomStringConvertible
{
    public typealias Field = (name: String, value: String)

    public private(set) var fields: [Field]

    public init() { fields = [] }

    public init(_ fields: [(String, String)]) {
        self.fields = fields.map { (name: $0.0, value: $0.1) }
    }

    /// A dictionary literal keeps its order and its duplicates: `["Via": "a", "Via": "b"]`.
    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    // MARK: Collection

    public var startIndex: Int { fields.startIndex }
    public var endIndex: Int { fields.endIndex }
    public subscript(position: Int) -> Field { fields[position] }

    // MARK: Lookup

    /// Every value of the field `name`, in order.
    public subscript(name: String) -> [String] {
        fields.compactMap { ASCII.equalsCaseInsensitive($0.name, name) ? $0.value : nil }
    }

    /// The first value of the field `name`.
    public func first(name: String) -> String? {
        fields.first { ASCII.equalsCaseInsensitive($0.name, name) }?.value
    }

    public func contains(name: String) -> Bool {
        fields.contains { ASCII.equalsCaseInsensitive($0.name, name) }
    }

    /// The comma-separated elements of every `name` field, trimmed, in order
    /// (`Connection: keep-alive, Upgrade` → ["keep-alive", "Upgrade"]).
    public func tokens(name: String) -> [Substring] {
        self[name].flatMap { ASCII.commaSeparatedElements($0) }
    }

    /// Whether the list-valued field `name` has `token` as one of its elements, ignoring case.
    public func containsToken(_ token: String, name: String) -> Bool {
        tokens(name: name).contains { ASCII.equalsCaseInsensitive(String($0), token) }
    }

    // MARK: Mutation

    public mutating func add(name: String, value: String) {
        fields.append((name: name, value: value))
    }

    /// Removes every `name` field and appends one with `value`.
    public mutating func replaceOrAdd(name: String, value: String) {
        remove(name: name)
        add(name: name, value: value)
    }

    public mutating func remove(name: String) {
        fields.removeAll { ASCII.equalsCaseInsensitive($0.name, name) }
    }

    // MARK: Serialisation

    /// Appends `name: value\r\n` for each field.
    public func write(into buffer: inout [UInt8]) {
        for field in fields {
            buffer.appendFieldText(field.name)
            buffer.append(ASCII.colon)
            buffer.append(ASCII.space)
            buffer.appendFieldText(field.value)
            buffer.append(ASCII.cr)
            buffer.append(ASCII.lf)
        }
    }

    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.fields.count == rhs.fields.count
            && zip(lhs.fields, rhs.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public var description: String {
        "[" + fields.map { "\($0.name): \($0.value)" }.joined(separator: ", ") + "]"
    }
}
