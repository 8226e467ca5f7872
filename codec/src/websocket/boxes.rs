//! A per-thread pool of boxes for frames.
//!
//! Contract: every frame the codec hands on travels in a box (a [`Msg`]
//! holds user messages boxed); a frame written back to a codec (an echo, a
//! relay) gives its box back to the pool once its fields are taken out
//! ([`unbox`]), and the next frame decoded on the thread is put in a box
//! from the pool when there is one ([`boxed`]), so that a frame that comes
//! back costs no allocation. A frame the application drops frees its box
//! as usual. The pool holds at most [`MAX_POOLED`] empty boxes per thread
//! (under a kilobyte); a connection holds none.
//!
//! [`Msg`]: weft_core::Msg

// The pool's whole point is the boxes themselves, not the frames in them.
#![allow(clippy::vec_box)]

use std::cell::RefCell;

use bytes::Bytes;

use super::frame::{Frame, OpCode};

/// Most empty boxes kept per thread.
pub(crate) const MAX_POOLED: usize = 16;

thread_local! {
    static POOL: RefCell<Vec<Box<Frame>>> = const { RefCell::new(Vec::new()) };
}

/// `f` in a box: a pooled one when there is one.
pub(crate) fn boxed(f: Frame) -> Box<Frame> {
    match POOL.with(|p| p.borrow_mut().pop()) {
        Some(mut b) => {
            *b = f;
            b
        }
        None => Box::new(f),
    }
}

/// The frame out of its box; the box goes back to the pool.
pub(crate) fn unbox(mut b: Box<Frame>) -> Frame {
    let f = std::mem::replace(&mut *b, empty());
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < MAX_POOLED {
            p.push(b);
        }
    });
    f
}

/// What a pooled box holds: no payload memory.
fn empty() -> Frame {
    Frame {
        fin: true,
        rsv1: false,
        opcode: OpCode::Continuation,
        payload: Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_given_back_carries_the_next_frame() {
        POOL.with(|p| p.borrow_mut().clear());
        let b = boxed(Frame::binary(Bytes::from_static(b"one")));
        let at = &*b as *const Frame;
        let f = unbox(b);
        assert_eq!(&f.payload[..], b"one");
        let again = boxed(Frame::text(Bytes::from_static(b"two")));
        assert_eq!(&*again as *const Frame, at, "the same box");
        assert_eq!(&again.payload[..], b"two");
        assert!(POOL.with(|p| p.borrow().is_empty()));
    }

    #[test]
    fn the_pool_is_bounded() {
        POOL.with(|p| p.borrow_mut().clear());
        for _ in 0..MAX_POOLED + 5 {
            unbox(Box::new(Frame::binary(Bytes::new())));
        }
        assert_eq!(POOL.with(|p| p.borrow().len()), MAX_POOLED);
    }
}
