//! `GET /longpoll`: the request is held until at least one event is after the cursor, or the timeout
//! passes (then it answers with no events and the same cursor). Latency is close to streaming, but every
//! delivery costs a new request, and events published while the client re-asks wait for the next request.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use pushbench_common::{Topic, Transport};

use super::SubscribeQuery;
use super::poll::answer;
use crate::error::ApiError;
use crate::feed::Batch;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/longpoll", get(long_poll))
}

async fn long_poll(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = SubscribeQuery::parse(query.as_deref(), true)?;
    let hold = hold_duration(&state, query.timeout_ms)?;
    let batch = wait(&state, query.topics, query.after, hold).await?;
    Ok(answer(&state, Transport::LongPoll, &batch))
}

/// How long to hold: `timeout_ms` if given and within `--longpoll-max-ms`, else the default.
pub(super) fn hold_duration(
    state: &AppState,
    timeout_ms: Option<u64>,
) -> Result<Duration, ApiError> {
    let max = state.config.longpoll_max;
    match timeout_ms {
        None => Ok(state.config.longpoll_default),
        Some(ms) if ms >= 1 && Duration::from_millis(ms) <= max => Ok(Duration::from_millis(ms)),
        Some(ms) => Err(ApiError::BadRequest(format!(
            "`timeout_ms` must be between 1 and {}, got {ms}",
            max.as_millis()
        ))),
    }
}

/// Holds a subscriber slot until there is something after the cursor, the hold passes (an empty
/// answer with the cursor to continue from) or the server shuts down.
pub(super) async fn wait(
    state: &AppState,
    topics: Arc<[Topic]>,
    after: Option<u64>,
    hold: Duration,
) -> Result<Batch, ApiError> {
    let _slot = state.metrics.admit(Transport::LongPoll)?;
    let mut subscription = state.feed.subscribe(topics, after);
    Ok(tokio::select! {
        // Long-polls answer at once: an answer is one write whatever it holds, so there is nothing to
        // coalesce, and `None` (the feed closed at shutdown) leaves the shutdown branch to answer.
        Some(batch) = subscription.next_batch(Duration::ZERO) => batch,
        () = tokio::time::sleep(hold) => subscription.read_now(),
        () = state.shutdown.cancelled() => subscription.read_now(),
    })
}
