//! Pacing: every request to a provider waits for its turn before it is
//! sent, so an apply runs as fast as the service allows without a storm of
//! 429s (and leaves room for the team's other tools that share the key).
//!
//! A service's real limit is often not the manifest's: Pinata's depends on
//! the account's plan. So the pace adapts to what the service enforces, as
//! TCP and the best API clients do (AIMD):
//!
//! - It starts at the manifest's `rate_limit` (unpaced without one).
//! - A 429 halves it, or lowers it to twice the calls the service accepted
//!   in the last second if that is less (a fresh start knows nothing
//!   better than what just went through). Only once for the calls that
//!   were in flight together: a 429 to a call sent before the last cut
//!   says nothing new. It never drops below one call per `Retry-After`.
//! - A run of successes raises it back a step each second's worth of
//!   calls: by half quickly up to half the rate that was refused, then by
//!   a twentieth, never above the manifest's `rate_limit`.
//! - A 429 pauses every call to the provider until its `Retry-After` (or
//!   `X-RateLimit-Reset`), and so does an answer that says no call is
//!   left (`X-RateLimit-Remaining: 0`, `RateLimit: r=0`) until its reset.
//!   After a pause the calls resume one at a time at the current pace.
//! - A service that publishes its quota over a minute or less
//!   (`RateLimit-Policy: q=…;w=…`) caps the pace at it. `X-RateLimit-Limit` is not read as a rate: its
//!   window is not said, and services mean different things by it.
//!
//! The pace is a GCRA on tokio's clock (which tests can pause). Calls wait
//! in line, and the first reserves the next slot: one that wakes late does
//! not push the others back, a cut or a pause voids its slot, and a rise
//! applies to the calls in line at once.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

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
/// The slowest pace a 429 without `Retry-After` can bring: a call a minute.
const SLOWEST: f64 = 1.0 / 60.0;
/// The longest window of a published quota that sets a pace.
const QUOTA_WINDOW: f64 = 60.0;
/// The window the accepted calls are counted in, for a cut.
const ACCEPTED_WINDOW: Duration = Duration::from_secs(1);

/// One provider's pace: its limits, and what its answers said.
#[derive(Debug)]
pub(crate) struct Pacer {
    limit: Option<RateLimit>,
    kind_limits: BTreeMap<CallKind, RateLimit>,
    by_kind: BTreeMap<CallKind, Mutex<Gcra>>,
    pace: Mutex<Pace>,
    /// The calls waiting for their turn, first come first served.
    line: tokio::sync::Mutex<()>,
}

/// What [`Pacer::turn`] hands a call, for [`Pacer::observe`] to know
/// which pace it was sent under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    cut: u64,
}

/// Slots of one call every `period`, in bursts of up to `burst`: the
/// generic cell rate algorithm, with reservations.
#[derive(Debug)]
struct Gcra {
    period: Duration,
    burst: u32,
    /// The theoretical arrival time of the next call.
    tat: Instant,
}

impl Gcra {
    fn new(period: Duration, burst: u32, now: Instant) -> Self {
        Self {
            period: period.max(Duration::from_nanos(1)),
            burst: burst.max(1),
            tat: now,
        }
    }

    /// Reserves the earliest slot at or after `earliest`.
    fn reserve(&mut self, earliest: Instant) -> Instant {
        let tolerance = self.period * (self.burst - 1);
        let slot = earliest.max(self.tat.checked_sub(tolerance).unwrap_or(earliest));
        self.tat = self.tat.max(slot) + self.period;
        slot
    }
}

/// The adaptive pace and what the service's answers said.
#[derive(Debug)]
struct Pace {
    /// The pace in calls a second; `None` is unpaced.
    rate: Option<f64>,
    /// The most the pace may rise to: the manifest's rate, or the quota
    /// the service published if lower.
    ceiling: Option<f64>,
    /// The manifest's burst, while the pace is the manifest's.
    burst: u32,
    slots: Option<Gcra>,
    /// Up to here, the pace rises by half a step; above, by a twentieth.
    threshold: f64,
    /// Successes since the pace last moved.
    successes: u32,
    /// Cuts so far: a call's [`Ticket`] says which pace it was sent under.
    cuts: u64,
    /// Cuts and pauses so far: either voids the slots reserved before it.
    changes: u64,
    /// When calls the service accepted were answered, in the last second
    /// of sending.
    accepted: VecDeque<Instant>,
    /// The pauses in that second, `(from, until)`.
    pauses: VecDeque<(Instant, Instant)>,
    /// A 429, or a spent budget, paused every call until then.
    paused_until: Option<Instant>,
    /// 429s in a row, for the pause when the service gives no time.
    refused_in_a_row: u32,
}

impl Pacer {
    /// A pacer for `limit` on every call, and `by_kind` on the kinds named.
    pub(crate) fn new(limit: Option<RateLimit>, by_kind: &BTreeMap<CallKind, RateLimit>) -> Self {
        let now = Instant::now();
        let rate = limit.map(|l| rate_of(&l));
        Self {
            limit,
            kind_limits: by_kind.clone(),
            by_kind: by_kind
                .iter()
                .map(|(k, l)| (*k, Mutex::new(Gcra::new(l.period(), l.burst, now))))
                .collect(),
            pace: Mutex::new(Pace {
                rate,
                ceiling: rate,
                burst: limit.map_or(1, |l| l.burst),
                slots: limit.map(|l| Gcra::new(l.period(), l.burst, now)),
                threshold: rate.unwrap_or(f64::INFINITY),
                successes: 0,
                cuts: 0,
                changes: 0,
                accepted: VecDeque::new(),
                pauses: VecDeque::new(),
                paused_until: None,
                refused_in_a_row: 0,
            }),
            line: tokio::sync::Mutex::new(()),
        }
    }

    /// A pacer that sets no pace but still follows the service's word.
    #[cfg(test)]
    pub(crate) fn unlimited() -> Self {
        Self::new(None, &BTreeMap::new())
    }

    /// The pace now, in calls a second; `None` while unpaced.
    pub(crate) fn rate(&self) -> Option<f64> {
        self.pace().rate
    }

    /// Waits until a call of `kind` may be sent.
    pub(crate) async fn turn(&self, kind: CallKind) -> Ticket {
        if let Some(slots) = self.by_kind.get(&kind) {
            let slot = lock(slots).reserve(Instant::now());
            // A call dropped while it waits (a stopped apply) hands its
            // slot back, or a long-lived pacer (watch's) would keep it.
            let reserved = KindSlot { slots, used: false };
            if slot > Instant::now() {
                tokio::time::sleep_until(slot).await;
            }
            reserved.used();
        }
        // Calls take their turns in order, and only the first in line holds
        // a slot: a call waiting behind it holds none, so a change of pace
        // applies to it at once.
        let _first_in_line = self.line.lock().await;
        loop {
            // The pace's lock is dropped before any wait.
            let (slot, changes) = self.pace().reserve(Instant::now());
            if slot > Instant::now() {
                tokio::time::sleep_until(slot).await;
            }
            // A cut or a pause while this call waited voids its slot: it
            // takes a new one, after the pause, at the pace then.
            let pace = self.pace();
            if pace.changes == changes {
                return Ticket { cut: pace.cuts };
            }
        }
    }

    /// Takes in the answer to the call `ticket` was handed for: its status
    /// and headers, and its `Retry-After`.
    pub(crate) fn observe(
        &self,
        ticket: Ticket,
        status: StatusCode,
        headers: &HeaderMap,
        retry_after: Option<Duration>,
    ) {
        let now = Instant::now();
        let said = ServiceWord::read(headers, SystemTime::now());
        let mut pace = self.pace();
        if let Some(quota) = said.quota {
            pace.cap(quota, now);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let backoff = FIRST_PAUSE * 2u32.saturating_pow(pace.refused_in_a_row.min(10));
            pace.refused_in_a_row += 1;
            let pause = retry_after.or(said.reset).unwrap_or(backoff).min(MAX_PAUSE);
            pace.pause(now, now + pause);
            if ticket.cut == pace.cuts {
                pace.cut(now, pause);
            }
            return;
        }
        pace.refused_in_a_row = 0;
        if let Some(reset) = said.reset.filter(|_| said.spent) {
            pace.pause(now, now + reset.min(MAX_PAUSE));
        }
        if !status.is_server_error() {
            pace.accepted(now);
        }
    }

    fn pace(&self) -> MutexGuard<'_, Pace> {
        lock(&self.pace)
    }
}

/// A slot reserved in a kind's limit, handed back if the call waiting for
/// it is dropped before it.
struct KindSlot<'a> {
    slots: &'a Mutex<Gcra>,
    used: bool,
}

impl KindSlot<'_> {
    fn used(mut self) {
        self.used = true;
    }
}

impl Drop for KindSlot<'_> {
    fn drop(&mut self) {
        if self.used {
            return;
        }
        let mut slots = lock(self.slots);
        let now = Instant::now();
        if slots.tat > now {
            let period = slots.period;
            slots.tat = slots.tat.checked_sub(period).unwrap_or(now).max(now);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Held for a few assignments that cannot panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pace {
    /// The slot of the next call (after any pause), and the changes so far.
    fn reserve(&mut self, now: Instant) -> (Instant, u64) {
        let earliest = match self.paused_until {
            Some(until) if until > now => until,
            Some(_) => {
                self.paused_until = None;
                now
            }
            None => now,
        };
        let slot = self
            .slots
            .as_mut()
            .map_or(earliest, |slots| slots.reserve(earliest));
        (slot, self.changes)
    }

    fn pause(&mut self, now: Instant, until: Instant) {
        if self.paused_until.is_none_or(|p| p < until) {
            // Time paused is no time sending: the accepted calls are
            // counted over a second of sending ([`Pace::window_start`]).
            match self.pauses.back_mut() {
                Some((_, last)) if *last >= now => *last = until,
                _ => self.pauses.push_back((now, until)),
            }
            self.paused_until = Some(until);
            self.changes += 1;
            // After it, calls resume one at a time.
            if let Some(slots) = &mut self.slots {
                slots.tat = until;
                slots.burst = 1;
            }
        }
    }

    /// A 429 to a call sent at the current pace: the pace is cut, and the
    /// provider was paused for `pause`.
    fn cut(&mut self, now: Instant, pause: Duration) {
        self.forget_accepted(now);
        let accepted = self.accepted.len() as f64;
        let was = self.rate.unwrap_or(f64::INFINITY);
        // Never below one call a pause, and never above the pace that was
        // refused.
        let floor = (1.0 / pause.as_secs_f64().max(1e-3)).max(SLOWEST).min(was);
        let rate = (was / 2.0).min(2.0 * accepted).max(floor);
        self.threshold = (was / 2.0).max(rate);
        self.successes = 0;
        self.cuts += 1;
        self.changes += 1;
        self.set(rate, 1, now);
    }

    /// A call the service accepted; a second's worth of them in a row
    /// raises the pace a step.
    fn accepted(&mut self, now: Instant) {
        self.accepted.push_back(now);
        self.forget_accepted(now);
        let Some(rate) = self.rate else { return };
        let ceiling = self.ceiling.unwrap_or(f64::INFINITY);
        if rate >= ceiling {
            // Past a pause, the manifest's burst again.
            if let Some(slots) = &mut self.slots {
                slots.burst = self.burst;
            }
            return;
        }
        self.successes += 1;
        if f64::from(self.successes) < rate.ceil() {
            return;
        }
        self.successes = 0;
        let step = if rate < self.threshold {
            rate / 2.0
        } else {
            rate / 20.0
        };
        let raised = (rate + step).min(ceiling);
        let burst = if raised >= ceiling { self.burst } else { 1 };
        self.set(raised, burst, now);
    }

    /// The service published its quota: the pace never rises above it.
    fn cap(&mut self, quota: f64, now: Instant) {
        if self.ceiling.is_some_and(|c| c <= quota) {
            return;
        }
        self.ceiling = Some(quota);
        if self.rate.is_none_or(|r| r > quota) {
            self.set(quota, 1, now);
        }
    }

    /// Moves the pace to `rate`, in bursts of `burst`: the next slot is
    /// the end of any pause, then one every period.
    fn set(&mut self, rate: f64, burst: u32, now: Instant) {
        self.rate = Some(rate);
        let period = Duration::try_from_secs_f64(1.0 / rate).unwrap_or(MAX_PAUSE);
        let start = self.paused_until.unwrap_or(now).max(now);
        match &mut self.slots {
            // A rise keeps the slot handed out, and brings the next one
            // forward to the new pace.
            Some(slots) if slots.period > period => {
                if slots.tat > now {
                    let sooner = slots.tat.checked_sub(slots.period - period);
                    slots.tat = sooner.unwrap_or(now).max(now);
                }
                slots.period = period;
                slots.burst = burst;
            }
            _ => self.slots = Some(Gcra::new(period, burst, start)),
        }
    }

    /// Forgets the calls accepted before the last second of sending.
    fn forget_accepted(&mut self, now: Instant) {
        let start = self.window_start(now);
        while self.accepted.front().is_some_and(|at| *at < start) {
            self.accepted.pop_front();
        }
        while self.pauses.front().is_some_and(|(_, until)| *until < start) {
            self.pauses.pop_front();
        }
    }

    /// When the last [`ACCEPTED_WINDOW`] of sending began: that long before
    /// `now`, not counting the pauses, in which nothing is sent (after a
    /// pause of a second, the second before it still counts).
    fn window_start(&self, now: Instant) -> Instant {
        let mut end = now;
        let mut left = ACCEPTED_WINDOW;
        for (from, until) in self.pauses.iter().rev() {
            let sending = end.saturating_duration_since((*until).min(end));
            if sending >= left {
                break;
            }
            left -= sending;
            end = (*from).min(end);
        }
        end.checked_sub(left).unwrap_or(end)
    }
}

/// The calls a second a limit allows.
fn rate_of(limit: &RateLimit) -> f64 {
    1.0 / limit.period().as_secs_f64()
}

/// What an answer's headers say of the service's limit.
#[derive(Debug, Default, PartialEq)]
struct ServiceWord {
    /// No call is left before the reset.
    spent: bool,
    /// When the budget is full again.
    reset: Option<Duration>,
    /// The quota the service published, in calls a second.
    quota: Option<f64>,
}

impl ServiceWord {
    /// `X-RateLimit-Remaining`/`-Reset` and their unprefixed forms, the
    /// IETF draft's `RateLimit: "policy";r=0;t=30` (or the older
    /// `remaining=0, reset=30`) and `RateLimit-Policy: "policy";q=100;w=60`
    /// (or the older `100;w=60`).
    fn read(headers: &HeaderMap, now: SystemTime) -> Self {
        let mut word = Self::default();
        for prefix in ["x-ratelimit-", "ratelimit-"] {
            let remaining = header_number(headers, &format!("{prefix}remaining"));
            let reset = header_number(headers, &format!("{prefix}reset"));
            // Below one is none left (fractions and negatives are broken).
            word.spent |= remaining.is_some_and(|r| r < 1.0);
            word.reset = word.reset.or(reset.map(|r| until_reset(r, now)));
        }
        if let Some(value) = header_text(headers, "ratelimit") {
            for item in value.split(',') {
                let remaining = parameter(item, &["r", "remaining"]);
                let reset = parameter(item, &["t", "reset"]).map(|t| until_reset(t, now));
                if remaining.is_some_and(|r| r < 1.0) {
                    word.spent = true;
                    word.reset = word.reset.max(reset);
                } else if word.reset.is_none() {
                    word.reset = reset;
                }
            }
        }
        if let Some(value) = header_text(headers, "ratelimit-policy") {
            word.quota = value
                .split(',')
                .filter_map(|item| {
                    let quota = parameter(item, &["q"]).or_else(|| bare_number(item))?;
                    let window = parameter(item, &["w"])?;
                    // A longer window is a budget that may be spent in
                    // bursts; `RateLimit` says when it is spent.
                    (quota > 0.0 && window > 0.0 && window <= QUOTA_WINDOW).then(|| quota / window)
                })
                .filter(|rate| rate.is_finite() && *rate >= SLOWEST)
                .reduce(f64::min);
        }
        word.reset = word.reset.map(|r| r.min(MAX_PAUSE));
        word
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

/// A header's value as a number.
fn header_number(headers: &HeaderMap, name: &str) -> Option<f64> {
    let n: f64 = header_text(headers, name)?.trim().parse().ok()?;
    n.is_finite().then_some(n)
}

/// The value of the first of `names` among an item's `;`-separated (or a
/// dictionary's) `key=value` parameters.
fn parameter(item: &str, names: &[&str]) -> Option<f64> {
    item.split(';').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        let n: f64 = names
            .contains(&key.trim())
            .then(|| value.trim().parse().ok())??;
        n.is_finite().then_some(n)
    })
}

/// An item that begins with a bare number (`100;w=60`).
fn bare_number(item: &str) -> Option<f64> {
    let n: f64 = item.split(';').next()?.trim().parse().ok()?;
    n.is_finite().then_some(n)
}

/// A reset as a time from now: services send seconds from now, epoch
/// seconds, or epoch milliseconds.
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
    Duration::try_from_secs_f64(seconds.max(0.0))
        .unwrap_or(MAX_PAUSE)
        .min(MAX_PAUSE)
}

/// The pacers of one run, by provider name: `watch` keeps one registry for
/// its whole life, so a periodic refresh and an apply share each
/// provider's limit instead of each having its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pacers {
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
        let mut pacers = lock(&self.by_provider);
        match pacers.get(name) {
            Some(p) if p.limit == limit && p.kind_limits == *by_kind => p.clone(),
            _ => {
                let p = Arc::new(Pacer::new(limit, by_kind));
                pacers.insert(name.to_owned(), p.clone());
                p
            }
        }
    }

    /// Each paced provider's pace now, in calls a second.
    pub(crate) fn rates(&self) -> BTreeMap<String, f64> {
        lock(&self.by_provider)
            .iter()
            .filter_map(|(name, p)| Some((name.clone(), p.rate()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
