//! Pipeline overhead: messages through 16 pass-through handlers and one
//! consumer, beside calling the consumer directly, in one run.
//!
//! `cargo run --release -p weft-benches --bin pipeline [-- MESSAGES]`
//!
//! Two kinds of pass-through handler are measured:
//! - *skipped*: declares no events (`Events::NONE`), as a handler that only
//!   watches outbound traffic would for reads; the pipeline jumps over it;
//! - *forwarding*: declares `READ` and forwards each message with
//!   `ctx.fire_read` (the cost of a handler that takes part and does nothing).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use weft_core::{Channel, Context, Events, Handler, Msg, Pipeline};

#[derive(Debug)]
struct Skipped;
impl Handler for Skipped {
    fn interest(&self) -> Events {
        Events::NONE
    }
}

#[derive(Debug)]
struct Forwarding;
#[weft_core::handler]
impl Handler for Forwarding {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        ctx.fire_read(msg);
    }
}

#[derive(Debug, Default)]
struct Consumer {
    bytes: usize,
}
impl Consumer {
    #[inline(never)]
    fn consume(&mut self, msg: Msg) {
        self.bytes += black_box(msg).buffered_len();
    }
}
#[weft_core::handler]
impl Handler for Consumer {
    fn channel_read(&mut self, _ctx: &mut Context<'_>, msg: Msg) {
        self.consume(msg);
    }
}

fn pipeline_with<H: Handler>(make: impl Fn() -> H) -> Pipeline {
    let mut p = Pipeline::new(Channel::new(None, None));
    for i in 0..16 {
        p.add_last(&format!("h{i}"), make()).unwrap();
    }
    p.add_last("consumer", Consumer::default()).unwrap();
    p
}

fn run_pipeline(p: &mut Pipeline, n: u64, payload: &Bytes) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        p.transport().fire_read(Msg::Bytes(payload.clone()));
    }
    start.elapsed()
}

fn run_direct(n: u64, payload: &Bytes) -> Duration {
    let mut c = Consumer::default();
    let start = Instant::now();
    for _ in 0..n {
        c.consume(Msg::Bytes(payload.clone()));
    }
    black_box(c.bytes);
    start.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("MESSAGES must be a number"))
        .unwrap_or(5_000_000);
    let payload =
        Bytes::from_static(b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    let mut skipped = pipeline_with(|| Skipped);
    let mut forwarding = pipeline_with(|| Forwarding);
    let (mut d, mut s, mut f) = (Vec::new(), Vec::new(), Vec::new());
    // Alternate the three so that machine noise hits them alike.
    for _ in 0..7 {
        d.push(run_direct(n, &payload).as_nanos() as f64 / n as f64);
        s.push(run_pipeline(&mut skipped, n, &payload).as_nanos() as f64 / n as f64);
        f.push(run_pipeline(&mut forwarding, n, &payload).as_nanos() as f64 / n as f64);
    }
    let (d, s, f) = (median(d), median(s), median(f));
    println!("messages per round: {n}, rounds: 7, median ns per message");
    println!(
        "direct call to the consumer      : {d:8.2} ns/msg  {:8.1} M msgs/s",
        1e3 / d
    );
    println!(
        "16 skipped handlers + consumer   : {s:8.2} ns/msg  {:8.1} M msgs/s  ratio to direct {:.2}x  per handler {:.2} ns",
        1e3 / s,
        s / d,
        (s - d) / 16.0
    );
    println!(
        "16 forwarding handlers + consumer: {f:8.2} ns/msg  {:8.1} M msgs/s  ratio to direct {:.2}x  per handler {:.2} ns  ({:.1} M handler events/s)",
        1e3 / f,
        f / d,
        (f - d) / 16.0,
        17.0 * 1e3 / f
    );
}
