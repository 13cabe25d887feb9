//! Server-Sent Events client (`GET /sse`, `text/event-stream`).
//!
//! Same connection life as the NDJSON stream (it shares [`crate::clients::stream::stream_until_stopped`]); the body
//! goes through the shared [`SseParser`], which handles any split of fields across chunks. Events come as
//! `id: N` + `data: <event json>`, control messages as `event: <type>` + `data: <json>`, heartbeats as
//! comments (invisible to the parser, but their bytes are counted at the socket). Resuming uses the SSE
//! mechanism a browser uses: the `Last-Event-ID` header carries the cursor.

use pushbench_common::wire::SseParser;

use crate::clients::stream::stream_until_stopped;
use crate::clients::subscriber::Subscriber;
use crate::conn::ConnError;

/// Runs an SSE subscriber until the run stops.
pub(crate) async fn run(sub: &mut Subscriber<'_>) {
    let mut parser = SseParser::default();
    let request = |sub: &Subscriber<'_>| {
        let path = format!("/sse?{}", sub.topics_query);
        (
            path,
            sub.rec.cursor.map(|c| ("last-event-id", c.to_string())),
        )
    };
    let decode = move |sub: &mut Subscriber<'_>, chunk: &[u8]| -> Result<bool, ConnError> {
        let mut result = Ok(false);
        parser.feed(chunk, |event| {
            if let Ok(any) = result {
                result = sub
                    .on_message(&event.data)
                    .map(|subscribed| any | subscribed);
            }
        });
        result
    };
    stream_until_stopped(sub, request, decode).await;
}
