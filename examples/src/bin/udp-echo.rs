//! udp-echo: sends every datagram back to its sender.
//!
//! Each datagram's payload goes back by reference (the very slice of the
//! receive buffer), and the answers of one batch of receives leave with one
//! flush: one `sendmmsg`, with runs of equal-size answers to one client as
//! one segmented (GSO) send. With `--threads N`, N channels share the port
//! (`SO_REUSEPORT`) and the kernel spreads clients among them.

use clap::Parser;
use weft_core::{Context, DatagramPacket, Handler, Msg};
use weft_transport::{DatagramBootstrap, DatagramOptions};

/// A UDP echo server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1:7009")]
    addr: String,
    /// Channels on the port, one per worker thread.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Datagrams per recvmmsg/sendmmsg call.
    #[arg(long, default_value_t = weft_transport::udp::DEFAULT_BATCH)]
    batch: usize,
    /// Let the kernel coalesce received datagrams (UDP_GRO).
    #[arg(long)]
    gro: bool,
    /// Send every datagram on its own, never segmented (no UDP_SEGMENT).
    #[arg(long)]
    no_gso: bool,
}

/// Writes each datagram back to where it came from.
struct Echo;

#[weft_core::handler]
impl Handler for Echo {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if let Ok(p) = msg.downcast::<DatagramPacket>() {
            let content = p.content().clone();
            ctx.write(p.reply(content));
        }
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let threads = args.threads.max(1);
    weft_examples::runtime(threads).block_on(async {
        let opts = DatagramOptions::new()
            .batch(args.batch)
            .gro(args.gro)
            .gso(!args.no_gso)
            .reuse_port(threads > 1)
            // Room for a burst of clients' datagrams between two reads.
            .recv_buffer_size(4 << 20);
        let bootstrap = DatagramBootstrap::new()
            .options(opts)
            .handler(|p| p.add_last("echo", Echo));
        let channels = weft_examples::bind_datagram_channels(&bootstrap, &args.addr, threads).await;
        let first = &channels[0];
        println!("listening on {}", first.local());
        tracing::info!(
            gso = first.gso(),
            gro = first.gro(),
            channels = threads,
            "udp-echo"
        );
        weft_examples::shutdown_signal().await;
        for ch in &channels {
            let _ = ch.close().await;
        }
    });
}
