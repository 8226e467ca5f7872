//! echo-server: writes back every byte it reads.
//!
//! Reads are written back as they come (the very `Bytes` the transport read,
//! no copy) and flushed once per burst of reads. When the peer does not read
//! fast enough and the channel turns unwritable, the server stops reading
//! from it until it is writable again, so memory stays bounded. With
//! `--tls-cert` and `--tls-key` it speaks TLS.

use clap::Parser;
use weft_core::{Context, Handler, Msg};
use weft_transport::{tls, TlsHandler};

/// A TCP echo server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7007")]
    addr: String,
    /// Speak TLS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Worker threads (1: a current-thread runtime; 0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    serve: weft_examples::ServeOptions,
}

struct Echo;

#[weft_core::handler]
impl Handler for Echo {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        ctx.write(msg);
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        // Backpressure: read no more than the peer takes back.
        ctx.channel().set_auto_read(writable);
        ctx.fire_writability_changed(writable);
    }
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let tls_config = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(weft_examples::exit_on_error(tls::server_config_from_pem(
            c,
            k,
            &[],
        ))),
        _ => None,
    };
    let serve = args.serve.clone();
    weft_examples::runtime(args.threads).block_on(async {
        let server = weft_examples::exit_on_error(
            serve
                .bootstrap()
                .child_handler(move |p| {
                    if let Some(cfg) = &tls_config {
                        p.add_last("tls", TlsHandler::server(cfg.clone())?)?;
                    }
                    p.add_last("echo", Echo)
                })
                .bind(&args.addr)
                .await,
        );
        weft_examples::exit_on_error(weft_examples::serve(server, &args.serve).await);
    });
}
