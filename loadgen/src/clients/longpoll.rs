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

use crate::clients::poll::{PollConn, poll_once};
use crate::clients::reconnect::{FirstSession, Session, until_stopped};
use crate::clients::subscriber::{End, Subscriber};
use crate::conn::ConnError;

/// Runs a long-polling subscriber until the run stops.
pub(crate) async fn run(sub: &mut Subscriber<'_>) {
    until_stopped(
        sub,
        &mut LongPollSession { conn: None },
        FirstSession::Always,
    )
    .await;
}

/// Long-polls on one keep-alive connection until churn cuts a request, the run stops or a request fails
/// (`poll_once` drops the connection then: the next session opens a new one).
struct LongPollSession {
    conn: Option<PollConn>,
}

impl Session for LongPollSession {
    async fn run(&mut self, sub: &mut Subscriber<'_>) -> Result<End, ConnError> {
        let hold = sub.shared.scenario.longpoll_timeout;
        loop {
            let path = match sub.rec.cursor {
                None => format!("/poll?{}", sub.topics_query),
                Some(cursor) => format!(
                    "/longpoll?{}&after={cursor}&timeout_ms={}",
                    sub.topics_query,
                    hold.as_millis()
                ),
            };
            if let Some(end) = poll_once(sub, &mut self.conn, &path, hold, true).await? {
                return Ok(end);
            }
            if sub.stopped() {
                return Ok(End::Stop);
            }
        }
    }
}
