//! The teaching demo: the page at `/` (embedded in the binary, no network needed) that subscribes to the
//! same feed over all five transports side by side, and `GET`/`PUT /generator`, which its controls use to
//! read and change the synthetic publisher's rate and event size.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::auth::{authorize, bearer_token};
use crate::config::GeneratorSettings;
use crate::error::ApiError;
use crate::state::AppState;

/// The page, with its styles and scripts inline.
const INDEX_HTML: &str = include_str!("../assets/index.html");

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/generator", get(generator).put(set_generator))
}

async fn index() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(INDEX_HTML))
}

/// `GET /generator` body: the topic the synthetic events go to and the current settings.
#[derive(Serialize)]
struct GeneratorState {
    topic: String,
    #[serde(flatten)]
    settings: GeneratorSettings,
}

fn generator_state(state: &AppState) -> Json<GeneratorState> {
    Json(GeneratorState {
        topic: state.config.generator.topic.to_string(),
        settings: *state.generator.borrow(),
    })
}

async fn generator(State(state): State<AppState>) -> Json<GeneratorState> {
    generator_state(&state)
}

/// Changing what the server publishes is publishing, so it takes the publish token when one is set.
async fn set_generator(
    State(state): State<AppState>,
    headers: HeaderMap,
    settings: Result<Json<GeneratorSettings>, JsonRejection>,
) -> Result<Json<GeneratorState>, ApiError> {
    authorize(
        &state,
        bearer_token(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())),
    )?;
    let Json(settings) = settings.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let settings = settings
        .validate(state.config.max_payload)
        .map_err(ApiError::BadRequest)?;
    state.generator.send_replace(settings);
    Ok(generator_state(&state))
}
