//! Faults injected while events are published (`[faults]`): a deploy restarts the server (with
//! `--cluster`, node after node), a crash kills one node for good, a flapping link drops every packet
//! between the subscribers and the server for a while, again and again.
//!
//! Faults are timed from the first event's due time, on the same clock as the publisher, and run beside
//! it: the publisher keeps its open-loop schedule whatever is down (a publish refused meanwhile is never
//! acknowledged, so nobody is owed it), and the subscribers find out the way real clients do (a closed
//! stream, a refused connect, a stalled socket), reconnect with backoff and resume from their cursors.
//! What each fault did is recorded ([`FaultEvent`]) and lands in the result beside the delivery
//! accounting, which tells lost events a gap notice announced from those lost silently.

use std::time::Duration;

use pushbench_report::result::FaultEvent;
use tokio::time::Instant;

use crate::error::RunError;
use crate::network::placement::Emulated;
use crate::scenario::Faults;
use crate::targets::deployment::Deployment;

/// How long a restarted server may take over its graceful shutdown before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Checks, before anything starts, that this run can inject `faults`: restarts and kills need servers
/// the run spawns, a kill needs a second node to move to, a flap needs an emulated link.
pub fn check(
    faults: &Faults,
    spawned: bool,
    cluster: usize,
    network: Option<&Emulated>,
) -> Result<(), RunError> {
    let refuse = |why: &str| Err(RunError::Faults(why.to_owned()));
    if (faults.restart_at.is_some() || faults.kill_node_at.is_some()) && !spawned {
        return refuse(
            "restart_at_s and kill_node_at_s need servers the run spawns (not --target or a peer)",
        );
    }
    if faults.kill_node_at.is_some() && cluster < 2 {
        return refuse(
            "kill_node_at_s needs --cluster 2 or more: its subscribers must have a node to move to",
        );
    }
    if faults.flap.is_some() && network.is_none() {
        return refuse("flap cuts the emulated link: run with a [network] other than loopback");
    }
    Ok(())
}

/// Injects `faults` into `servers` (and the link of `network`) on the schedule that starts at `start`,
/// and returns what was done, in order. Every fault starts within the publishing `window` (the
/// scenario checks its times against it); a cut link is always mended before this returns.
pub async fn inject(
    faults: &Faults,
    servers: &Deployment,
    network: Option<&Emulated>,
    (start, window): (Instant, Duration),
) -> Result<Vec<FaultEvent>, RunError> {
    let server_faults = async {
        let mut done = Vec::new();
        if let Some(at) = faults.restart_at {
            tokio::time::sleep_until(start + at).await;
            for (i, node) in servers.nodes.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(faults.rolling_pause).await;
                }
                let at_s = start.elapsed().as_secs_f64();
                let down = node.restart(SHUTDOWN_GRACE).await?;
                done.push(FaultEvent {
                    kind: "restart".into(),
                    node: Some(i),
                    at_s,
                    down_ms: Some(down.as_secs_f64() * 1000.0),
                });
            }
        }
        if let Some(at) = faults.kill_node_at {
            tokio::time::sleep_until(start + at).await;
            // The last node: subscriber 0's first connection, on node 0, stays out of it.
            let i = servers.nodes.len() - 1;
            let at_s = start.elapsed().as_secs_f64();
            servers.nodes[i].kill().await?;
            done.push(FaultEvent {
                kind: "kill".into(),
                node: Some(i),
                at_s,
                down_ms: None,
            });
        }
        Ok::<_, RunError>(done)
    };
    let link_faults = async {
        let mut done = Vec::new();
        let (Some(flap), Some(network)) = (faults.flap, network) else {
            return done;
        };
        let mut cut_at = flap.every;
        while cut_at < window {
            tokio::time::sleep_until(start + cut_at).await;
            network.set_cut(true);
            let at_s = start.elapsed().as_secs_f64();
            tokio::time::sleep(flap.down).await;
            network.set_cut(false);
            done.push(FaultEvent {
                kind: "link down".into(),
                node: None,
                at_s,
                down_ms: Some((start.elapsed().as_secs_f64() - at_s) * 1000.0),
            });
            cut_at += flap.every;
        }
        done
    };
    let (servers_done, link_done) = tokio::join!(server_faults, link_faults);
    let mut done = servers_done?;
    done.extend(link_done);
    done.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    Ok(done)
}
