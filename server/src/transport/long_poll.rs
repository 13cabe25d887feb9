//! `GET /longpoll`: the request is held until at least one event is after the cursor, or the timeout
//! passes (then it answers with no events and the same cursor). Latency is close to streaming, but every
//! delivery costs a new request, and events published while the client re-asks wait for the next request.

use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use pushbench_common::Transport;

use super::SubscribeQuery;
use super::poll::answer;
use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/longpoll", get(long_poll))
}

async fn long_poll(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let query = SubscribeQuery::parse(query.as_deref(), true)?;
    let max = state.config.longpoll_max;
    let hold = match query.timeout_ms {
        None => state.config.longpoll_default,
        Some(ms) if ms >= 1 && Duration::from_millis(ms) <= max => Duration::from_millis(ms),
        Some(ms) => {
            return Err(ApiError::BadRequest(format!("`timeout_ms` must be between 1 and {}, got {ms}", max.as_millis())));
        }
    };
    let _slot = state.metrics.admit(Transport::LongPoll)?;
    let mut subscription = state.feed.subscribe(query.topics, query.after);
    let batch = tokio::select! {
        batch = subscription.next_batch() => batch,
        () = tokio::time::sleep(hold) => subscription.read_now(),
        () = state.shutdown.cancelled() => subscription.read_now(),
    };
    Ok(answer(&state, Transport::LongPoll, &batch))
}
