//! [`MemoryBudget`]: one bound on what many connections' buffers hold
//! together, for buffers that each connection already bounds alone.
//!
//! Contract:
//! - a budget is shared (a `static`, or an `Arc`); each buffer that counts
//!   against it holds a [`BudgetShare`], sized to what the buffer holds now
//!   with [`resize`](BudgetShare::resize);
//! - a resize that would take the budget's total past its limit is refused
//!   and changes nothing: the caller refuses the new bytes (closes the
//!   connection, answers 503, closes a WebSocket with 1009), it never
//!   buffers them. Shrinking always succeeds;
//! - a share gives its bytes back when it drops, so a connection that ends
//!   for whatever reason (closed, panicked, reset) leaves the total as it
//!   was;
//! - the total is one atomic, never past the limit even for a moment: a
//!   resize is a compare-and-swap loop, never a lock, and no task waits on
//!   it.
//!
//! Why: a per-connection bound (a 16 MiB partial WebSocket frame, a 1 MiB
//! aggregated body, held pipelined requests) is a per-process bound only
//! times the number of connections: 50 WebSocket connections each holding
//! a partial frame took +800 MB. resp-server's partial requests were the
//! first user (1 GiB for all connections).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A limit on the bytes many buffers hold together.
///
/// ```
/// use std::sync::Arc;
/// use weft_core::MemoryBudget;
///
/// let budget = Arc::new(MemoryBudget::new("partial frames", 1000));
/// let mut a = MemoryBudget::share(&budget);
/// let mut b = MemoryBudget::share(&budget);
/// assert!(a.resize(600));
/// assert!(!b.resize(600), "600 + 600 is past the limit: refused");
/// assert_eq!(b.held(), 0, "a refused resize changes nothing");
/// assert!(b.resize(400));
/// drop(a);
/// assert_eq!(budget.used(), 400);
/// ```
pub struct MemoryBudget {
    name: &'static str,
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes; `name` says what it bounds (in logs and
    /// errors).
    pub const fn new(name: &'static str, limit: usize) -> MemoryBudget {
        MemoryBudget {
            name,
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// A share of `budget`, holding nothing yet.
    pub fn share(budget: &Arc<MemoryBudget>) -> BudgetShare {
        BudgetShare {
            budget: Holder::Shared(budget.clone()),
            held: 0,
        }
    }

    /// A share of a budget that lives for the whole program.
    pub fn share_static(budget: &'static MemoryBudget) -> BudgetShare {
        BudgetShare {
            budget: Holder::Static(budget),
            held: 0,
        }
    }

    /// What it bounds.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held against it now, by all shares.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `more` bytes if they fit; `false` (and nothing taken) if not.
    fn take(&self, more: usize) -> bool {
        let r = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|&n| n <= self.limit)
            });
        if r.is_err() {
            tracing::debug!(
                budget = self.name,
                limit = self.limit,
                asked = more,
                "memory budget spent; bytes refused"
            );
            return false;
        }
        true
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("used", &self.used())
            .finish()
    }
}

#[derive(Debug)]
enum Holder {
    Static(&'static MemoryBudget),
    Shared(Arc<MemoryBudget>),
}

impl Holder {
    fn get(&self) -> &MemoryBudget {
        match self {
            Holder::Static(b) => b,
            Holder::Shared(b) => b,
        }
    }
}

/// One buffer's part of a [`MemoryBudget`]; gives it back on drop.
#[derive(Debug)]
pub struct BudgetShare {
    budget: Holder,
    held: usize,
}

impl BudgetShare {
    /// Makes this share `now` bytes: `false`, and no change, if growing to
    /// it would pass the budget's limit.
    pub fn resize(&mut self, now: usize) -> bool {
        if now == self.held {
            return true; // the common case, and no atomic operation
        }
        let b = self.budget.get();
        if now > self.held {
            if !b.take(now.saturating_sub(self.held)) {
                return false;
            }
        } else {
            b.give(self.held.saturating_sub(now));
        }
        self.held = now;
        true
    }

    /// Bytes this share holds.
    pub fn held(&self) -> usize {
        self.held
    }

    /// The budget it is part of.
    pub fn budget(&self) -> &MemoryBudget {
        self.budget.get()
    }
}

impl Drop for BudgetShare {
    fn drop(&mut self) {
        self.resize(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_from_many_threads_never_pass_the_limit() {
        static B: MemoryBudget = MemoryBudget::new("test", 10_000);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut s = MemoryBudget::share_static(&B);
                    for i in 0..10_000usize {
                        let want = (i * 7 + t * 13) % 5000;
                        let before = s.held();
                        if !s.resize(want) {
                            assert_eq!(s.held(), before);
                        }
                        assert!(B.used() <= B.limit(), "never past the limit");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(B.used(), 0, "every share gave its bytes back");
    }
}
