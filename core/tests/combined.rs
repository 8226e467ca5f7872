//! `Combined`: two halves in one slot, called apart; their shared state;
//! removal, timers and panics of each half; the pipeline's typed locals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_core::{
    from_fn, Combined, Context, EmbeddedChannel, ErrorKind, Handler, Msg, Promise, TimerId,
};

type Log = Arc<Mutex<Vec<String>>>;

fn log(l: &Log, s: impl Into<String>) {
    l.lock().unwrap().push(s.into());
}

fn entries(l: &Log) -> Vec<String> {
    l.lock().unwrap().clone()
}

/// The inbound half: logs around passing each read on, counts reads in the
/// shared state.
struct In(Log);
#[weft_core::handler]
impl Handler for In {
    fn handler_added(&mut self, _: &mut Context<'_>) {
        log(&self.0, "in added");
    }
    fn handler_removed(&mut self, _: &mut Context<'_>) {
        log(&self.0, "in removed");
    }
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        *ctx.shared::<u32>() += 1;
        log(&self.0, "read before");
        ctx.fire_read(msg);
        log(&self.0, "read after");
    }
    fn user_event(&mut self, ctx: &mut Context<'_>, _: weft_core::UserEvent) {
        ctx.remove_self();
    }
}

/// The outbound half: logs each write with the reads counted so far.
struct Out(Log);
#[weft_core::handler]
impl Handler for Out {
    fn handler_added(&mut self, _: &mut Context<'_>) {
        log(&self.0, "out added");
    }
    fn handler_removed(&mut self, _: &mut Context<'_>) {
        log(&self.0, "out removed");
    }
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, p: Option<Promise>) {
        let n = *ctx.shared::<u32>();
        log(&self.0, format!("write after {n} reads"));
        ctx.write_with(msg, p);
    }
}

/// The same two behaviours in one handler: busy both ways.
struct Both(Log);
impl Handler for Both {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        log(&self.0, "read before");
        ctx.fire_read(msg);
        log(&self.0, "read after");
    }
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, p: Option<Promise>) {
        log(&self.0, "write");
        ctx.write_with(msg, p);
    }
}

/// Answers every read at once, from inside the read.
fn answer_each_read() -> impl Handler {
    from_fn(|ctx: &mut Context<'_>, b: bytes::Bytes| {
        ctx.write_and_flush(b);
    })
}

#[test]
fn an_answer_written_during_a_read_reaches_the_outbound_half_at_once() {
    let l = Log::default();
    let mut ch = EmbeddedChannel::builder()
        .add_last("codec", Combined::new(0u32, In(l.clone()), Out(l.clone())))
        .add_last("app", answer_each_read())
        .build();
    assert_eq!(ch.pipeline().names(), ["codec", "app"]);
    ch.write_inbound("a");
    assert_eq!(
        entries(&l),
        [
            "in added",
            "out added",
            "read before",
            "write after 1 reads",
            "read after"
        ]
    );
    assert_eq!(ch.read_outbound_bytes(), "a");

    // The one-piece handler queues the answer behind its own read.
    let l = Log::default();
    let mut ch = EmbeddedChannel::builder()
        .add_last("codec", Both(l.clone()))
        .add_last("app", answer_each_read())
        .build();
    ch.write_inbound("a");
    assert_eq!(entries(&l), ["read before", "read after", "write"]);
}

#[test]
fn removing_a_combined_from_its_inbound_callback_removes_both_halves() {
    let l = Log::default();
    let mut ch = EmbeddedChannel::builder()
        .add_last("codec", Combined::new(0u32, In(l.clone()), Out(l.clone())))
        .build();
    ch.fire_user_event(());
    assert_eq!(ch.pipeline().names(), Vec::<&str>::new());
    // The idle outbound half leaves at once, the inbound half when its
    // callback returns.
    assert_eq!(
        entries(&l),
        ["in added", "out added", "out removed", "in removed"]
    );
    // Writes now pass straight to the transport.
    ch.write_outbound("x");
    assert_eq!(ch.read_outbound_bytes(), "x");
    ch.check_exception().unwrap();
}

#[test]
fn a_combined_removed_while_its_outbound_half_writes_finishes_leaving_after_the_write() {
    /// Removes its own handler from inside a write.
    struct RemovingOut(Log);
    impl Handler for RemovingOut {
        fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, p: Option<Promise>) {
            ctx.remove_self();
            log(&self.0, "write");
            ctx.write_with(msg, p);
        }
        fn handler_removed(&mut self, _: &mut Context<'_>) {
            log(&self.0, "out removed");
        }
    }
    let l = Log::default();
    let mut ch = EmbeddedChannel::builder()
        .add_last(
            "codec",
            Combined::new((), In(l.clone()), RemovingOut(l.clone())),
        )
        .build();
    ch.write_outbound("x");
    assert_eq!(ch.read_outbound_bytes(), "x");
    assert_eq!(
        entries(&l),
        ["in added", "in removed", "write", "out removed"]
    );
    assert!(ch.pipeline().names().is_empty());
}

#[test]
fn each_half_hears_its_own_timers() {
    struct Timed(&'static str, u64, Log);
    #[weft_core::handler]
    impl Handler for Timed {
        fn handler_added(&mut self, ctx: &mut Context<'_>) {
            ctx.schedule(Duration::from_millis(self.1));
        }
        fn timer(&mut self, _: &mut Context<'_>, _: TimerId) {
            log(&self.2, self.0);
        }
    }
    let l = Log::default();
    let mut ch = EmbeddedChannel::builder()
        .add_last(
            "codec",
            Combined::new(
                (),
                Timed("inbound", 20, l.clone()),
                Timed("outbound", 10, l.clone()),
            ),
        )
        .build();
    ch.advance_time(Duration::from_millis(30));
    assert_eq!(entries(&l), ["outbound", "inbound"]);
}

#[test]
fn asking_for_the_wrong_shared_type_closes_the_channel_with_an_error_naming_the_fix() {
    struct Wrong;
    impl Handler for Wrong {
        fn channel_read(&mut self, ctx: &mut Context<'_>, _: Msg) {
            *ctx.shared::<String>() = "x".into();
        }
    }
    let mut ch = EmbeddedChannel::with_handler(Combined::new(0u32, Wrong, Out(Log::default())));
    ch.write_inbound("a");
    let err = ch.check_exception().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert!(err.to_string().contains("Combined::new"), "{err}");
    assert!(!ch.is_open());

    // Outside a Combined.
    let mut ch = EmbeddedChannel::with_handler(Wrong);
    ch.write_inbound("a");
    let err = ch.check_exception().unwrap_err();
    assert!(
        err.to_string().contains("not a half of a Combined"),
        "{err}"
    );
}

#[test]
fn a_panic_in_one_half_kills_that_half_only_and_closes_the_channel() {
    struct Boom;
    impl Handler for Boom {
        fn channel_read(&mut self, _: &mut Context<'_>, _: Msg) {
            panic!("boom");
        }
    }
    let l = Log::default();
    let mut ch = EmbeddedChannel::with_handler(Combined::new(0u32, Boom, Out(l.clone())));
    ch.write_inbound("a");
    assert_eq!(ch.check_exception().unwrap_err().kind(), ErrorKind::Panic);
    assert!(!ch.is_open());
}

#[test]
fn a_combined_wrapped_in_another_handler_is_reported() {
    struct Wrapper(Combined<(), In, Out>);
    impl Handler for Wrapper {
        fn handler_added(&mut self, ctx: &mut Context<'_>) {
            self.0.handler_added(ctx);
        }
    }
    let l = Log::default();
    let mut ch =
        EmbeddedChannel::with_handler(Wrapper(Combined::new((), In(l.clone()), Out(l.clone()))));
    let err = ch.check_exception().unwrap_err();
    assert!(err.to_string().contains("add the Combined"), "{err}");
}

#[test]
fn a_write_reaching_a_busy_outbound_half_queues_and_leaves_in_order() {
    /// Tells the handlers after it about each write before passing it on.
    struct Announce;
    #[weft_core::handler]
    impl Handler for Announce {
        fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, p: Option<Promise>) {
            ctx.fire_user_event(Box::new(()));
            ctx.write_with(msg, p);
        }
    }
    /// Writes "second" when told about a write (once).
    struct Follow(bool);
    #[weft_core::handler]
    impl Handler for Follow {
        fn user_event(&mut self, ctx: &mut Context<'_>, _: weft_core::UserEvent) {
            if !std::mem::replace(&mut self.0, true) {
                ctx.write_and_flush("second");
            }
        }
    }
    let l = Log::default();
    let mut ch = EmbeddedChannel::builder()
        .add_last("codec", Combined::new(0u32, In(l), Announce))
        .add_last("follow", Follow(false))
        .build();
    ch.write_outbound("first");
    assert_eq!(ch.read_outbound_bytes(), "firstsecond");
}

#[test]
fn handlers_share_pipeline_locals_by_type() {
    #[derive(Default)]
    struct Seen(u32);
    let count = |ctx: &mut Context<'_>, b: bytes::Bytes| {
        ctx.local::<Seen>().0 += 1;
        ctx.fire_read(b);
    };
    let mut ch = EmbeddedChannel::builder()
        .add_last("a", from_fn(count))
        .add_last("b", from_fn(count))
        .build();
    ch.write_inbound("x");
    ch.write_inbound("y");
    assert_eq!(ch.pipeline_mut().local::<Seen>().0, 4);
}

#[test]
fn a_half_implementing_the_other_directions_methods_is_refused_naming_them() {
    /// An inbound half that also implements `write`: it would never be
    /// called, the outbound half takes the writes.
    struct ReadsAndWrites;
    #[weft_core::handler]
    impl Handler for ReadsAndWrites {
        fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
            ctx.fire_read(msg);
        }
        fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, p: Option<Promise>) {
            ctx.write_with(msg, p);
        }
    }
    let mut p = weft_core::Pipeline::new(weft_core::Channel::new(None, None));
    let err = p
        .add_last(
            "codec",
            Combined::new((), ReadsAndWrites, Out(Log::default())),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Pipeline);
    let text = err.to_string();
    assert!(text.contains("inbound half of Combined `codec`"), "{text}");
    assert!(
        text.contains("WRITE") && text.contains("move those methods"),
        "{text}"
    );
    assert!(p.names().is_empty());
    // A half with the default mask (Events::ALL) claims nothing in particular.
    struct Plain;
    impl Handler for Plain {}
    p.add_last("plain", Combined::new((), Plain, Plain))
        .unwrap();
}
