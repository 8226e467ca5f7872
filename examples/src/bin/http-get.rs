//! http-get: fetch a URL with weft's HTTP client and write the body to
//! standard output or a file (`-o FILE`), streamed as it arrives.
//!
//! Exits 0 on a 2xx or 3xx answer, 22 on a 4xx or 5xx one (as `curl -f`),
//! 28 when `--max-time` passed (as curl), 1 on another error (connection,
//! timeout, malformed answer, a `101` it did not ask for), with the reason
//! on standard error.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use weft_codec::http::http::Request;
use weft_transport::HttpClient;

/// Fetch a URL over HTTP/1.1.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The URL (`http://host[:port]/path`).
    url: String,
    /// Write the body to this file instead of standard output.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Print the status line and the headers to standard error.
    #[arg(short = 'i', long)]
    include: bool,
    /// Seconds to wait for the answer and for each piece of the body.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Seconds the whole transfer may take, however the server trickles
    /// (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    max_time: f64,
}

/// Prints the error with its causes, then exits 1.
fn fail(what: &str, e: impl std::error::Error) -> ! {
    let mut line = format!("http-get: {what}: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(&format!(": {c}"));
        cause = c.source();
    }
    eprintln!("{line}");
    std::process::exit(1);
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let t = Duration::from_secs_f64(args.timeout.max(0.001));
    let client = HttpClient::builder()
        .response_timeout(t)
        .read_timeout(t)
        .build()
        .unwrap_or_else(|e| fail("configuration", e));
    let req = Request::get(args.url.as_str())
        .body(Bytes::new())
        .unwrap_or_else(|e| fail("bad URL", e));
    let max_time = (args.max_time > 0.0).then(|| Duration::from_secs_f64(args.max_time));
    let url = args.url.clone();
    let transfer = async move {
        let resp = client
            .send(req)
            .await
            .unwrap_or_else(|e| fail(&args.url, e));
        if args.include {
            eprintln!("{:?} {}", resp.version(), resp.status());
            for (name, value) in resp.headers() {
                eprintln!("{name}: {}", String::from_utf8_lossy(value.as_bytes()));
            }
        }
        let status = resp.status();
        let mut out: Box<dyn Write> = match &args.output {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p).unwrap_or_else(|e| fail(&p.display().to_string(), e)),
            )),
            None => Box::new(std::io::stdout().lock()),
        };
        let mut body = resp.into_body();
        while let Some(piece) = body.chunk().await {
            let piece = piece.unwrap_or_else(|e| fail("reading the body", e));
            out.write_all(&piece)
                .unwrap_or_else(|e| fail("writing the body", e));
        }
        out.flush().unwrap_or_else(|e| fail("writing the body", e));
        if status.is_client_error() || status.is_server_error() {
            22
        } else {
            0
        }
    };
    let code = weft_examples::runtime(1).block_on(async move {
        match max_time {
            None => transfer.await,
            Some(t) => tokio::time::timeout(t, transfer).await.unwrap_or_else(|_| {
                eprintln!("http-get: {url}: the transfer took more than --max-time ({t:?})");
                28
            }),
        }
    });
    std::process::exit(code);
}
