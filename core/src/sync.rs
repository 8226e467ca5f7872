//! The synchronisation primitives of the state that `Channel` handles share
//! with the connection task: the standard ones, or `loom`'s under
//! `--cfg weft_loom`, so that the same code is model-checked.
//!
//! (The cfg is `weft_loom`, not `loom`: tokio reads `cfg(loom)` in its own
//! non-test code, so a workspace-wide `--cfg loom` would not build it.)

#[cfg(not(weft_loom))]
pub(crate) use futures::task::AtomicWaker;
#[cfg(not(weft_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(not(weft_loom))]
pub(crate) use std::sync::Mutex;

#[cfg(weft_loom)]
pub(crate) use loom::future::AtomicWaker;
#[cfg(weft_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(weft_loom)]
pub(crate) use loom::sync::Mutex;

/// Locks `m`, ignoring poisoning: the data behind our locks is a queue or a
/// set whose every state is valid, so a panic elsewhere leaves nothing to
/// repair.
pub(crate) fn lock<T>(m: &Mutex<T>) -> impl std::ops::DerefMut<Target = T> + '_ {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stores `waker` in `slot` (the two `AtomicWaker`s spell this differently).
pub(crate) fn register(slot: &AtomicWaker, waker: &std::task::Waker) {
    #[cfg(not(weft_loom))]
    slot.register(waker);
    #[cfg(weft_loom)]
    slot.register_by_ref(waker);
}

/// `block_on` for loom models, with a waker that `will_wake` its clones
/// (loom's own does not, which would hide the consumer's fast path from
/// the model): polls, and waits on a loom `Notify` until woken.
#[cfg(all(test, weft_loom))]
pub(crate) fn model_block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Wake(loom::sync::Notify);
    impl std::task::Wake for Wake {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.notify();
        }
    }
    let wake = std::sync::Arc::new(Wake(loom::sync::Notify::new()));
    let waker = std::task::Waker::from(wake.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        wake.0.wait();
    }
}

#[cfg(all(test, weft_loom))]
mod tests {
    /// The models rely on it: a waker that fails `will_wake` against its
    /// own clone would make every poll store the waker again, and the
    /// consumer's fast path would never be explored.
    #[test]
    fn loom_model_waker_will_wake_its_clone() {
        loom::model(|| {
            super::model_block_on(std::future::poll_fn(|cx| {
                assert!(cx.waker().clone().will_wake(cx.waker()));
                std::task::Poll::Ready(())
            }));
        });
    }
}
