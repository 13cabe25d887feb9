//! Long-polling client (`GET /longpoll`).
//!
//! Like polling, but the server holds each request until at least one event is there (or
//! `longpoll.timeout_ms` passes), and the client asks again at once. The head cursor is learnt once with a
//! plain `/poll` (as a page does on load); from then on every request carries `after=<next>`, so events
//! published between two long-polls are not missed.
//!
//! The model: latency ≈ delivery time plus one request round trip when events arrive back to back (they
//! queue while the next request is on its way); requests per delivery ≈ 1 when events are rarer than
//! round trips, fewer when several are collected by one answer, plus one per timeout when idle.

use crate::clients::poll::poll_once;
use crate::clients::subscriber::{End, Subscriber};

/// Runs a long-polling subscriber until the run stops.
pub async fn run(sub: &mut Subscriber<'_>) {
    let hold = sub.shared.scenario.longpoll_timeout;
    let mut conn = None;
    loop {
        let path = match sub.rec.cursor {
            None => format!("/poll?{}", sub.topics_query),
            Some(cursor) => format!(
                "/longpoll?{}&after={cursor}&timeout_ms={}",
                sub.topics_query,
                hold.as_millis()
            ),
        };
        match poll_once(sub, &mut conn, &path, hold, true).await {
            Ok(Some(End::Stop)) => break,
            Ok(_) => {}
            Err(e) => {
                sub.rec.on_error(&e);
                if sub.pause_after_error().await {
                    break;
                }
            }
        }
        if sub.stopped() {
            break;
        }
    }
}
