//! Timers owned by the channel, through `EmbeddedChannel`'s virtual clock:
//! order, cancellation, removal, re-arming, panics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_core::{Context, EmbeddedChannel, Handler, Msg, TimerId};

/// Arms the delays it is given (in ms) when active; logs each firing with
/// its name and the virtual time since the start.
struct Arms {
    name: &'static str,
    delays: Vec<u64>,
    log: Arc<Mutex<Vec<(String, u128)>>>,
    start: Option<tokio::time::Instant>,
    cancel_second: bool,
}

#[weft_core::handler]
impl Handler for Arms {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        self.start = Some(ctx.now());
        let ids: Vec<TimerId> = self
            .delays
            .iter()
            .map(|&d| ctx.schedule(Duration::from_millis(d)))
            .collect();
        if self.cancel_second {
            assert!(ctx.cancel_timer(ids[1]));
            assert!(!ctx.cancel_timer(ids[1]));
        }
        ctx.fire_active();
    }
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        // A read re-arms: 5 ms from now.
        ctx.schedule(Duration::from_millis(5));
        ctx.fire_read(msg);
    }
    fn timer(&mut self, ctx: &mut Context<'_>, _: TimerId) {
        let at = ctx.now() - self.start.unwrap();
        self.log
            .lock()
            .unwrap()
            .push((self.name.to_string(), at.as_millis()));
    }
}

fn arms(name: &'static str, delays: &[u64], log: &Arc<Mutex<Vec<(String, u128)>>>) -> Arms {
    Arms {
        name,
        delays: delays.to_vec(),
        log: log.clone(),
        start: None,
        cancel_second: false,
    }
}

#[test]
fn timers_fire_at_their_deadlines_in_order_across_handlers() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut ch = EmbeddedChannel::builder()
        .add_last("a", arms("a", &[30, 10], &log))
        .add_last("b", arms("b", &[20, 10], &log))
        .build();
    ch.advance_time(Duration::from_millis(9));
    assert!(
        log.lock().unwrap().is_empty(),
        "nothing is due before 10 ms"
    );
    ch.advance_time(Duration::from_millis(100));
    let got = log.lock().unwrap().clone();
    let want: Vec<(String, u128)> = [("a", 10), ("b", 10), ("b", 20), ("a", 30)]
        .iter()
        .map(|(n, t)| (n.to_string(), *t))
        .collect();
    assert_eq!(got, want, "each at its own deadline, ties in arming order");
}

#[test]
fn cancelled_and_removed_handlers_timers_never_fire() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut a = arms("a", &[10, 20, 30], &log);
    a.cancel_second = true;
    let mut ch = EmbeddedChannel::builder()
        .add_last("a", a)
        .add_last("b", arms("b", &[15, 25], &log))
        .build();
    ch.advance_time(Duration::from_millis(16));
    ch.pipeline_mut().remove("b").unwrap();
    ch.advance_time(Duration::from_millis(100));
    let names: Vec<_> = log
        .lock()
        .unwrap()
        .iter()
        .map(|(n, t)| format!("{n}@{t}"))
        .collect();
    assert_eq!(names, ["a@10", "b@15", "a@30"]);
}

#[test]
fn a_timer_armed_in_a_callback_fires_from_that_moment() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut ch = EmbeddedChannel::with_handler(arms("a", &[], &log));
    ch.advance_time(Duration::from_millis(40));
    ch.write_inbound("x"); // re-arms for 45 ms
    ch.advance_time(Duration::from_millis(4));
    assert!(log.lock().unwrap().is_empty());
    ch.advance_time(Duration::from_millis(1));
    assert_eq!(log.lock().unwrap().as_slice(), [("a".to_string(), 45)]);
}

/// Panics in its timer.
struct Boom;
#[weft_core::handler]
impl Handler for Boom {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        ctx.schedule(Duration::from_secs(1));
        ctx.fire_active();
    }
    fn timer(&mut self, _: &mut Context<'_>, _: TimerId) {
        panic!("boom in a timer");
    }
}

#[test]
fn a_panic_in_a_timer_is_caught_reported_and_closes_the_channel() {
    let mut ch = EmbeddedChannel::with_handler(Boom);
    ch.advance_time(Duration::from_secs(2));
    let err = ch.check_exception().unwrap_err();
    assert_eq!(err.kind(), weft_core::ErrorKind::Panic, "{err}");
    assert!(!ch.is_open());
}
