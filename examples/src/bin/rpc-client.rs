//! rpc-client: calls an rpc-server. Prints each result, or with `--count N`
//! sends N pipelined `echo` calls and prints the throughput.

use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use weft_core::{Correlator, Msg};
use weft_examples::rpc::{client_codecs, Request, Response};
use weft_transport::Bootstrap;

/// A tiny RPC client.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:7011")]
    addr: String,
    /// Method to call.
    #[arg(long, default_value = "echo")]
    method: String,
    /// Payload (UTF-8).
    #[arg(long, default_value = "hello")]
    payload: String,
    /// Number of calls (pipelined).
    #[arg(long, default_value_t = 1)]
    count: u64,
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let rt = weft_examples::runtime(1);
    rt.block_on(async move {
        // Matches each response to its request by id; when the connection
        // ends, every call still waiting fails at once.
        let calls: Correlator<u64, Response> = Correlator::new();
        let handler_calls = calls.clone();
        let ch = weft_examples::exit_on_error(
            Bootstrap::new()
                .handler(move |p| {
                    client_codecs(p)?;
                    p.add_last("responses-in", handler_calls.handler(|r: &Response| r.id))
                })
                .connect(args.addr.as_str())
                .await,
        );
        let payload = Bytes::from(args.payload.clone());
        let start = Instant::now();
        let mut waits = Vec::new();
        for id in 0..args.count {
            let request = Msg::user(Request {
                id,
                method: args.method.clone(),
                payload: payload.clone(),
            });
            // Written without a flush: the calls are pipelined, one flush below.
            match calls.register(id) {
                Ok(w) => {
                    ch.write(request);
                    waits.push(w);
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            }
        }
        ch.flush();
        let mut failed = 0;
        for (i, w) in waits.into_iter().enumerate() {
            match w.await {
                Ok(Response { result: Ok(b), .. }) if args.count == 1 => {
                    println!("ok: {}", String::from_utf8_lossy(&b))
                }
                Ok(Response { result: Ok(_), .. }) => {}
                Ok(Response { result: Err(e), .. }) => {
                    failed += 1;
                    if args.count == 1 || i == 0 {
                        println!("error: {e}");
                    }
                }
                Err(e) => {
                    eprintln!("the connection ended before every answer arrived: {e}");
                    std::process::exit(1);
                }
            }
        }
        if args.count > 1 {
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{} calls in {:.3} s: {:.0} calls/s, {failed} errors",
                args.count,
                secs,
                args.count as f64 / secs
            );
        }
        let _ = ch.close().await;
        if failed > 0 {
            std::process::exit(1);
        }
    });
}
