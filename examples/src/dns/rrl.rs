//! Response-rate limiting for answers over UDP (as BIND's RRL): a DNS
//! server's answers are larger than its queries, so a flood of queries with
//! a forged source turns it into an amplifier aimed at that source.
//!
//! Contract:
//! - an answer is charged to its **client prefix** (the source address
//!   masked to `/24` for IPv4, `/56` for IPv6: one attacker rarely forges
//!   one address only, one victim network is one prefix) and its
//!   **identity**: the question for a positive or empty answer, the zone for
//!   NXDOMAIN (random names under the zone are one answer), and one
//!   identity for every error;
//! - each (prefix, identity) has a balance that earns `rate` answers a
//!   second up to `rate` (a burst of one second) and pays one per answer;
//!   below zero the answer is limited, and the debt is floored at `window`
//!   seconds' worth, so a flood must stop for up to `window` seconds before
//!   the answers flow again;
//! - a limited answer is dropped, except every `slip`-th, which is sent as
//!   a truncated answer (header and question, TC set: no larger than the
//!   query), so that a real client behind a forged flood retries over TCP
//!   and is answered there (`slip` 0: never; 1: always);
//! - the table is bounded: two generations of at most `max_entries` each;
//!   when the current one fills, the older is forgotten (an entry used
//!   since moves to the current one), so memory stays bounded whatever the
//!   sources, and what is forgotten is what was idle longest;
//! - TCP answers are never limited: a TCP client cannot forge its source.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// What to do with one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Send a truncated answer in its place (the client retries over TCP).
    Slip,
    /// Send nothing.
    Drop,
}

/// The settings of [`ResponseRateLimit`].
#[derive(Debug, Clone, Copy)]
pub struct RrlConfig {
    /// Answers per second per client prefix and identity (0: no limit).
    pub rate: u32,
    /// The longest debt, in seconds.
    pub window: u32,
    /// Every `slip`-th limited answer goes out truncated (0: none).
    pub slip: u32,
    /// The prefix length an IPv4 source is counted under.
    pub ipv4_prefix: u8,
    /// The prefix length an IPv6 source is counted under.
    pub ipv6_prefix: u8,
    /// Entries per generation of the table.
    pub max_entries: usize,
}

impl Default for RrlConfig {
    /// BIND's recommended starting point: 10 answers a second, a 15 s
    /// window, every second limited answer slipped, `/24` and `/56`.
    fn default() -> RrlConfig {
        RrlConfig {
            rate: 10,
            window: 15,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            max_entries: 1 << 16,
        }
    }
}

/// What an answer is counted as (see the module contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A positive or empty answer to this question (a hash of the name in
    /// lower case and the type).
    Question(u64),
    /// NXDOMAIN: the zone's, whatever the name.
    NxDomain,
    /// Any error (FORMERR, REFUSED, NOTIMP, BADVERS, ...).
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    prefix: u128,
    v6: bool,
    identity: Identity,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Thousandths of an answer; negative: the debt.
    balance: i64,
    last: Instant,
    /// Limited answers so far, for the slip.
    limited: u32,
}

/// Response-rate limiting state for one datagram channel.
#[derive(Debug)]
pub struct ResponseRateLimit {
    config: RrlConfig,
    current: HashMap<Key, Bucket>,
    previous: HashMap<Key, Bucket>,
}

impl ResponseRateLimit {
    /// A limiter with `config`.
    pub fn new(config: RrlConfig) -> ResponseRateLimit {
        ResponseRateLimit {
            config,
            current: HashMap::new(),
            previous: HashMap::new(),
        }
    }

    /// Whether answers are limited at all.
    pub fn is_on(&self) -> bool {
        self.config.rate > 0
    }

    /// Entries tracked now (both generations).
    pub fn entries(&self) -> usize {
        self.current.len().saturating_add(self.previous.len())
    }

    /// Charges one answer to `source` and `identity` at `now`; what to do
    /// with it.
    ///
    /// ```
    /// use std::time::Instant;
    /// use weft_examples::dns::rrl::{Identity, ResponseRateLimit, RrlConfig, Verdict};
    ///
    /// let mut rrl = ResponseRateLimit::new(RrlConfig { rate: 2, ..RrlConfig::default() });
    /// let (src, now) = ("192.0.2.7".parse().unwrap(), Instant::now());
    /// assert_eq!(rrl.check(src, Identity::NxDomain, now), Verdict::Send);
    /// assert_eq!(rrl.check(src, Identity::NxDomain, now), Verdict::Send);
    /// // Past 2 a second: one dropped, one slipped, in turn.
    /// assert_eq!(rrl.check(src, Identity::NxDomain, now), Verdict::Drop);
    /// assert_eq!(rrl.check(src, Identity::NxDomain, now), Verdict::Slip);
    /// // Another network is counted apart.
    /// assert_eq!(rrl.check("198.51.100.1".parse().unwrap(), Identity::NxDomain, now), Verdict::Send);
    /// ```
    pub fn check(&mut self, source: IpAddr, identity: Identity, now: Instant) -> Verdict {
        if !self.is_on() {
            return Verdict::Send;
        }
        let key = self.key(source, identity);
        let RrlConfig { slip, .. } = self.config;
        let per_ms = i64::from(self.config.rate);
        let rate = per_ms.saturating_mul(1000);
        let floor = rate
            .saturating_mul(i64::from(self.config.window))
            .saturating_neg();
        let bucket = self.bucket(key, rate, now);
        let earned_ms = now.saturating_duration_since(bucket.last).as_millis();
        bucket.last = now;
        // Thousandths of an answer earned: rate answers per 1000 ms.
        let earned = i64::try_from(earned_ms)
            .unwrap_or(i64::MAX)
            .saturating_mul(per_ms);
        bucket.balance = bucket
            .balance
            .saturating_add(earned)
            .min(rate)
            .saturating_sub(1000)
            .max(floor);
        if bucket.balance >= 0 {
            bucket.limited = 0;
            return Verdict::Send;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        if bucket.limited.checked_rem(slip) == Some(0) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }

    fn key(&self, source: IpAddr, identity: Identity) -> Key {
        let (bits, len, v6) = match source {
            IpAddr::V4(a) => (
                u128::from(u32::from(a)) << 96,
                self.config.ipv4_prefix,
                false,
            ),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(a) => (
                    u128::from(u32::from(a)) << 96,
                    self.config.ipv4_prefix,
                    false,
                ),
                None => (u128::from(a), self.config.ipv6_prefix, true),
            },
        };
        let mask = u128::MAX
            .checked_shl(128u32.saturating_sub(u32::from(len.min(128))))
            .unwrap_or(0);
        Key {
            prefix: bits & mask,
            v6,
            identity,
        }
    }

    /// The key's bucket, from the current generation (moved there from the
    /// previous one, or new and full).
    fn bucket(&mut self, key: Key, full: i64, now: Instant) -> &mut Bucket {
        if !self.current.contains_key(&key) && self.current.len() >= self.config.max_entries.max(1)
        {
            self.previous = std::mem::take(&mut self.current);
        }
        let previous = &mut self.previous;
        self.current.entry(key).or_insert_with(|| {
            previous.remove(&key).unwrap_or(Bucket {
                balance: full,
                last: now,
                limited: 0,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(rate: u32) -> RrlConfig {
        RrlConfig {
            rate,
            ..RrlConfig::default()
        }
    }

    #[test]
    fn a_flood_gets_the_rate_and_a_slip_in_every_two_limited() {
        let mut rrl = ResponseRateLimit::new(cfg(10));
        let src: IpAddr = "203.0.113.9".parse().unwrap();
        let t0 = Instant::now();
        let mut counts = [0usize; 3];
        // 10,000 queries over 10 s (1 ms apart).
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_millis(i);
            match rrl.check(src, Identity::Question(1), now) {
                Verdict::Send => counts[0] += 1,
                Verdict::Slip => counts[1] += 1,
                Verdict::Drop => counts[2] += 1,
            }
        }
        // The burst of 10 answers; then the debt sits at its floor, paid
        // off by the next queries as fast as it is earned: nothing more
        // while the flood goes on, half of the rest slipped.
        assert!((10..=12).contains(&counts[0]), "{counts:?}");
        assert!(counts[1].abs_diff(counts[2]) <= 1, "{counts:?}");
    }

    #[test]
    fn a_prefix_is_one_client_and_identities_are_apart() {
        let mut rrl = ResponseRateLimit::new(cfg(1));
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.200".parse().unwrap();
        let c: IpAddr = "192.0.3.1".parse().unwrap();
        assert_eq!(rrl.check(a, Identity::Error, now), Verdict::Send);
        assert_ne!(rrl.check(b, Identity::Error, now), Verdict::Send);
        assert_eq!(rrl.check(c, Identity::Error, now), Verdict::Send);
        assert_eq!(rrl.check(a, Identity::NxDomain, now), Verdict::Send);
        let v6a: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:0:ff::2".parse().unwrap();
        let v6c: IpAddr = "2001:db8:0:100::1".parse().unwrap();
        assert_eq!(rrl.check(v6a, Identity::Error, now), Verdict::Send);
        assert_ne!(rrl.check(v6b, Identity::Error, now), Verdict::Send); // same /56
        assert_eq!(rrl.check(v6c, Identity::Error, now), Verdict::Send);
    }

    #[test]
    fn a_debt_lasts_at_most_the_window() {
        let mut rrl = ResponseRateLimit::new(cfg(5));
        let src: IpAddr = "198.51.100.4".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..100_000 {
            rrl.check(src, Identity::NxDomain, t0);
        }
        // The debt is floored at 15 s of answers: 15 s later one goes out.
        let later = t0 + Duration::from_millis(15_200);
        assert_eq!(rrl.check(src, Identity::NxDomain, later), Verdict::Send);
    }

    #[test]
    fn the_table_is_bounded_whatever_the_sources() {
        let mut rrl = ResponseRateLimit::new(RrlConfig {
            max_entries: 1000,
            ..cfg(10)
        });
        let now = Instant::now();
        for i in 0..100_000u32 {
            let src = IpAddr::from(std::net::Ipv4Addr::from(i << 8));
            rrl.check(src, Identity::Error, now);
            assert!(rrl.entries() <= 2000);
        }
    }

    #[test]
    fn zero_rate_is_off() {
        let mut rrl = ResponseRateLimit::new(cfg(0));
        let now = Instant::now();
        for _ in 0..1000 {
            assert_eq!(
                rrl.check("192.0.2.1".parse().unwrap(), Identity::Error, now),
                Verdict::Send
            );
        }
    }
}
