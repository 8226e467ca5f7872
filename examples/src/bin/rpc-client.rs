//! rpc-client: calls an rpc-server. Prints each result, or with `--count N`
//! sends N pipelined `echo` calls and prints the throughput.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use tokio::sync::oneshot;
use weft_core::{Context, Msg, Typed, TypedInbound};
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

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Bytes, String>>>>>;

struct Responses(Pending);

impl TypedInbound for Responses {
    type In = Response;
    fn read(&mut self, _ctx: &mut Context<'_>, r: Response) {
        if let Some(tx) = self.0.lock().unwrap().remove(&r.id) {
            let _ = tx.send(r.result);
        }
    }
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let rt = weft_examples::runtime(1);
    rt.block_on(async move {
        let pending: Pending = Arc::default();
        let p2 = pending.clone();
        let ch = weft_examples::exit_on_error(
            Bootstrap::new()
                .handler(move |p| {
                    client_codecs(p)?;
                    p.add_last("responses-in", Typed(Responses(p2.clone())))
                })
                .connect(args.addr.as_str())
                .await,
        );
        let payload = Bytes::from(args.payload.clone());
        let start = Instant::now();
        let mut waits = Vec::new();
        for id in 0..args.count {
            let (tx, rx) = oneshot::channel();
            pending.lock().unwrap().insert(id, tx);
            ch.write(Msg::user(Request {
                id,
                method: args.method.clone(),
                payload: payload.clone(),
            }));
            waits.push(rx);
        }
        ch.flush();
        let mut failed = 0;
        for (i, w) in waits.into_iter().enumerate() {
            match w.await {
                Ok(Ok(b)) if args.count == 1 => println!("ok: {}", String::from_utf8_lossy(&b)),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    failed += 1;
                    if args.count == 1 || i == 0 {
                        println!("error: {e}");
                    }
                }
                Err(_) => {
                    eprintln!("connection closed before every answer arrived");
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
