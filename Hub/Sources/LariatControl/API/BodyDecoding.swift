import Foundation

/// Request bodies: JSON only, decoded strictly. Malformed JSON is a 400; a wrong type, a
/// missing field or a field the type does not have is a 422 naming the field — a typo in a
/// field name must not pass silently as "not given".
public enum BodyDecoding {
    public static func decode<T: Codable>(_ type: T.Type, from body: Data) throws -> T {
        guard !body.isEmpty else { throw APIError.badRequest("a JSON body is required") }
        let raw: Any
        do {
            raw = try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
        } catch {
            throw APIError.badRequest("the body is not valid JSON")
        }
        let value: T
        do {
            value = try APIJSON.decoder.decode(T.self, from: body)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw APIError.invalid([FieldError(path(context.codingPath), "wrong type: \(context.debugDescription)")])
        } catch let DecodingError.keyNotFound(key, context) {
            throw APIError.invalid([FieldError(path(context.codingPath + [key]), "required")])
        } catch let DecodingError.dataCorrupted(context) {
            throw APIError.invalid([FieldError(path(context.codingPath), context.debugDescription)])
        } catch {
            throw APIError.badRequest("cannot decode the body: \(error)")
        }
        // Every field given must be one the type keeps: compare with the value encoded back.
        let known = try JSONSerialization.jsonObject(with: APIJSON.encoder.encode(value), options: [.fragmentsAllowed])
        if let unknown = firstUnknown(given: raw, known: known, path: "") {
            throw APIError.invalid([FieldError(unknown, "unknown field")])
        }
        return value
    }

    private static func firstUnknown(given: Any, known: Any, path: String) -> String? {
        if let g = given as? [String: Any] {
            let k = known as? [String: Any] ?? [:]
            for key in g.keys.sorted() {
                let child = path.isEmpty ? key : path + "." + key
                guard let kv = k[key] else {
                    if g[key] is NSNull { continue }  // an explicit null for an absent optional
                    return child
                }
                if let found = firstUnknown(given: g[key]!, known: kv, path: child) { return found }
            }
        } else if let g = given as? [Any], let k = known as? [Any] {
            for (i, (gv, kv)) in zip(g, k).enumerated() {
                if let found = firstUnknown(given: gv, known: kv, path: "\(path)[\(i)]") { return found }
            }
        }
        return nil
    }

    static func path(_ keys: [any CodingKey]) -> String {
        var s = ""
        for k in keys {
            if let i = k.intValue { s += "[\(i)]" } else { s += s.isEmpty ? k.stringValue : "." + k.stringValue }
        }
        return s.isEmpty ? "body" : s
    }
}
