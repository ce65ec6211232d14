import Foundation

/// A Kubernetes resource quantity ("4", "500m", "16Gi", "1024Ki", "129e6", "1.5"), parsed as
/// apimachinery's `resource.ParseQuantity` does:
///
///     quantity ::= [+-] number suffix
///     number   ::= digits | digits "." [digits] | "." digits
///     suffix   ::= "" | n | u | m | k | M | G | T | P | E          (powers of 1000)
///                | Ki | Mi | Gi | Ti | Pi | Ei                     (powers of 1024)
///                | (e | E) [+-] digits                            (power of ten)
///
/// The value is kept as a `Decimal` (exact for every suffix); `value` and `milliValue` round away
/// from zero as `Quantity.Value()` and `MilliValue()` do, and saturate at `Int64` limits.
public struct KubernetesQuantity: Sendable, Equatable, CustomStringConvertible {
    public let decimal: Decimal

    /// Decimal exponents beyond this are refused (`Decimal` holds exponents up to 127; a real
    /// quantity is never near it).
    static let maxDecimalExponent = 64

    public init?(_ text: String) {
        var s = Substring(text)
        var negative = false
        if let first = s.first, first == "+" || first == "-" {
            negative = first == "-"
            s = s.dropFirst()
        }
        let numberEnd = s.firstIndex { !($0.isASCII && ($0.isNumber || $0 == ".")) } ?? s.endIndex
        let number = s[..<numberEnd]
        let suffix = s[numberEnd...]
        let parts = number.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return nil }
        let whole = parts[0]
        let fraction = parts.count == 2 ? parts[1] : ""
        guard !(whole.isEmpty && fraction.isEmpty) else { return nil }

        var exponent10: Int
        var binaryPower = 0  // times 1024
        switch suffix {
        case "": exponent10 = 0
        case "n": exponent10 = -9
        case "u": exponent10 = -6
        case "m": exponent10 = -3
        case "k": exponent10 = 3
        case "M": exponent10 = 6
        case "G": exponent10 = 9
        case "T": exponent10 = 12
        case "P": exponent10 = 15
        case "E": exponent10 = 18
        case "Ki": exponent10 = 0; binaryPower = 1
        case "Mi": exponent10 = 0; binaryPower = 2
        case "Gi": exponent10 = 0; binaryPower = 3
        case "Ti": exponent10 = 0; binaryPower = 4
        case "Pi": exponent10 = 0; binaryPower = 5
        case "Ei": exponent10 = 0; binaryPower = 6
        default:
            guard let e = suffix.first, e == "e" || e == "E" else { return nil }
            var digits = suffix.dropFirst()
            var negativeExponent = false
            if let sign = digits.first, sign == "+" || sign == "-" {
                negativeExponent = sign == "-"
                digits = digits.dropFirst()
            }
            guard !digits.isEmpty, digits.count <= 4, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let e10 = Int(digits) else {
                return nil
            }
            exponent10 = negativeExponent ? -e10 : e10
        }
        // Leading zeros carry nothing; the significand is every digit, scaled by the fraction's length.
        var digits = String(whole + fraction).drop { $0 == "0" }
        if digits.isEmpty { digits = "0" }
        exponent10 -= fraction.count
        guard abs(exponent10) <= Self.maxDecimalExponent, digits.count <= 38,
              let significand = Decimal(string: String(digits), locale: Locale(identifier: "en_US_POSIX")) else { return nil }
        var d = Decimal(sign: negative ? .minus : .plus, exponent: exponent10, significand: significand)
        if binaryPower > 0 { d *= Decimal(UInt64(1) << UInt64(10 * binaryPower)) }
        decimal = d
    }

    /// The value in whole units (bytes, pods), rounded away from zero.
    public var value: Int64 { Self.roundedUp(decimal) }
    /// The value in thousandths (millicores), rounded away from zero.
    public var milliValue: Int64 { Self.roundedUp(decimal * 1000) }

    public var description: String { "\(decimal)" }

    static func roundedUp(_ d: Decimal) -> Int64 {
        if d >= Decimal(Int64.max) { return Int64.max }
        if d <= Decimal(Int64.min) { return Int64.min }
        var input = d
        var result = Decimal()
        // `.up` rounds toward +∞ and `.down` toward -∞: away from zero either way.
        NSDecimalRound(&result, &input, 0, d < 0 ? .down : .up)
        return NSDecimalNumber(decimal: result).int64Value
    }
}
