//! The clients: one subscriber's life ([`subscriber`]) over each transport of our server ([`poll`],
//! [`longpoll`], [`stream`], [`sse`], [`ws`]) or in a peer's dialect ([`dialect`], [`peer`],
//! [`socketio`]) or as a target profile describes the server ([`profiled`]), the one
//! reconnect loop they share ([`reconnect`]), and the open-loop [`publisher`].
//!
//! May import: `measure`, `conn`, `scenario`, `machine`, `util` (and the result crate); never a target,
//! the fleet or a run.

pub(crate) mod dialect;
pub(crate) mod longpoll;
pub(crate) mod peer;
pub(crate) mod poll;
pub(crate) mod profiled;
pub(crate) mod publisher;
pub(crate) mod reconnect;
pub(crate) mod socketio;
pub(crate) mod sse;
pub(crate) mod stream;
pub(crate) mod subscriber;
pub(crate) mod ws;

use pushbench_common::Transport;

use subscriber::Subscriber;

/// Runs `sub` with the client of its transport (or of its peer's dialect: peers such as nchan and
/// Pushpin speak their own framings, see [`peer`]) until the run stops, then hands its log back.
pub(crate) async fn run(mut sub: Subscriber<'_>) {
    let peer_route =
        (sub.shared.peer.as_ref()).and_then(|p| p.route(sub.shared.transport).cloned());
    let profiled = sub.shared.profiled.clone();
    match (peer_route, profiled) {
        (Some(route), _) => peer::run(&mut sub, &route).await,
        (None, Some(route)) => profiled::run(&mut sub, &route).await,
        (None, None) => match sub.shared.transport {
            Transport::Poll => poll::run(&mut sub).await,
            Transport::LongPoll => longpoll::run(&mut sub).await,
            Transport::Stream => stream::run(&mut sub).await,
            Transport::Sse => sse::run(&mut sub).await,
            Transport::Ws => ws::run(&mut sub).await,
        },
    }
    sub.finish();
}
