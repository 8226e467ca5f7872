//! A per-thread pool of emptied header maps.
//!
//! Contract: the server codec gives back the map of each answer it has
//! encoded ([`give`]), emptied; a request head is parsed into a map from
//! the pool when there is one ([`take`]), so that a request and its answer
//! cost one map's allocations, not two. The pool belongs to the thread,
//! not to a connection: an idle connection holds no map. It keeps at most
//! [`MAX_POOLED`] maps, each with room for at most [`MAX_FIELDS`] fields
//! and holding at most that many values when given back (repeated fields
//! such as `Set-Cookie` grow a map's memory beyond its room for names); a
//! larger map is dropped.

use std::cell::RefCell;

use http::HeaderMap;

/// Most maps kept per thread (a pipelined batch's worth, several times).
pub(crate) const MAX_POOLED: usize = 64;
/// Most fields a kept map has room for.
pub(crate) const MAX_FIELDS: usize = 64;

thread_local! {
    static POOL: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty map with room for `n` fields: a pooled one when there is one.
pub(crate) fn take(n: usize) -> HeaderMap {
    match POOL.with(|p| p.borrow_mut().pop()) {
        Some(mut map) => {
            map.reserve(n);
            map
        }
        None => HeaderMap::with_capacity(n),
    }
}

/// Gives an answer's map back once it is encoded.
pub(crate) fn give(mut map: HeaderMap) {
    if map.capacity() > MAX_FIELDS || map.len() > MAX_FIELDS {
        return;
    }
    map.clear();
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < MAX_POOLED {
            p.push(map);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HOST;
    use http::HeaderValue;

    #[test]
    fn a_map_given_back_is_taken_again_empty_with_its_memory() {
        let mut map = HeaderMap::with_capacity(8);
        map.insert(HOST, HeaderValue::from_static("x"));
        let cap = map.capacity();
        POOL.with(|p| p.borrow_mut().clear());
        give(map);
        let again = take(1);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), cap);
        // The pool is empty now: a new map.
        assert_eq!(
            take(1).capacity(),
            HeaderMap::<HeaderValue>::with_capacity(1).capacity()
        );
    }

    #[test]
    fn the_pool_is_bounded_in_maps_and_in_their_size() {
        POOL.with(|p| p.borrow_mut().clear());
        give(HeaderMap::with_capacity(MAX_FIELDS * 4));
        assert_eq!(POOL.with(|p| p.borrow().len()), 0);
        let mut cookies = HeaderMap::with_capacity(4);
        for _ in 0..=MAX_FIELDS {
            cookies.append(HOST, HeaderValue::from_static("many values of one field"));
        }
        give(cookies);
        assert_eq!(POOL.with(|p| p.borrow().len()), 0, "too many values");
        for _ in 0..MAX_POOLED + 10 {
            give(HeaderMap::with_capacity(4));
        }
        assert_eq!(POOL.with(|p| p.borrow().len()), MAX_POOLED);
    }
}
