import Foundation
import LariatStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

struct StoreTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A real etcd (Debian's `etcd-server`) on loopback for the store tests: client and peer ports
/// found by binding port 0 (retried if another process takes one first), a data folder of its
/// own. It runs under a small shell watchdog that kills it (and removes its folder) as soon as
/// the test process is gone, so no etcd outlives the test run even if the tests crash.
final class EtcdServer: @unchecked Sendable {
    // Invariant: mutated only by start/kill/stop, which the tests call from one task at a time.
    let dataDir: String
    let folder: String
    private(set) var clientPort = 0
    private(set) var peerPort = 0
    /// The watchdog shell's pid (0 when not running).
    private var watchdog: pid_t = 0

    /// The binary; a missing etcd fails the test with the way to install it (never a silent skip).
    static func binary() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") + ["/usr/bin", "/usr/local/bin"] {
            let candidate = "\(dir)/etcd"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw StoreTestFailure("etcd is not installed: the store's etcd tests need a real etcd. "
                               + "Install Debian's etcd-server (scripts/ensure-deps.sh build does).")
    }

    init() throws {
        folder = NSTemporaryDirectory() + "lariat-etcd-\(getpid())-\(UUID().uuidString.prefix(8))"
        dataDir = folder + "/data"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try start()
    }

    /// Starts etcd (on the same data folder and ports when restarting) and waits until it answers.
    func start(newPorts: Bool = true) throws {
        let etcd = try Self.binary()
        var lastLog = ""
        for _ in 0..<4 {
            if newPorts || clientPort == 0 {
                clientPort = try Self.freePort()
                peerPort = try Self.freePort()
            }
            let client = "http://127.0.0.1:\(clientPort)"
            let peer = "http://127.0.0.1:\(peerPort)"
            let args = ["--name", "lariat-test", "--data-dir", dataDir,
                        "--listen-client-urls", client, "--advertise-client-urls", client,
                        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                        "--initial-cluster", "lariat-test=\(peer)", "--log-outputs", "stderr"]
            let log = folder + "/etcd.log"
            // The watchdog: etcd in the background, its pid in a file, SIGTERM passed on, and a
            // SIGKILL (plus cleanup) the moment the test process (our pid) is gone.
            let script = """
                "$0" "$@" >>"\(log)" 2>&1 &
                e=$!
                echo $e > "\(folder)/etcd.pid"
                ( while kill -0 \(getpid()) 2>/dev/null; do sleep 0.5; done
                  kill -KILL $e 2>/dev/null; rm -rf "\(folder)" ) &
                w=$!
                trap 'kill -TERM $e 2>/dev/null' TERM
                wait $e
                wait $e
                kill $w 2>/dev/null
                exit 0
                """
            try? FileManager.default.removeItem(atPath: folder + "/etcd.pid")
            watchdog = try Self.spawn("/bin/sh", ["-c", script, etcd] + args)
            if waitUntilAnswering(timeout: 30) { return }
            lastLog = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            stop()
            // A port taken between our probe and etcd's bind: try others (unless restarting in place).
            guard lastLog.contains("address already in use") else { break }
        }
        throw StoreTestFailure("etcd did not start on 127.0.0.1:\(clientPort). Log tail:\n\(lastLog.suffix(2000))")
    }

    private func waitUntilAnswering(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var settings = EtcdStoreSettings()
        settings.prefix = "probe"
        settings.http.connectTimeout = .milliseconds(500)
        settings.http.ioTimeout = .seconds(2)
        while Date() < deadline {
            guard watchdogRunning else { return false }
            if let b = try? EtcdBackend(host: "127.0.0.1", port: clientPort, settings: settings),
               (try? b.currentRevision()) != nil {
                b.close()
                return true
            }
            usleep(100_000)
        }
        return false
    }

    var etcdPID: Int32? {
        (try? String(contentsOfFile: folder + "/etcd.pid", encoding: .utf8))
            .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// A backend on this etcd with a key prefix of its own.
    func backend(prefix: String = "t-\(UUID().uuidString.prefix(12))") throws -> EtcdBackend {
        var settings = EtcdStoreSettings()
        settings.prefix = prefix
        return try EtcdBackend(host: "127.0.0.1", port: clientPort, settings: settings)
    }

    /// SIGKILL etcd itself (no clean shutdown) and wait until its watchdog has exited.
    func kill9() {
        if let pid = etcdPID { kill(pid, SIGKILL) }
        reapWatchdog()
    }

    /// SIGTERM and wait (SIGKILL after 15 s).
    func stop() {
        guard watchdog > 0 else { return }
        kill(watchdog, SIGTERM)
        let deadline = Date().addingTimeInterval(15)
        while watchdogRunning && Date() < deadline { usleep(20_000) }
        if watchdogRunning, let pid = etcdPID { kill(pid, SIGKILL) }
        reapWatchdog()
    }

    private var watchdogRunning: Bool {
        guard watchdog > 0 else { return false }
        var status: Int32 = 0
        if waitpid(watchdog, &status, WNOHANG) == watchdog {
            watchdog = 0
            return false
        }
        return true
    }

    private func reapWatchdog() {
        guard watchdog > 0 else { return }
        var status: Int32 = 0
        while waitpid(watchdog, &status, 0) < 0 && errno == EINTR {}
        watchdog = 0
    }

    /// posix_spawn with every signal unblocked and at its default: a `Process` started from a
    /// test thread inherits that thread's blocked signals (SIGTERM, SIGCHLD), and a shell with
    /// SIGCHLD blocked never finishes `wait`.
    static func spawn(_ path: String, _ args: [String]) throws -> pid_t {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, environ)
        guard rc == 0 else { throw StoreTestFailure("posix_spawn \(path): \(String(cString: strerror(rc)))") }
        return pid
    }

    func remove() {
        stop()
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// A port the kernel just handed out on 127.0.0.1 (bound, read, closed).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StoreTestFailure("socket: \(errno)") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else { throw StoreTestFailure("bind 127.0.0.1:0: \(errno)") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// One etcd for the whole test process, started on first use and stopped when the process
/// exits (the watchdog covers a crash). Tests isolate themselves with a key prefix each.
enum SharedEtcd {
    private static let server = Mutex<Result<EtcdServer, StoreTestFailure>?>(nil)

    static func get() throws -> EtcdServer {
        try server.withLock { s in
            if s == nil {
                do {
                    s = .success(try EtcdServer())
                    atexit { SharedEtcd.stopAtExit() }
                } catch {
                    s = .failure(error as? StoreTestFailure ?? StoreTestFailure("\(error)"))
                }
            }
            return try s!.get()
        }
    }

    private static func stopAtExit() {
        if case .success(let e)? = server.withLock({ $0 }) { e.remove() }
    }
}
