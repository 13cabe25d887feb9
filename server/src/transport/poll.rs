//! `GET /poll`: interval polling. Answers at once with whatever is after the cursor; the client decides
//! how often to ask, so its latency is about half its interval and it pays a request even when nothing
//! happened.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use bytes::{BufMut, Bytes, BytesMut};
use pushbench_common::{Topic, Transport};

use super::SubscribeQuery;
use crate::error::ApiError;
use crate::feed::Batch;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/poll", get(poll))
}

async fn poll(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = SubscribeQuery::parse(query.as_deref(), false)?;
    let batch = read(&state, &query.topics, query.after)?;
    Ok(answer(&state, Transport::Poll, &batch))
}

/// What is after the cursor now; without a cursor, nothing and the head to continue from.
pub(super) fn read(
    state: &AppState,
    topics: &[Topic],
    after: Option<u64>,
) -> Result<Batch, ApiError> {
    let _slot = state.metrics.admit(Transport::Poll)?;
    Ok(match after {
        Some(after) => state.feed.read(topics, after),
        None => Batch {
            next: state.feed.head(),
            ..Batch::default()
        },
    })
}

/// The JSON answer to a poll or long-poll.
pub(super) fn answer(state: &AppState, transport: Transport, batch: &Batch) -> Response {
    super::response_with(
        "application/json",
        super::POLL_FIELDS,
        body(state, transport, batch).into(),
    )
}

/// The `{"events":[...],"next":N,"gap":{...}}` body, assembled from the events' shared encodings; counts
/// the delivery.
pub(super) fn body(state: &AppState, transport: Transport, batch: &Batch) -> Bytes {
    let capacity: usize = batch
        .events
        .iter()
        .map(|e| e.json().len() + 1)
        .sum::<usize>()
        + 96;
    let mut body = BytesMut::with_capacity(capacity);
    body.put_slice(b"{\"events\":[");
    for (i, event) in batch.events.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        body.put_slice(&event.json());
    }
    body.put_slice(format!("],\"next\":{}", batch.next).as_bytes());
    if let Some(gap) = batch.gap {
        state.metrics.gap(transport, false);
        body.put_slice(
            format!(
                r#","gap":{{"type":"gap","after":{},"resume":{}}}"#,
                gap.after, gap.resume
            )
            .as_bytes(),
        );
    }
    body.put_u8(b'}');
    state
        .metrics
        .delivered(transport, batch.events.len() as u64, body.len() as u64);
    body.freeze()
}
