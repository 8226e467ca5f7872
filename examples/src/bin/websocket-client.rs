//! websocket-client: weft's WebSocket client, on a `Bootstrap` with the
//! HTTP client codec and the client handshake.
//!
//! - `websocket-client send URL [TEXT...]`: sends each TEXT as a text
//!   message (or each line of standard input when none is given), prints
//!   what the server sends back, and closes once every message has had
//!   its answer (`--deflate` offers permessage-deflate);
//! - `websocket-client autobahn URL`: the client side of Autobahn's
//!   `wstest -m fuzzingserver` listening at URL (`ws://127.0.0.1:9001`):
//!   asks for the number of cases, connects once per case and echoes every
//!   data frame until the suite closes, then asks the suite to write its
//!   report.
//!
//! Exits non-zero when a connection or a handshake fails.

use std::io::BufRead;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::sync::mpsc;
use weft_codec::http::http::Uri;
use weft_codec::http::HttpClientCodec;
use weft_codec::websocket::{
    ClientHandshakeComplete, CloseCode, DeflateConfig, Frame, OpCode, WebSocketClientHandshake,
    WebSocketConfig,
};
use weft_core::{Channel, Context, Error, Handler, Msg, UserEvent};
use weft_transport::Bootstrap;

/// A WebSocket client: send messages, or run Autobahn's client cases.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Sends text messages and prints the answers.
    Send {
        /// ws://host:port/path
        url: String,
        /// The messages (standard input's lines when none).
        text: Vec<String>,
        /// Offer permessage-deflate.
        #[arg(long)]
        deflate: bool,
    },
    /// Runs every case of an Autobahn fuzzingserver.
    Autobahn {
        /// The suite's address, ws://host:port.
        url: String,
        /// The name the report gives this client.
        #[arg(long, default_value = "weft")]
        agent: String,
    },
}

/// What the application handler tells the task that started it.
#[derive(Debug)]
enum Event {
    Open,
    Frame(Frame),
    Failed(String),
}

/// Passes the handshake's end and every frame to the task; echoes data
/// frames when `echo` (Autobahn's cases expect it).
struct App {
    tx: mpsc::UnboundedSender<Event>,
    echo: bool,
}

#[weft_core::handler]
impl Handler for App {
    fn user_event(&mut self, ctx: &mut Context<'_>, event: UserEvent) {
        if event.is::<ClientHandshakeComplete>() {
            let _ = self.tx.send(Event::Open);
        } else {
            ctx.fire_user_event(event);
        }
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let Ok(frame) = msg.downcast::<Frame>() else {
            return;
        };
        if self.echo && !frame.opcode.is_control() {
            ctx.write_and_flush(frame.clone());
        }
        let _ = self.tx.send(Event::Frame(frame));
    }

    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        let _ = self.tx.send(Event::Failed(err.to_string()));
        ctx.close();
    }
}

/// Connects to `url` and starts the handshake; events arrive on the
/// receiver.
async fn connect(
    url: &str,
    echo: bool,
    deflate: bool,
) -> Result<(Channel, mpsc::UnboundedReceiver<Event>), String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
    let addr = format!("{host}:{}", uri.port_u16().unwrap_or(80));
    let (tx, rx) = mpsc::unbounded_channel();
    // Autobahn sends messages of 16 MiB, in one frame or in many.
    let config = WebSocketConfig::new()
        .max_frame_size(32 << 20)
        .max_message_size(32 << 20);
    let ch = Bootstrap::new()
        .handler(move |p| {
            p.add_last("http", HttpClientCodec::new())?;
            let mut handshake = WebSocketClientHandshake::new(uri.clone()).config(config.clone());
            if deflate {
                handshake = handshake.compression(DeflateConfig::new());
            }
            p.add_last("handshake", handshake)?;
            p.add_last(
                "app",
                App {
                    tx: tx.clone(),
                    echo,
                },
            )
        })
        .connect(addr.as_str())
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    Ok((ch, rx))
}

/// Waits for the handshake's end.
async fn opened(rx: &mut mpsc::UnboundedReceiver<Event>) -> Result<(), String> {
    match rx.recv().await {
        Some(Event::Open) => Ok(()),
        Some(Event::Failed(e)) => Err(format!("handshake failed: {e}")),
        Some(Event::Frame(_)) | None => Err("closed before the handshake ended".into()),
    }
}

async fn send(url: &str, mut text: Vec<String>, deflate: bool) -> Result<(), String> {
    if text.is_empty() {
        text = std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
    }
    let (ch, mut rx) = connect(url, false, deflate).await?;
    opened(&mut rx).await?;
    let mut waiting = text.len();
    for t in text {
        ch.write(Frame::text(t));
    }
    ch.flush();
    while waiting > 0 {
        match rx.recv().await {
            Some(Event::Frame(f)) if f.opcode == OpCode::Text => {
                println!("{}", String::from_utf8_lossy(&f.payload));
                waiting -= 1;
            }
            Some(Event::Frame(f)) if f.opcode == OpCode::Close => break,
            Some(Event::Frame(_) | Event::Open) => {}
            Some(Event::Failed(e)) => return Err(e),
            None => break,
        }
    }
    let _ = ch
        .write_and_flush(Frame::close(CloseCode::NORMAL, ""))
        .await;
    ch.closed().await;
    Ok(())
}

/// One connection to the suite, echoing until it ends; the text messages
/// received, in order.
async fn autobahn_session(url: &str) -> Result<Vec<String>, String> {
    // Autobahn's cases 12 and 13 test compression: always offered.
    let (ch, mut rx) = connect(url, true, true).await?;
    let mut texts = Vec::new();
    // A case may end before our handshake event is read: every frame
    // counts from the start.
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Frame(f) if f.opcode == OpCode::Text && f.fin => {
                texts.push(String::from_utf8_lossy(&f.payload).into_owned());
            }
            Event::Failed(e) => tracing::debug!(url, error = %e, "the case failed the connection"),
            _ => {}
        }
    }
    // Every sender dropped: the pipeline is gone, the channel closed.
    ch.closed().await;
    Ok(texts)
}

async fn autobahn(base: &str, agent: &str) -> Result<(), String> {
    let base = base.trim_end_matches('/');
    let count = autobahn_session(&format!("{base}/getCaseCount"))
        .await?
        .first()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .ok_or("the suite did not say how many cases it has")?;
    eprintln!("autobahn: {count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        // Each case ends within the suite's own timeouts; this bound only
        // keeps a stuck case from hanging the run.
        tokio::time::timeout(Duration::from_secs(120), autobahn_session(&url))
            .await
            .map_err(|_| format!("case {case} did not end in 120 s"))??;
    }
    autobahn_session(&format!("{base}/updateReports?agent={agent}")).await?;
    eprintln!("autobahn: report written");
    Ok(())
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let rt = weft_examples::runtime(0);
    let r = rt.block_on(async {
        match &args.command {
            Command::Send { url, text, deflate } => send(url, text.clone(), *deflate).await,
            Command::Autobahn { url, agent } => autobahn(url, agent).await,
        }
    });
    if let Err(e) = r {
        eprintln!("websocket-client: {e}");
        std::process::exit(1);
    }
}
