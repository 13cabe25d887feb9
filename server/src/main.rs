//! `pushbench-server`: parses the command line, binds, prints the address, serves until SIGINT/SIGTERM.

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use pushbench_server::{Args, Config, Server};
use tokio::net::{TcpListener, TcpSocket};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match serve().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushbench-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("warn,pushbench_server=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::try_from(&args)?;
    // Each subscriber is a file descriptor: use all the hard limit allows.
    let fds = rlimit::increase_nofile_limit(u64::MAX).context("raising the open-file limit")?;
    if (fds as usize) < config.max_connections {
        tracing::warn!(
            fds,
            max_connections = config.max_connections,
            "open-file limit is below --max-connections"
        );
    }
    let listener = listen(args.listen).with_context(|| format!("binding {}", args.listen))?;
    let server = Server::start(listener, config).await?;
    let addr = server.local_addr()?;
    let scheme = match server.tls() {
        Some(tls) => {
            tracing::info!(fingerprint = %tls.fingerprint, "serving TLS (h2 and http/1.1); certificate SHA-256");
            "https"
        }
        None => "http",
    };
    // The one line on stdout: scripts and the load generator wait for it.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "pushbench-server listening on {scheme}://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    server.serve(shutdown_signal()).await;
    Ok(())
}

/// Pending connections the kernel may queue before the server accepts them. tokio's default (1,024)
/// overflows when thousands of subscribers connect per second while the server is busy, and each
/// overflow costs the client a 1 s SYN retransmit; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 8192;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
