//! `POST /publish/{topic}`: the body becomes one event. The checks here are shared with WebSocket publish
//! frames so that both paths accept exactly the same events.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::routing::post;
use pushbench_common::Topic;
use pushbench_common::wire::PublishAck;

use crate::auth::{authorize, bearer_token};
use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/publish/{topic}", post(publish))
}

async fn publish(
    State(state): State<AppState>,
    topic: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PublishAck>, ApiError> {
    authorize(
        &state,
        bearer_token(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())),
    )?;
    let Path(topic) = topic.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = state.config.max_payload;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // Bounded in time as well as size: a body trickling in holds a connection and a file descriptor.
    let timeout = state.config.request_timeout;
    let body = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| ApiError::RequestTimeout { after: timeout })?;
    let body = body.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::BodyRead
        }
    })?;
    let data = std::str::from_utf8(&body).map_err(|_| ApiError::NotUtf8)?;
    accept(&state, &topic, data).await.map(Json)
}

/// Validates and publishes one event; the single entry point for every publish path.
pub(super) async fn accept(
    state: &AppState,
    topic: &str,
    data: &str,
) -> Result<PublishAck, ApiError> {
    let topic = Topic::parse(topic)?;
    if data.len() > state.config.max_payload {
        return Err(ApiError::PayloadTooLarge {
            limit: state.config.max_payload,
        });
    }
    let ack = state
        .feed
        .publish(topic, data)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    state.metrics.published();
    Ok(ack)
}
