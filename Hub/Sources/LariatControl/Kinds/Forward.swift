import Foundation
import LariatRuntime
import LariatStore

/// A raw TCP forward to one port of an in-cluster Service, owned by the user who created it:
/// with `listen`, the hub listens on that address and carries each connection through the
/// cluster's agent to `svc:NAMESPACE/SERVICE:PORT`. A forward grants what `get` on
/// `services/proxy` of that Service grants, so creating, reading and using it take that right:
/// every accepted connection is authorized against the owner's rights at that moment
/// (`ForwardAuthorization`) and audited.
public enum Forward: Resource {
    public static let kind = "Forward"
    public static let plural = "forwards"

    /// A Service port by number (1-65535) or by name (a Service port's `name`, which the hub
    /// looks up in the cluster), as Kubernetes' IntOrString.
    public enum Port: Codable, Sendable, Equatable, CustomStringConvertible {
        case number(Int)
        case name(String)

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let n = try? c.decode(Int.self) { self = .number(n); return }
            self = .name(try c.decode(String.self))
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .number(let n): try c.encode(n)
            case .name(let s): try c.encode(s)
            }
        }

        /// "8080" is a number, anything else a name (for the CLI).
        public init(parsing text: String) {
            if let n = Int(text) { self = .number(n) } else { self = .name(text) }
        }

        public var description: String {
            switch self {
            case .number(let n): String(n)
            case .name(let s): s
            }
        }
    }

    /// How the tunnel schedules a forward's connections: `interactive` (shells, database
    /// consoles: small round trips that must not queue behind a bulk transfer on the same
    /// tunnel) goes before `bulk` (the default: copies, backups, streams).
    public enum StreamClass: String, Codable, Sendable, Equatable, CaseIterable {
        case bulk
        case interactive
    }

    public struct Spec: Codable, Sendable, Equatable {
        public var clusterName: String
        public var namespace: String
        /// The Service's name.
        public var service: String
        public var port: Port
        /// "HOST:PORT" (HOST an IP literal, IPv6 in brackets) the hub listens on; port 0 lets the
        /// hub pick (see `status.listenAddress`). Absent: no listener.
        public var listen: String?
        /// The User who created the forward (its object name): set by the API, never by the
        /// client. Connections are authorized against this user's rights.
        public var ownerName: String
        public var description: String
        /// Scheduling class of the forward's connections in the tunnel; absent: bulk.
        public var streamClass: StreamClass

        public init(clusterName: String, namespace: String, service: String, port: Port, listen: String? = nil,
                    ownerName: String = "", description: String = "", streamClass: StreamClass = .bulk) {
            self.clusterName = clusterName
            self.namespace = namespace
            self.service = service
            self.port = port
            self.listen = listen
            self.ownerName = ownerName
            self.description = description
            self.streamClass = streamClass
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            clusterName = try c.decode(String.self, forKey: .clusterName)
            namespace = try c.decode(String.self, forKey: .namespace)
            service = try c.decode(String.self, forKey: .service)
            port = try c.decode(Port.self, forKey: .port)
            listen = try c.decodeIfPresent(String.self, forKey: .listen)
            ownerName = try c.decodeIfPresent(String.self, forKey: .ownerName) ?? ""
            description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
            streamClass = try c.decodeIfPresent(StreamClass.self, forKey: .streamClass) ?? .bulk
        }
    }

    public struct Status: Codable, Sendable, Equatable {
        /// The address the hub's listener is bound to ("127.0.0.1:40123"), while it listens.
        public var listenAddress: String?
        /// The Service port number a named `spec.port` was last resolved to.
        public var targetPort: Int?
        /// `Ready` (the listener is open: reasons `Listening`, `NoListener`, `ListenFailed`) and
        /// `OwnerAuthorized` (the owner may still use the Service: `Allowed`, `OwnerLostAccess`).
        public var conditions: [Condition] = []
        public init() {}
    }

    public static func emptyStatus() -> Status { Status() }

    /// The tunnel target a connection goes to, once the port is a number.
    public static func target(namespace: String, service: String, port: Int) -> String {
        "svc:\(namespace)/\(service):\(port)"
    }

    /// The Kubernetes right a forward grants, and so the one its creator, readers and every
    /// connection's owner must hold: `get` on the Service's `services/proxy` subresource.
    public static func grantedAccess(_ spec: Spec) -> Access {
        Access(verb: "get", apiGroup: "", resource: "services/proxy", name: spec.service, cluster: spec.clusterName,
               namespace: spec.namespace)
    }

    /// Field checks; `allowedListenPorts` bounds the port of `spec.listen` (0 is always allowed).
    public static func validate(_ o: Object<Forward>, allowedListenPorts: ClosedRange<Int> = 1...65535) -> [FieldError] {
        var errors = NameRules.dnsLabel(o.name, field: "metadata.name")
            + NameRules.dnsLabel(o.spec.clusterName, field: "spec.clusterName")
            + NameRules.dnsLabel(o.spec.namespace, field: "spec.namespace")
            + NameRules.dnsLabel(o.spec.service, field: "spec.service")
            + FieldChecks.text(o.spec.description, field: "spec.description", maxLength: 4096)
        switch o.spec.port {
        case .number(let n) where !(1...65535).contains(n):
            errors.append(FieldError("spec.port", "a port number is 1-65535"))
        case .name(let name):
            errors += servicePortName(name, field: "spec.port")
        default:
            break
        }
        if let listen = o.spec.listen {
            if let (_, port) = listenAddress(listen) {
                if port != 0 && !allowedListenPorts.contains(port) {
                    errors.append(FieldError("spec.listen", "port \(port) is outside the ports forwards may listen on (\(allowedListenPorts.lowerBound)-\(allowedListenPorts.upperBound), or 0 for any free port)"))
                }
            } else {
                errors.append(FieldError("spec.listen", "HOST:PORT with HOST an IP address ([v6] in brackets) and PORT 0-65535"))
            }
        }
        return errors
    }

    /// A Service port name, as Kubernetes' IANA_SVC_NAME: 1-15 lowercase letters, digits and
    /// '-', at least one letter, no '-' at either end or twice in a row.
    static func servicePortName(_ name: String, field: String) -> [FieldError] {
        let u = Array(name.utf8)
        func ok(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 45 }
        guard !u.isEmpty, u.count <= 15, u.allSatisfy(ok), u.first != 45, u.last != 45,
              u.contains(where: { $0 >= 97 && $0 <= 122 }), !name.contains("--") else {
            return [FieldError(field, "a port number 1-65535, or a port name: 1-15 lowercase letters, digits and '-' with at least one letter")]
        }
        return []
    }

    /// Parses `spec.listen`: "IP:PORT" or "[IPv6]:PORT", the host an address literal (a name
    /// would be resolved by the hub's DNS at bind time), the port 0-65535.
    public static func listenAddress(_ text: String) -> (host: String, port: Int)? {
        let host: Substring, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[close...].hasPrefix("]:") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
            guard host.contains(":") else { return nil }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else { return nil }
        }
        guard portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText), (0...65535).contains(port),
              SocketAddress(ip: String(host), port: port) != nil else { return nil }
        return (String(host), port)
    }

    /// The number of the port named `name` in a Service object (Kubernetes JSON), or nil.
    public static func servicePort(named name: String, inService json: Data) -> Int? {
        guard let service = (try? JSONSerialization.jsonObject(with: json)) as? [String: Any],
              let spec = service["spec"] as? [String: Any], let ports = spec["ports"] as? [[String: Any]] else { return nil }
        for p in ports where p["name"] as? String == name {
            if let n = p["port"] as? Int, (1...65535).contains(n) { return n }
        }
        return nil
    }
}
