//! Pacing: every request to a provider waits for its turn under the
//! provider's rate limit before it is sent, so an apply runs as fast as the
//! service allows without a storm of 429s (and leaves room for the team's
//! other tools that share the key).
//!
//! The limit is a GCRA limiter from `governor`, on tokio's clock, so tests
//! with paused time see it. On top of it the pacer follows what the service
//! says of its own limit: a 429 pauses every call to the provider (not only
//! the refused one) until `Retry-After` or `X-RateLimit-Reset`, and so does
//! an answer whose `X-RateLimit-Remaining` is 0; and where the service
//! gives `X-RateLimit-Limit` with its reset, the pace is lowered to that
//! rate for the rest of the run (never raised).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::manifest::{CallKind, RateLimit};

/// The longest pause a service's answer can impose: a `Retry-After` of a
/// day is a broken header, not a plan.
const MAX_PAUSE: Duration = Duration::from_secs(15 * 60);
/// The pause after a 429 that says nothing of when to come back, doubled
/// for each one in a row.
const FIRST_PAUSE: Duration = Duration::from_secs(1);

/// Periods below this (rates above 10 a second) allow two calls at once.
const FAST_PERIOD: Duration = Duration::from_millis(100);

/// governor's clock, read from tokio's (which tests can pause).
#[derive(Debug, Clone)]
struct TokioClock {
    origin: Instant,
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.origin.elapsed())
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// One provider's pace: its limits, and what its answers said.
#[derive(Debug)]
pub struct Pacer {
    limit: Option<RateLimit>,
    kind_limits: BTreeMap<CallKind, RateLimit>,
    overall: Option<Limiter>,
    by_kind: BTreeMap<CallKind, Limiter>,
    clock: TokioClock,
    server: Mutex<ServerWord>,
}

/// What the service's answers said of its limit.
#[derive(Debug, Default)]
struct ServerWord {
    /// A 429, or a spent budget, paused every call until then.
    paused_until: Option<Instant>,
    /// 429s in a row, for the pause when the service gives no time.
    refused_in_a_row: u32,
    /// The pace the service's own numbers allow, in calls a second, and
    /// its limiter: the lowest seen.
    adapted: Option<(f64, Arc<Limiter>)>,
}

impl Pacer {
    /// A pacer for `limit` on every call, and `by_kind` on the kinds named.
    pub fn new(limit: Option<RateLimit>, by_kind: &BTreeMap<CallKind, RateLimit>) -> Self {
        let clock = TokioClock {
            origin: Instant::now(),
        };
        let limiter = |l: &RateLimit| limiter_of(l.period(), l.burst, &clock);
        Self {
            limit,
            kind_limits: by_kind.clone(),
            overall: limit.as_ref().map(limiter),
            by_kind: by_kind.iter().map(|(k, l)| (*k, limiter(l))).collect(),
            clock: clock.clone(),
            server: Mutex::default(),
        }
    }

    /// A pacer that never waits but still follows the service's word.
    pub fn unlimited() -> Self {
        Self::new(None, &BTreeMap::new())
    }

    /// The limit every call is paced at, if any.
    pub fn limit(&self) -> Option<RateLimit> {
        self.limit
    }

    /// Waits until a call of `kind` may be sent.
    pub async fn turn(&self, kind: CallKind) {
        // What the service said comes first: a pause holds every call,
        // whatever the configured limit allows.
        let adapted = loop {
            // One lock a call; the guard is dropped before any wait.
            let turn = self.server().take_turn(Instant::now());
            match turn {
                Ok(adapted) => break adapted,
                Err(until) => tokio::time::sleep_until(until).await,
            }
        };
        let limiters = self
            .overall
            .iter()
            .chain(self.by_kind.get(&kind))
            .chain(adapted.as_deref());
        for limiter in limiters {
            while let Err(not_until) = limiter.check() {
                let wait = not_until.wait_time_from(self.clock.now());
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Takes in an answer's status and headers.
    pub fn observe(&self, status: StatusCode, headers: &HeaderMap, retry_after: Option<Duration>) {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut server = self.server();
        let reset = header_number(headers, "x-ratelimit-reset")
            .map(|r| until_reset(r, wall).min(MAX_PAUSE));
        // Below one is none left (fractions and negatives are broken).
        let spent = header_number(headers, "x-ratelimit-remaining").is_some_and(|r| r < 1.0);
        let refused = status == StatusCode::TOO_MANY_REQUESTS;
        let pause = if refused {
            let backoff = FIRST_PAUSE * 2u32.saturating_pow(server.refused_in_a_row.min(10));
            server.refused_in_a_row += 1;
            Some(retry_after.or(reset).unwrap_or(backoff))
        } else {
            server.refused_in_a_row = 0;
            reset.filter(|_| spent)
        };
        if let Some(pause) = pause {
            let until = now + pause.min(MAX_PAUSE);
            server.paused_until = Some(server.paused_until.map_or(until, |p| p.max(until)));
        }
        // At the limit, `Limit` calls per `Reset` is the pace the service
        // allows from here on.
        let allowed = header_number(headers, "x-ratelimit-limit")
            .zip(reset)
            .filter(|_| refused || spent)
            .map(|(limit, reset)| limit / reset.as_secs_f64().max(1.0))
            .filter(|rate| rate.is_finite() && *rate >= 1.0 / 3600.0);
        if let Some(rate) = allowed
            && server
                .adapted
                .as_ref()
                .is_none_or(|(current, _)| rate < *current)
        {
            let period = Duration::try_from_secs_f64(1.0 / rate).unwrap_or(MAX_PAUSE);
            server.adapted = Some((rate, Arc::new(limiter_of(period, 1, &self.clock))));
        }
    }

    fn server(&self) -> MutexGuard<'_, ServerWord> {
        // Held for a few assignments that cannot panic.
        self.server.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ServerWord {
    /// When a call may go now, the pace the service's numbers set (if
    /// any); otherwise when to ask again.
    fn take_turn(&mut self, now: Instant) -> Result<Option<Arc<Limiter>>, Instant> {
        match self.paused_until {
            Some(until) if until > now => return Err(until),
            Some(_) => self.paused_until = None,
            None => {}
        }
        Ok(self.adapted.as_ref().map(|(_, l)| l.clone()))
    }
}

/// A limiter of one call every `period`, in bursts of up to `burst`.
fn limiter_of(period: Duration, burst: u32, clock: &TokioClock) -> Limiter {
    // tokio wakes a sleep on the next millisecond, and with bursts of one
    // each late wake-up is lost for good: at 100 a second that is a tenth
    // of the rate. Room for a second call lets a late one be made up.
    let burst = if period < FAST_PERIOD {
        burst.max(2)
    } else {
        burst
    };
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
        .expect("a period of at least 1 ns")
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
    RateLimiter::new(quota, InMemoryState::default(), clock.clone())
}

/// A header's value as a number.
fn header_number(headers: &HeaderMap, name: &str) -> Option<f64> {
    let n: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
    n.is_finite().then_some(n)
}

/// `X-RateLimit-Reset` as a time from now: services send seconds from now,
/// epoch seconds, or epoch milliseconds.
fn until_reset(value: f64, now: SystemTime) -> Duration {
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let seconds = if value > 1e12 {
        value / 1000.0 - since_epoch
    } else if value > 1e9 {
        value - since_epoch
    } else {
        value
    };
    Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(MAX_PAUSE)
}

/// The pacers of one run, by provider name: `watch` keeps one registry for
/// its whole life, so a periodic refresh and an apply share each
/// provider's limit instead of each having its own.
#[derive(Debug, Clone, Default)]
pub struct Pacers {
    by_provider: Arc<Mutex<BTreeMap<String, Arc<Pacer>>>>,
}

impl Pacers {
    /// The pacer of provider `name` at these limits: the one already made
    /// if its limits are the same, else a new one.
    pub(crate) fn get(
        &self,
        name: &str,
        limit: Option<RateLimit>,
        by_kind: &BTreeMap<CallKind, RateLimit>,
    ) -> Arc<Pacer> {
        let mut pacers = self
            .by_provider
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match pacers.get(name) {
            Some(p) if p.limit == limit && p.kind_limits == *by_kind => p.clone(),
            _ => {
                let p = Arc::new(Pacer::new(limit, by_kind));
                pacers.insert(name.to_owned(), p.clone());
                p
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Per;

    fn limit(calls: u32, per: Per, burst: u32) -> RateLimit {
        RateLimit { calls, per, burst }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().unwrap());
        }
        h
    }

    #[tokio::test(start_paused = true)]
    async fn calls_go_at_the_limit_after_the_first_burst() {
        let pacer = Pacer::new(Some(limit(10, Per::Second, 3)), &BTreeMap::new());
        let start = Instant::now();
        for _ in 0..3 {
            pacer.turn(CallKind::Pin).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst goes at once");
        for _ in 0..10 {
            pacer.turn(CallKind::Pin).await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1000) && took < Duration::from_millis(1100),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_kind_limit_holds_that_kind_only() {
        let lists = BTreeMap::from([(CallKind::List, limit(1, Per::Second, 1))]);
        let pacer = Pacer::new(None, &lists);
        let start = Instant::now();
        for _ in 0..20 {
            pacer.turn(CallKind::Pin).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        for _ in 0..3 {
            pacer.turn(CallKind::List).await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_every_call_until_retry_after() {
        let pacer = Pacer::unlimited();
        pacer.observe(
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            Some(Duration::from_secs(3)),
        );
        let start = Instant::now();
        pacer.turn(CallKind::Status).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        // Without a time, a pause doubles with each 429 in a row (this is
        // the third).
        for _ in 0..2 {
            pacer.observe(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), None);
        }
        let start = Instant::now();
        pacer.turn(CallKind::Pin).await;
        assert_eq!(start.elapsed(), Duration::from_secs(4));
        pacer.observe(StatusCode::OK, &HeaderMap::new(), None);
        pacer.observe(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), None);
        let start = Instant::now();
        pacer.turn(CallKind::Pin).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "a success starts over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_pauses_until_its_reset() {
        let pacer = Pacer::unlimited();
        let left = headers(&[("x-ratelimit-remaining", "3"), ("x-ratelimit-reset", "10")]);
        pacer.observe(StatusCode::OK, &left, None);
        let start = Instant::now();
        pacer.turn(CallKind::Pin).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "calls are left");
        let spent = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "10")]);
        pacer.observe(StatusCode::OK, &spent, None);
        pacer.turn(CallKind::Pin).await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // An epoch reset, as some services send it, is read too.
        let epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 5;
        let mut said = headers(&[("x-ratelimit-remaining", "0")]);
        said.insert("x-ratelimit-reset", epoch.to_string().parse().unwrap());
        pacer.observe(StatusCode::OK, &said, None);
        let start = Instant::now();
        pacer.turn(CallKind::Pin).await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(3) && waited <= Duration::from_secs(6),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limit_the_pace_drops_to_what_the_service_allows() {
        let pacer = Pacer::new(Some(limit(100, Per::Second, 100)), &BTreeMap::new());
        let said = headers(&[
            ("x-ratelimit-limit", "20"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "2"),
        ]);
        pacer.observe(
            StatusCode::TOO_MANY_REQUESTS,
            &said,
            Some(Duration::from_secs(2)),
        );
        let start = Instant::now();
        for _ in 0..11 {
            pacer.turn(CallKind::Pin).await;
        }
        // The pause, then 10 a second (20 per 2 s), one at a time.
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        // A higher rate later does not raise it.
        let said = headers(&[
            ("x-ratelimit-limit", "1000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1"),
        ]);
        pacer.observe(StatusCode::OK, &said, None);
        let start = Instant::now();
        for _ in 0..10 {
            pacer.turn(CallKind::Pin).await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(1900),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn broken_headers_cannot_stop_the_run_for_long() {
        assert!(until_reset(-5.0, SystemTime::now()).is_zero());
        let pacer = Pacer::unlimited();
        for reset in ["1e30", "99999999999999", "-3", "soon"] {
            let said = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", reset)]);
            pacer.observe(StatusCode::OK, &said, None);
            if let Some(until) = pacer.server().paused_until {
                assert!(until <= Instant::now() + MAX_PAUSE, "{reset}");
            }
        }
        pacer.observe(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("retry-after", "999999999")]),
            Some(Duration::from_secs(999_999_999)),
        );
        let paused = pacer.server().paused_until.unwrap();
        assert!(paused <= Instant::now() + MAX_PAUSE);
    }

    #[test]
    fn a_registry_keeps_one_pacer_per_provider_until_its_limits_change() {
        let pacers = Pacers::default();
        let none = BTreeMap::new();
        let a = pacers.get("aioz", Some(limit(180, Per::Minute, 1)), &none);
        let again = pacers.get("aioz", Some(limit(180, Per::Minute, 1)), &none);
        assert!(Arc::ptr_eq(&a, &again), "shared across reconciles");
        let other = pacers.get("arkive", Some(limit(180, Per::Minute, 1)), &none);
        assert!(!Arc::ptr_eq(&a, &other));
        let changed = pacers.get("aioz", Some(limit(60, Per::Minute, 1)), &none);
        assert!(!Arc::ptr_eq(&a, &changed), "a new limit, a new pacer");
    }
}
