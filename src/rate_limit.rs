//! Quotas per key (a client address, a project, a route): a minute's worth at once, then
//! refilled evenly. One home for the limits callers meet on public paths.

use std::hash::Hash;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Keys past which the quiet ones are forgotten, so a flood of new keys cannot grow the map
/// without end.
const KEYS_KEPT: usize = 10_000;

pub struct PerMinute<K: Hash + Eq + Clone>(DefaultKeyedRateLimiter<K>);

impl<K: Hash + Eq + Clone> PerMinute<K> {
    /// `per_minute` (at least one) for each key.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute.max(1)).expect("at least one");
        PerMinute(RateLimiter::keyed(Quota::per_minute(per_minute)))
    }

    /// Takes `n` from `key`'s quota; `Err(seconds to wait)` when it does not hold as many now
    /// (a minute when `n` is more than a whole minute's worth). Taking nothing always succeeds.
    pub fn take(&self, key: K, n: usize) -> Result<(), u64> {
        let Some(n) = NonZeroU32::new(n.min(u32::MAX as usize) as u32) else {
            return Ok(());
        };
        let taken = match self.0.check_key_n(&key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                + 1),
            Err(_) => Err(60),
        };
        if self.0.len() > KEYS_KEPT {
            self.0.retain_recent();
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_quota_and_no_more_and_others_keep_theirs() {
        let limiter = PerMinute::new(120);
        assert!(limiter.take(1, 0).is_ok());
        assert!(limiter.take(1, 100).is_ok());
        assert!(limiter.take(1, 20).is_ok());
        let wait = limiter.take(1, 1).expect_err("the minute's quota is used");
        assert!((1..=2).contains(&wait), "{wait} s");
        assert!(limiter.take(2, 1).is_ok(), "another key's is not");
        assert_eq!(
            limiter.take(3, 121),
            Err(60),
            "more than a minute's worth at once"
        );
    }
}
