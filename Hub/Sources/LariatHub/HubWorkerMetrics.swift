import LariatTunnel

/// What a worker tells `/metrics` about its tunnels: read from the sessions' own counters at
/// scrape time, so nothing is counted per frame.
extension HubWorker {
    /// Streams open and data bytes each way, by cluster, of this loop's tunnels (ended ones included).
    func tunnelTotals() -> [String: TunnelTotals] {
        var totals = retiredTotals
        for tunnel in tunnels.values {
            guard let cluster = tunnel.session.hello?.clusterID else { continue }
            let stats = tunnel.session.stats
            totals[cluster, default: TunnelTotals()].add(TunnelTotals(
                streams: tunnel.session.streamCount, bytesToAgent: stats.dataBytesSent, bytesFromAgent: stats.dataBytesReceived))
        }
        return totals
    }

    /// Keeps an ending tunnel's byte totals (its streams are gone).
    func retire(_ tunnel: TunnelConnection) {
        guard let cluster = tunnel.session.hello?.clusterID else { return }
        let stats = tunnel.session.stats
        retiredTotals[cluster, default: TunnelTotals()].add(TunnelTotals(
            streams: 0, bytesToAgent: stats.dataBytesSent, bytesFromAgent: stats.dataBytesReceived))
    }
}
