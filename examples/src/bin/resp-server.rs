//! resp-server: an in-memory key-value server speaking RESP2 (the Redis
//! protocol), so `redis-cli` and `redis-benchmark` work against it.
//!
//! PING, ECHO, SET (EX/PX/NX/XX), GET, DEL, EXISTS, INCR, DECR, MGET, MSET,
//! EXPIRE, TTL, FLUSHALL, a minimal COMMAND, QUIT; inline commands;
//! pipelining. Bulk strings are slices of the read buffer; the replies to
//! a read's commands leave as one message, small values copied into it and
//! values over 512 bytes referenced from the store. A protocol error is
//! answered with `-ERR Protocol error: ...` and the connection is closed,
//! as Redis does.

use clap::Parser;
use weft_codec::DecoderHandler;
use weft_examples::resp::{RespDecoder, RespHandler, Store};

/// A Redis-protocol key-value server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6380")]
    addr: String,
    /// Worker threads (1: a current-thread runtime; 0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    serve: weft_examples::ServeOptions,
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let store = Store::default();
    let serve = args.serve.clone();
    weft_examples::runtime(args.threads).block_on(async move {
        // Keys with a time to live go when it runs out, read or not.
        store.spawn_expiry();
        let server = weft_examples::exit_on_error(
            serve
                .bootstrap()
                .child_handler(move |p| {
                    p.add_last("resp", DecoderHandler::new(RespDecoder::default()))?;
                    p.add_last("store", RespHandler::new(store.clone()))
                })
                .bind(&args.addr)
                .await,
        );
        weft_examples::exit_on_error(weft_examples::serve(server, &args.serve).await);
    });
}
