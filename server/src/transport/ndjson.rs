//! `GET /stream`: chunked HTTP streaming of newline-delimited JSON. One request, then one line per
//! message for as long as the connection lives; the client parses lines itself (no browser API does it).

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use pushbench_common::Transport;
use pushbench_common::wire::{Control, Gap, STREAM_HEARTBEAT};

use super::SubscribeQuery;
use super::http_stream::{Framing, respond};
use crate::error::ApiError;
use crate::feed::StoredEvent;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/stream", get(stream))
}

async fn stream(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = SubscribeQuery::parse(query.as_deref(), false)?;
    respond::<NdJson>(&state, query.topics, query.after)
}

/// One JSON message per line.
pub(super) struct NdJson;

fn line(control: &Control) -> Bytes {
    let mut line = serde_json::to_vec(control).expect("control messages serialize");
    line.push(b'\n');
    line.into()
}

impl Framing for NdJson {
    const TRANSPORT: Transport = Transport::Stream;
    const CONTENT_TYPE: &'static str = "application/x-ndjson";

    fn subscribed(next: u64) -> Bytes {
        line(&Control::Subscribed { next })
    }

    fn event(event: &StoredEvent, out: &mut Vec<u8>) {
        out.extend_from_slice(event.line());
    }

    fn gap(gap: Gap) -> Bytes {
        line(&Control::Gap(gap))
    }

    fn heartbeat() -> Bytes {
        Bytes::from_static(STREAM_HEARTBEAT.as_bytes())
    }
}
