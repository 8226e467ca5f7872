//! echo-client: sends messages to an echo server and prints each round
//! trip's time, then the median.

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use tokio::sync::mpsc;
use weft_core::{from_fn, Context};
use weft_transport::Bootstrap;

/// Measures echo round trips.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The echo server's address.
    #[arg(long, default_value = "127.0.0.1:7007")]
    addr: String,
    /// Number of round trips.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    weft_examples::runtime(1).block_on(async move {
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        let ch = weft_examples::exit_on_error(
            Bootstrap::new()
                .handler(move |p| {
                    let tx = tx.clone();
                    p.add_last(
                        "sink",
                        from_fn(move |_ctx: &mut Context<'_>, b: Bytes| {
                            let _ = tx.send(b);
                        }),
                    )
                })
                .connect(args.addr.as_str())
                .await,
        );
        let msg = Bytes::from(vec![b'x'; args.size.max(1)]);
        let mut times = Vec::with_capacity(args.count);
        for i in 0..args.count {
            let start = Instant::now();
            weft_examples::exit_on_error(ch.write_and_flush(msg.clone()).await);
            let mut got = 0;
            while got < msg.len() {
                match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                    Ok(Some(b)) => got += b.len(),
                    _ => {
                        eprintln!("no echo within 10 s");
                        std::process::exit(1);
                    }
                }
            }
            let rtt = start.elapsed();
            println!(
                "{i}: {} bytes in {:.1} us",
                msg.len(),
                rtt.as_secs_f64() * 1e6
            );
            times.push(rtt);
        }
        times.sort();
        if let Some(m) = times.get(times.len() / 2) {
            println!("median round trip: {:.1} us", m.as_secs_f64() * 1e6);
        }
        let _ = ch.close().await;
    });
}
