//! `pushbench demo --network PRESET`: the teaching demo (`pushbench-server --demo`, its page showing
//! one feed over all five transports) behind an emulated network, for a class to watch long-polling's
//! round trip and polling's wait live.
//!
//! The server stands on the server side of the link. A browser on this machine stands in none of the
//! run's namespaces, so the command listens on 127.0.0.1 and relays each of the browser's connections
//! through a connection it opens *from the subscriber side*: the browser's leg is loopback, and every
//! packet between the relay and the server crosses the link — handshakes, requests, events, losses.
//! (Each browser connection gets its own connection across the link, so a transport's connects and
//! reconnects pay the round trip as on the real network.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpStream;

use super::{EXIT_RUNTIME, EXIT_USAGE, Outcome, emulate, network_preset};
use crate::network::placement::Emulated;
use crate::network::{EmulatorChoice, NetworkSpec};
use crate::targets::server_proc::{Server, locate};

/// Options of `pushbench demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The network between the browser and the server: a preset, emulated per packet.
    #[arg(long, value_name = "PRESET", default_value = "4g", value_parser = network_preset, long_help = network_help())]
    pub network: NetworkSpec,
    /// What applies the network's conditions (as `pushbench run --emulator`).
    #[arg(long, value_enum, default_value_t = EmulatorChoice::Auto)]
    pub emulator: EmulatorChoice,
    /// Port on 127.0.0.1 the browser opens (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Server binary [default: next to this executable].
    #[arg(long, env = "PUSHBENCH_SERVER_BIN")]
    pub server_bin: Option<PathBuf>,
}

/// `--network`'s `--help`: the presets described from their own figures.
fn network_help() -> String {
    format!(
        "The network between the browser and the server: a preset, emulated per packet between two \
         network namespaces of the demo's own. Presets: {}.",
        crate::network::presets_help()
    )
}

/// How long the server may take to close its connections when the demo stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Runs the demo until SIGINT or SIGTERM; everything it made is removed then.
pub(super) fn command(args: DemoArgs) -> Outcome {
    if args.network.is_loopback() {
        return Err((
            EXIT_USAGE,
            anyhow::anyhow!(
                "--network loopback emulates nothing: run `pushbench-server --demo` for the demo on loopback"
            ),
        ));
    }
    let bin = locate(args.server_bin.as_deref()).map_err(|e| (EXIT_RUNTIME, e.into()))?;
    // Bound before `emulate` moves this thread to the server side: the browser's side is this one.
    let listener = std::net::TcpListener::bind(("127.0.0.1", args.port))
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))
        .map_err(|e| (EXIT_RUNTIME, e))?;
    let network = emulate(&args.network, 1, args.emulator)?.expect("not loopback");
    let serve = async {
        let log = crate::util::TempDir::new("demo")?;
        let server = Server::spawn(
            &bin,
            network.server_host(),
            &["--demo".to_owned()],
            &log.path().join("server.log"),
        )
        .await?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        println!(
            "pushbench demo: open http://{}/ — the demo server behind the {} network (server log {})",
            listener.local_addr()?,
            args.network.profile,
            log.path().join("server.log").display()
        );
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (browser, _) = accepted?;
                    tokio::spawn(relay(browser, network.clone(), server.addr));
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.recv() => break,
            }
        }
        server.stop(SHUTDOWN_GRACE).await;
        anyhow::Ok(())
    };
    crate::util::runtime()
        .and_then(|rt| rt.block_on(serve))
        .map_err(|e| (EXIT_RUNTIME, e))
}

/// Carries one browser connection to the server over a connection from the subscriber side.
async fn relay(mut browser: TcpStream, network: Arc<Emulated>, server: SocketAddr) {
    let across =
        tokio::task::spawn_blocking(move || network.connect_from_subscribers(server)).await;
    let across = match across {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return eprintln!("pushbench demo: cannot reach the server across the link: {e}");
        }
        Err(e) => return eprintln!("pushbench demo: {e}"),
    };
    let across = across
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(across));
    match across {
        // Either side closing ends the relay; how it ended tells the browser nothing more.
        Ok(mut across) => {
            let _ = tokio::io::copy_bidirectional(&mut browser, &mut across).await;
        }
        Err(e) => eprintln!("pushbench demo: {e}"),
    }
}
