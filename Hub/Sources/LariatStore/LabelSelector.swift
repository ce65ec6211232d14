/// A Kubernetes label selector: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`,
/// joined by commas, all of which must hold.
public struct LabelSelector: Sendable, Equatable, CustomStringConvertible {
    public enum Requirement: Sendable, Equatable {
        case equals(String, String)
        case notEquals(String, String)
        case isIn(String, Set<String>)
        case notIn(String, Set<String>)
        case exists(String)
        case doesNotExist(String)
    }

    public var requirements: [Requirement]
    public static let everything = LabelSelector(requirements: [])

    public init(requirements: [Requirement]) { self.requirements = requirements }

    public struct ParseError: Error, CustomStringConvertible { public let description: String }

    public init(parsing text: String) throws(ParseError) {
        var reqs: [Requirement] = []
        for part in Self.splitTopLevel(text) {
            let p = part.trimmingCharacters(in: .whitespaces)
            if p.isEmpty { continue }
            reqs.append(try Self.requirement(p))
        }
        requirements = reqs
    }

    public func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { r in
            switch r {
            case .equals(let k, let v): labels[k] == v
            case .notEquals(let k, let v): labels[k] != v
            case .isIn(let k, let vs): labels[k].map(vs.contains) ?? false
            case .notIn(let k, let vs): !(labels[k].map(vs.contains) ?? false)
            case .exists(let k): labels[k] != nil
            case .doesNotExist(let k): labels[k] == nil
            }
        }
    }

    public var description: String {
        requirements.map { r in
            switch r {
            case .equals(let k, let v): "\(k)=\(v)"
            case .notEquals(let k, let v): "\(k)!=\(v)"
            case .isIn(let k, let vs): "\(k) in (\(vs.sorted().joined(separator: ",")))"
            case .notIn(let k, let vs): "\(k) notin (\(vs.sorted().joined(separator: ",")))"
            case .exists(let k): k
            case .doesNotExist(let k): "!\(k)"
            }
        }.joined(separator: ",")
    }

    /// Commas inside `( … )` belong to a set, not between requirements.
    private static func splitTopLevel(_ s: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var depth = 0
        for ch in s {
            if ch == "(" { depth += 1 } else if ch == ")" { depth -= 1 }
            if ch == "," && depth == 0 {
                parts.append(current)
                current = ""
            } else {
                current.append(ch)
            }
        }
        parts.append(current)
        return parts
    }

    private static func requirement(_ p: String) throws(ParseError) -> Requirement {
        if p.hasPrefix("!") { return .doesNotExist(try key(String(p.dropFirst()))) }
        if let r = p.range(of: "!=") {
            return .notEquals(try key(String(p[..<r.lowerBound])), try value(String(p[r.upperBound...])))
        }
        if let r = p.range(of: "==") ?? p.range(of: "=") {
            return .equals(try key(String(p[..<r.lowerBound])), try value(String(p[r.upperBound...])))
        }
        let words = p.split(separator: " ", maxSplits: 1).map(String.init)
        if words.count == 2 {
            let rest = words[1].trimmingCharacters(in: .whitespaces)
            for (op, isIn) in [("notin", false), ("in", true)] where rest.hasPrefix(op) {
                let set = rest.dropFirst(op.count).trimmingCharacters(in: .whitespaces)
                guard set.hasPrefix("("), set.hasSuffix(")") else { break }
                var values = Set<String>()
                for v in set.dropFirst().dropLast().split(separator: ",") { values.insert(try value(String(v))) }
                return isIn ? .isIn(try key(words[0]), values) : .notIn(try key(words[0]), values)
            }
            throw ParseError(description: "label selector: cannot parse \"\(p)\"")
        }
        return .exists(try key(p))
    }

    private static func key(_ s: String) throws(ParseError) -> String {
        let k = s.trimmingCharacters(in: .whitespaces)
        guard !k.isEmpty, k.utf8.count <= 317, k.allSatisfy({ $0.isLetter || $0.isNumber || "-_./".contains($0) }) else {
            throw ParseError(description: "label selector: invalid key \"\(k)\"")
        }
        return k
    }

    private static func value(_ s: String) throws(ParseError) -> String {
        let v = s.trimmingCharacters(in: .whitespaces)
        guard v.utf8.count <= 63, v.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw ParseError(description: "label selector: invalid value \"\(v)\"")
        }
        return v
    }
}

import Foundation
