//! The figures of a transport that are derived from its raw tallies, computed in this one place for a
//! measured run (the load generator) and for several runs merged into one (`gate::merge`).

use super::TransportResult;

/// Memory growth from before the launch to all subscribers connected, bytes, summed over what was
/// measured; `None` where it could not be measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Growth {
    /// The server's RSS (all nodes of a cluster).
    pub server_rss: Option<f64>,
    /// The kernel's TCP socket memory.
    pub kernel_sockets: Option<f64>,
    /// The load generator's RSS (all its processes).
    pub loadgen_rss: Option<f64>,
}

/// Fills the derived figures of `t` from its tallies (`delivered`, `subscribers_connected`, `requests`,
/// bytes, `server_cpu_ms`) and `growth`: per delivery, `None` when nothing was delivered; per connection,
/// `None` when nothing connected.
pub fn derive(t: &mut TransportResult, growth: Growth) {
    let delivered = t.delivered;
    let connected = t.subscribers_connected;
    let per_delivery = |x: f64| (delivered > 0).then(|| x / delivered as f64);
    let per_connected = |x: f64| (connected > 0).then(|| x / connected as f64);
    t.requests_per_delivery = per_delivery(t.requests as f64);
    t.bytes_per_delivery = per_delivery((t.bytes_received + t.bytes_sent) as f64);
    t.server_cpu_ms_per_1k_deliveries = t.server_cpu_ms.and_then(|ms| per_delivery(ms * 1000.0));
    t.server_rss_per_connection_bytes = growth.server_rss.and_then(per_connected);
    t.kernel_socket_bytes_per_connection = growth.kernel_sockets.and_then(per_connected);
    t.loadgen_rss_per_subscriber_bytes = growth.loadgen_rss.and_then(per_connected);
    derive_packets(t);
}

/// Fills `packets_per_delivery` from the emulated link's counts (`None` on loopback or when nothing
/// was delivered); [`derive`] calls it too.
pub fn derive_packets(t: &mut TransportResult) {
    let delivered = t.delivered;
    t.packets_per_delivery = t
        .link
        .filter(|_| delivered > 0)
        .map(|l| l.packets() as f64 / delivered as f64);
}
