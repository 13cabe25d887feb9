//! The figures of a transport that are derived from its raw tallies, computed in this one place for a
//! measured run (the load generator) and for several runs merged into one (`gate::merge`), and a long
//! run's drift from the servers' state sampled through its window.

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

/// How often the load generator samples the servers' state through the measured window, seconds: 360
/// samples over a 30-minute soak, each a read of `/proc` per node.
pub const DRIFT_EVERY_S: f64 = 5.0;

/// The servers' state at one moment of the measured window, summed over the nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftSample {
    /// Seconds since the end of the warm-up.
    pub at_s: f64,
    /// RSS, bytes; `None` when a node's could not be read.
    pub rss_bytes: Option<u64>,
    /// Open files; `None` when a node's could not be read.
    pub fds: Option<u64>,
}

/// Fills the drift of `t` from the servers' state sampled from the end of the warm-up (the first sample)
/// to the end of the drain (the last): the two end points, and the growth over the window by the
/// least-squares line through every sample. Two points cannot tell a slow leak from an allocator that
/// breathes; a line through hundreds can.
pub fn derive_drift(t: &mut TransportResult, samples: &[DriftSample]) {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return;
    };
    t.server_rss_after_warmup_bytes = first.rss_bytes;
    t.server_rss_end_bytes = last.rss_bytes;
    t.server_fds_after_warmup = first.fds;
    t.server_fds_end = last.fds;
    let window_s = last.at_s - first.at_s;
    let growth = |value: fn(&DriftSample) -> Option<u64>| {
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|s| Some((s.at_s, value(s)? as f64)))
            .collect();
        least_squares_slope(&points).map(|per_s| (per_s * window_s, points.len()))
    };
    let rss = growth(|s| s.rss_bytes);
    t.server_drift_samples = rss.map(|(_, n)| n as u64);
    t.server_rss_slope_percent = rss
        .zip(first.rss_bytes.filter(|&b| b > 0))
        .map(|((bytes, _), base)| bytes / base as f64 * 100.0);
    t.server_fds_slope = growth(|s| s.fds).map(|(files, _)| files);
}

/// The slope of the least-squares line through `points` (x, y); `None` without two distinct x.
fn least_squares_slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    // Centred sums: raw sums of squares of RSS in bytes (1e7) over hundreds of samples lose the slope
    // to rounding.
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(sxy, sxx), &(x, y)| {
        let dx = x - mean_x;
        (sxy + dx * (y - mean_y), sxx + dx * dx)
    });
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::test_result;

    #[test]
    fn the_slope_is_the_least_squares_line_not_the_end_points() {
        // Through (0,0) (1,2) (2,1) (3,3): Σdx·dy = 4, Σdx² = 5. The end points say 1.0, an uncentred
        // fit through the origin 13/14.
        let slope = least_squares_slope(&[(0.0, 0.0), (1.0, 2.0), (2.0, 1.0), (3.0, 3.0)]);
        assert_eq!(slope, Some(0.8));
        let line: Vec<_> = (0..360)
            .map(|i| (i as f64 * 5.0, 7e6 - 3.0 * i as f64 * 5.0))
            .collect();
        let slope = least_squares_slope(&line).unwrap();
        assert!((slope + 3.0).abs() < 1e-9, "{slope}");
        assert_eq!(least_squares_slope(&[(4.0, 1.0), (4.0, 9.0)]), None);
        assert_eq!(least_squares_slope(&[(4.0, 1.0)]), None);
        assert_eq!(least_squares_slope(&[]), None);
    }

    #[test]
    fn the_drift_keeps_the_end_points_and_the_trend_over_the_window_in_percent() {
        const MIB: u64 = 1 << 20;
        let sample = |at_s, rss_mib: u64, fds| DriftSample {
            at_s,
            rss_bytes: Some(rss_mib * MIB),
            fds: Some(fds),
        };
        // RSS 100, 104, 102, 106 MiB at 0, 10, 20, 30 s: the line rises 0.16 MiB/s, 4.8 MiB over the
        // 30 s window (4.8 %), where the end points say 6 %.
        let mut samples = vec![
            sample(0.0, 100, 1000),
            sample(10.0, 104, 1001),
            sample(20.0, 102, 1000),
            sample(30.0, 106, 1001),
        ];
        let mut t = test_result(&[1_000]).transports.remove(0);
        derive_drift(&mut t, &samples);
        assert_eq!(t.server_rss_after_warmup_bytes, Some(100 * MIB));
        assert_eq!(t.server_rss_end_bytes, Some(106 * MIB));
        assert_eq!(
            (t.server_fds_after_warmup, t.server_fds_end),
            (Some(1000), Some(1001))
        );
        assert_eq!(t.server_drift_samples, Some(4));
        let percent = t.server_rss_slope_percent.unwrap();
        assert!((percent - 4.8).abs() < 1e-9, "{percent}");
        let files = t.server_fds_slope.unwrap();
        assert!((files - 0.6).abs() < 1e-9, "{files}");

        // An unreadable sample is left out of its series, not read as zero.
        samples[1].rss_bytes = None;
        derive_drift(&mut t, &samples);
        assert_eq!(t.server_drift_samples, Some(3));
        let percent = t.server_rss_slope_percent.unwrap();
        // Through (0,100) (20,102) (30,106): Σdx·dy = 260/3, Σdx² = 1400/3; times 30 s, of 100 MiB.
        assert!((percent - 260.0 / 1400.0 * 30.0).abs() < 1e-9, "{percent}");
    }
}
