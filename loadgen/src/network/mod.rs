//! Network conditions between the subscribers and the server: round trip, jitter, loss and bandwidth,
//! applied per packet so that TCP's handshakes, retransmissions, congestion control and head-of-line
//! blocking meet them as on a real network.
//!
//! # How
//! Two network namespaces of the run's own — the server side and the subscriber side, addresses from
//! 198.18.0.0/15 (RFC 2544's benchmarking range) — joined by a TUN device in each and a forwarder in
//! this process that moves every IP packet from one device to the other after the conditions' delay,
//! dropping and rate-limiting as asked ([`emulator`]). Written here rather than taken from the kernel
//! because this machine's kernel (and CI's) has no `netem` qdisc; a TCP proxy would not do, since it
//! terminates TCP and so would emulate neither connects nor losses.
//!
//! # Layout
//! - this module: the conditions, their presets and their validation;
//! - [`namespace`]: creating, entering and removing the namespaces;
//! - [`emulator`]: the TUN devices and the per-packet forwarder.

pub mod emulator;
pub mod namespace;

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Conditions of the path between the subscribers and the server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// Round trip added, split evenly over both directions.
    pub rtt: Duration,
    /// Each packet's delay varies uniformly by up to this much either way (packets keep their order).
    pub jitter: Duration,
    /// Share of packets dropped in each direction, 0 to 100.
    pub loss_pct: f64,
    /// Server to subscribers, kbit/s; 0 = unlimited.
    pub down_kbit: u64,
    /// Subscribers to server, kbit/s; 0 = unlimited.
    pub up_kbit: u64,
}

/// A named set of conditions, with what it stands for.
#[derive(Debug)]
pub struct Preset {
    /// The name `--network` takes.
    pub name: &'static str,
    /// What it stands for.
    pub about: &'static str,
    /// Its conditions; `None` for `loopback`, which creates no namespaces at all.
    pub conditions: Option<Conditions>,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The presets, in the order `--help` lists them. Their figures are round values typical of each class
/// of network (our assumption, not a measurement of one network); a scenario's `[network]` fields
/// override any of them.
pub static PRESETS: &[Preset] = &[
    Preset {
        name: "loopback",
        about: "no emulation: this machine's loopback, no namespaces, no privileges needed",
        conditions: None,
    },
    Preset {
        name: "lan",
        about: "wired LAN: 1 ms RTT, 1 Gbit/s",
        conditions: Some(Conditions {
            rtt: ms(1),
            jitter: ms(0),
            loss_pct: 0.0,
            down_kbit: 1_000_000,
            up_kbit: 1_000_000,
        }),
    },
    Preset {
        name: "wifi",
        about: "home Wi-Fi: 20 ms RTT ± 5 ms, 0.1 % loss, 50/20 Mbit/s",
        conditions: Some(Conditions {
            rtt: ms(20),
            jitter: ms(5),
            loss_pct: 0.1,
            down_kbit: 50_000,
            up_kbit: 20_000,
        }),
    },
    Preset {
        name: "4g",
        about: "LTE: 60 ms RTT ± 10 ms, 0.5 % loss, 20/5 Mbit/s",
        conditions: Some(Conditions {
            rtt: ms(60),
            jitter: ms(10),
            loss_pct: 0.5,
            down_kbit: 20_000,
            up_kbit: 5_000,
        }),
    },
    Preset {
        name: "3g",
        about: "HSPA: 150 ms RTT ± 20 ms, 1 % loss, 2/0.5 Mbit/s",
        conditions: Some(Conditions {
            rtt: ms(150),
            jitter: ms(20),
            loss_pct: 1.0,
            down_kbit: 2_000,
            up_kbit: 500,
        }),
    },
    Preset {
        name: "lossy",
        about: "congested Wi-Fi: 30 ms RTT ± 10 ms, 2 % loss, 20/10 Mbit/s",
        conditions: Some(Conditions {
            rtt: ms(30),
            jitter: ms(10),
            loss_pct: 2.0,
            down_kbit: 20_000,
            up_kbit: 10_000,
        }),
    },
    Preset {
        name: "intercontinental",
        about: "another continent over fibre: 250 ms RTT ± 5 ms, 0.1 % loss, 100 Mbit/s",
        conditions: Some(Conditions {
            rtt: ms(250),
            jitter: ms(5),
            loss_pct: 0.1,
            down_kbit: 100_000,
            up_kbit: 100_000,
        }),
    },
];

/// The preset called `name`, or an error listing the names.
pub fn preset(name: &str) -> Result<&'static Preset, String> {
    PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        format!(
            "unknown network {name:?}; expected one of {}",
            names.join(", ")
        )
    })
}

impl Conditions {
    /// Checks that the figures make sense: loss 0 to 100 %, jitter no larger than the one-way delay (a
    /// packet cannot arrive before it was sent).
    pub fn validate(self) -> Result<Self, String> {
        if !(0.0..=100.0).contains(&self.loss_pct) {
            return Err(format!(
                "loss_pct must be between 0 and 100, got {}",
                self.loss_pct
            ));
        }
        if self.jitter > self.rtt / 2 {
            return Err(format!(
                "jitter_ms ({}) must not exceed half of rtt_ms ({})",
                self.jitter.as_millis(),
                self.rtt.as_millis()
            ));
        }
        Ok(self)
    }

    /// The delay each way.
    pub fn one_way(&self) -> Duration {
        self.rtt / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid_and_named_once() {
        for (i, p) in PRESETS.iter().enumerate() {
            if let Some(c) = p.conditions {
                assert_eq!(c.validate(), Ok(c), "{}", p.name);
            }
            assert!(PRESETS[..i].iter().all(|q| q.name != p.name), "{}", p.name);
            assert!(std::ptr::eq(preset(p.name).unwrap(), p));
        }
        assert!(preset("loopback").unwrap().conditions.is_none());
        assert!(
            preset("5g")
                .unwrap_err()
                .contains("expected one of loopback, lan")
        );
    }

    #[test]
    fn impossible_conditions_are_refused_with_the_field() {
        let base = preset("4g").unwrap().conditions.unwrap();
        let lossy = Conditions {
            loss_pct: 101.0,
            ..base
        };
        assert!(lossy.validate().unwrap_err().contains("loss_pct"));
        let jittery = Conditions {
            jitter: ms(40),
            ..base
        };
        assert!(jittery.validate().unwrap_err().contains("jitter_ms"));
    }
}
