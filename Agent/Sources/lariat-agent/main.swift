import ArgumentParser
import LariatAgent
import LariatProtocol
import LariatRuntime
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process environment as a dictionary (no Foundation).
func processEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var entry = environ
    while let pointer = entry.pointee {
        let text = String(cString: pointer)
        if let eq = text.firstIndex(of: "=") {
            result[String(text[..<eq])] = String(text[text.index(after: eq)...])
        }
        entry += 1
    }
    return result
}

/// `exit(3)`, callable where a type's own static `exit` would shadow it.
func terminate(_ code: Int32) -> Never { exit(code) }

func writeStderr(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        bytes = bytes.dropFirst(n)
    }
}

func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
    return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

struct LariatAgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lariat-agent",
        abstract: "Dials out to a Lariat hub and carries its streams to targets in this cluster.",
        discussion: """
        Every option can also be set from the environment (the flag wins): LARIAT_SERVER, LARIAT_TOKEN, LARIAT_CA_CHECKSUM, LARIAT_CLUSTER, LARIAT_AGENT_ID, LARIAT_AGENT_ROLE, LARIAT_K8S_API, LARIAT_K8S_TOKEN_FILE, LARIAT_K8S_CA_FILE, LARIAT_ALLOW, LARIAT_DENY, LARIAT_SERVICE_DOMAIN, LARIAT_LOG_LEVEL, LARIAT_LOG_FORMAT, LARIAT_INSECURE_SKIP_CA_CHECK=true, LARIAT_REGISTER=true, LARIAT_CREDENTIAL_FILE. The hub is reached through HTTPS_PROXY (http://[user:pass@]host:port) unless NO_PROXY matches it.

        Target policy: everything may be dialled except link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, 169.254.169.254, fd00:ec2::254, metadata.google.internal) and the agent's own host: loopback (127.0.0.0/8, ::1) and unspecified (0.0.0.0/8, ::, ::/96). --allow restricts dialling to the listed rules; --deny rules always win. Rules: *, CIDR, IP, host name, .suffix or *.suffix, each optionally with :PORT ([v6]:PORT for IPv6). A target must be a host name or an address literal (control characters are refused; 0x7f.1 is judged as 127.0.0.1); names are resolved first and every address must pass. An --allow address or block inside a built-in block lifts it (*, 0.0.0.0/0 and names do not): --allow 127.0.0.1:8080 opens one local port, and as --allow is an allow-list, --allow '*,127.0.0.1:8080' keeps everything else open too. The k8s-api target (--k8s-api) is exempt from --allow and the built-in rules.

        Kubernetes API: k8s-api streams are raw TCP to --k8s-api (TLS end to end, the client's own credentials). k8s-proxy streams carry HTTP requests that the agent sends to --k8s-api over TLS verified against --k8s-ca-file, with the bearer token in --k8s-token-file (read at every new stream, as kubelet rotates it) in place of any Authorization they carry: the cluster's credential never leaves the cluster. In a pod both default to the mounted ServiceAccount (/var/run/secrets/kubernetes.io/serviceaccount/token and ca.crt).

        Registration: with --register (or --credential-file), an agent given the cluster's registration token (crt-….…) trades it at start for a credential of its own (ac-…:…, listed in /v3/agentcredentials and revocable alone) and connects with that; without --credential-file it registers again at every start. A revoked agent stays out: it never falls back to the registration token, and the hub refuses to register a revoked agent id again.

        Example: lariat-agent --server https://hub.example.com:8443 --token $TOKEN --ca-checksum <64 hex> --cluster prod-eu --allow 10.0.0.0/8,.svc.cluster.local
        """,
        version: AgentVersion.version)

    @Option(help: ArgumentHelp("Hub URL, https://HOST[:PORT]. Env: LARIAT_SERVER.", valueName: "url"))
    var server: String?

    @Option(help: ArgumentHelp("The cluster's agent token. Env: LARIAT_TOKEN.", valueName: "token"))
    var token: String?

    @Flag(help: "Trade a registration token for this agent's own credential before connecting. Env: LARIAT_REGISTER=true.")
    var register = false

    @Option(name: .customLong("credential-file"),
            help: ArgumentHelp("Keep the credential from registration in this file (0600) and use it at the next start (implies --register). Env: LARIAT_CREDENTIAL_FILE.", valueName: "path"))
    var credentialFile: String?

    @Option(name: .customLong("ca-checksum"),
            help: ArgumentHelp("SHA-256 (hex) of the hub's CA certificate, as served at /cacerts. Env: LARIAT_CA_CHECKSUM.", valueName: "sha256"))
    var caChecksum: String?

    @Flag(name: .customLong("insecure-skip-ca-check"),
          help: "Trust whatever CA the hub serves instead of pinning it (labs only). Env: LARIAT_INSECURE_SKIP_CA_CHECK=true.")
    var insecureSkipCACheck = false

    @Option(help: ArgumentHelp("Cluster name this agent serves. Env: LARIAT_CLUSTER.", valueName: "name"))
    var cluster: String?

    @Option(name: .customLong("agent-id"),
            help: ArgumentHelp("This agent's name (default: the host name). Env: LARIAT_AGENT_ID.", valueName: "id"))
    var agentID: String?

    @Option(help: ArgumentHelp("cluster or node. Env: LARIAT_AGENT_ROLE.", valueName: "role"))
    var role: String?

    @Option(help: ArgumentHelp("Only dial targets matching these rules (repeatable, comma-separated). Env: LARIAT_ALLOW.", valueName: "rules"))
    var allow: [String] = []

    @Option(help: ArgumentHelp("Never dial targets matching these rules (repeatable, comma-separated). Env: LARIAT_DENY.", valueName: "rules"))
    var deny: [String] = []

    @Option(name: .customLong("k8s-api"),
            help: ArgumentHelp("Kubernetes API server for k8s-api streams (default: KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT). Env: LARIAT_K8S_API.", valueName: "host:port"))
    var kubernetesAPI: String?

    @Option(name: .customLong("k8s-token-file"),
            help: ArgumentHelp("Bearer token for k8s-proxy streams, read at each new stream (default in a pod: the ServiceAccount token). Env: LARIAT_K8S_TOKEN_FILE.", valueName: "path"))
    var kubernetesTokenFile: String?

    @Option(name: .customLong("k8s-ca-file"),
            help: ArgumentHelp("CA bundle (PEM) the API server's certificate must chain to, for k8s-proxy streams (default in a pod: the ServiceAccount ca.crt). Env: LARIAT_K8S_CA_FILE.", valueName: "path"))
    var kubernetesCAFile: String?

    @Option(name: .customLong("service-domain"),
            help: ArgumentHelp("Domain for svc:NS/NAME:PORT targets (default svc.cluster.local). Env: LARIAT_SERVICE_DOMAIN.", valueName: "domain"))
    var serviceDomain: String?

    @Option(name: .customLong("log-level"),
            help: ArgumentHelp("trace, debug, info, notice, warning, error or critical (default info). Env: LARIAT_LOG_LEVEL.", valueName: "level"))
    var logLevel: String?

    @Option(name: .customLong("log-format"),
            help: ArgumentHelp("text or json (one JSON object per line). Env: LARIAT_LOG_FORMAT.", valueName: "format"))
    var logFormat: String?

    mutating func run() throws {
        let env = processEnvironment()
        func pick(_ flag: String?, _ name: String) -> String? {
            if let flag, !flag.isEmpty { return flag }
            if let value = env[name]?.trimmingCharacters(), !value.isEmpty { return value }
            return nil
        }

        let levelText = pick(logLevel, "LARIAT_LOG_LEVEL") ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw ValidationError("--log-level \"\(levelText)\": use trace, debug, info, notice, warning, error or critical")
        }
        let formatText = pick(logFormat, LogFormat.environmentVariable) ?? "text"
        guard let format = LogFormat(rawValue: formatText.lowercased()) else {
            throw ValidationError("--log-format \"\(formatText)\": use text or json")
        }

        var missing: [String] = []
        let serverText = pick(server, "LARIAT_SERVER")
        let tokenText = pick(token, "LARIAT_TOKEN")
        let clusterText = pick(cluster, "LARIAT_CLUSTER")
        if serverText == nil { missing.append("--server (or LARIAT_SERVER)") }
        if tokenText == nil { missing.append("--token (or LARIAT_TOKEN)") }
        if clusterText == nil { missing.append("--cluster (or LARIAT_CLUSTER)") }
        guard missing.isEmpty else {
            throw ValidationError("missing \(missing.joined(separator: ", "))")
        }

        let hub: HubEndpoint
        do { hub = try HubEndpoint.parse(serverText!) } catch { throw ValidationError(error.description) }

        let insecure = insecureSkipCACheck || ["1", "true", "yes"].contains(env["LARIAT_INSECURE_SKIP_CA_CHECK"]?.lowercased() ?? "")
        var checksum: String?
        if let pin = pick(caChecksum, "LARIAT_CA_CHECKSUM") {
            do { checksum = try AgentConfiguration.normalizeChecksum(pin) } catch { throw ValidationError(error.description) }
        } else if !insecure {
            throw ValidationError("missing --ca-checksum (or LARIAT_CA_CHECKSUM): the SHA-256 of the hub's CA, shown by the hub when it creates the cluster. To connect without verifying the hub (labs only), pass --insecure-skip-ca-check")
        }

        var agentIDValue = pick(agentID, "LARIAT_AGENT_ID") ?? hostName()
        if agentIDValue.isEmpty { agentIDValue = "agent" }

        var configuration = AgentConfiguration(hub: hub, token: tokenText!, caChecksum: checksum,
                                               cluster: clusterText!, agentID: agentIDValue)
        configuration.insecureSkipCACheck = insecure && checksum == nil
        configuration.register = register || ["1", "true", "yes"].contains(env["LARIAT_REGISTER"]?.lowercased() ?? "")
        configuration.credentialFile = pick(credentialFile, "LARIAT_CREDENTIAL_FILE")
        do { _ = try configuration.storedCredential() } catch { throw ValidationError(error.description) }

        switch (pick(role, "LARIAT_AGENT_ROLE") ?? "cluster").lowercased() {
        case "cluster", "cluster-agent": configuration.role = .clusterAgent
        case "node", "node-agent": configuration.role = .nodeAgent
        case let other: throw ValidationError("--role \"\(other)\": use cluster or node")
        }

        var allowRules = allow
        var denyRules = deny
        if allowRules.isEmpty, let value = env["LARIAT_ALLOW"], !value.isEmpty { allowRules = [value] }
        if denyRules.isEmpty, let value = env["LARIAT_DENY"], !value.isEmpty { denyRules = [value] }
        do {
            configuration.policy = try TargetPolicy(allowing: allowRules, denying: denyRules)
        } catch {
            throw ValidationError("--allow/--deny: \(error.description)")
        }

        if let api = pick(kubernetesAPI, "LARIAT_K8S_API") {
            guard let parsed = HostPort.parse(api) else {
                throw ValidationError("--k8s-api \"\(api)\": expected HOST:PORT or https://HOST[:PORT]")
            }
            configuration.kubernetesAPI = parsed
        } else if let host = env["KUBERNETES_SERVICE_HOST"], !host.isEmpty {
            let port = Int(env["KUBERNETES_SERVICE_PORT_HTTPS"] ?? env["KUBERNETES_SERVICE_PORT"] ?? "443") ?? 443
            configuration.kubernetesAPI = HostPort(host: host, port: port)
        }
        // k8s-proxy: explicit files, or in a pod the mounted ServiceAccount's when they exist.
        let inPod = !(env["KUBERNETES_SERVICE_HOST"] ?? "").isEmpty
        func podDefault(_ path: String) -> String? { inPod && access(path, F_OK) == 0 ? path : nil }
        configuration.kubernetesProxy.tokenFile = pick(kubernetesTokenFile, "LARIAT_K8S_TOKEN_FILE")
            ?? podDefault(KubernetesProxySettings.podTokenFile)
        if let caFile = pick(kubernetesCAFile, "LARIAT_K8S_CA_FILE") ?? podDefault(KubernetesProxySettings.podCAFile) {
            do { try configuration.kubernetesProxy.loadCA(from: caFile) } catch { throw ValidationError(error.description) }
        }
        if let domain = pick(serviceDomain, "LARIAT_SERVICE_DOMAIN") { configuration.serviceDomain = domain }

        do {
            configuration.proxy = try ProxySettings.fromEnvironment(env)
        } catch {
            throw ValidationError(error.description)
        }

        LariatLogHandler.bootstrap(level: level, format: format)
        let logger = Logger(label: "lariat-agent")

        let loop = UVLoop(name: "lariat-agent")
        let agent = Agent(loop: loop, configuration: configuration, logger: logger)
        agent.onStopped = { loop.stop() }
        var signalCount = 0
        let signals = try SignalWatcher(loop: loop, signals: [SIGTERM, SIGINT]) { signal in
            signalCount += 1
            if signalCount > 1 {
                logger.warning("second signal: exiting without waiting for streams")
                terminate(1)
            }
            logger.info("received \(signal == SIGTERM ? "SIGTERM" : signal == SIGINT ? "SIGINT" : "signal \(signal)")")
            agent.shutdown(reason: "agent shutting down")
        }
        loop.schedule(afterMilliseconds: 0) { agent.start() }
        loop.run()
        signals.close()
        loop.close()
    }
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\n" || c == "\r" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\n" || c == "\r" { s.removeLast() }
        return String(s)
    }
}

// Usage errors exit with 2 (like Go's flag package and most Unix tools), not ArgumentParser's 64.
do {
    var command = try LariatAgentCommand.parse()
    try command.run()
    exit(0)
} catch {
    let code = LariatAgentCommand.exitCode(for: error)
    if code == .validationFailure {
        let message = LariatAgentCommand.fullMessage(for: error)
        writeStderr("lariat-agent: \(message)\n")
        exit(2)
    }
    LariatAgentCommand.exit(withError: error)
}
