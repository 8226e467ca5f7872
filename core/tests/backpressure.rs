//! Writes from other tasks count toward the watermark and the cap when they
//! are submitted, not when the channel's task gets to them.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use weft_core::{Context, EmbeddedChannel, Error, Handler};

/// Records the writability changes and errors it sees.
#[derive(Clone, Default)]
struct Seen {
    writability: Arc<Mutex<Vec<bool>>>,
    errors: Arc<Mutex<Vec<Error>>>,
}

#[weft_core::handler]
impl Handler for Seen {
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        self.writability.lock().unwrap().push(writable);
        ctx.fire_writability_changed(writable);
    }
    fn exception_caught(&mut self, _ctx: &mut Context<'_>, err: Error) {
        self.errors.lock().unwrap().push(err);
    }
}

#[test]
fn writes_from_another_thread_turn_the_handle_unwritable_at_once() {
    let seen = Seen::default();
    let mut ch = EmbeddedChannel::with_handler(seen.clone());
    let handle = ch.channel().clone();
    let writes = std::thread::spawn(move || {
        let mut writable_after = Vec::new();
        for _ in 0..8 {
            drop(handle.write_and_flush(Bytes::from(vec![0u8; 16 * 1024])));
            writable_after.push(handle.is_writable());
        }
        writable_after
    })
    .join()
    .unwrap();
    // 64 KiB is the default high watermark: the fifth 16 KiB write passes
    // it, before the channel's task has run at all.
    assert_eq!(writes, [true, true, true, true, false, false, false, false]);
    assert!(
        seen.writability.lock().unwrap().is_empty(),
        "nothing ran yet"
    );
    // The task delivers the change to the pipeline, then, once the writes
    // have left (an EmbeddedChannel takes them at once), the writable one.
    ch.run_pending_tasks();
    assert_eq!(*seen.writability.lock().unwrap(), [false, true]);
    assert!(ch.channel().is_writable());
    let mut total = 0;
    while let Some(b) = ch.read_outbound::<Bytes>() {
        total += b.len();
    }
    assert_eq!(total, 8 * 16 * 1024, "every write went out");
}

#[test]
fn a_write_past_the_cap_from_another_thread_fails_at_once_and_closes() {
    let seen = Seen::default();
    let mut ch = EmbeddedChannel::builder()
        .add_last("seen", seen.clone())
        .outbound_cap(Some(100 * 1024))
        .build();
    let handle = ch.channel().clone();
    let mut results = std::thread::spawn(move || {
        (0..8)
            .map(|_| handle.write_and_flush(Bytes::from(vec![0u8; 16 * 1024])))
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    // The seventh write (112 KiB) passes the cap: refused at once, before
    // the channel's task has run, with an error that names the cap.
    let err = results[6].try_result().unwrap().unwrap_err();
    assert!(
        err.is_outbound_full() && err.to_string().contains("cap of 102400"),
        "{err}"
    );
    assert!(results[0].try_result().is_none(), "the first ones wait");
    ch.run_pending_tasks();
    assert!(!ch.is_open(), "the channel closed");
    assert!(seen.errors.lock().unwrap()[0].to_string().contains("cap"));
    // Everything accepted before the overflow was handed on in order; the
    // rest fails, none hangs.
    let mut delivered = 0;
    while ch.read_outbound::<Bytes>().is_some() {
        delivered += 1;
    }
    let failed = results
        .iter_mut()
        .map(|r| r.try_result().expect("every write resolved"))
        .filter(|r| r.is_err())
        .count();
    assert_eq!(delivered + failed, 8);
}

#[test]
fn a_write_past_the_cap_inside_the_pipeline_fails_and_closes() {
    let seen = Seen::default();
    let mut ch = EmbeddedChannel::builder()
        .add_last("seen", seen.clone())
        .outbound_cap(Some(1000))
        .build();
    let ok = ch.write_one_outbound(Bytes::from(vec![1u8; 600]));
    let mut over = ch
        .pipeline_mut()
        .write_and_flush(Bytes::from(vec![2u8; 600]));
    ch.run_pending_tasks();
    let err = over.try_result().unwrap().unwrap_err();
    assert!(err.to_string().contains("cap of 1000"), "{err}");
    assert!(!ch.is_open());
    assert_eq!(seen.errors.lock().unwrap().len(), 1);
    drop(ok);
}

/// The outbound buffer's size is published for other tasks' checks even
/// when its writability does not change: a handle sees writes the channel's
/// task already holds.
#[test]
fn other_tasks_see_what_the_task_already_holds() {
    let mut ch = EmbeddedChannel::new();
    // 48 KiB held by the task (unflushed, below the 64 KiB high watermark).
    ch.pipeline_mut().write(Bytes::from(vec![0u8; 48 * 1024]));
    ch.pipeline_mut().transport().sync_writability();
    assert!(ch.channel().is_writable());
    // 20 KiB more from another task passes the high watermark with them.
    let handle = ch.channel().clone();
    std::thread::spawn(move || handle.write(Bytes::from(vec![0u8; 20 * 1024])))
        .join()
        .unwrap();
    assert!(!ch.channel().is_writable());
}

#[test]
fn user_messages_from_another_thread_count_toward_the_cap_too() {
    // A user message (a protocol's frame, say) has no byte length; queued
    // on a handle it still holds memory until the channel's task takes it.
    // Counted as nothing, a task that lags let such writes pile up without
    // bound.
    struct Frame(#[allow(dead_code)] u64);
    let cap = 64 * 1024;
    let mut ch = EmbeddedChannel::builder().outbound_cap(Some(cap)).build();
    let handle = ch.channel().clone();
    let n = cap / weft_core::QUEUED_USER_MSG_WEIGHT;
    let mut results = std::thread::spawn(move || {
        (0..n + 8)
            .map(|i| handle.write_and_flush(weft_core::Msg::user(Frame(i as u64))))
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    // The write that passes the cap is refused at once, before the
    // channel's task has run.
    let err = results[n]
        .try_result()
        .expect("refused at once")
        .unwrap_err();
    assert!(
        err.is_outbound_full() && err.to_string().contains("cap"),
        "{err}"
    );
    assert!(
        results[n - 1].try_result().is_none(),
        "the ones before wait"
    );
    ch.run_pending_tasks();
    assert!(!ch.is_open(), "the channel closed");
}

/// The cap a handler sets is the one other tasks' writes are checked
/// against, at once: it is kept in one place, not copied to the handle.
#[test]
fn a_cap_a_handler_sets_holds_for_writes_from_other_threads_at_once() {
    let lower = weft_core::from_fn(|ctx: &mut Context<'_>, _: Bytes| {
        ctx.set_max_outbound_bytes(Some(1000));
    });
    let mut ch = EmbeddedChannel::builder()
        .add_last("lower", lower)
        .outbound_cap(Some(1 << 20))
        .build();
    ch.write_inbound("member");
    let handle = ch.channel().clone();
    let mut over = std::thread::spawn(move || handle.write_and_flush(Bytes::from(vec![0u8; 2000])))
        .join()
        .unwrap();
    let err = over.try_result().unwrap().unwrap_err();
    assert!(err.is_outbound_full(), "{err}");
    assert!(err.to_string().contains("cap of 1000"), "{err}");
}
