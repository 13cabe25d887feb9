//! `GET /sse`: Server-Sent Events (`text/event-stream`). Browsers' `EventSource` reconnects by itself and
//! sends the last `id:` it saw as `Last-Event-ID`, which is exactly our cursor, so resume needs no client
//! code. Events carry `id:` + `data:`; control messages are named (`event: subscribed`, `event: gap`) and
//! set the id too, so a reconnect resumes from the right place; heartbeats are comments.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use pushbench_common::Transport;
use pushbench_common::wire::{Control, Gap, SSE_HEARTBEAT, push_sse_event};

use super::http_stream::{Framing, respond};
use super::{SubscribeQuery, parse_number};
use crate::error::ApiError;
use crate::feed::StoredEvent;
use crate::state::AppState;

/// Client reconnection delay announced with `retry:` (milliseconds).
const RETRY_MS: u64 = 1_000;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/sse", get(sse))
}

async fn sse(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = SubscribeQuery::parse(query.as_deref(), false)?;
    let after = cursor(
        headers.get("last-event-id").map(|v| v.as_bytes()),
        query.after,
    )?;
    respond::<EventStream>(&state, query.topics, after)
}

/// The cursor to start from. A reconnecting EventSource keeps its original URL (and `after=`) but sends
/// the newer cursor as `Last-Event-ID`, so the header wins.
pub(super) fn cursor(
    last_event_id: Option<&[u8]>,
    after: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    match last_event_id {
        None | Some(b"") => Ok(after),
        Some(id) => {
            let id = std::str::from_utf8(id).map_err(|_| {
                ApiError::BadRequest("`Last-Event-ID` must be a non-negative integer".into())
            })?;
            parse_number("Last-Event-ID", id).map(Some)
        }
    }
}

/// `text/event-stream` framing.
pub(super) struct EventStream;

/// A named event that also moves the client's `Last-Event-ID` to `id`.
fn named(name: &str, id: u64, message: &Control) -> String {
    let json = serde_json::to_string(message).expect("control messages serialize");
    format!("event: {name}\nid: {id}\ndata: {json}\n\n")
}

impl Framing for EventStream {
    const TRANSPORT: Transport = Transport::Sse;
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn subscribed(next: u64) -> Bytes {
        format!(
            "retry: {RETRY_MS}\n{}",
            named("subscribed", next, &Control::Subscribed { next })
        )
        .into()
    }

    fn event(event: &StoredEvent, out: &mut Vec<u8>) {
        let frame = event.sse_frame.get_or_init(|| {
            let json = event.json();
            let mut frame = Vec::with_capacity(json.len() + 32);
            push_sse_event(&mut frame, event.id, &json);
            frame.into()
        });
        out.extend_from_slice(frame);
    }

    fn gap(gap: Gap) -> Bytes {
        named("gap", gap.resume - 1, &Control::Gap(gap)).into()
    }

    fn heartbeat() -> Bytes {
        Bytes::from_static(SSE_HEARTBEAT.as_bytes())
    }
}
