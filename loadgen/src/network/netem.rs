//! The kernel's engine, for kernels that have it: the two namespaces joined by a veth pair, and a
//! `netem` qdisc on each end (`delay`, `jitter`, `loss`, `rate`) shaping what that end sends.
//!
//! **Never run on the machine it was written on**: that kernel (and CI's) has no netem
//! (`CONFIG_NET_SCH_NETEM` off, no modules), so this engine only ever got as far as refusing there, at
//! the first `tc qdisc add … netem`. [`NetemLink::start`] is also how `--emulator auto` detects netem:
//! that refusal ([`EmulatorError::NoNetem`]) sends it to the TUN forwarder ([`super::emulator`]).
//!
//! Where it differs from the TUN forwarder: netem reorders packets when it jitters them (the forwarder
//! keeps their order), its queue is limited in packets (1,000, netem's default) rather than in time, and
//! it counts one kind of drop — so the loss and a full queue are both `*_lost`, and a flap's drops are
//! told apart only by the counter's rise while the link was cut.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;

use pushbench_report::result::LinkCounts;

use super::Conditions;
use super::emulator::{EmulatorError, Sides, address};
use super::namespace::{Namespace, ip};

/// The veth end's name in both namespaces.
const DEVICE: &str = "pbveth";

/// The link of the netem engine; dropping it removes both namespaces, and the veth pair with them.
#[derive(Debug)]
pub struct NetemLink {
    /// Where the server runs.
    pub server: Namespace,
    /// Where the subscribers run.
    pub subscribers: Namespace,
    /// Addresses on the subscriber side.
    pub subscriber_addrs: Vec<Ipv4Addr>,
    conditions: Conditions,
    /// Drops counted by each side's qdisc when the current cut began, and the cuts' drops so far
    /// (`[down, up]` each); no `.await` is ever held across it.
    cuts: Mutex<Cuts>,
    /// The counts last read, returned when `tc` cannot be read (they only ever rise, and the run
    /// subtracts earlier readings from later ones).
    last: Mutex<LinkCounts>,
}

#[derive(Debug, Default)]
struct Cuts {
    began_at: Option<[u64; 2]>,
    dropped: [u64; 2],
}

impl Cuts {
    /// The link is cut (`true`) or mended when the two qdiscs (`[down, up]`) have dropped `drops`; a
    /// cut of a cut link, or a mend of a whole one, changes nothing.
    fn set(&mut self, cut: bool, drops: [u64; 2]) {
        match (cut, self.began_at) {
            (true, None) => self.began_at = Some(drops),
            (false, Some(began)) => {
                for side in 0..2 {
                    self.dropped[side] += drops[side] - began[side];
                }
                self.began_at = None;
            }
            _ => {}
        }
    }

    /// Of `drops`, what the cuts dropped (a cut still going on: the rise since it began), per side.
    fn of(&self, drops: [u64; 2]) -> [u64; 2] {
        let ongoing = self
            .began_at
            .map_or([0, 0], |b| [drops[0] - b[0], drops[1] - b[1]]);
        [self.dropped[0] + ongoing[0], self.dropped[1] + ongoing[1]]
    }
}

/// One qdisc's counters, as `tc -s -j qdisc show` prints them.
#[derive(Debug, serde::Deserialize)]
struct QdiscStats {
    kind: String,
    packets: u64,
    drops: u64,
}

impl NetemLink {
    /// Creates the namespaces, the veth pair between them and their addresses, and shapes each end
    /// with netem; fails with [`EmulatorError::NoNetem`] on a kernel without it.
    pub fn start(conditions: Conditions, subscriber_addrs: usize) -> Result<Self, EmulatorError> {
        let Sides {
            server,
            subscribers,
            subscriber_addrs,
        } = Sides::create(subscriber_addrs)?;
        ip(&[
            "-n",
            server.name(),
            "link",
            "add",
            DEVICE,
            "type",
            "veth",
            "peer",
            "name",
            DEVICE,
            "netns",
            subscribers.name(),
        ])?;
        address(&server, &subscribers, DEVICE, &subscriber_addrs)?;
        let link = Self {
            server,
            subscribers,
            subscriber_addrs,
            conditions,
            cuts: Mutex::new(Cuts::default()),
            last: Mutex::new(LinkCounts::default()),
        };
        link.shape("add", false)?;
        Ok(link)
    }

    /// Adds (`verb` = `add`) or changes (`change`) both ends' netem qdiscs: the conditions, or every
    /// packet dropped while `cut`.
    fn shape(&self, verb: &str, cut: bool) -> Result<(), EmulatorError> {
        let c = self.conditions;
        let loss = if cut { 100.0 } else { c.loss_pct };
        for (side, kbit) in [(&self.server, c.down_kbit), (&self.subscribers, c.up_kbit)] {
            let mut args = vec![
                "qdisc".to_owned(),
                verb.to_owned(),
                "dev".to_owned(),
                DEVICE.to_owned(),
                "root".to_owned(),
                "netem".to_owned(),
                "delay".to_owned(),
                format!("{}us", c.one_way().as_micros()),
                format!("{}us", c.jitter.as_micros()),
                "loss".to_owned(),
                format!("{loss}%"),
            ];
            if kbit > 0 {
                args.extend(["rate".to_owned(), format!("{kbit}kbit")]);
            }
            tc(side, &args)?;
        }
        Ok(())
    }

    /// Cuts the link (netem drops every packet both ways) or mends it, keeping count of what the cut
    /// dropped; a failure is printed (a fault that could not be injected does not stop the run).
    pub fn set_cut(&self, cut: bool) {
        if let Err(e) = self.try_set_cut(cut) {
            eprintln!("pushbench: WARNING: cutting the netem link: {e}");
        }
    }

    fn try_set_cut(&self, cut: bool) -> Result<(), EmulatorError> {
        let drops = self.drops()?;
        self.shape("change", cut)?;
        self.cuts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(cut, drops);
        Ok(())
    }

    /// What both qdiscs sent and dropped so far; when `tc` cannot say, a warning and the last counts.
    pub fn counts(&self) -> LinkCounts {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match self.try_counts() {
            Ok(now) => *last = now,
            Err(e) => eprintln!("pushbench: WARNING: reading the netem link's counters: {e}"),
        }
        *last
    }

    fn try_counts(&self) -> Result<LinkCounts, EmulatorError> {
        let [down, up] = [&self.server, &self.subscribers].map(stats);
        let (down, up) = (down?, up?);
        let cut = self
            .cuts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .of([down.drops, up.drops]);
        Ok(LinkCounts {
            down_packets: down.packets,
            down_lost: down.drops - cut[0],
            down_queue_drops: 0,
            up_packets: up.packets,
            up_lost: up.drops - cut[1],
            up_queue_drops: 0,
            down_cut: cut[0],
            up_cut: cut[1],
        })
    }

    fn drops(&self) -> Result<[u64; 2], EmulatorError> {
        Ok([stats(&self.server)?.drops, stats(&self.subscribers)?.drops])
    }
}

/// The netem qdisc's counters on `side`'s end.
fn stats(side: &Namespace) -> Result<QdiscStats, EmulatorError> {
    let args = ["-s", "-j", "qdisc", "show", "dev", DEVICE].map(str::to_owned);
    netem_of(&tc(side, &args)?).map_err(|reason| tc_failed(side, &args, reason))
}

/// The netem qdisc among those `tc -s -j qdisc show` printed.
fn netem_of(json: &str) -> Result<QdiscStats, String> {
    let qdiscs: Vec<QdiscStats> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    qdiscs
        .into_iter()
        .find(|q| q.kind == "netem")
        .ok_or_else(|| format!("no netem qdisc in {json}"))
}

fn tc_failed(side: &Namespace, args: &[String], reason: String) -> EmulatorError {
    EmulatorError::Tc {
        namespace: side.name().to_owned(),
        args: args.join(" "),
        reason,
    }
}

/// Runs `tc ARGS` inside `side`, returning what it printed; a kernel without netem is
/// [`EmulatorError::NoNetem`].
fn tc(side: &Namespace, args: &[String]) -> Result<String, EmulatorError> {
    let output = Command::new("ip")
        .args(["netns", "exec", side.name(), "tc"])
        .args(args)
        .output()
        .map_err(|e| tc_failed(side, args, format!("{e} (install iproute2)")))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let reason = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if reason.contains("qdisc kind is unknown") {
        return Err(EmulatorError::NoNetem(reason));
    }
    Err(tc_failed(side, args, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_are_read_from_tcs_json_and_a_missing_netem_is_named() {
        // The fields as this machine's `tc -s -j qdisc show` prints them (for a tbf qdisc: it has no
        // netem), with the kind changed.
        let json = r#"[{"kind":"netem","handle":"8001:","root":true,"refcnt":3,"options":{},"bytes":9000,"packets":12,"drops":2,"overlimits":0,"requeues":0,"backlog":0,"qlen":0}]"#;
        let q = netem_of(json).unwrap();
        assert_eq!((q.packets, q.drops), (12, 2));
        let tbf = json.replace("netem", "tbf");
        assert!(netem_of(&tbf).unwrap_err().contains("no netem qdisc"));
    }

    #[test]
    fn a_cuts_drops_are_told_from_the_losses_while_it_lasts_and_after() {
        let mut cuts = Cuts::default();
        assert_eq!(cuts.of([5, 3]), [0, 0], "no cut yet: every drop is a loss");
        cuts.set(true, [5, 3]);
        assert_eq!(cuts.of([9, 4]), [4, 1], "the rise since the cut began");
        cuts.set(true, [9, 4]);
        assert_eq!(
            cuts.of([10, 4]),
            [5, 1],
            "cutting a cut link changes nothing"
        );
        cuts.set(false, [11, 6]);
        assert_eq!(cuts.of([13, 6]), [6, 3], "drops after the mend are losses");
        cuts.set(false, [13, 6]);
        assert_eq!(cuts.of([13, 6]), [6, 3]);
    }
}
