//! http-file-server: HTTP/1.1 static files from a directory (default: the
//! current one), bodies sent with `sendfile(2)`.
//!
//! Built on weft's HTTP codec (`HttpServerCodec`): GET and HEAD, keep-alive
//! and pipelining, Content-Type by extension, Last-Modified /
//! If-Modified-Since, single byte ranges, directory index pages; path
//! traversal refused; strict framing and limits (400, 414, 431, 501, 505).
//! With `--upload DIR`, `PUT /path` streams the request body to `DIR/path`
//! with bounded memory (201 created, 204 replaced). A connection that does not complete a request head within
//! `--header-timeout` seconds of the previous one (or of connecting) is
//! closed: slowloris clients and idle keep-alive connections alike. With
//! `--tls-cert` and `--tls-key` it serves HTTPS (the same handlers behind a
//! TLS stage; file bodies are then encrypted in chunks instead of sendfile).

use std::path::PathBuf;

use clap::Parser;
use weft_codec::http::{HttpContentCompressor, HttpServerCodec};
use weft_examples::http::FileHandler;
use weft_transport::{tls, ReadTimeoutHandler, TlsHandler};

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
    /// Compress answers (gzip or brotli, as the client accepts) of at least
    /// 1 KiB, files up to 1 MiB included (those are then read rather than
    /// sent by sendfile; larger ones still are).
    #[arg(long)]
    compress: bool,
    /// Accept `PUT` uploads into this directory.
    #[arg(long)]
    upload: Option<PathBuf>,
    /// Most uploads at once; one more is answered 503 with Retry-After.
    #[arg(long, default_value_t = weft_examples::http::DEFAULT_MAX_UPLOADS)]
    max_uploads: usize,
    /// Seconds allowed for each complete request head (and for idling
    /// between keep-alive requests).
    #[arg(long, default_value_t = 30.0)]
    header_timeout: f64,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Worker threads (1: a current-thread runtime; 0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    serve: weft_examples::ServeOptions,
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
    let files = match &args.upload {
        None => files,
        Some(dir) => match files.with_uploads(dir) {
            Ok(f) => f.max_uploads(args.max_uploads),
            Err(e) => {
                eprintln!("error: cannot upload into {}: {e}", dir.display());
                std::process::exit(1);
            }
        },
    };
    let head_timeout = std::time::Duration::from_secs_f64(args.header_timeout.max(0.001));
    let tls_config = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(weft_examples::exit_on_error(tls::server_config_from_pem(
            c,
            k,
            &[b"http/1.1"],
        ))),
        _ => None,
    };
    let compress = args.compress;
    weft_examples::runtime(args.threads).block_on(async move {
        // Expired entries of the open-file cache (deleted files among them)
        // are closed even when no request comes.
        weft_examples::http::spawn_cache_purger();
        let server = weft_examples::exit_on_error(
            args.serve
                .bootstrap()
                .child_handler(move |p| {
                    if let Some(cfg) = &tls_config {
                        // Bodies are still FileRegions: through TLS they are
                        // read and encrypted in chunks, with no code change.
                        p.add_last("tls", TlsHandler::server(cfg.clone())?)?;
                    }
                    p.add_last("http", HttpServerCodec::new())?;
                    if compress {
                        p.add_last(
                            "compress",
                            HttpContentCompressor::new().compress_files(1 << 20),
                        )?;
                    }
                    // (`Expect: 100-continue` is the file handler's: it
                    // knows whether a body will be read.)
                    // After the codec, a "read" is a complete request head
                    // or a piece of a body.
                    p.add_last("head-timeout", ReadTimeoutHandler::new(head_timeout))?;
                    p.add_last("files", files.clone())
                })
                .bind(&args.addr)
                .await,
        );
        weft_examples::exit_on_error(weft_examples::serve(server, &args.serve).await);
    });
}
