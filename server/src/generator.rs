//! `--generate RATE`: a synthetic publisher, so a demo or a quick look at a transport needs no client
//! that publishes. It follows a fixed schedule (event *n* is due at `n / rate` seconds) and catches up
//! after a stall rather than drifting.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::config::GeneratorConfig;
use crate::state::AppState;

/// Shortest tick: above 1,000 events/s several events go out per tick.
const MIN_TICK: Duration = Duration::from_millis(1);

/// Publishes until shutdown.
pub(crate) async fn run(state: AppState, config: GeneratorConfig) {
    let tick = Duration::from_secs_f64(1.0 / config.rate).max(MIN_TICK);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let start = Instant::now();
    let mut sent: u64 = 0;
    let filler = "x".repeat(config.bytes);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let due = (start.elapsed().as_secs_f64() * config.rate) as u64 + 1;
        while sent < due {
            sent += 1;
            let label = format!("synthetic event {sent} ");
            let data = if label.len() >= config.bytes { label } else { label.clone() + &filler[label.len()..] };
            state.feed.publish(config.topic.clone(), &data[..config.bytes.min(data.len())]);
            state.metrics.published();
        }
    }
}
