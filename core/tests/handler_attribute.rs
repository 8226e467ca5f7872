//! `#[handler]`: the event mask derived from the methods an impl block
//! defines, and the loud refusal of a timer armed by a handler that does
//! not take timers.

use std::time::Duration;

use weft_core::{Context, EmbeddedChannel, ErrorKind, Events, Handler, Msg, Promise, TimerId};

/// The newcomer's handler of the issue: it implements `channel_active`
/// and `channel_inactive` besides `channel_read`; a hand-kept
/// `Events::READ` lost the first two.
#[derive(Default)]
struct Room {
    members: usize,
    read: usize,
}

#[weft_core::handler]
impl Handler for Room {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        self.members += 1;
        ctx.fire_active();
    }
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        self.read += 1;
        ctx.fire_read(msg);
    }
    fn channel_inactive(&mut self, ctx: &mut Context<'_>) {
        self.members -= 1;
        ctx.fire_inactive();
    }
}

#[test]
fn the_mask_is_the_methods_the_block_defines() {
    assert_eq!(
        Room::default().interest(),
        Events::ACTIVE | Events::READ | Events::INACTIVE
    );

    struct Writer;
    #[weft_core::handler]
    impl Handler for Writer {
        fn handler_added(&mut self, _: &mut Context<'_>) {}
        fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, p: Option<Promise>) {
            ctx.write_with(msg, p);
        }
        fn flush(&mut self, ctx: &mut Context<'_>) {
            ctx.flush();
        }
        fn timer(&mut self, _: &mut Context<'_>, _: TimerId) {}
    }
    assert_eq!(
        Writer.interest(),
        Events::WRITE | Events::FLUSH | Events::TIMER
    );

    struct Nothing;
    #[weft_core::handler]
    impl Handler for Nothing {}
    assert_eq!(Nothing.interest(), Events::NONE);
}

#[test]
fn every_implemented_method_is_called() {
    let mut ch = EmbeddedChannel::with_handler(Room::default());
    ch.write_inbound("hello");
    assert_eq!(ch.read_inbound::<bytes::Bytes>().unwrap(), "hello");
    ch.close();
    ch.check_exception().unwrap();
}

#[test]
fn a_timer_armed_by_a_handler_that_takes_none_closes_the_channel_naming_the_fix() {
    /// Arms a timer but keeps a mask by hand without `TIMER`.
    struct Forgetful;
    impl Handler for Forgetful {
        fn interest(&self) -> Events {
            Events::READ
        }
        fn channel_read(&mut self, ctx: &mut Context<'_>, _: Msg) {
            ctx.schedule(Duration::from_secs(1));
        }
        fn timer(&mut self, ctx: &mut Context<'_>, _: TimerId) {
            ctx.close();
        }
    }
    let mut ch = EmbeddedChannel::with_handler(Forgetful);
    ch.write_inbound("x");
    let err = ch.check_exception().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    let text = err.to_string();
    assert!(text.contains("does not take timers"), "{text}");
    assert!(text.contains("#[weft_core::handler]"), "{text}");
    assert!(!ch.is_open());
}
