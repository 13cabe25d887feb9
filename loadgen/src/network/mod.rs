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
//! terminates TCP and so would emulate neither connects nor losses. Where the kernel has netem, a veth
//! pair with a netem qdisc on each end can do the same ([`netem`]; never run here): `--emulator auto`,
//! the default, takes it when the kernel has it.
//!
//! # Layout
//! - this module: the conditions, their presets and their validation;
//! - [`namespace`]: creating, entering and removing the namespaces;
//! - [`emulator`]: the TUN devices and the per-packet forwarder;
//! - [`netem`]: the kernel's engine, a veth pair shaped by netem, and how `auto` detects it;
//! - [`placement`]: a command's emulated network: which side the run, the server and the subscribers
//!   stand on, and the round trip measured.

pub mod emulator;
pub mod namespace;
pub mod netem;
pub mod placement;

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which engine applies the conditions (`--emulator`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EmulatorChoice {
    /// netem when the kernel has it, else tun.
    #[default]
    Auto,
    /// pushbench's forwarder between two TUN devices.
    Tun,
    /// the kernel's netem qdisc on both ends of a veth pair (refused on a kernel without it).
    Netem,
}

/// Conditions of the path between the subscribers and the server, in the scenario's units when
/// serialized (`rtt_ms`, `jitter_ms`, `loss_pct`, `down_kbit`, `up_kbit`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// Round trip added, split evenly over both directions.
    #[serde(rename = "rtt_ms", with = "millis")]
    pub rtt: Duration,
    /// Each packet's delay varies uniformly by up to this much either way (packets keep their order).
    #[serde(rename = "jitter_ms", with = "millis")]
    pub jitter: Duration,
    /// Share of packets dropped in each direction, 0 to 100.
    pub loss_pct: f64,
    /// Server to subscribers, kbit/s; 0 = unlimited.
    pub down_kbit: u64,
    /// Subscribers to server, kbit/s; 0 = unlimited.
    pub up_kbit: u64,
}

/// The network a run asks for: a preset's name (or `custom`) and its conditions, `None` on loopback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// The preset it started from, or `custom` when only fields were given.
    pub profile: String,
    /// What is emulated; `None`: nothing (loopback).
    #[serde(flatten)]
    pub conditions: Option<Conditions>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            profile: "loopback".into(),
            conditions: None,
        }
    }
}

/// Fields given beside (or instead of) a preset; each overrides the preset's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overrides {
    /// `rtt_ms`.
    pub rtt_ms: Option<f64>,
    /// `jitter_ms`.
    pub jitter_ms: Option<f64>,
    /// `loss_pct`.
    pub loss_pct: Option<f64>,
    /// `down_kbit`.
    pub down_kbit: Option<u64>,
    /// `up_kbit`.
    pub up_kbit: Option<u64>,
}

impl NetworkSpec {
    /// `profile` (a preset name; none: `custom` when fields are given, else loopback) with `overrides`
    /// applied and the result validated.
    pub fn resolve(profile: Option<&str>, overrides: Overrides) -> Result<Self, String> {
        let any_field = overrides != Overrides::default();
        let (name, base) = match profile {
            Some(name) => {
                let p = preset(name)?;
                if p.conditions.is_none() && any_field {
                    return Err(format!(
                        "profile {name:?} emulates nothing, so it takes no fields; name another preset, or give the fields alone for a custom network"
                    ));
                }
                (p.name.to_owned(), p.conditions)
            }
            None if any_field => ("custom".to_owned(), Some(UNSHAPED)),
            None => return Ok(Self::default()),
        };
        let Some(base) = base else {
            return Ok(Self::default());
        };
        let duration = |field: &str, ms: f64| {
            if ms.is_finite() && (0.0..=10_000.0).contains(&ms) {
                Ok(Duration::from_secs_f64(ms / 1000.0))
            } else {
                Err(format!("{field} must be between 0 and 10000, got {ms}"))
            }
        };
        let conditions = Conditions {
            rtt: overrides
                .rtt_ms
                .map_or(Ok(base.rtt), |v| duration("rtt_ms", v))?,
            jitter: overrides
                .jitter_ms
                .map_or(Ok(base.jitter), |v| duration("jitter_ms", v))?,
            loss_pct: overrides.loss_pct.unwrap_or(base.loss_pct),
            down_kbit: overrides.down_kbit.unwrap_or(base.down_kbit),
            up_kbit: overrides.up_kbit.unwrap_or(base.up_kbit),
        }
        .validate()?;
        Ok(Self {
            profile: name,
            conditions: Some(conditions),
        })
    }

    /// Whether this is plain loopback (nothing emulated).
    pub fn is_loopback(&self) -> bool {
        self.conditions.is_none()
    }
}

/// The base of a custom network: no delay, no loss, no limit, until its fields say otherwise.
const UNSHAPED: Conditions = Conditions {
    rtt: Duration::ZERO,
    jitter: Duration::ZERO,
    loss_pct: 0.0,
    down_kbit: 0,
    up_kbit: 0,
};

/// Durations as (fractional) milliseconds.
mod millis {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let ms = <f64 as serde::Deserialize>::deserialize(d)?;
        Duration::try_from_secs_f64(ms / 1000.0).map_err(serde::de::Error::custom)
    }
}

/// A named set of conditions, with what it stands for.
#[derive(Debug)]
pub struct Preset {
    /// The name `--network` takes.
    pub name: &'static str,
    /// What it stands for (its figures are in `conditions`; [`Preset::describe`] says both).
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
        about: "wired LAN",
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
        about: "home Wi-Fi",
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
        about: "LTE",
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
        about: "HSPA",
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
        about: "congested Wi-Fi",
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
        about: "another continent over fibre",
        conditions: Some(Conditions {
            rtt: ms(250),
            jitter: ms(5),
            loss_pct: 0.1,
            down_kbit: 100_000,
            up_kbit: 100_000,
        }),
    },
];

impl Preset {
    /// `wifi (home Wi-Fi: 20 ms RTT ± 5 ms, 0.1 % loss, 50/20 Mbit/s)`, from the figures themselves.
    pub fn describe(&self) -> String {
        match &self.conditions {
            Some(c) => format!("{} ({}: {})", self.name, self.about, c.summary()),
            None => format!("{} ({})", self.name, self.about),
        }
    }
}

/// Every preset described, for `--network`'s help.
pub fn presets_help() -> String {
    PRESETS
        .iter()
        .map(Preset::describe)
        .collect::<Vec<_>>()
        .join("; ")
}

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
    /// `20 ms RTT ± 5 ms, 0.1 % loss, 50/20 Mbit/s` (jitter and loss left out when zero, one rate when
    /// both directions have it).
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} ms RTT", self.rtt.as_millis())];
        if !self.jitter.is_zero() {
            parts[0] += &format!(" ± {} ms", self.jitter.as_millis());
        }
        if self.loss_pct > 0.0 {
            parts.push(format!("{} % loss", self.loss_pct));
        }
        let gigabit = [self.down_kbit, self.up_kbit]
            .iter()
            .all(|k| *k > 0 && k.is_multiple_of(1_000_000));
        let (per_unit, unit) = if gigabit {
            (1_000_000.0, "Gbit/s")
        } else {
            (1_000.0, "Mbit/s")
        };
        let rate = |kbit: u64| match kbit {
            0 => "unlimited".to_owned(),
            k => format!("{}", k as f64 / per_unit),
        };
        parts.push(if self.down_kbit == self.up_kbit {
            format!("{} {unit}", rate(self.down_kbit))
        } else {
            format!("{}/{} {unit}", rate(self.down_kbit), rate(self.up_kbit))
        });
        parts.join(", ")
    }

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
        assert_eq!(
            preset("wifi").unwrap().describe(),
            "wifi (home Wi-Fi: 20 ms RTT ± 5 ms, 0.1 % loss, 50/20 Mbit/s)"
        );
        assert_eq!(
            preset("3g").unwrap().describe(),
            "3g (HSPA: 150 ms RTT ± 20 ms, 1 % loss, 2/0.5 Mbit/s)"
        );
        assert_eq!(
            preset("lan").unwrap().describe(),
            "lan (wired LAN: 1 ms RTT, 1 Gbit/s)"
        );
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

    #[test]
    fn fields_override_a_preset_or_make_a_custom_network() {
        let four_g = NetworkSpec::resolve(
            Some("4g"),
            Overrides {
                rtt_ms: Some(100.0),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(four_g.profile, "4g");
        let c = four_g.conditions.unwrap();
        assert_eq!(c.rtt, ms(100));
        assert_eq!(c.loss_pct, 0.5, "the preset's other fields stay");

        let custom = NetworkSpec::resolve(
            None,
            Overrides {
                loss_pct: Some(2.0),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(custom.profile, "custom");
        assert_eq!(
            custom.conditions.unwrap(),
            Conditions {
                loss_pct: 2.0,
                ..UNSHAPED
            }
        );

        assert!(
            NetworkSpec::resolve(None, Overrides::default())
                .unwrap()
                .is_loopback()
        );
        assert!(
            NetworkSpec::resolve(Some("loopback"), Overrides::default())
                .unwrap()
                .is_loopback()
        );
        let loopback_with_rtt = NetworkSpec::resolve(
            Some("loopback"),
            Overrides {
                rtt_ms: Some(5.0),
                ..Overrides::default()
            },
        );
        assert!(loopback_with_rtt.unwrap_err().contains("takes no fields"));
        let negative = NetworkSpec::resolve(
            Some("wifi"),
            Overrides {
                rtt_ms: Some(-1.0),
                ..Overrides::default()
            },
        );
        assert!(negative.unwrap_err().contains("rtt_ms"));
    }

    #[test]
    fn a_network_serializes_in_the_scenario_units() {
        let spec = NetworkSpec::resolve(Some("3g"), Overrides::default()).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"profile": "3g", "rtt_ms": 150.0, "jitter_ms": 20.0, "loss_pct": 1.0,
                "down_kbit": 2000, "up_kbit": 500})
        );
        assert_eq!(serde_json::from_value::<NetworkSpec>(json).unwrap(), spec);
    }
}
