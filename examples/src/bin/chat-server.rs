//! chat-server: every line a client sends goes to every other client.
//!
//! Lines (at most 8 KiB) are broadcast through a `ChannelGroup`, prefixed
//! with the sender's address; the line itself is shared, not copied, by all
//! the writes. A client silent for `--idle-timeout` seconds is told so and
//! disconnected.

use bytes::Bytes;
use clap::Parser;
use weft_codec::{DecoderHandler, LineBasedFrameDecoder};
use weft_core::{CompositeBytes, Context, Error, Handler, Msg, UserEvent};
use weft_transport::{
    ChannelGroup, ChannelOptions, IdleState, IdleStateEvent, IdleStateHandler, ServerBootstrap,
};

/// A line-based chat server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7009")]
    addr: String,
    /// Worker threads (1: a current-thread runtime; 0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// A member's send queue (bytes, at least 65536): a member that falls
    /// this far behind is disconnected rather than held in memory.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(65536..))]
    sendq: u64,
    #[command(flatten)]
    serve: weft_examples::ServeOptions,
}

struct Chat {
    group: ChannelGroup,
    name: Bytes,
}

#[weft_core::handler]
impl Handler for Chat {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        let me = ctx.channel().clone();
        self.name = Bytes::from(format!(
            "[{}] ",
            me.remote_addr().map(|a| a.to_string()).unwrap_or_default()
        ));
        drop(self.group.write_and_flush_except(
            Bytes::from(format!("{}joined\n", String::from_utf8_lossy(&self.name))),
            Some(me.id()),
        ));
        self.group.add(me);
        ctx.write_and_flush("welcome\n");
        ctx.fire_active();
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let Ok(line) = msg.downcast::<Bytes>() else {
            return;
        };
        // name + line + "\n", the line by reference.
        let out: CompositeBytes = [self.name.clone(), line, Bytes::from_static(b"\n")]
            .into_iter()
            .collect();
        drop(
            self.group
                .write_and_flush_except(out, Some(ctx.channel().id())),
        );
    }

    fn user_event(&mut self, ctx: &mut Context<'_>, event: UserEvent) {
        match event.downcast::<IdleStateEvent>() {
            Ok(e) if e.state == IdleState::ReaderIdle => {
                ctx.write_and_flush("idle for too long, bye\n");
                ctx.close();
            }
            Ok(e) => ctx.fire_user_event(e),
            Err(other) => ctx.fire_user_event(other),
        }
    }

    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        tracing::debug!(error = ?err, "closing the connection");
        ctx.close();
    }
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let group = ChannelGroup::new();
    let idle = args.serve.idle();
    weft_examples::runtime(args.threads).block_on(async move {
        let server = weft_examples::exit_on_error(
            ServerBootstrap::new()
                // Idle members are told before they go (the handler below).
                .no_idle_timeout()
                // A member's send queue (IRC's "sendq"): a member that falls
                // that far behind is disconnected rather than held in memory.
                .child_options(ChannelOptions::new().max_outbound_bytes(args.sendq as usize))
                .child_handler(move |p| {
                    p.add_last("idle", IdleStateHandler::new(idle, None, None))?;
                    p.add_last(
                        "lines",
                        DecoderHandler::new(LineBasedFrameDecoder::new(8192)),
                    )?;
                    p.add_last(
                        "chat",
                        Chat {
                            group: group.clone(),
                            name: Bytes::new(),
                        },
                    )
                })
                .bind(&args.addr)
                .await,
        );
        weft_examples::exit_on_error(weft_examples::serve(server, &args.serve).await);
    });
}
