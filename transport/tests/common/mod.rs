//! Helpers for the transport integration tests: the shared ones from
//! `weft-test-support`, and [`Collect`], which only these tests use.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::oneshot;
use weft_core::{Context, Events, Handler, Msg};

pub use weft_test_support::*;

/// Whether this run's channels use the io_uring transport
/// (`WEFT_TRANSPORT=io_uring` with the `uring` feature): the whole suite runs
/// on both transports, and only the tests that look at system calls need to
/// know which one it is.
pub fn on_uring() -> bool {
    cfg!(feature = "uring") && std::env::var("WEFT_TRANSPORT").as_deref() == Ok("io_uring")
}

/// Collects every byte it reads; reports them when the channel closes.
pub struct Collect {
    pub buf: Vec<u8>,
    pub done: Option<oneshot::Sender<Vec<u8>>>,
    pub auto_read: bool,
    pub reads: Arc<Mutex<Vec<Bytes>>>,
}

impl Collect {
    pub fn new(auto_read: bool) -> (Collect, oneshot::Receiver<Vec<u8>>) {
        let (tx, rx) = oneshot::channel();
        (
            Collect {
                buf: Vec::new(),
                done: Some(tx),
                auto_read,
                reads: Arc::new(Mutex::new(Vec::new())),
            },
            rx,
        )
    }
}

#[weft_core::handler]
impl Handler for Collect {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        if !self.auto_read {
            ctx.read();
        }
    }
    fn channel_read(&mut self, _ctx: &mut Context<'_>, msg: Msg) {
        let b: Bytes = msg.downcast().expect("transport reads are Bytes");
        self.buf.extend_from_slice(&b);
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        if !self.auto_read {
            ctx.read();
        }
    }
    fn channel_inactive(&mut self, _ctx: &mut Context<'_>) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(std::mem::take(&mut self.buf));
        }
    }
}
