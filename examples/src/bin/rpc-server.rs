//! rpc-server: answers requests of the tiny RPC protocol in
//! `weft_examples::rpc` (`echo`, `upper`, `sum`), built from
//! `LengthFieldBasedFrameDecoder` + `LengthFieldPrepender` and typed
//! message codecs; the application handler sees only `Request`s.

use clap::Parser;
use weft_core::{Context, Error, Msg, Typed, TypedInbound};
use weft_examples::rpc::{call, server_codecs, Request, Response};

/// A tiny RPC server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7011")]
    addr: String,
    /// Worker threads (1: a current-thread runtime; 0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    serve: weft_examples::ServeOptions,
}

struct Service;

impl TypedInbound for Service {
    type In = Request;
    fn read(&mut self, ctx: &mut Context<'_>, req: Request) {
        let result = call(&req);
        ctx.write(Msg::user(Response { id: req.id, result }));
    }
    fn read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }
    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        tracing::debug!(error = ?err, "closing the connection");
        ctx.close();
    }
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let serve = args.serve.clone();
    weft_examples::runtime(args.threads).block_on(async move {
        let server = weft_examples::exit_on_error(
            serve
                .bootstrap()
                .child_handler(move |p| {
                    server_codecs(p)?;
                    p.add_last("service", Typed(Service))
                })
                .bind(&args.addr)
                .await,
        );
        weft_examples::exit_on_error(weft_examples::serve(server, &args.serve).await);
    });
}
