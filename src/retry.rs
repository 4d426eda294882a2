//! When to try a failed provider call again: bounded exponential backoff
//! with jitter, honouring the provider's `Retry-After`.

use std::time::Duration;

/// Retry bounds for one pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Calls made at most, the first included.
    pub(crate) max_attempts: u32,
    /// No retry starts once this much time has passed since the first call.
    pub(crate) max_elapsed: Duration,
    /// Backoff before the second call; doubles each time.
    pub(crate) base_delay: Duration,
    /// Backoff never exceeds this (a longer `Retry-After` still wins).
    pub(crate) max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_elapsed: Duration::from_secs(120),
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, or `None` to give up.
    /// `elapsed` is the time since the first call; `retry_after` is what the
    /// provider asked for, if anything.
    pub(crate) fn next_delay(
        &self,
        attempt: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let exp = self
            .base_delay
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_delay);
        // "Equal jitter": at least half the backoff, so waits still grow,
        // and a random rest, so many clients do not retry in step.
        let half = exp / 2;
        let jittered = half + half.mul_f64(rng.f64());
        let delay = match retry_after {
            // The provider's wait is a floor; a little jitter on top spreads
            // the callers it told to come back at the same instant.
            Some(after) => after.saturating_add(Duration::from_millis(rng.u64(0..=250))),
            None => jittered,
        };
        (elapsed.saturating_add(delay) <= self.max_elapsed).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            max_elapsed: Duration::from_secs(60),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_grows_within_jitter_bounds_and_is_capped() {
        let mut rng = fastrand::Rng::with_seed(7);
        for attempt in 1..6 {
            let full =
                Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            for _ in 0..50 {
                let d = policy()
                    .next_delay(attempt, Duration::ZERO, None, &mut rng)
                    .unwrap();
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} not in [{:?}, {full:?}]",
                    full / 2
                );
            }
        }
    }

    #[test]
    fn jitter_varies() {
        let mut rng = fastrand::Rng::with_seed(1);
        let delays: std::collections::BTreeSet<_> = (0..20)
            .map(|_| {
                policy()
                    .next_delay(4, Duration::ZERO, None, &mut rng)
                    .unwrap()
            })
            .collect();
        assert!(delays.len() > 10);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut rng = fastrand::Rng::with_seed(3);
        let d = policy()
            .next_delay(1, Duration::ZERO, Some(Duration::from_secs(5)), &mut rng)
            .unwrap();
        assert!(
            d >= Duration::from_secs(5) && d <= Duration::from_millis(5250),
            "{d:?}"
        );
    }

    #[test]
    fn gives_up_after_attempts_or_time() {
        let mut rng = fastrand::Rng::with_seed(3);
        assert!(
            policy()
                .next_delay(6, Duration::ZERO, None, &mut rng)
                .is_none()
        );
        assert!(
            policy()
                .next_delay(1, Duration::from_secs(60), None, &mut rng)
                .is_none()
        );
        assert!(
            policy()
                .next_delay(
                    1,
                    Duration::from_secs(50),
                    Some(Duration::from_secs(20)),
                    &mut rng
                )
                .is_none(),
            "a Retry-After past the time budget ends the retries"
        );
        assert!(
            policy()
                .next_delay(1, Duration::ZERO, Some(Duration::MAX), &mut rng)
                .is_none(),
            "an absurd Retry-After ends the retries without overflowing"
        );
    }
}
