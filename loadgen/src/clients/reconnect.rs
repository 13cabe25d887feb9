//! The reconnect loop every connection-holding client shares: one session after another until the run
//! stops; churn schedules the next drop, an error is recorded and paused after. What must outlive one
//! connection (the cursor, which the subscriber's recorder carries; a peer's poll cursor; a line buffer)
//! lives in the [`Session`], so every new connection resumes where the last one ended.

use crate::clients::subscriber::{End, Subscriber};
use crate::conn::ConnError;

/// One connection's life over one transport: open it, read until the run stops ([`End::Stop`]) or churn
/// is due ([`End::Churn`]), or fail. The loop, not the session, reconnects.
pub(crate) trait Session: Send {
    /// Runs one session of `sub`.
    fn run(
        &mut self,
        sub: &mut Subscriber<'_>,
    ) -> impl Future<Output = Result<End, ConnError>> + Send;
}

/// When the loop first looks at the stop signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstSession {
    /// Only while the run has not stopped (every client but the long-poll).
    UnlessStopped,
    /// Always: the long-poll client has always sent its first request before looking (a subscriber that
    /// starts after the stop then counts one request, cut). Kept so that merging the loops changes no
    /// count.
    Always,
}

/// Runs session after session of `sub` until the run stops.
pub(crate) async fn until_stopped(
    sub: &mut Subscriber<'_>,
    session: &mut impl Session,
    first: FirstSession,
) {
    if first == FirstSession::UnlessStopped && sub.stopped() {
        return;
    }
    loop {
        match session.run(sub).await {
            Ok(End::Stop) => break,
            Ok(End::Churn) => sub.churned(),
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
