//! [`TokenBucket`]: bytes of work per second, with a burst of one second's
//! worth; shared by the HTTP compressor's budgets (which ask before they
//! work, [`has`](TokenBucket::has) then [`take`](TokenBucket::take)) and
//! permessage-deflate's pace (which works first and then learns how long
//! its debt lasts, [`charge`](TokenBucket::charge)).

#[cfg(feature = "websocket")]
use std::time::Duration;
use std::time::Instant;

/// A token bucket that may go into debt.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: u64,
    /// Bytes that may still be spent now; negative: the debt.
    tokens: i128,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket of `rate` bytes per second.
    pub(crate) const fn new(rate: u64) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: rate as i128, // lossless: u64 into i128
            last: None,
        }
    }

    /// Changes the rate; what is held stays within it.
    pub(crate) fn set_rate(&mut self, rate: u64) {
        self.rate = rate;
        self.tokens = self.tokens.min(i128::from(rate));
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let ns = now.saturating_duration_since(last).as_nanos();
            let earned = ns.saturating_mul(u128::from(self.rate)) / 1_000_000_000;
            let earned = i128::try_from(earned).unwrap_or(i128::MAX);
            self.tokens = self
                .tokens
                .saturating_add(earned)
                .min(i128::from(self.rate));
        }
        self.last = Some(now);
    }

    /// Whether `n` bytes fit now (without taking them).
    pub(crate) fn has(&mut self, n: u64, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= i128::from(n)
    }

    /// Takes `n` bytes (after [`has`](Self::has) said they fit).
    pub(crate) fn take(&mut self, n: u64) {
        self.tokens = self.tokens.saturating_sub(i128::from(n));
    }

    /// Charges `n` bytes of work already done at `now`; how long the debt
    /// it leaves takes to pay off, if any.
    #[cfg(feature = "websocket")]
    pub(crate) fn charge(&mut self, n: u64, now: Instant) -> Option<Duration> {
        self.refill(now);
        self.take(n);
        if self.tokens >= 0 || self.rate == 0 {
            return None;
        }
        let debt = u64::try_from(self.tokens.saturating_neg()).unwrap_or(u64::MAX);
        Some(Duration::from_secs_f64(debt as f64 / self.rate as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "websocket")]
    fn a_debt_lasts_what_the_rate_takes_to_pay_it() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000);
        assert_eq!(b.charge(1000, t0), None, "the burst");
        let pause = b.charge(500, t0).unwrap();
        assert_eq!(pause, Duration::from_millis(500));
        assert_eq!(b.charge(0, t0 + Duration::from_millis(500)), None, "paid");
    }
}
