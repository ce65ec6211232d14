/// The one version of every Lariat program (hub, agent, benchmarks): `--version` prints it, the
/// hub's `/healthz` and WELCOME carry it, the agent's HELLO and User-Agent carry it.
public enum LariatVersion {
    public static let version = "0.1.0"

    /// "PROGRAM/VERSION", the form of the handshake's software field and of User-Agent headers.
    public static func software(_ program: String) -> String { "\(program)/\(version)" }
}
