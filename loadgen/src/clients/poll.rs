//! Interval polling client (`GET /poll`), and the request-answer step that long-polling shares.
//!
//! Each subscriber polls on a fixed schedule (`poll.interval_ms`, phases spread over subscribers) over one
//! keep-alive connection, sending `after=<next>` from the previous answer. The first answer, sent without a
//! cursor, carries no events and gives the head cursor: from then on nothing may be missed.
//!
//! The model the report checks: an event waits on average half an interval for the next poll, so mean
//! latency ≈ interval / 2 + delivery time; and each subscriber sends `1000 / interval_ms` requests per
//! second whatever the event rate, so requests per delivery ≈ poll rate / event rate per subscriber.

use std::time::Duration;

use pushbench_common::wire::PollResponse;
use tokio::time::{Instant, MissedTickBehavior};

use crate::clients::stream::path_name;
use crate::clients::subscriber::{End, Subscriber};
use crate::conn::{ConnError, HttpConn, body_of};

/// The scenario's poll interval as a ticker, its first tick at a phase of its own: the golden ratio
/// spreads the subscribers' phases evenly over the interval, so their polls do not arrive together.
/// Every interval poller ticks so: ours, the peers' and a profiled server's.
pub(crate) fn ticker(sub: &Subscriber<'_>) -> tokio::time::Interval {
    let interval = sub.shared.scenario.poll_interval;
    let phase = interval.mul_f64((sub.index as f64 * 0.618_033_988_749_895).fract());
    let mut ticker = tokio::time::interval_at(Instant::now() + phase, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// Runs an interval-polling subscriber until the run stops.
pub(crate) async fn run(sub: &mut Subscriber<'_>) {
    let mut ticker = ticker(sub);
    let mut conn = None;
    loop {
        tokio::select! {
            _ = sub.shared.stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if sub.churn_due() {
            conn = None;
        }
        let path = format!("/poll?{}{}", sub.topics_query, sub.after_param());
        match poll_once(sub, &mut conn, &path, Duration::ZERO, false).await {
            Ok(Some(End::Stop)) => break,
            Ok(_) => {}
            Err(e) => sub.rec.on_error(&e),
        }
    }
}

/// A subscriber's keep-alive connection for polls and long-polls.
#[derive(Debug)]
pub(crate) struct PollConn {
    http: HttpConn,
    /// When the connect started (for time-to-subscribed).
    started: Instant,
    /// TCP connect time; `None` on an h2 connection already open.
    connect: Option<Duration>,
    /// Whether this connection's timings were reported (on its first answer).
    reported: bool,
}

/// Sends one poll or long-poll (`hold` = the server's maximum hold) on `conn`, opening it first if needed,
/// and records the answer. Returns `Some(End)` when the run stopped or churn cut the request
/// (`churn_cuts` lets long-polls be cut mid-hold; the caller schedules the next drop); the connection is
/// dropped on churn and on errors.
pub(crate) async fn poll_once(
    sub: &mut Subscriber<'_>,
    conn: &mut Option<PollConn>,
    path: &str,
    hold: Duration,
    churn_cuts: bool,
) -> Result<Option<End>, ConnError> {
    if conn.is_none() {
        let started = Instant::now();
        match sub.open_http().await {
            Ok((http, connect)) => {
                *conn = Some(PollConn {
                    http,
                    started,
                    connect,
                    reported: false,
                });
            }
            Err(_) => {
                sub.pause_after_error().await;
                return Ok(None);
            }
        }
    }
    let c = conn.as_mut().expect("opened above");
    sub.rec.log.counters.requests += 1;
    let sent = Instant::now();
    let churn = sub.churn_signal();
    let churn = async move {
        if churn_cuts {
            churn.await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let exchange = async {
        let response = c.http.get(path, &[]).await?;
        let first_byte = sent.elapsed();
        Ok::<_, ConnError>((first_byte, body_of(path, response).await?))
    };
    let answer_timeout = hold + Duration::from_secs(10);
    let outcome = tokio::select! {
        _ = sub.shared.stop.cancelled() => {
            sub.rec.log.counters.requests_cut += 1;
            return Ok(Some(End::Stop));
        }
        () = churn => {
            sub.rec.log.counters.requests_cut += 1;
            *conn = None;
            return Ok(Some(End::Churn));
        }
        r = tokio::time::timeout(answer_timeout, exchange) => r.unwrap_or(Err(ConnError::Timeout(answer_timeout))),
    };
    let (first_byte, body) = match outcome {
        Ok(answer) => answer,
        Err(e) => {
            *conn = None;
            sub.report("GET", path_name(path), sent.elapsed(), Err(&e))
                .await;
            return Err(e);
        }
    };
    sub.report("GET", path_name(path), first_byte, Ok(Some(200)))
        .await;
    let answer: PollResponse<'_> = serde_json::from_slice(&body)
        .map_err(|e| sub.protocol_error(format!("poll answer: {e}")))?;
    if let Some(gap) = answer.gap {
        sub.rec.on_gap(gap);
    }
    if answer.events.is_empty() {
        sub.rec.log.counters.empty_polls += 1;
    }
    for event in &answer.events {
        sub.rec.on_event(event, &sub.shared.meters);
    }
    sub.on_subscribed(answer.next);
    let c = conn.as_mut().expect("still open");
    if !c.reported {
        c.reported = true;
        let (connect, since) = (c.connect, c.started.elapsed());
        sub.report_connection(connect, first_byte, Some(since))
            .await;
    }
    Ok(None)
}
