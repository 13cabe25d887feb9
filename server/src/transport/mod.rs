//! The HTTP surface: one small module per transport, all reading the same [`Feed`](crate::feed::Feed),
//! plus publishing and the operational endpoints. This module merges their routers and parses the query
//! that every subscription endpoint shares.

mod direct;
mod http_stream;
mod long_poll;
mod ndjson;
mod poll;
mod publish;
mod sse;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pushbench_common::Topic;

pub(crate) use direct::{Accepted, MAX_HEAD_BYTES, Socket, accept as accept_direct, refuse};

use crate::error::ApiError;
use crate::state::AppState;

/// Headers of a subscription answer beside its content type, written by the hyper path and by
/// [`direct`] alike: no cache may keep a feed's answer, and no reverse proxy (nginx) may buffer a stream.
type Fields = &'static [(&'static str, &'static str)];
const POLL_FIELDS: Fields = &[("cache-control", "no-store")];
const STREAM_FIELDS: Fields = &[("cache-control", "no-store"), ("x-accel-buffering", "no")];

/// A hyper response of `content_type` with `fields`.
fn response_with(content_type: &'static str, fields: Fields, body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for &(name, value) in fields {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// The same header lines, for a response head written by hand (each ends in CRLF).
fn head_lines(content_type: &str, fields: Fields) -> String {
    let mut lines = format!("content-type: {content_type}\r\n");
    for (name, value) in fields {
        lines.push_str(&format!("{name}: {value}\r\n"));
    }
    lines
}

/// For the fuzz targets (`fuzzing`): whether the direct path would serve `head` itself.
pub(crate) fn parse_direct_subscription(state: &AppState, head: &[u8]) -> bool {
    direct::parses_as_subscription(state, head)
}

/// For the fuzz targets (`fuzzing`): whether `query` parses without and with `timeout_ms` allowed.
pub(crate) fn parse_subscribe_query(query: &str) -> (bool, bool) {
    (
        SubscribeQuery::parse(Some(query), false).is_ok(),
        SubscribeQuery::parse(Some(query), true).is_ok(),
    )
}

/// Most topics one subscription may name, so a single request cannot make the server index thousands.
const MAX_TOPICS_PER_SUBSCRIPTION: usize = 64;

/// The complete router.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(publish::routes())
        .merge(poll::routes())
        .merge(long_poll::routes())
        .merge(ndjson::routes())
        .merge(sse::routes())
        .merge(ws::routes())
        .merge(crate::demo::routes())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let text = state
        .metrics
        .snapshot(state.feed.replay_stats(), state.feed.bus_status())
        .to_prometheus();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn stats(State(state): State<AppState>) -> impl IntoResponse {
    axum::Json(
        state
            .metrics
            .snapshot(state.feed.replay_stats(), state.feed.bus_status()),
    )
}

/// The query of a subscription endpoint: `topic=..` (repeatable), `after=..`, and for long-poll `timeout_ms=..`.
#[derive(Debug, PartialEq)]
struct SubscribeQuery {
    /// Distinct topics, sorted.
    topics: Arc<[Topic]>,
    /// Cursor to resume after; `None` means "only what comes next".
    after: Option<u64>,
    /// Long-poll hold, in milliseconds.
    timeout_ms: Option<u64>,
}

impl SubscribeQuery {
    /// Parses `query`, accepting `timeout_ms` only when `with_timeout`. Unknown parameters are refused so
    /// that a typo (`topics=`, `cursor=`) is an error, not a silently different subscription.
    fn parse(query: Option<&str>, with_timeout: bool) -> Result<Self, ApiError> {
        let mut topics = Vec::new();
        let (mut after, mut timeout_ms) = (None, None);
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*key {
                "topic" => topics.push(Topic::parse(&value)?),
                "after" => set_once(&mut after, "after", &value)?,
                "timeout_ms" if with_timeout => set_once(&mut timeout_ms, "timeout_ms", &value)?,
                other => {
                    let known = if with_timeout {
                        "topic, after, timeout_ms"
                    } else {
                        "topic, after"
                    };
                    return Err(ApiError::BadRequest(format!(
                        "unknown query parameter {other:?}; expected {known}"
                    )));
                }
            }
        }
        topics.sort();
        topics.dedup();
        if topics.is_empty() {
            return Err(ApiError::BadRequest(
                "at least one `topic=` is required".into(),
            ));
        }
        if topics.len() > MAX_TOPICS_PER_SUBSCRIPTION {
            return Err(ApiError::BadRequest(format!(
                "at most {MAX_TOPICS_PER_SUBSCRIPTION} topics per subscription"
            )));
        }
        Ok(Self {
            topics: topics.into(),
            after,
            timeout_ms,
        })
    }
}

/// Parses a parameter that may be given once: a second one is refused rather than silently winning.
fn set_once(slot: &mut Option<u64>, name: &str, value: &str) -> Result<(), ApiError> {
    if slot.is_some() {
        return Err(ApiError::BadRequest(format!(
            "`{name}` given more than once"
        )));
    }
    *slot = Some(parse_number(name, value)?);
    Ok(())
}

fn parse_number(name: &str, value: &str) -> Result<u64, ApiError> {
    value.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "`{name}` must be a non-negative integer, got {value:?}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<SubscribeQuery, String> {
        SubscribeQuery::parse(Some(q), true).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_repeated_topics_and_cursor() {
        let q = parse("topic=b&topic=a&topic=b&after=17&timeout_ms=500").unwrap();
        let names: Vec<&str> = q.topics.iter().map(Topic::as_str).collect();
        assert_eq!(
            (names, q.after, q.timeout_ms),
            (vec!["a", "b"], Some(17), Some(500))
        );
        assert_eq!(
            parse("topic=room%2E42").unwrap().topics[0].as_str(),
            "room.42"
        );
    }

    #[test]
    fn refuses_bad_queries_with_reasons() {
        assert!(parse("").unwrap_err().contains("at least one `topic=`"));
        assert!(
            parse("topic=a&after=x")
                .unwrap_err()
                .contains("`after` must be a non-negative integer")
        );
        assert!(parse("topic=a&after=-1").unwrap_err().contains("`after`"));
        for twice in [
            "topic=a&after=1&after=2",
            "topic=a&timeout_ms=1&timeout_ms=2",
        ] {
            assert!(
                parse(twice).unwrap_err().contains("more than once"),
                "{twice}"
            );
        }
        assert!(
            parse("topic=a%20b")
                .unwrap_err()
                .contains("may only contain")
        );
        assert!(
            parse("topic=a&cursor=1")
                .unwrap_err()
                .contains("unknown query parameter \"cursor\"")
        );
        assert!(SubscribeQuery::parse(Some("topic=a&timeout_ms=1"), false).is_err());
        let many: Vec<String> = (0..65).map(|i| format!("topic=t{i}")).collect();
        assert!(parse(&many.join("&")).unwrap_err().contains("at most 64"));
    }
}
