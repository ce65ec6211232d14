/// Untrusted text (agent ids, cluster names from a HELLO, request paths, reasons sent by a peer)
/// goes into log lines only through `logQuoted`: quoted, with quotes, backslashes and every
/// control character escaped, and cut to a bounded length, so a peer can neither forge a log
/// line (an embedded newline), drive a terminal (ESC sequences) nor flood a line.
extension String {
    /// Longest untrusted field kept in a log line, in Unicode scalars.
    public static let logFieldLimit = 256

    public var logQuoted: String {
        var out = "\""
        var count = 0
        for scalar in unicodeScalars {
            if count == Self.logFieldLimit {
                out += "…"
                break
            }
            count += 1
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            // C0 controls, DEL, C1 controls, and the bidi overrides that reorder what a reader sees.
            case "\u{0}"..."\u{1F}", "\u{7F}"..."\u{9F}", "\u{202A}"..."\u{202E}", "\u{2066}"..."\u{2069}":
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension Substring {
    public var logQuoted: String { String(self).logQuoted }
}
