//! The catalogue of gateable metrics: the names thresholds, `compare` and `--repeat` spreads speak.
//!
//! A [`Metric`] is one figure of a [`TransportResult`] that says whether a change made delivery slower,
//! heavier or lossy. Each has a name (as written in a scenario's `[thresholds]`, in `--tolerance` and in
//! `result.json`), a unit, a [`Kind`] and a default tolerance for `compare`.
//!
//! **Direction.** Every metric here is *lower is better*: a rise is a regression, a fall an improvement.
//! (Delivered events are covered by `lost`, which rises when delivery drops.)
//!
//! **Kind.** [`Kind::Deterministic`] metrics follow from the workload and the protocol alone — the same
//! scenario against the same server gives the same figure up to a few requests or heartbeats, so their
//! tolerances are tight and CI gates on them. [`Kind::Noisy`] metrics are timings and resource readings that
//! move with whatever else the machine does; their tolerances are wide, and CI only reports them.
//!
//! **Unmeasurable** figures (nothing delivered, a `--target` server without `--server-pid`) are `None`.

use std::fmt;
use std::str::FromStr;

use super::TransportResult;

/// Whether a metric is a property of the workload or a reading of a noisy machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Follows from workload and protocol; tight tolerance; gated in this project's CI.
    Deterministic,
    /// Timing or resource reading that moves with machine load; wide tolerance.
    Noisy,
}

/// A gateable metric of one transport's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Owed events never received.
    Lost,
    /// Owed events never received that no gap notice named: the loss a push system must never have.
    LostSilently,
    /// Repeated receipts.
    Duplicates,
    /// First receipts below an id already received.
    OutOfOrder,
    /// HTTP requests per delivered event.
    RequestsPerDelivery,
    /// Subscriber bytes at the socket per delivered event.
    BytesPerDelivery,
    /// Median delivery latency from the intended send time.
    LatencyP50Ms,
    /// 90th percentile of the same.
    LatencyP90Ms,
    /// 99th percentile of the same.
    LatencyP99Ms,
    /// 99.9th percentile of the same.
    LatencyP999Ms,
    /// Largest latency seen.
    LatencyMaxMs,
    /// Server RSS growth per connected subscriber.
    ServerRssPerConnectionKib,
    /// Server CPU per thousand deliveries.
    ServerCpuMsPer1kDeliveries,
    /// Load generator CPU, percent of one core.
    LoadgenCpuPercent,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 14] = [
        Metric::Lost,
        Metric::LostSilently,
        Metric::Duplicates,
        Metric::OutOfOrder,
        Metric::RequestsPerDelivery,
        Metric::BytesPerDelivery,
        Metric::LatencyP50Ms,
        Metric::LatencyP90Ms,
        Metric::LatencyP99Ms,
        Metric::LatencyP999Ms,
        Metric::LatencyMaxMs,
        Metric::ServerRssPerConnectionKib,
        Metric::ServerCpuMsPer1kDeliveries,
        Metric::LoadgenCpuPercent,
    ];

    /// The name used in scenarios, on the command line and in `result.json`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Lost => "lost",
            Metric::LostSilently => "lost_silently",
            Metric::Duplicates => "duplicates",
            Metric::OutOfOrder => "out_of_order",
            Metric::RequestsPerDelivery => "requests_per_delivery",
            Metric::BytesPerDelivery => "bytes_per_delivery",
            Metric::LatencyP50Ms => "latency_p50_ms",
            Metric::LatencyP90Ms => "latency_p90_ms",
            Metric::LatencyP99Ms => "latency_p99_ms",
            Metric::LatencyP999Ms => "latency_p999_ms",
            Metric::LatencyMaxMs => "latency_max_ms",
            Metric::ServerRssPerConnectionKib => "server_rss_per_connection_kib",
            Metric::ServerCpuMsPer1kDeliveries => "server_cpu_ms_per_1k_deliveries",
            Metric::LoadgenCpuPercent => "loadgen_cpu_percent",
        }
    }

    /// Deterministic or noisy (see the module docs).
    pub fn kind(self) -> Kind {
        match self {
            Metric::Lost
            | Metric::LostSilently
            | Metric::Duplicates
            | Metric::OutOfOrder
            | Metric::RequestsPerDelivery
            | Metric::BytesPerDelivery => Kind::Deterministic,
            _ => Kind::Noisy,
        }
    }

    /// Default `compare` tolerance: the rise, in percent of the baseline, that still passes.
    ///
    /// Set from the run-to-run spread of `scenarios/quick.toml` in two five-run measurements on the
    /// development machine (`results/README.md`, "Run-to-run spread"): counts of lost, duplicated and
    /// out-of-order events must not rise at all; requests and bytes per delivery moved by at most 0.2 %
    /// between runs, so 1 % is five times that and still catches one extra request per polling subscriber
    /// or a few bytes per event; a noisy metric gets twice its typical relative range (max − min) ÷ median
    /// (the median over the five transports, the larger of the two measurements), rounded up to a multiple
    /// of 50 %. Outliers of a saturated machine exceed these: that is what spreads on both sides of a
    /// comparison, and CI's deterministic-only gate, are for.
    pub fn default_tolerance_pct(self) -> f64 {
        match self {
            Metric::Lost | Metric::LostSilently | Metric::Duplicates | Metric::OutOfOrder => 0.0,
            Metric::RequestsPerDelivery | Metric::BytesPerDelivery => 1.0,
            Metric::LatencyP50Ms => 100.0,
            Metric::LatencyP90Ms => 150.0,
            Metric::LatencyP99Ms | Metric::LatencyMaxMs => 300.0,
            Metric::LatencyP999Ms => 350.0,
            Metric::ServerRssPerConnectionKib => 250.0,
            Metric::ServerCpuMsPer1kDeliveries | Metric::LoadgenCpuPercent => 100.0,
        }
    }

    /// Decimals worth printing.
    pub fn decimals(self) -> usize {
        match self {
            Metric::Lost | Metric::LostSilently | Metric::Duplicates | Metric::OutOfOrder => 0,
            Metric::RequestsPerDelivery => 3,
            Metric::BytesPerDelivery | Metric::LoadgenCpuPercent => 1,
            _ => 2,
        }
    }

    /// The figure in `r`, or `None` when it could not be measured.
    pub fn value(self, r: &TransportResult) -> Option<f64> {
        let latency = |us: u64| (r.latency_us.count > 0).then_some(us as f64 / 1000.0);
        match self {
            Metric::Lost => Some(r.lost as f64),
            Metric::LostSilently => Some(r.lost_silently() as f64),
            Metric::Duplicates => Some(r.duplicates as f64),
            Metric::OutOfOrder => Some(r.out_of_order as f64),
            Metric::RequestsPerDelivery => r.requests_per_delivery,
            Metric::BytesPerDelivery => r.bytes_per_delivery,
            Metric::LatencyP50Ms => latency(r.latency_us.p50),
            Metric::LatencyP90Ms => latency(r.latency_us.p90),
            Metric::LatencyP99Ms => latency(r.latency_us.p99),
            Metric::LatencyP999Ms => latency(r.latency_us.p999),
            Metric::LatencyMaxMs => latency(r.latency_us.max),
            Metric::ServerRssPerConnectionKib => {
                r.server_rss_per_connection_bytes.map(|b| b / 1024.0)
            }
            Metric::ServerCpuMsPer1kDeliveries => r.server_cpu_ms_per_1k_deliveries,
            Metric::LoadgenCpuPercent => Some(r.loadgen_cpu_percent),
        }
    }

    /// Formats a value of this metric, `–` when absent.
    pub fn format(self, value: Option<f64>) -> String {
        super::opt(value, self.decimals())
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metric name that is not in the catalogue.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown metric {name:?} (known: {known})")]
pub struct UnknownMetric {
    /// The name given.
    pub name: String,
    /// The known names, comma-separated.
    pub known: String,
}

impl FromStr for Metric {
    type Err = UnknownMetric;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownMetric {
                name: s.to_owned(),
                known: Metric::ALL.map(Metric::name).join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for m in Metric::ALL {
            assert_eq!(m.name().parse::<Metric>().unwrap(), m);
        }
        let e = "latency_p98_ms".parse::<Metric>().unwrap_err().to_string();
        assert!(
            e.contains("latency_p98_ms") && e.contains("latency_p99_ms"),
            "{e}"
        );
    }
}
