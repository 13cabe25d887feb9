//! The one HTTP error type: every bad request gets a status and a one-line JSON body that tells the client
//! what it did wrong, and nothing about the server's internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pushbench_common::wire::ErrorBody;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed query, topic, cursor or timeout.
    #[error("{0}")]
    BadRequest(String),
    /// Publishing requires a token and the request had none or a wrong one.
    #[error("publishing requires `Authorization: Bearer <token>`")]
    Unauthorized,
    /// No such endpoint.
    #[error(
        "no such endpoint; see /, /healthz, /metrics, /stats, /publish/{{topic}}, /poll, /longpoll, /stream, /sse, /ws"
    )]
    NotFound,
    /// The endpoint exists, the method does not.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// The event body is larger than `--max-payload`.
    #[error("event body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The event body is not UTF-8.
    #[error("event body must be UTF-8 text")]
    NotUtf8,
    /// `--max-connections` subscriber requests are already being served.
    #[error("server is at its limit of {limit} concurrent subscribers; retry later")]
    TooManyConnections {
        /// The configured limit.
        limit: usize,
    },
    /// The event could not be stored (the Redis backplane is down); nothing was accepted.
    #[error("{0}; the event was not accepted, retry later")]
    Unavailable(String),
    /// The request head is larger than the server accepts.
    #[error("request head exceeds the limit of {limit} bytes")]
    HeadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The request head or body did not arrive in time.
    #[error("the request did not arrive within {} ms", after.as_millis())]
    RequestTimeout {
        /// The limit (`--request-timeout-ms`).
        after: std::time::Duration,
    },
    /// `--max-open-connections` TCP connections are already open.
    #[error("server is at its limit of {limit} open connections; retry later")]
    TooManyOpenConnections {
        /// The configured limit.
        limit: usize,
    },
    /// Cleartext HTTP sent to a port that serves TLS.
    #[error("this port serves TLS: use https://")]
    PlainHttpOnTlsPort,
    /// The request body could not be read (client went away mid-body).
    #[error("could not read the request body")]
    BodyRead,
}

impl ApiError {
    /// HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotUtf8 => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::HeadTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyConnections { .. }
            | Self::TooManyOpenConnections { .. }
            | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyRead | Self::PlainHttpOnTlsPort => StatusCode::BAD_REQUEST,
        }
    }
}

/// A bad topic name is the client's mistake: 400 with the reason.
impl From<pushbench_common::TopicError> for ApiError {
    fn from(error: pushbench_common::TopicError) -> Self {
        Self::BadRequest(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response()
    }
}
