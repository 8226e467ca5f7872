//! udp-load: a load generator for UDP echo servers.
//!
//! Each of `--flows` client sockets keeps `--window` datagrams of `--size`
//! bytes in flight to the server: it sends that many, then sends every echo
//! straight back. The client is itself a weft datagram channel, so it
//! batches (`recvmmsg`/`sendmmsg`) and, with equal sizes to one address,
//! segments (GSO) its sends: a window of 1,200-byte datagrams leaves as
//! 64 KiB segmented sends; the server under test sees the same datagrams
//! either way. A flow that hears nothing for a tick (20 ms) counts its
//! window as lost and sends a new one, so a loss never stalls the load.
//!
//! After `--warmup` seconds it counts, for `--secs` seconds, the datagrams
//! that came back and checks that each is `--size` bytes long.
//!
//! Output (one line, parsed by `benches/run.sh`):
//! `udp-load flows=F window=W size=S secs=T pkts/s=N bytes/s=X.XMB/s lost=L bad=B`.
//! Exit status 1 when a datagram came back altered or none came back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weft_core::{Context, DatagramPacket, Handler, Msg};
use weft_transport::{DatagramBootstrap, DatagramOptions};

const USAGE: &str = "usage: udp-load --addr HOST:PORT [--flows 4] [--window 32] [--size 64] \
[--secs 5] [--warmup 1] [--no-gso] [--gro]";

struct Opts {
    addr: SocketAddr,
    flows: usize,
    window: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    gso: bool,
    gro: bool,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:7009".parse().expect("a valid default"),
        flows: 4,
        window: 32,
        size: 64,
        secs: 5.0,
        warmup: 1.0,
        gso: true,
        gro: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--no-gso" => {
                o.gso = false;
                continue;
            }
            "--gro" => {
                o.gro = true;
                continue;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            _ => {}
        }
        let v = args
            .next()
            .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
        let bad = |_| format!("bad value for {a}: {v}");
        match a.as_str() {
            "--addr" => o.addr = v.parse().map_err(|_| format!("bad address: {v}"))?,
            "--flows" => o.flows = v.parse().map_err(bad)?,
            "--window" => o.window = v.parse().map_err(bad)?,
            "--size" => o.size = v.parse().map_err(bad)?,
            "--secs" => o.secs = v.parse().map_err(|_| format!("bad value for {a}: {v}"))?,
            "--warmup" => o.warmup = v.parse().map_err(|_| format!("bad value for {a}: {v}"))?,
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    if !o.addr.ip().is_loopback() {
        return Err(format!("{} is not a loopback address", o.addr));
    }
    if o.flows == 0 || o.window == 0 || o.size == 0 || o.size > 65000 || o.secs <= 0.0 {
        return Err(format!(
            "flows, window, secs must be positive and size 1 to 65000\n{USAGE}"
        ));
    }
    Ok(o)
}

/// What one flow counted.
#[derive(Default)]
struct Counts {
    back: AtomicU64,
    bad: AtomicU64,
    lost: AtomicU64,
}

/// Sends every echo straight back; flushes once per batch.
struct Reflect {
    size: usize,
    counts: Arc<Counts>,
}

#[weft_core::handler]
impl Handler for Reflect {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let Ok(p) = msg.downcast::<DatagramPacket>() else {
            return;
        };
        self.counts.back.fetch_add(1, Ordering::Relaxed);
        if p.len() != self.size {
            self.counts.bad.fetch_add(1, Ordering::Relaxed);
        }
        let content = p.content().clone();
        ctx.write(DatagramPacket::new(content, p.remote()));
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let (back, bad, lost) = weft_benches::runtime(1).block_on(async {
        let mut all = Vec::new();
        for _ in 0..o.flows {
            let counts = Arc::new(Counts::default());
            let c = counts.clone();
            let size = o.size;
            let ch = DatagramBootstrap::new()
                .options(
                    DatagramOptions::new()
                        .gso(o.gso)
                        .gro(o.gro)
                        .max_datagram_size(o.size.max(64))
                        .batch(64)
                        .recv_buffer_size(weft_benches::UDP_RECV_BUFFER),
                )
                .handler(move |p| {
                    p.add_last(
                        "reflect",
                        Reflect {
                            size,
                            counts: c.clone(),
                        },
                    )
                })
                .bind(if o.addr.is_ipv6() {
                    "[::1]:0"
                } else {
                    "127.0.0.1:0"
                })
                .await
                .unwrap_or_else(|e| {
                    eprintln!("bind: {e}");
                    std::process::exit(1)
                });
            let (window, to, payload) = (o.window, o.addr, bytes::Bytes::from(vec![0x5a; o.size]));
            let counts2 = counts.clone();
            // The window, and again whenever a tick passes with nothing back.
            tokio::spawn(async move {
                let send_window = || {
                    for _ in 0..window {
                        ch.write(DatagramPacket::new(payload.clone(), to));
                    }
                    ch.flush();
                };
                send_window();
                let mut seen = 0;
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let now = counts2.back.load(Ordering::Relaxed);
                    if now == seen {
                        counts2.lost.fetch_add(window as u64, Ordering::Relaxed);
                        send_window();
                    }
                    seen = now;
                }
            });
            all.push(counts);
        }
        let sum = |f: &dyn Fn(&Counts) -> u64| all.iter().map(|c| f(c)).sum::<u64>();
        tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
        let (b0, x0, l0) = (
            sum(&|c| c.back.load(Ordering::Relaxed)),
            sum(&|c| c.bad.load(Ordering::Relaxed)),
            sum(&|c| c.lost.load(Ordering::Relaxed)),
        );
        tokio::time::sleep(Duration::from_secs_f64(o.secs)).await;
        (
            sum(&|c| c.back.load(Ordering::Relaxed)) - b0,
            sum(&|c| c.bad.load(Ordering::Relaxed)) - x0,
            sum(&|c| c.lost.load(Ordering::Relaxed)) - l0,
        )
    });
    let pps = back as f64 / o.secs;
    println!(
        "udp-load flows={} window={} size={} secs={} pkts/s={pps:.0} bytes/s={:.1}MB/s \
         lost={lost} bad={bad}",
        o.flows,
        o.window,
        o.size,
        o.secs,
        pps * o.size as f64 / 1e6,
    );
    std::process::exit(if bad > 0 || back == 0 { 1 } else { 0 });
}
