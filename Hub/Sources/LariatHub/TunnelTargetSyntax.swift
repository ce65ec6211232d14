import LariatTunnel

/// Thin re-export so configuration parsing reads naturally.
enum TunnelTargetSyntax {
    static func hostPort<S: StringProtocol>(_ s: S) -> (String, Int)? { TunnelTarget.hostPort(s) }
    static func isTarget(_ s: String) -> Bool { TunnelTarget(s) != nil }
}
