import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A network namespace (netns) for end-to-end tests that use cluster addresses.
///
/// The kube stand-in gives Services ClusterIPs in 10.96.0.0/16 and the machine's DNS server is
/// not on loopback, so nothing may dial a ClusterIP or resolve a cluster name from the machine's
/// own namespace. Agents, the stand-in and service backends run in here instead
/// (`command(_:)` wraps `ip netns exec NAME`): `lo` is up, a veth pair joins it to the host
/// (`hostAddress` ↔ `namespaceAddress`, a /30 and no other route, so a dial that would leave fails
/// at once), and `/etc/netns/NAME/` holds its own `resolv.conf` (nameserver 127.0.0.1, where
/// nothing answers) and `hosts`. The hub stays in the host namespace on `hostAddress`.
final class NetworkNamespace: @unchecked Sendable {
    // Invariant: made and destroyed by the one rig that owns it, from one test task.
    let name: String
    let hostInterface: String
    /// The host side of the veth (`10.251.N.1`) and the namespace's side (`10.251.N.2`).
    let hostAddress: String
    let namespaceAddress: String
    private var etcDirectory: String { "/etc/netns/\(name)" }
    private var destroyed = false

    static let ipTool: String = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/sbin/ip"

    /// Whether this process may create namespaces (root or CAP_NET_ADMIN, `ip` installed),
    /// probed once by adding and deleting one.
    static let isAvailable: Bool = {
        let probe = "lariat-probe-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard (try? run([ipTool, "netns", "add", probe])) != nil else { return false }
        _ = try? run([ipTool, "netns", "del", probe])
        return true
    }()

    /// Creates the namespace, its veth and its `/etc/netns` files; undoes what it made if a step fails.
    init() throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        name = "lariat-\(getpid())-\(tag)"
        hostInterface = "lrt\(tag.prefix(8))h"
        let used = (try? Self.run([Self.ipTool, "-4", "-o", "addr", "show"])) ?? ""
        var octet = Int.random(in: 1...254)
        for _ in 0..<64 where used.contains("10.251.\(octet).") { octet = Int.random(in: 1...254) }
        hostAddress = "10.251.\(octet).1"
        namespaceAddress = "10.251.\(octet).2"
        let peer = "lrt\(tag.prefix(8))n"
        do {
            try Self.run([Self.ipTool, "netns", "add", name])
        } catch {
            destroyed = true
            throw TestFailure("ip netns add \(name) failed (these tests need root or CAP_NET_ADMIN): \(error)")
        }
        do {
            try FileManager.default.createDirectory(atPath: etcDirectory, withIntermediateDirectories: true)
            try "nameserver 127.0.0.1\n".write(toFile: etcDirectory + "/resolv.conf", atomically: true, encoding: .utf8)
            try "127.0.0.1 localhost\n::1 localhost ip6-localhost\n".write(toFile: etcDirectory + "/hosts", atomically: true,
                                                                          encoding: .utf8)
            try Self.run([Self.ipTool, "link", "add", hostInterface, "type", "veth", "peer", "name", peer])
            try Self.run([Self.ipTool, "link", "set", peer, "netns", name])
            try Self.run([Self.ipTool, "addr", "add", hostAddress + "/30", "dev", hostInterface])
            try Self.run([Self.ipTool, "link", "set", hostInterface, "up"])
            try Self.run([Self.ipTool, "-n", name, "link", "set", "lo", "up"])
            try Self.run([Self.ipTool, "-n", name, "addr", "add", namespaceAddress + "/30", "dev", peer])
            try Self.run([Self.ipTool, "-n", name, "link", "set", peer, "up"])
        } catch {
            destroy()
            throw error
        }
    }

    /// `args` run inside the namespace (`ip netns exec` execs in place: the pid is the command's).
    func command(_ args: [String]) -> (executable: String, arguments: [String]) {
        (Self.ipTool, ["netns", "exec", name] + args)
    }

    /// Adds `address`/32 to the namespace's `lo` (a Service's ClusterIP its backend listens on).
    func addLoopbackAddress(_ address: String) throws {
        try Self.run([Self.ipTool, "-n", name, "addr", "add", address + "/32", "dev", "lo"])
    }

    /// Deletes the veth (both ends), the namespace and its `/etc/netns` folder. Kill the
    /// processes inside first: `ip netns del` does not.
    func destroy() {
        guard !destroyed else { return }
        destroyed = true
        _ = try? Self.run([Self.ipTool, "link", "del", hostInterface])
        _ = try? Self.run([Self.ipTool, "netns", "del", name])
        try? FileManager.default.removeItem(atPath: etcDirectory)
    }

    deinit { destroy() }

    /// Runs a command to the end; its output, or a `TestFailure` with it on a non-zero exit.
    @discardableResult
    static func run(_ args: [String]) throws -> String {
        let (status, text) = try runProcess(args[0], Array(args.dropFirst()))
        guard status == 0 else {
            throw TestFailure("\(args.joined(separator: " ")): exit \(status): \(text)")
        }
        return text
    }
}
