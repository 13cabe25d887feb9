//! Entry points for the fuzz targets in `server/fuzz/` and for the test that replays their corpora:
//! the parsers that take bytes straight from the network. Each must answer every input with a value or
//! an error, never a panic. Not part of the server's API.

use std::sync::OnceLock;

use pushbench_common::wire::{ClientMessage, SseParser};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::feed::Feed;
use crate::state::AppState;
use crate::transport;

/// A request head as the direct path reads it off a new connection: parsed into a subscription it
/// serves itself, or left to hyper. Returns whether it would serve it directly.
pub fn request_head(head: &[u8]) -> bool {
    static STATE: OnceLock<AppState> = OnceLock::new();
    let state = STATE.get_or_init(|| {
        let config = Config::default();
        let feed = Feed::new(config.replay, config.batch);
        AppState::new(config, feed, CancellationToken::new())
    });
    transport::parse_direct_subscription(state, head)
}

/// The query of a subscription endpoint, with and without `timeout_ms` allowed. Returns whether each
/// parsed.
pub fn subscribe_query(query: &str) -> (bool, bool) {
    transport::parse_subscribe_query(query)
}

/// A WebSocket client frame's text. Returns whether it is a valid publish.
pub fn client_message(text: &str) -> bool {
    serde_json::from_str::<ClientMessage>(text).is_ok_and(
        |ClientMessage::Publish { topic, .. }| pushbench_common::Topic::parse(&topic).is_ok(),
    )
}

/// The SSE parser (shared with the load generator), fed `input` whole and cut in two at a point the
/// input's first byte chooses: both must dispatch the same events. Panics when they differ, which is the
/// bug a fuzzer should find.
pub fn sse_stream(input: &[u8]) {
    let events = |chunks: &[&[u8]]| {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |event| events.push(event));
        }
        events
    };
    let cut = input
        .first()
        .map_or(0, |&b| usize::from(b) % (input.len() + 1));
    let (front, back) = input.split_at(cut);
    assert_eq!(
        events(&[input]),
        events(&[front, back]),
        "cutting the stream at {cut} changed its events"
    );
}
