//! proxy: a TCP relay. Each accepted connection gets an upstream connection;
//! bytes go across as the very `Bytes` that were read (no copy), with
//! backpressure: while one side is unwritable, the other side stops reading
//! (auto-read off), so a fast sender cannot fill the proxy's memory.
//! Half-closure travels across: when one side ends its output, the proxy
//! ends its output towards the other side once everything before it is
//! written (a FIN after the bytes), and closes both once both directions
//! have ended — so a client that sends and shuts its output down
//! (`nc -N`) still receives the whole answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use clap::Parser;
use weft_core::{Channel, Context, Error, Handler, InputShutdown, Msg, UserEvent};
use weft_transport::{Bootstrap, ChannelOptions};

/// A TCP relay with backpressure.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, alias = "listen", default_value = "127.0.0.1:7010")]
    addr: String,
    /// Where to relay to.
    #[arg(long)]
    upstream: String,
    /// Worker threads (1: a current-thread runtime; 0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    serve: weft_examples::ServeOptions,
}

/// Sends what one side reads to the other side.
struct Relay {
    peer: Option<Channel>,
    /// Directions that have ended, shared by the pair's two relays.
    ended: Arc<AtomicUsize>,
}

#[weft_core::handler]
impl Handler for Relay {
    fn user_event(&mut self, ctx: &mut Context<'_>, event: UserEvent) {
        if !event.is::<InputShutdown>() {
            return ctx.fire_user_event(event);
        }
        // This side will send nothing more: end the output towards the
        // other side after what was relayed; once both directions have
        // ended, both connections are done.
        let Some(peer) = self.peer.clone() else {
            return;
        };
        let me = ctx.channel().clone();
        let ended = self.ended.clone();
        tokio::spawn(async move {
            let _ = peer.shutdown_output().await;
            if ended.fetch_add(1, Ordering::AcqRel) + 1 == 2 {
                drop(me.close());
                drop(peer.close());
            }
        });
    }
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if let Some(peer) = &self.peer {
            drop(peer.write_and_flush(msg));
            // The write counts on the other side at once: stop reading here
            // as soon as it passes that side's high watermark, not only when
            // its task gets to it. Its writability event turns reading back
            // on once it has drained.
            if !peer.is_writable() {
                ctx.channel().set_auto_read(false);
            }
        }
    }
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        // This side cannot take more: the other side stops reading.
        if let Some(peer) = &self.peer {
            peer.set_auto_read(writable);
        }
        ctx.fire_writability_changed(writable);
    }
    fn channel_inactive(&mut self, ctx: &mut Context<'_>) {
        if let Some(peer) = self.peer.take() {
            drop(peer.close());
        }
        ctx.fire_inactive();
    }
    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        tracing::debug!(error = ?err, "closing the relay");
        ctx.close();
    }
}

/// On the accepted side: connects upstream once active, then relays.
struct Inbound {
    upstream: String,
}

#[weft_core::handler]
impl Handler for Inbound {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        let client = ctx.channel().clone();
        // Read nothing from the client until the upstream side is there.
        client.set_auto_read(false);
        let upstream = self.upstream.clone();
        let ended = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            let c2 = client.clone();
            let e2 = ended.clone();
            let up = Bootstrap::new()
                // The relays manage reading themselves (auto-read across the
                // two channels); the transport's own pause would deadlock a
                // relay whose two directions wait on each other.
                .options(relay_options())
                .handler(move |p| {
                    p.add_last(
                        "relay",
                        Relay {
                            peer: Some(c2.clone()),
                            ended: e2.clone(),
                        },
                    )
                })
                .connect(upstream.as_str())
                .await;
            match up {
                Ok(up) => {
                    client.execute(move |p| {
                        let _ = p.replace(
                            "inbound",
                            "relay",
                            Relay {
                                peer: Some(up),
                                ended,
                            },
                        );
                    });
                    client.set_auto_read(true);
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "cannot reach the upstream");
                    drop(client.close());
                }
            }
        });
    }
}

/// Both sides of a relay: half-closure passes a client's end of input on
/// to the upstream, and the relays, not the transport, decide when to read.
fn relay_options() -> ChannelOptions {
    ChannelOptions::new()
        .allow_half_closure(true)
        .pause_read_when_unwritable(false)
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let upstream = args.upstream.clone();
    let serve = args.serve.clone();
    weft_examples::runtime(args.threads).block_on(async move {
        let server = weft_examples::exit_on_error(
            serve
                .bootstrap()
                .child_options(relay_options())
                .child_handler(move |p| {
                    p.add_last(
                        "inbound",
                        Inbound {
                            upstream: upstream.clone(),
                        },
                    )
                })
                .bind(&args.addr)
                .await,
        );
        weft_examples::exit_on_error(weft_examples::serve(server, &args.serve).await);
    });
}
