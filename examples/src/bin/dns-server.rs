//! dns-server: an authoritative DNS server for one zone, over UDP (batched
//! datagram channels) and TCP (for answers too large for a datagram).
//!
//! The zone is a master file (`--zone FILE`; by default a small example
//! zone, `example.test.`, with A, AAAA, CNAME and TXT records). Queries are
//! checked strictly and garbage is never answered with a panic: see
//! `weft_examples::dns`. Answers over UDP are rate-limited per client
//! prefix and answer (`--rrl-rate`, 10 a second; 0 turns it off, as for a
//! benchmark from one address). Try it:
//!
//! ```sh
//! cargo run --release -p weft-examples --bin dns-server &
//! dig @127.0.0.1 -p 5353 www.example.test A
//! ```

use std::sync::Arc;

use clap::Parser;
use weft_examples::dns::{self, DnsHandler, Zone};
use weft_transport::{DatagramBootstrap, DatagramOptions, ServerBootstrap};

/// An authoritative DNS server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to serve on (UDP and TCP, same port).
    #[arg(long, default_value = "127.0.0.1:5353")]
    addr: String,
    /// The zone's master file (default: the built-in example.test. zone).
    #[arg(long)]
    zone: Option<std::path::PathBuf>,
    /// The origin for a zone file without `$ORIGIN`.
    #[arg(long)]
    origin: Option<String>,
    /// UDP channels on the port (SO_REUSEPORT), one per worker thread.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds a TCP connection may stay silent before it is closed (RFC
    /// 7766 section 6.2.3 suggests a few seconds; BIND's default is 30).
    #[arg(long, default_value_t = 10.0)]
    tcp_idle_timeout: f64,
    /// Most TCP connections at once (BIND's tcp-clients: 150); more are
    /// accepted and closed at once.
    #[arg(long, default_value_t = 150)]
    tcp_clients: usize,
    /// UDP answers per second per client prefix (/24, /56) and answer:
    /// response-rate limiting, as BIND's RRL (0: off; TCP is never
    /// limited).
    #[arg(long, default_value_t = 10)]
    rrl_rate: u32,
    /// Every Nth rate-limited answer is sent truncated, so that a real
    /// client retries over TCP (0: none).
    #[arg(long, default_value_t = 2)]
    rrl_slip: u32,
    /// Seconds a flood's debt may last.
    #[arg(long, default_value_t = 15)]
    rrl_window: u32,
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let text = match &args.zone {
        Some(path) => std::fs::read_to_string(path).unwrap_or_else(|e| {
            eprintln!("error: cannot read {}: {e}", path.display());
            std::process::exit(1)
        }),
        None => dns::EXAMPLE_ZONE.to_string(),
    };
    let zone = Arc::new(weft_examples::exit_on_error(Zone::parse(
        &text,
        args.origin.as_deref(),
    )));
    let threads = args.threads.max(1);
    weft_examples::runtime(threads).block_on(async {
        let udp = DatagramBootstrap::new()
            .options(
                DatagramOptions::new()
                    .reuse_port(threads > 1)
                    // A query is at most 512 bytes without EDNS; with EDNS a
                    // client may send up to its own payload size.
                    .max_datagram_size(4096)
                    // Answer from the address a query came to, even when
                    // bound to a wildcard address.
                    .packet_info(true)
                    .recv_buffer_size(4 << 20),
            )
            .handler({
                let zone = zone.clone();
                let rrl = dns::rrl::RrlConfig {
                    rate: args.rrl_rate,
                    slip: args.rrl_slip,
                    window: args.rrl_window,
                    ..dns::rrl::RrlConfig::default()
                };
                move |p| p.add_last("dns", DnsHandler::with_rate_limit(zone.clone(), rrl))
            });
        // With port 0 the kernel picks the UDP port, and the TCP listener
        // then asks for the same number, which another socket may hold:
        // pick again a few times rather than fail.
        let any_port = args
            .addr
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.port() == 0);
        let mut attempts = if any_port { 10 } else { 1 };
        let (channels, tcp) = loop {
            let channels = weft_examples::bind_datagram_channels(&udp, &args.addr, threads).await;
            let bound = ServerBootstrap::new()
                .idle_timeout(std::time::Duration::from_secs_f64(
                    args.tcp_idle_timeout.clamp(0.001, 86_400.0),
                ))
                .max_connections(args.tcp_clients.max(1))
                .child_handler({
                    let zone = zone.clone();
                    move |p| dns::tcp_pipeline(p, zone.clone())
                })
                .bind(channels[0].local())
                .await;
            attempts -= 1;
            match bound {
                Ok(tcp) => break (channels, tcp),
                Err(e) if attempts > 0 => {
                    tracing::debug!(error = %e, "the TCP port is taken; picking another");
                    for ch in &channels {
                        let _ = ch.close().await;
                    }
                }
                Err(e) => break weft_examples::exit_on_error(Err(e)),
            }
        };
        let first = &channels[0];
        println!("listening on {}", first.local());
        tracing::info!(zone = %zone.origin(), "dns-server");
        weft_examples::shutdown_signal().await;
        for ch in &channels {
            let _ = ch.close().await;
        }
        tcp.shutdown(std::time::Duration::from_secs(1)).await;
    });
}
