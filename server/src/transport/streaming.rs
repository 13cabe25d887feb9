//! The response body shared by the two HTTP streaming transports (`/stream` and `/sse`): they differ only
//! in how a message is framed, which each supplies as a [`Framing`].
//!
//! The body is a stream that hyper polls whenever it can write more. Each poll yields one frame: the
//! `subscribed` greeting first, then the events of the current batch one by one (each a reference-counted
//! slice of the event's shared encoding, so hyper gathers a batch into one `writev`), a gap notice when the
//! subscriber fell off the replay buffer, or a heartbeat after an idle interval. Hyper stops polling while
//! the socket is full, so a slow reader holds at most one batch plus hyper's bounded write queue; the rest
//! waits in the shared replay log. At shutdown the stream ends, hyper writes the final chunk and closes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use pushbench_common::Topic;
use pushbench_common::Transport;
use pushbench_common::wire::Gap;

use crate::error::ApiError;
use crate::feed::{StoredEvent, Subscription};
use crate::metrics::ConnectionGuard;
use crate::state::AppState;

/// How one streaming transport frames its messages.
pub(super) trait Framing: Send + 'static {
    /// Which transport this is, for counters.
    const TRANSPORT: Transport;
    /// `Content-Type` of the response.
    const CONTENT_TYPE: &'static str;
    /// The greeting that carries the starting cursor.
    fn subscribed(next: u64) -> Bytes;
    /// One event.
    fn event(event: &StoredEvent) -> Bytes;
    /// A gap notice.
    fn gap(gap: Gap) -> Bytes;
    /// Keep-alive after an idle interval.
    fn heartbeat() -> Bytes;
}

/// Admits the subscriber and answers with its never-ending (until shutdown or disconnect) body.
pub(super) fn respond<F: Framing>(
    state: &AppState,
    topics: Arc<[Topic]>,
    after: Option<u64>,
) -> Result<Response, ApiError> {
    let subscriber = Subscriber::<F>::admit(state, topics, after)?;
    let frames = futures_util::stream::unfold(subscriber, |mut subscriber| async move {
        let frame = subscriber.next_frame().await?;
        Some((Ok::<_, Infallible>(frame), subscriber))
    });
    let headers = [
        (header::CONTENT_TYPE, F::CONTENT_TYPE),
        (header::CACHE_CONTROL, "no-store"),
        // Tells reverse proxies (nginx) not to buffer the stream.
        (header::HeaderName::from_static("x-accel-buffering"), "no"),
    ];
    Ok((headers, Body::from_stream(frames)).into_response())
}

/// One subscriber's position in its stream, whoever writes it to the socket (hyper, or
/// [`super::direct`]).
pub(super) struct Subscriber<F> {
    subscription: Subscription,
    /// Events of the current batch not yet written.
    pending: VecDeque<Arc<StoredEvent>>,
    state: AppState,
    greeted: bool,
    /// Set after the first read: a gap after that means this subscriber fell behind while connected.
    live: bool,
    _slot: ConnectionGuard,
    _framing: PhantomData<fn() -> F>,
}

impl<F: Framing> Subscriber<F> {
    /// Takes a `--max-connections` slot and subscribes.
    pub(super) fn admit(
        state: &AppState,
        topics: Arc<[Topic]>,
        after: Option<u64>,
    ) -> Result<Self, ApiError> {
        let slot = state.metrics.admit(F::TRANSPORT)?;
        Ok(Self {
            subscription: state.feed.subscribe(topics, after),
            pending: VecDeque::new(),
            state: state.clone(),
            greeted: false,
            live: false,
            _slot: slot,
            _framing: PhantomData,
        })
    }

    /// The next frame to write, waiting for one if needed, or `None` to end the response (shutdown).
    /// Cancel-safe: nothing is consumed unless a frame is returned.
    pub(super) async fn next_frame(&mut self) -> Option<Bytes> {
        if !self.greeted {
            self.greeted = true;
            return Some(self.counted(F::subscribed(self.subscription.cursor()), 0));
        }
        if self.pending.is_empty() {
            tokio::select! {
                biased;
                () = self.state.shutdown.cancelled() => return None,
                batch = self.subscription.next_batch() => {
                    self.pending.extend(batch.events);
                    let live = std::mem::replace(&mut self.live, true);
                    if let Some(gap) = batch.gap {
                        self.state.metrics.gap(F::TRANSPORT, live);
                        return Some(self.counted(F::gap(gap), 0));
                    }
                }
                () = tokio::time::sleep(self.state.config.heartbeat) => return Some(self.counted(F::heartbeat(), 0)),
            }
        }
        self.ready_frame()
    }

    /// The next frame of the current batch, if one is ready without waiting: lets a writer gather a
    /// whole batch into one write.
    pub(super) fn ready_frame(&mut self) -> Option<Bytes> {
        let event = self.pending.pop_front()?;
        Some(self.counted(F::event(&event), 1))
    }

    fn counted(&self, frame: Bytes, events: u64) -> Bytes {
        self.state
            .metrics
            .delivered(F::TRANSPORT, events, frame.len() as u64);
        frame
    }
}
