//! Pipeline semantics, through EmbeddedChannel.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use weft_core::{
    from_fn, Context, EmbeddedChannel, Error, Events, Handler, Msg, Promise, Typed, TypedInbound,
    UserEvent, WriteBufferWaterMark,
};

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// Records every event it sees, then passes it on.
struct Rec {
    name: &'static str,
    log: Log,
}

impl Rec {
    fn new(name: &'static str, log: &Log) -> Rec {
        Rec {
            name,
            log: log.clone(),
        }
    }
    fn note(&self, what: &str) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:{}", self.name, what));
    }
}

impl Handler for Rec {
    fn handler_added(&mut self, _ctx: &mut Context<'_>) {
        self.note("added");
    }
    fn handler_removed(&mut self, _ctx: &mut Context<'_>) {
        self.note("removed");
    }
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        self.note("active");
        ctx.fire_active();
    }
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        self.note("read");
        ctx.fire_read(msg);
    }
    fn channel_inactive(&mut self, ctx: &mut Context<'_>) {
        self.note("inactive");
        ctx.fire_inactive();
    }
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        self.note("write");
        ctx.write_with(msg, promise);
    }
    fn flush(&mut self, ctx: &mut Context<'_>) {
        self.note("flush");
        ctx.flush();
    }
    fn close(&mut self, ctx: &mut Context<'_>, promise: Option<Promise>) {
        self.note("close");
        ctx.close_with(promise);
    }
}

#[test]
fn inbound_head_to_tail_outbound_tail_to_head() {
    let l = log();
    let mut ch = EmbeddedChannel::builder()
        .add_last("a", Rec::new("a", &l))
        .add_last("b", Rec::new("b", &l))
        .add_last("c", Rec::new("c", &l))
        .build();
    assert_eq!(
        take(&l),
        ["a:added", "b:added", "c:added", "a:active", "b:active", "c:active"]
    );
    ch.fire_read("x");
    assert_eq!(take(&l), ["a:read", "b:read", "c:read"]);
    assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "x");
    ch.write_outbound("y");
    assert_eq!(
        take(&l),
        ["c:write", "b:write", "a:write", "c:flush", "b:flush", "a:flush"]
    );
    assert_eq!(ch.read_outbound::<Bytes>().unwrap(), "y");
    ch.close();
    assert_eq!(
        take(&l),
        [
            "c:close",
            "b:close",
            "a:close",
            "a:inactive",
            "b:inactive",
            "c:inactive"
        ]
    );
    assert!(!ch.is_open());
}

/// Writes from its own position when it reads.
struct WriteOnRead;
impl Handler for WriteOnRead {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        ctx.write_and_flush(msg);
    }
}

#[test]
fn context_write_starts_at_its_position_channel_write_at_tail() {
    let l = log();
    let mut ch = EmbeddedChannel::builder()
        .add_last("a", Rec::new("a", &l))
        .add_last("w", WriteOnRead)
        .add_last("c", Rec::new("c", &l))
        .build();
    take(&l);
    ch.fire_read("m");
    // The write starts at `w` and goes towards the head: `c` never sees it.
    assert_eq!(take(&l), ["a:read", "a:write", "a:flush"]);
    assert_eq!(ch.read_outbound::<Bytes>().unwrap(), "m");

    // A write through the Channel handle starts at the tail.
    let handle = ch.channel().clone();
    let mut done = handle.write_and_flush("n");
    ch.run_pending_tasks();
    assert_eq!(take(&l), ["c:write", "a:write", "c:flush", "a:flush"]);
    assert!(done.try_result().unwrap().is_ok());
}

/// Removes itself on the first message, still passing it on.
struct RemoveSelf;
impl Handler for RemoveSelf {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        ctx.remove_self();
        assert!(ctx.is_removed());
        ctx.fire_read(msg);
    }
}

#[test]
fn self_removal_mid_event_keeps_the_event_flowing() {
    let l = log();
    let mut ch = EmbeddedChannel::builder()
        .add_last("r", RemoveSelf)
        .add_last("b", Rec::new("b", &l))
        .build();
    take(&l);
    ch.fire_read("1");
    ch.fire_read("2");
    assert_eq!(take(&l), ["b:read", "b:read"]);
    assert_eq!(ch.pipeline().names(), ["b"]);
    assert_eq!(ch.inbound_len(), 2);
}

/// Adds a recorder right after itself, then passes the message on: the new
/// handler must see this very message.
struct AddAfterSelf(Log);
impl Handler for AddAfterSelf {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if !ctx.contains("new") {
            ctx.add_after_self("new", Rec::new("new", &self.0)).unwrap();
        }
        ctx.fire_read(msg);
    }
}

#[test]
fn adding_right_after_self_sees_the_current_event() {
    let l = log();
    let mut ch = EmbeddedChannel::builder()
        .add_last("adder", AddAfterSelf(l.clone()))
        .add_last("b", Rec::new("b", &l))
        .build();
    take(&l);
    ch.fire_read("x");
    assert_eq!(take(&l), ["new:added", "new:read", "b:read"]);
    assert_eq!(ch.pipeline().names(), ["adder", "new", "b"]);
}

/// Replaces itself with a recorder, then passes the message on.
struct ReplaceSelf(Log);
impl Handler for ReplaceSelf {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        ctx.replace_self("swapped", Rec::new("swapped", &self.0))
            .unwrap();
        ctx.fire_read(msg);
    }
}

#[test]
fn replacing_self_mid_event() {
    let l = log();
    let mut ch = EmbeddedChannel::builder()
        .add_last("a", Rec::new("a", &l))
        .add_last("x", ReplaceSelf(l.clone()))
        .add_last("c", Rec::new("c", &l))
        .build();
    take(&l);
    ch.fire_read("1");
    // The current message continues from the old position: it reaches the
    // replacement (which now sits right after it) and then `c`.
    assert_eq!(
        take(&l),
        ["a:read", "swapped:added", "swapped:read", "c:read"]
    );
    ch.fire_read("2");
    assert_eq!(take(&l), ["a:read", "swapped:read", "c:read"]);
    assert_eq!(ch.pipeline().names(), ["a", "swapped", "c"]);
}

#[test]
fn removing_a_handler_calls_handler_removed() {
    let l = log();
    let mut ch = EmbeddedChannel::builder()
        .add_last("a", Rec::new("a", &l))
        .build();
    take(&l);
    ch.pipeline_mut().remove("a").unwrap();
    assert_eq!(take(&l), ["a:removed"]);
    assert!(ch.pipeline_mut().remove("a").unwrap_err().kind() == weft_core::ErrorKind::Pipeline);
}

#[test]
fn duplicate_names_are_refused() {
    let mut ch = EmbeddedChannel::new();
    ch.pipeline_mut().add_last("x", WriteOnRead).unwrap();
    let e = ch.pipeline_mut().add_first("x", WriteOnRead).unwrap_err();
    assert!(e.kind() == weft_core::ErrorKind::Pipeline);
    assert!(e.to_string().contains("`x`"), "{e}");
    assert!(ch.pipeline_mut().add_last("head", WriteOnRead).is_err());
    assert!(
        ch.pipeline_mut()
            .add_after("missing", "y", WriteOnRead)
            .unwrap_err()
            .kind()
            == weft_core::ErrorKind::Pipeline
    );
}

/// Hands its "leftover" on when removed (as a decoder does).
struct Leftover(Option<Bytes>);
impl Handler for Leftover {
    fn interest(&self) -> Events {
        Events::NONE
    }
    fn handler_removed(&mut self, ctx: &mut Context<'_>) {
        if let Some(b) = self.0.take() {
            ctx.fire_read(b);
        }
    }
}

#[test]
fn removed_handler_hands_leftovers_on() {
    let l = log();
    let mut ch = EmbeddedChannel::builder()
        .add_last("dec", Leftover(Some(Bytes::from_static(b"rest"))))
        .add_last("b", Rec::new("b", &l))
        .build();
    take(&l);
    ch.pipeline_mut().remove("dec").unwrap();
    assert_eq!(take(&l), ["b:read"]);
    assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "rest");
}

/// Declares no events at all: must never be called.
struct Skipped;
impl Handler for Skipped {
    fn interest(&self) -> Events {
        Events::NONE
    }
    fn channel_read(&mut self, _: &mut Context<'_>, _: Msg) {
        panic!("a skipped handler was called");
    }
    fn write(&mut self, _: &mut Context<'_>, _: Msg, _: Option<Promise>) {
        panic!("a skipped handler was called");
    }
}

#[test]
fn handlers_are_skipped_for_undeclared_events() {
    let mut ch = EmbeddedChannel::builder()
        .add_last("s1", Skipped)
        .add_last("echo", WriteOnRead)
        .add_last("s2", Skipped)
        .build();
    ch.fire_read("x");
    assert_eq!(ch.read_outbound::<Bytes>().unwrap(), "x");
    assert!(ch.check_exception().is_ok());
}

/// An outer handler that also encodes; the inner handler writes while the
/// outer one is still inside channel_read.
struct Codec(Log);
impl Handler for Codec {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        self.0.lock().unwrap().push("codec:read-start".into());
        ctx.fire_read(msg);
        self.0.lock().unwrap().push("codec:read-end".into());
    }
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        self.0.lock().unwrap().push("codec:write".into());
        let b: Bytes = msg.downcast().unwrap();
        let mut v = b"enc:".to_vec();
        v.extend_from_slice(&b);
        ctx.write_with(Msg::from(v), promise);
    }
}

#[test]
fn reentrant_events_are_queued_in_order() {
    let l = log();
    let mut ch = EmbeddedChannel::builder()
        .add_last("codec", Codec(l.clone()))
        .add_last("app", WriteOnRead)
        .build();
    ch.fire_read("a");
    assert_eq!(
        take(&l),
        ["codec:read-start", "codec:read-end", "codec:write"]
    );
    assert_eq!(ch.read_outbound::<Bytes>().unwrap(), "enc:a");
}

struct Panicker;
impl Handler for Panicker {
    fn channel_read(&mut self, _: &mut Context<'_>, msg: Msg) {
        if msg.downcast_ref::<&str>().is_some() {
            return;
        }
        panic!("boom");
    }
}

#[test]
fn panic_is_caught_reported_and_closes_the_channel() {
    let l = log();
    let mut ch = EmbeddedChannel::builder()
        .add_last("p", Panicker)
        .add_last("after", Rec::new("after", &l))
        .build();
    let mut pending = ch.write_one_outbound("unflushed");
    take(&l);
    ch.fire_read("x");
    let err = ch.check_exception().unwrap_err();
    assert!(err.kind() == weft_core::ErrorKind::Panic, "{err}");
    assert!(err.to_string().contains("boom"));
    assert!(!ch.is_open());
    assert!(take(&l).contains(&"after:inactive".to_string()));
    assert!(pending.try_result().unwrap().unwrap_err().is_closed());
    // Another channel is unaffected.
    let mut other = EmbeddedChannel::with_handler(WriteOnRead);
    other.fire_read("ok");
    assert_eq!(other.read_outbound::<Bytes>().unwrap(), "ok");
}

#[test]
fn promises_complete_and_fail() {
    let mut ch = EmbeddedChannel::new();
    let mut f = ch.write_one_outbound("a");
    assert!(f.try_result().is_none(), "not flushed yet");
    ch.flush_outbound();
    assert!(f.try_result().unwrap().is_ok());
    let mut g = ch.write_one_outbound("b");
    ch.close();
    assert!(g.try_result().unwrap().unwrap_err().is_closed());
    // Writes after close fail at once.
    let mut h = ch.write_one_outbound("c");
    assert!(h.try_result().unwrap().unwrap_err().is_closed());
    let mut k = ch.channel().write_and_flush("d");
    assert!(k.try_result().unwrap().unwrap_err().is_closed());
}

#[derive(Debug, PartialEq)]
struct Request(u32);

struct Typed1(Log);
impl TypedInbound for Typed1 {
    type In = Request;
    fn read(&mut self, _ctx: &mut Context<'_>, msg: Request) {
        self.0.lock().unwrap().push(format!("req {}", msg.0));
    }
    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        self.0.lock().unwrap().push("error".into());
        ctx.fire_exception(err);
    }
}

#[test]
fn typed_handler_downcasts_and_reports_mismatch() {
    let l = log();
    let mut ch = EmbeddedChannel::with_handler(Typed(Typed1(l.clone())));
    ch.fire_read(Msg::user(Request(7)));
    assert_eq!(take(&l), ["req 7"]);
    ch.fire_read("not a request");
    assert_eq!(take(&l), ["error"]);
    let err = ch.check_exception().unwrap_err();
    assert!(err.kind() == weft_core::ErrorKind::TypeMismatch);
    let text = err.to_string();
    assert!(text.contains("Request") && text.contains("Bytes"), "{text}");
}

#[test]
fn writability_changes_fire_after_the_event() {
    struct Watch(Log);
    #[weft_core::handler]
    impl Handler for Watch {
        fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
            self.0.lock().unwrap().push(format!("writable={writable}"));
            ctx.fire_writability_changed(writable);
        }
    }
    let l = log();
    let mut ch = EmbeddedChannel::builder()
        .add_last("watch", Watch(l.clone()))
        .watermark(WriteBufferWaterMark::new(4, 8).unwrap())
        .build();
    let _f1 = ch.write_one_outbound(vec![0u8; 5]);
    assert!(ch.is_writable());
    let _f2 = ch.write_one_outbound(vec![0u8; 5]);
    assert!(!ch.is_writable());
    assert_eq!(take(&l), ["writable=false"]);
    ch.flush_outbound();
    assert!(ch.is_writable());
    assert_eq!(take(&l), ["writable=true"]);
}

#[test]
fn user_events_and_channel_execute() {
    struct Ev(u8);
    let mut ch = EmbeddedChannel::with_handler(from_fn(|ctx: &mut Context<'_>, m: Bytes| {
        let e: UserEvent = Box::new(Ev(m[0]));
        ctx.fire_user_event(e);
    }));
    ch.fire_read("\x05");
    assert_eq!(ch.read_user_event::<Ev>().unwrap().0, 5);
    let h = ch.channel().clone();
    h.execute(|p| {
        p.add_last("late", WriteOnRead).unwrap();
    });
    ch.run_pending_tasks();
    assert_eq!(ch.pipeline().names(), ["Typed", "late"]);
}

/// A flush that skips a busy handler must not overtake a write queued on it.
#[test]
fn events_skipping_a_busy_handler_keep_their_order() {
    /// First handler: takes part in `active` and `write` (not `flush`).
    struct Outer;
    impl Handler for Outer {
        fn interest(&self) -> Events {
            Events::ACTIVE | Events::WRITE
        }
    }
    /// Writes and flushes from inside `channel_active`, while Outer is busy.
    struct Greeter;
    #[weft_core::handler]
    impl Handler for Greeter {
        fn channel_active(&mut self, ctx: &mut Context<'_>) {
            ctx.write_and_flush("welcome");
            ctx.fire_active();
        }
    }
    let mut ch = EmbeddedChannel::builder()
        .add_last("outer", Outer)
        .add_last("greeter", Greeter)
        .build();
    assert_eq!(
        ch.read_outbound::<Bytes>().unwrap(),
        "welcome",
        "the flush came after the write"
    );
}
