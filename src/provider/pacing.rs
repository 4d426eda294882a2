//! Pacing: every request to a provider waits for its turn under the
//! provider's rate limit before it is sent, so an apply runs as fast as the
//! service allows without a storm of 429s (and leaves room for the team's
//! other tools that share the key).
//!
//! The limit is a GCRA limiter from `governor`, on tokio's clock, so tests
//! with paused time see it. On top of it the pacer follows what the service
//! says of its own limit: `X-RateLimit-Remaining` and `X-RateLimit-Reset`
//! on any answer cap the calls until the reset, and a 429 pauses every call
//! to the provider (not only the refused one) until `Retry-After`.

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
    /// A 429 paused every call until then.
    paused_until: Option<Instant>,
    /// 429s in a row, for the pause when the service gives no time.
    refused_in_a_row: u32,
    /// Calls the service said are left, and when its count resets.
    budget: Option<(u64, Instant)>,
}

impl Pacer {
    /// A pacer for `limit` on every call, and `by_kind` on the kinds named.
    pub fn new(limit: Option<RateLimit>, by_kind: &BTreeMap<CallKind, RateLimit>) -> Self {
        let clock = TokioClock {
            origin: Instant::now(),
        };
        let limiter = |l: &RateLimit| {
            let quota = Quota::with_period(l.period().max(Duration::from_nanos(1)))
                .expect("a period of at least 1 ns")
                .allow_burst(NonZeroU32::new(l.burst).unwrap_or(NonZeroU32::MIN));
            RateLimiter::new(quota, InMemoryState::default(), clock.clone())
        };
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
        // What the service said comes first: a pause or a spent budget
        // holds every call, whatever the configured limit allows.
        loop {
            // The guard is dropped before the wait.
            let wait = self.server().take_turn(Instant::now());
            let Some(until) = wait else { break };
            tokio::time::sleep_until(until).await;
        }
        let limiters = self.overall.iter().chain(self.by_kind.get(&kind));
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
        let reset = header_number(headers, "x-ratelimit-reset").map(|r| until_reset(r, wall));
        if let (Some(remaining), Some(reset)) =
            (header_number(headers, "x-ratelimit-remaining"), reset)
        {
            // Fractions and negatives are a broken header: read as none left.
            let remaining = if remaining >= 1.0 {
                remaining as u64
            } else {
                0
            };
            server.budget = Some((remaining, now + reset.min(MAX_PAUSE)));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let backoff = FIRST_PAUSE * 2u32.saturating_pow(server.refused_in_a_row.min(10));
            let pause = retry_after.or(reset).unwrap_or(backoff).min(MAX_PAUSE);
            server.refused_in_a_row += 1;
            let until = now + pause;
            server.paused_until = Some(server.paused_until.map_or(until, |p| p.max(until)));
        } else {
            server.refused_in_a_row = 0;
        }
    }

    fn server(&self) -> MutexGuard<'_, ServerWord> {
        // Held for a few assignments that cannot panic.
        self.server.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ServerWord {
    /// `None` when a call may go now (and counts it against the budget);
    /// otherwise when to ask again.
    fn take_turn(&mut self, now: Instant) -> Option<Instant> {
        if let Some(until) = self.paused_until {
            if until > now {
                return Some(until);
            }
            self.paused_until = None;
        }
        match &mut self.budget {
            Some((_, reset)) if *reset <= now => self.budget = None,
            Some((0, reset)) => return Some(*reset),
            Some((remaining, _)) => *remaining -= 1,
            None => {}
        }
        None
    }
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
