//! weft-examples: runnable servers and clients built on weft, and what they
//! share (command-line plumbing, signal handling, graceful shutdown).
//!
//! Each binary in `src/bin` is a complete program and a how-to; see
//! `examples/README.md`.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_code)]

pub mod confined;
pub mod dns;
pub mod http;
pub mod resp;
pub mod rpc;

use std::io::Write;
use std::time::Duration;

use weft_core::Error;
use weft_transport::Server;

/// Most threads of the runtime's blocking pool (tokio's default is 512):
/// the examples run only short file operations there (an upload's create,
/// write batch or rename), never one that waits for a peer, so a small
/// pool is a budget that no number of clients can exhaust or grow.
pub const MAX_BLOCKING_THREADS: usize = 64;

/// Builds the tokio runtime: `threads == 1` is a current-thread runtime,
/// `0` tokio's default (one worker per core); the blocking pool has at most
/// [`MAX_BLOCKING_THREADS`].
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut b = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b
    };
    b.enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
        .expect("cannot build the tokio runtime")
}

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default `warn`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The options every example server shares.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeOptions {
    /// On Ctrl-C or SIGTERM, how long open connections may take to finish
    /// writing before they are closed (seconds).
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    pub shutdown_timeout: f64,
    /// Close a connection that has sent nothing, and taken none of its
    /// answers, for this long (seconds; 0: never). A response still being
    /// written keeps the connection alive.
    #[arg(long, default_value_t = 300.0, value_parser = parse_seconds)]
    pub idle_timeout: f64,
}

impl ServeOptions {
    /// The idle timeout, if any.
    pub fn idle(&self) -> Option<Duration> {
        (self.idle_timeout > 0.0).then(|| Duration::from_secs_f64(self.idle_timeout))
    }

    /// A server bootstrap with this idle timeout (the bootstrap's own
    /// guard: a [`ReadTimeoutHandler`] that observes output and watches the
    /// transport's reads, so it is not in the read path), or none for 0.
    ///
    /// [`ReadTimeoutHandler`]: weft_transport::ReadTimeoutHandler
    pub fn bootstrap(&self) -> weft_transport::ServerBootstrap {
        let b = weft_transport::ServerBootstrap::new();
        match self.idle() {
            Some(d) => b.idle_timeout(d),
            None => b.no_idle_timeout(),
        }
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds from 0 to 86400")),
    }
}

/// Prints `listening on ADDR` (the first line on stdout, so that tests can
/// start a server on port 0), serves until Ctrl-C or SIGTERM, then shuts
/// down gracefully: connections get `--shutdown-timeout` to finish writing,
/// then are closed whatever their peers do.
pub async fn serve(server: Server, opts: &ServeOptions) -> Result<(), Error> {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on {}", server.local_addr());
    let _ = out.flush();
    shutdown_signal().await;
    tracing::info!("shutting down");
    server
        .shutdown(Duration::from_secs_f64(opts.shutdown_timeout))
        .await;
    Ok(())
}

/// `n` datagram channels (at least one) on one port: the first bound to
/// `addr`, the others to the port it got (the bootstrap sets
/// `SO_REUSEPORT` when `n > 1`); exits on an error, as the servers do.
pub async fn bind_datagram_channels(
    bootstrap: &weft_transport::DatagramBootstrap,
    addr: &str,
    n: usize,
) -> Vec<weft_transport::DatagramChannel> {
    let first = exit_on_error(bootstrap.bind(addr).await);
    let port = first.local();
    let mut channels = vec![first];
    for _ in 1..n {
        channels.push(exit_on_error(bootstrap.bind(port).await));
    }
    channels
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot listen for SIGTERM");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Exits with a message when `r` is an error: the error and its causes,
/// each once (`error: i/o error: Address already in use (os error 98)`).
pub fn exit_on_error<T>(r: Result<T, Error>) -> T {
    match r {
        Ok(t) => t,
        Err(e) => {
            let mut text = format!("error: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            eprintln!("{text}");
            std::process::exit(1);
        }
    }
}
