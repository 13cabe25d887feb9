//! The synthetic publisher (`--generate RATE`, `--demo`), so a demo or a quick look at a transport needs
//! no client that publishes. It follows a fixed schedule (event *n* is due at `n / rate` seconds after the
//! settings last changed) and catches up after a stall rather than drifting. `PUT /generator` (the demo
//! page's controls) changes rate and size at run time through a watch channel.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{GeneratorConfig, GeneratorSettings};
use crate::state::AppState;

/// Shortest tick: above 1,000 events/s several events go out per tick.
const MIN_TICK: Duration = Duration::from_millis(1);

/// Publishes according to the latest settings until shutdown.
pub(crate) async fn run(
    state: AppState,
    config: GeneratorConfig,
    mut settings: watch::Receiver<GeneratorSettings>,
) {
    let mut sent_total: u64 = 0;
    loop {
        let current = *settings.borrow_and_update();
        if current.rate <= 0.0 {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                changed = settings.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let mut ticker =
            tokio::time::interval(Duration::from_secs_f64(1.0 / current.rate).max(MIN_TICK));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let start = Instant::now();
        let mut sent: u64 = 0;
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                changed = settings.changed() => if changed.is_err() { return } else { break },
                _ = ticker.tick() => {}
            }
            let due = (start.elapsed().as_secs_f64() * current.rate) as u64 + 1;
            while sent < due {
                sent += 1;
                sent_total += 1;
                let data = synthetic_data(sent_total, current.bytes);
                match state.feed.publish(config.topic.clone(), &data).await {
                    Ok(_) => state.metrics.published(),
                    Err(e) => tracing::debug!(error = %e, "synthetic event not published"),
                }
            }
        }
    }
}

/// `"synthetic event N "` padded with dots, or cut, to exactly `bytes` bytes.
fn synthetic_data(n: u64, bytes: usize) -> String {
    let mut data = format!("synthetic event {n} ");
    data.truncate(bytes);
    data.extend(std::iter::repeat_n('.', bytes - data.len()));
    data
}

#[cfg(test)]
mod tests {
    use super::synthetic_data;

    #[test]
    fn synthetic_data_has_the_requested_size() {
        assert_eq!(synthetic_data(7, 30), "synthetic event 7 ............");
        assert_eq!(synthetic_data(7, 5), "synth");
        assert_eq!(synthetic_data(7, 0), "");
    }
}
