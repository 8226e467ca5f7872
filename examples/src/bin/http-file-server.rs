//! http-file-server: HTTP/1.1 static files from a directory (default: the
//! current one), bodies sent with `sendfile(2)`.
//!
//! GET and HEAD, keep-alive and pipelining, Content-Type by extension,
//! Last-Modified / If-Modified-Since, single byte ranges, directory index
//! pages; path traversal refused; limits on the request line (414) and
//! head (431). A connection that does not complete a request head within
//! `--header-timeout` seconds of the previous one (or of connecting) is
//! closed: slowloris clients and idle keep-alive connections alike.

use std::path::PathBuf;

use clap::Parser;
use weft_codec::DecoderHandler;
use weft_examples::http::{FileHandler, RequestDecoder};
use weft_transport::{ReadTimeoutHandler, ServerBootstrap};

/// A static-file HTTP server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Directory to serve.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Seconds allowed for each complete request head (and for idling
    /// between keep-alive requests).
    #[arg(long, default_value_t = 30.0)]
    header_timeout: f64,
    /// Worker threads (1: a current-thread runtime; 0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let files = match FileHandler::new(&args.root) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot serve {}: {e}", args.root.display());
            std::process::exit(1);
        }
    };
    let head_timeout = std::time::Duration::from_secs_f64(args.header_timeout.max(0.001));
    weft_examples::runtime(args.threads).block_on(async move {
        let server = weft_examples::exit_on_error(
            ServerBootstrap::new()
                .child_handler(move |p| {
                    p.add_last("http", DecoderHandler::new(RequestDecoder::default()))?;
                    // After the decoder, a "read" is a complete request head.
                    p.add_last("head-timeout", ReadTimeoutHandler::new(head_timeout))?;
                    p.add_last("files", files.clone())
                })
                .bind(&args.addr)
                .await,
        );
        weft_examples::exit_on_error(weft_examples::serve(server).await);
    });
}
