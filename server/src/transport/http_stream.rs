//! The response body shared by the two HTTP streaming transports (`/stream` and `/sse`): they differ only
//! in how a message is framed, which each supplies as a [`Framing`].
//!
//! A [`Subscriber`] produces one *write* at a time: the `subscribed` greeting first, then everything its
//! subscription has to deliver (a gap notice when it fell off the replay buffer, and the events of the
//! batch), or a heartbeat after an idle interval — all the frames of one write in one buffer, so that a
//! batch costs one system call however many events it holds. Under `--write-interval-ms` the subscription
//! paces those writes, so that a fast stream of events leaves in fewer, larger ones. Its writer (hyper's
//! body, or [`super::direct`]) waits for the socket to take a write before asking for the next, so a slow
//! reader holds at most one batch; the rest waits in the shared replay log. At shutdown the stream ends
//! after writing what it had read, and the writer sends the final chunk and closes.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use pushbench_common::Topic;
use pushbench_common::Transport;
use pushbench_common::wire::Gap;
use tokio::time::{Instant, Sleep};

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
    /// Appends one event to `out`.
    fn event(event: &StoredEvent, out: &mut Vec<u8>);
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
    // Boxed: hyper's body moves its state between polls.
    let heartbeat = Box::pin(subscriber.heartbeat_timer());
    let frames = futures_util::stream::unfold(
        (subscriber, heartbeat),
        |(mut subscriber, mut heartbeat)| async move {
            let mut write = Vec::new();
            if !subscriber
                .next_write(heartbeat.as_mut(), &mut write, 0)
                .await
            {
                return None;
            }
            Some((
                Ok::<_, Infallible>(Bytes::from(write)),
                (subscriber, heartbeat),
            ))
        },
    );
    Ok(super::response_with(
        F::CONTENT_TYPE,
        super::STREAM_FIELDS,
        Body::from_stream(frames),
    ))
}

/// One subscriber's position in its stream, whoever writes it to the socket (hyper, or
/// [`super::direct`]).
pub(super) struct Subscriber<F> {
    subscription: Subscription,
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
            state: state.clone(),
            greeted: false,
            live: false,
            _slot: slot,
            _framing: PhantomData,
        })
    }

    /// The heartbeat timer to pass to [`Subscriber::next_write`]: it fires after an idle interval and is
    /// pushed back after every write. One timer for the whole connection, rather than a new one per wait:
    /// pushing a registered timer's deadline later is a compare-and-swap, while registering and cancelling
    /// one takes the timer wheel's lock, on every wake-up of every subscriber. The writer keeps it, so
    /// that it can sit inline in a pinned connection future instead of in an allocation of its own.
    pub(super) fn heartbeat_timer(&self) -> Sleep {
        tokio::time::sleep(self.state.config.heartbeat)
    }

    /// Waits for something to send, then appends `head_room` bytes (left for the writer's own framing)
    /// and the write to `out`; `false` to end the response (shutdown, after everything read has been
    /// written). An idle subscriber holds no buffer: `out` grows only once there is something to write.
    ///
    /// Cancel-safe: nothing is consumed unless it returns.
    pub(super) async fn next_write(
        &mut self,
        mut heartbeat: Pin<&mut Sleep>,
        out: &mut Vec<u8>,
        head_room: usize,
    ) -> bool {
        let start = out.len() + head_room;
        let mut events = 0;
        if !self.greeted {
            self.greeted = true;
            out.resize(start, 0);
            out.extend_from_slice(&F::subscribed(self.subscription.cursor()));
        } else {
            let (metrics, live) = (&self.state.metrics, &mut self.live);
            // The batch is framed straight into `out` while the log is locked for reading.
            let read =
                self.subscription
                    .next_batch_with(self.state.config.write_interval, |batch| {
                        out.reserve(head_room + 256);
                        out.resize(start, 0);
                        if let Some(gap) = batch.gap {
                            metrics.gap(F::TRANSPORT, *live);
                            out.extend_from_slice(&F::gap(gap));
                        }
                        *live = true;
                        for event in &batch.events {
                            F::event(event, out);
                        }
                        batch.events.len() as u64
                    });
            let taken = tokio::select! {
                biased;
                read = read => match read {
                    Some(events) => Some(events),
                    None => return false,
                },
                () = heartbeat.as_mut() => None,
            };
            match taken {
                Some(taken) => events = taken,
                None => {
                    out.resize(start, 0);
                    out.extend_from_slice(&F::heartbeat());
                }
            }
        }
        heartbeat.reset(Instant::now() + self.state.config.heartbeat);
        let metrics = &self.state.metrics;
        metrics.delivered(F::TRANSPORT, events, (out.len() - start) as u64);
        metrics.wrote(F::TRANSPORT);
        true
    }
}
