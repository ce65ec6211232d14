import LariatProtocol
import LariatRuntime
import LariatTunnel

/// One keep-alive connection to a cluster's API server: a `k8s-proxy` tunnel stream (the agent
/// holds the TLS connection and adds its credential). It carries one exchange at a time; between
/// exchanges it waits in its worker's pool, so `kubectl get` pays neither a stream open nor a TLS
/// handshake. Anything that arrives while it is idle (the API server closing it) ends it.
final class KubernetesUpstream: UpstreamPipeOwner {
    let tunnelKey: UInt64
    let cluster: String
    /// `cluster-agent:<id>` / `node-agent:<id>`: the path requests on it take (audit, logs).
    let path: String
    let streamClass: StreamClass
    /// `k8s-proxy`, or `tcp:IP:PORT` (a Service reached directly; never pooled).
    let target: String
    private(set) var pipe: UpstreamPipe!
    /// The exchange using it; nil while pooled.
    var exchange: KubernetesExchange?
    /// Whether the stream has carried an exchange before (a failure before any answer is then
    /// a stale keep-alive connection, worth one retry for a safe request).
    var reused = false
    /// False once an answer said `Connection: close`, an upgrade was asked for, or anything left
    /// it in an unknown state.
    var reusable = true
    var idleTimer: UVTimer?
    /// Called once when the stream ends while pooled (the pool forgets it).
    var onIdleEnd: ((KubernetesUpstream) -> Void)?

    init(tunnelKey: UInt64, cluster: String, path: String, streamClass: StreamClass, target: String, loop: UVLoop) {
        self.target = target
        self.tunnelKey = tunnelKey
        self.cluster = cluster
        self.path = path
        self.streamClass = streamClass
        pipe = UpstreamPipe(loop: loop, owner: self)
    }

    var isOpen: Bool { !pipe.isClosed }

    /// Ends the stream (a reset toward the agent unless it already ended).
    func abandon() {
        reusable = false
        idleTimer?.close()
        idleTimer = nil
        pipe.abandon()
    }

    // MARK: UpstreamPipeOwner

    func pipeReceived(_ bytes: UnsafeRawBufferPointer) {
        if let exchange { exchange.upstreamReceived(bytes) } else { abandon() }
    }
    func pipeFinished() {
        reusable = false
        if let exchange { exchange.upstreamFinished() } else { abandon() }
    }
    func pipeClosed(reset: Bool) {
        reusable = false
        idleTimer?.close()
        idleTimer = nil
        if let exchange {
            self.exchange = nil
            exchange.upstreamClosed(reset: reset)
        } else if let onIdleEnd {
            self.onIdleEnd = nil
            onIdleEnd(self)
        }
    }
    func pipePause() { exchange?.upstreamPaused() }
    func pipeResume() { exchange?.upstreamResumed() }
    var pipeBacklog: Int { exchange?.clientBacklog ?? 0 }
}
