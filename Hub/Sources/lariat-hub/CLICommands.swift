import ArgumentParser
import Foundation
import LariatControl
import LariatHub
import LariatRuntime

struct Login: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Log in to a running hub and keep the session for the other commands.")

    @Option(name: .long, help: "The hub's URL (https://HOST:PORT).")
    var server: String = ProcessInfo.processInfo.environment["LARIAT_SERVER"] ?? "https://127.0.0.1:8443"
    @Option(name: .long, help: "Login name.")
    var username: String = "admin"
    @Flag(name: .long, help: "Read the password from standard input (one line).")
    var passwordStdin = false
    @Option(name: .long, help: "sha256 of the hub's CA (printed by the hub); without it the CA is trusted on first use and its checksum printed.")
    var caChecksum: String?
    @Option(name: .long, help: "Session lifetime in hours (0: the hub's default).")
    var ttlHours: Double = 0

    func run() throws {
        guard let url = URL(string: server), url.scheme == "https", let host = url.host else {
            throw ValidationError("--server must be https://HOST:PORT")
        }
        let port = url.port ?? 443
        let ca = try HubAPIClient.send(method: "GET", host: host, port: port, path: "/cacerts", bearer: nil, caPEM: "",
                                       timeoutMilliseconds: 15_000)
        guard ca.status == 200, ca.body.contains("BEGIN CERTIFICATE") else { throw ValidationError("\(server)/cacerts: \(ca.status)") }
        let checksum = Digest.sha256Hex(ca.body)
        if let pin = caChecksum?.lowercased(), pin != checksum {
            throw ValidationError("the hub's CA has checksum \(checksum), not \(pin): refusing to log in")
        }
        guard let password = readSecret(prompt: "Password for \(username): ", fromStdin: passwordStdin), !password.isEmpty else {
            throw ValidationError("no password given")
        }
        struct Body: Encodable { var username: String; var password: String; var description: String; var ttl: Int64? }
        let body = Body(username: username, password: password, description: "lariat-hub CLI",
                        ttl: ttlHours > 0 ? Int64(ttlHours * 3_600_000) : nil)
        let r = try HubAPIClient.send(method: "POST", host: host, port: port, path: "/v3-public/localProviders/local?action=login",
                                      body: Array(try JSONEncoder().encode(body)), bearer: nil, caPEM: ca.body,
                                      timeoutMilliseconds: 30_000)
        let answer = jsonObject(try CLIConfig.check(r))
        let token = answer.string("token")
        try CLIConfig(server: "https://\(host.contains(":") ? "[\(host)]" : host):\(port)", caPEM: ca.body, token: token).save()
        print("logged in to \(server) as \(username) (CA checksum \(checksum)); session kept in \(CLIConfig.path)")
        if answer["mustChangePassword"] as? Bool == true {
            print("this password must be changed first: lariat-hub user change-password")
        }
    }
}

struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster", abstract: "Manage clusters through the hub's API.",
        subcommands: [Create.self, List.self, Delete.self, ImportCommand.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a cluster and print the command that imports it.")
        @Argument var name: String
        @Option(name: .long) var displayName: String = ""
        func run() throws {
            let cli = try CLIConfig.load()
            struct Spec: Encodable { var displayName: String }
            struct Meta: Encodable { var name: String }
            struct Body: Encodable { var metadata: Meta; var spec: Spec }
            try cli.call("POST", "/v3/clusters", body: Body(metadata: Meta(name: name), spec: Spec(displayName: displayName)))
            try ImportCommand.printImport(cli, name)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the clusters you can see, with their state.")
        func run() throws {
            let cli = try CLIConfig.load()
            print("NAME\tCONNECTED\tREADY\tAGENTS\tVERSION\tNODES\tPODS\tSTATS")
            for c in items(try cli.call("GET", "/v3/clusters")) {
                let conditions = (c.path("status", "conditions") as? [[String: Any]]) ?? []
                func state(_ t: String) -> String { conditions.first { $0["type"] as? String == t }?["status"] as? String ?? "Unknown" }
                let agents = (c.path("status", "agents") as? [[String: Any]])?.count ?? 0
                let version = c.string("status", "kubernetes", "version")
                // Ready/total nodes and pods from the last read of the cluster; STALE once reads stopped.
                let nodes = (c.path("status", "nodes") as? [String: Any]).map { "\($0.string("ready"))/\($0.string("total"))" } ?? "-"
                let pods = c.string("status", "pods", "total")
                let stats = switch state("StatsFresh") { case "True": "fresh"; case "False": "STALE"; default: "-" }
                print("\(c.string("id"))\t\(state("Connected"))\t\(state("Ready"))\t\(agents)\t\(version.isEmpty ? "-" : version)\t\(nodes)\t\(pods.isEmpty ? "-" : pods)\t\(stats)")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a cluster (its agents are disconnected).")
        @Argument var name: String
        func run() throws {
            try CLIConfig.load().call("DELETE", "/v3/clusters/\(name)")
            print("deleted cluster \(name)")
        }
    }

    struct ImportCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "import-command",
                                                        abstract: "Make a new registration token and print the import command.")
        @Argument var name: String
        func run() throws { try Self.printImport(try CLIConfig.load(), name) }

        static func printImport(_ cli: CLIConfig, _ name: String) throws {
            let answer = jsonObject(try cli.call("POST", "/v3/clusters/\(name)/import"))
            print("""
            cluster \(name): import it by running, where kubectl reaches that cluster:

              \(answer.string("command"))

            registration token (shown once): \(answer.string("registrationToken"))
            CA checksum: \(answer.string("caChecksum"))
            """)
        }
    }
}

struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Manage your API tokens.", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API token and print it (shown once).")
        @Option(name: .long) var description: String = ""
        @Option(name: .long, help: "Lifetime in hours (0: as long as the hub allows).")
        var ttlHours: Double = 0
        @Option(name: .long, help: "Limit the token to one cluster.")
        var cluster: String?
        func run() throws {
            struct Body: Encodable { var description: String; var ttl: Int64; var clusterId: String? }
            let answer = jsonObject(try CLIConfig.load().call("POST", "/v3/tokens",
                body: Body(description: description, ttl: Int64(ttlHours * 3_600_000), clusterId: cluster)))
            print(answer.string("token"))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List your tokens (never their secrets).")
        func run() throws {
            print("NAME\tUSER\tEXPIRES\tDESCRIPTION")
            for t in items(try CLIConfig.load().call("GET", "/v3/tokens")) {
                let expires = t.string("spec", "expiresAt")
                print("\(t.string("id"))\t\(t.string("spec", "userName"))\t\(expires.isEmpty ? "never" : expires)\t\(t.string("spec", "description"))")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token (refused at once).")
        @Argument var name: String
        func run() throws {
            try CLIConfig.load().call("DELETE", "/v3/tokens/\(name)")
            print("revoked \(name)")
        }
    }
}

struct UserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Manage local users.", subcommands: [Create.self, List.self, ChangePassword.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a local user (password from standard input or a prompt).")
        @Argument var username: String
        @Flag(name: .long) var passwordStdin = false
        @Flag(name: .long, help: "Make the user change the password at first login.")
        var mustChangePassword = false
        func run() throws {
            guard let password = readSecret(prompt: "Password for \(username): ", fromStdin: passwordStdin), !password.isEmpty else {
                throw ValidationError("no password given")
            }
            struct Body: Encodable { var username: String; var password: String; var mustChangePassword: Bool }
            let answer = jsonObject(try CLIConfig.load().call("POST", "/v3/users",
                body: Body(username: username, password: password, mustChangePassword: mustChangePassword)))
            print("created user \(username) (\(answer.string("id")))")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users.")
        func run() throws {
            print("ID\tUSERNAME\tENABLED")
            for u in items(try CLIConfig.load().call("GET", "/v3/users")) {
                print("\(u.string("id"))\t\(u.string("spec", "username"))\t\(u.string("spec", "enabled"))")
            }
        }
    }

    struct ChangePassword: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "change-password",
                                                        abstract: "Change your own password (current, then new, one per line with --password-stdin).")
        @Flag(name: .long) var passwordStdin = false
        func run() throws {
            guard let current = readSecret(prompt: "Current password: ", fromStdin: passwordStdin),
                  let new = readSecret(prompt: "New password: ", fromStdin: passwordStdin) else { throw ValidationError("no password given") }
            struct Body: Encodable { var currentPassword: String; var newPassword: String }
            try CLIConfig.load().call("POST", "/v3/users?action=changepassword", body: Body(currentPassword: current, newPassword: new))
            print("password changed")
        }
    }
}

struct RoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "role", abstract: "Grant roles.", subcommands: [Bind.self])

    struct Bind: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bind a user to a global role, a cluster role (--cluster) or a project role (--project).")
        @Option(name: .long, help: "The user's id (u-xxxxx) or username.") var user: String
        @Option(name: .long, help: "A global role (admin, user) or role template (cluster-owner, cluster-member, project-owner, project-member, read-only).")
        var role: String
        @Option(name: .long) var cluster: String?
        @Option(name: .long) var project: String?
        func run() throws {
            let cli = try CLIConfig.load()
            let users = items(try cli.call("GET", "/v3/users"))
            guard let id = users.first(where: { $0.string("id") == user || $0.string("spec", "username") == user })?.string("id") else {
                throw ValidationError("no user \(user)")
            }
            struct Meta: Encodable { var name = "" }
            if let cluster {
                struct Spec: Encodable { var clusterName: String; var userName: String; var roleTemplateName: String }
                struct Body: Encodable { var metadata = Meta(); var spec: Spec }
                let b = jsonObject(try cli.call("POST", "/v3/clusterroletemplatebindings",
                    body: Body(spec: Spec(clusterName: cluster, userName: id, roleTemplateName: role))))
                print("bound \(user) to \(role) in cluster \(cluster) (\(b.string("id")))")
            } else if let project {
                struct Spec: Encodable { var projectName: String; var userName: String; var roleTemplateName: String }
                struct Body: Encodable { var metadata = Meta(); var spec: Spec }
                let b = jsonObject(try cli.call("POST", "/v3/projectroletemplatebindings",
                    body: Body(spec: Spec(projectName: project, userName: id, roleTemplateName: role))))
                print("bound \(user) to \(role) in project \(project) (\(b.string("id")))")
            } else {
                struct Spec: Encodable { var userName: String; var globalRoleName: String }
                struct Body: Encodable { var metadata = Meta(); var spec: Spec }
                let b = jsonObject(try cli.call("POST", "/v3/globalrolebindings", body: Body(spec: Spec(userName: id, globalRoleName: role))))
                print("bound \(user) to global role \(role) (\(b.string("id")))")
            }
        }
    }
}

struct KubeconfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubeconfig",
        abstract: "Print (or write) a kubeconfig for clusters you reach through the hub's Kubernetes proxy.",
        discussion: """
        One CLUSTER: that cluster's kubeconfig. None: every cluster you reach. Several: those, the first current. \
        Each cluster gets a new token of yours, valid for that cluster only (list and revoke them with `lariat-hub token`).
        """)

    @Argument(help: "Clusters (none: every cluster you reach).")
    var clusters: [String] = []
    @Option(name: .shortAndLong, help: "Write the kubeconfig to this file (mode 0600) instead of printing it.")
    var output: String?

    func run() throws {
        let cli = try CLIConfig.load()
        let answer: Data
        if clusters.count == 1 {
            // Path-safe whatever was typed (the hub decodes path parameters).
            let id = clusters[0].addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "-._~").union(.alphanumerics))
                ?? clusters[0]
            answer = try cli.call("POST", "/v3/clusters/\(id)?action=generateKubeconfig")
        } else {
            struct Body: Encodable { var clusters: [String] }
            answer = try cli.call("POST", "/v3/kubeconfigs", body: Body(clusters: clusters))
        }
        let config = jsonObject(answer).string("config")
        guard !config.isEmpty else { throw CLIError("the hub's answer holds no kubeconfig") }
        guard let output else {
            print(config, terminator: config.hasSuffix("\n") ? "" : "\n")
            return
        }
        try FileIO.writeAtomically(output, config, mode: 0o600)
        print("kubeconfig written to \(output) (mode 0600): use it with kubectl --kubeconfig \(output)")
    }
}

struct ForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Manage forwards: hub listeners carried to a cluster's Service, authorized with your rights and audited.",
        subcommands: [Create.self, List.self, Delete.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a forward to SERVICE:PORT in NAMESPACE of CLUSTER (you need get on services/proxy there).")
        @Argument var name: String
        @Option(name: .long) var cluster: String
        @Option(name: .long) var namespace: String
        @Option(name: .long) var service: String
        @Option(name: .long, help: "The Service's port: a number or its name.") var port: String
        @Option(name: .long, help: "IP:PORT the hub listens on (port 0: the hub picks). Without it, no listener.")
        var listen: String?
        @Option(name: .long) var description: String = ""
        @Option(name: .long, help: "bulk (default) or interactive: interactive connections (shells, database consoles) go ahead of bulk transfers in the tunnel.")
        var streamClass: Forward.StreamClass = .bulk
        @Option(name: .long, help: "Seconds to wait for the listener's address.") var wait: Double = 10

        func run() throws {
            let cli = try CLIConfig.load()
            struct Meta: Encodable { var name: String }
            struct Spec: Encodable {
                var clusterName: String, namespace: String, service: String, port: Forward.Port, listen: String?, description: String
                var streamClass: Forward.StreamClass
            }
            struct Body: Encodable { var metadata: Meta; var spec: Spec }
            try cli.call("POST", "/v3/forwards", body: Body(metadata: Meta(name: name), spec: Spec(
                clusterName: cluster, namespace: namespace, service: service, port: Forward.Port(parsing: port),
                listen: listen, description: description, streamClass: streamClass)))
            guard listen != nil else {
                print("created forward \(name) (no listener)")
                return
            }
            let deadline = Date().addingTimeInterval(wait)
            var ready: [String: Any]?
            repeat {
                let f = jsonObject(try cli.call("GET", "/v3/forwards/\(name)"))
                ready = ((f.path("status", "conditions") as? [[String: Any]]) ?? []).first { $0["type"] as? String == "Ready" }
                if let address = f.path("status", "listenAddress") as? String {
                    print("created forward \(name): listening on \(address)")
                    return
                }
                if ready?["reason"] as? String == "ListenFailed" { break }
                usleep(100_000)
            } while Date() < deadline
            throw CLIError("forward \(name) was created but is not listening: \(ready?["message"] as? String ?? "no status yet")")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the forwards you can see.")
        func run() throws {
            print("NAME\tCLUSTER\tTARGET\tLISTENING\tOWNER\tREADY\tOWNER-AUTHORIZED")
            for f in items(try CLIConfig.load().call("GET", "/v3/forwards")) {
                let conditions = (f.path("status", "conditions") as? [[String: Any]]) ?? []
                func state(_ t: String) -> String { conditions.first { $0["type"] as? String == t }?["status"] as? String ?? "Unknown" }
                let port = f.path("spec", "port").map { "\($0)" } ?? "?"
                let target = "\(f.string("spec", "namespace"))/\(f.string("spec", "service")):\(port)"
                let listening = f.string("status", "listenAddress")
                print("\(f.string("id"))\t\(f.string("spec", "clusterName"))\t\(target)\t\(listening.isEmpty ? "-" : listening)\t\(f.string("spec", "ownerName"))\t\(state("Ready"))\t\(state("OwnerAuthorized"))")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a forward (its listener closes).")
        @Argument var name: String
        func run() throws {
            try CLIConfig.load().call("DELETE", "/v3/forwards/\(name)")
            print("deleted forward \(name)")
        }
    }
}

extension Forward.StreamClass: ExpressibleByArgument {}
