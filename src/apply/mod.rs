//! Runs a plan against the providers, recording each confirmed pin as it
//! lands so an interrupted apply loses no completed work.
//!
//! Calls run concurrently (bounded per provider). Confirmed pins go to a
//! recorder thread that appends them to the journal in batches (group
//! commit: one fsync for whatever arrived meanwhile); the state file is
//! rewritten once at the end. A write that fails stops the calls: nothing is
//! pinned that could not be recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::manifest::PinKey;
use crate::plan::{Action, Change, Plan};
use crate::provider::{
    Connect, PinReceipt, PinRequest, Provider, ProviderError, UnpinReceipt, UnpinRequest,
};
use crate::retry::RetryPolicy;
use crate::state::{
    PinRecord, PinStatus, Recorder, State, StateFileError, StateStore, StoredPin, now_rfc3339,
};

/// How to run an apply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApplyOptions {
    /// Provider calls in flight at most, on each provider.
    pub(crate) concurrency: usize,
    pub(crate) retry: RetryPolicy,
    /// How long a move waits for its new pins to be pinned (not only
    /// accepted) before it unpins the old copy; past it, the old stays.
    pub(crate) move_wait: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            retry: RetryPolicy::default(),
            move_wait: Duration::from_secs(600),
        }
    }
}

/// The providers of an apply, by the manifest's name for them.
pub(crate) use crate::provider::Providers;

/// What a plan needs before its calls, as [`prepare`] found it.
pub(crate) enum Prepared {
    /// Nothing to change.
    InSync,
    /// A safety guard refused the plan's unpins; each message says how to
    /// pass it. Nothing was connected.
    Refused(Vec<String>),
    /// The providers it calls, connected: [`apply`] can run.
    Ready(Providers),
}

/// The apply use case up to its calls, shared by `pinsync apply` and
/// `watch`: a plan with no change needs nothing; one a safety guard
/// refuses goes no further; otherwise the providers it calls are
/// connected, every missing credential named before any call. `state` is
/// the one the plan was made from.
pub(crate) fn prepare(
    plan: &Plan,
    state: &State,
    allowance: crate::plan::UnpinAllowance,
    connect: &dyn Connect,
) -> anyhow::Result<Prepared> {
    if !plan.summary.has_changes() {
        return Ok(Prepared::InSync);
    }
    let refused = crate::plan::guards(plan, state, allowance);
    if !refused.is_empty() {
        return Ok(Prepared::Refused(refused));
    }
    Ok(Prepared::Ready(
        connect.connect(&plan.providers, &providers_used(plan))?,
    ))
}

/// How one provider call (a pin or an unpin) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pinned(PinReceipt),
    Unpinned(UnpinReceipt),
    /// Tried `attempts` times, and failed with `error` the last time.
    Failed {
        error: ProviderError,
        attempts: u32,
    },
    /// Not tried: its provider had already failed in a way that every
    /// other call would.
    NotAttempted(Halt),
    /// Stopped before it was tried, or while it waited to be tried again:
    /// the apply was interrupted, or a write failed.
    Interrupted,
}

/// Why the rest of a provider's pins are not attempted in this apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Halt {
    /// [`BREAKER_THRESHOLD`] pins in a row failed for reasons worth
    /// retrying: it looks down.
    Down(ProviderError),
    /// It refused the credentials (401/403): every call would.
    Unauthorized(ProviderError),
    /// It redirected a call (3xx), which pinsync does not follow: every
    /// call would be redirected.
    Redirected(ProviderError),
}

impl Halt {
    /// The provider's last error.
    pub(crate) fn error(&self) -> &ProviderError {
        match self {
            Self::Down(e) | Self::Unauthorized(e) | Self::Redirected(e) => e,
        }
    }

    /// What happened to the provider, and for refused credentials the
    /// variables to check, for people and logs.
    pub(crate) fn describe(&self, credentials: &[String]) -> String {
        match self {
            Self::Down(error) => format!("it looks down (last error: {error})"),
            Self::Unauthorized(error) => format!(
                "it refused the credentials ({error}); check {}",
                credentials.join(" and ")
            ),
            Self::Redirected(error) => format!("it redirected a call ({error})"),
        }
    }
}

/// Why a pin failed, with how hard it was tried, for people and logs.
pub(crate) fn failure_reason(error: &ProviderError, attempts: u32) -> String {
    match attempts {
        0 | 1 => error.to_string(),
        n => format!("{error} (after {n} attempts)"),
    }
}

/// Pins of one provider that failed in a row, after all their retries, before
/// the provider is taken to be down for the rest of this apply.
pub(crate) const BREAKER_THRESHOLD: u32 = 3;

/// A circuit breaker for one provider within one apply: after
/// [`BREAKER_THRESHOLD`] pins in a row fail for reasons worth retrying
/// (outage, rate limit, timeouts), or after the first refusal of the
/// credentials, its remaining pins are not attempted, so an outage costs
/// minutes once, not once per pin, and a revoked key one call. They are
/// planned again by the next apply (or watch's next reconcile).
#[derive(Debug, Default)]
struct Breaker {
    state: std::sync::Mutex<BreakerState>,
    /// Cancelled when the credentials are refused or a call redirected, to
    /// wake the pins that wait out a backoff: they must not call again.
    refused: CancellationToken,
}

#[derive(Debug, Default)]
struct BreakerState {
    failed_in_a_row: u32,
    halt: Option<Halt>,
}

impl Breaker {
    fn halt(&self) -> Option<Halt> {
        self.lock().halt.clone()
    }

    /// Takes in one call's outcome; returns the halt it caused, if it is new.
    fn observe(&self, outcome: &Outcome) -> Option<Halt> {
        let mut state = self.lock();
        let was_halted = state.halt.is_some();
        match outcome {
            // A success closes a breaker that an outage opened; a refused
            // key or a redirect stays so for the rest of the apply.
            Outcome::Pinned(_) | Outcome::Unpinned(_) => {
                state.failed_in_a_row = 0;
                if matches!(state.halt, Some(Halt::Down(_))) {
                    state.halt = None;
                }
            }
            Outcome::Failed { error, .. } if error.refuses_every_call() => {
                if !matches!(
                    state.halt,
                    Some(Halt::Unauthorized(_) | Halt::Redirected(_))
                ) {
                    state.halt = Some(if matches!(error, ProviderError::Redirected { .. }) {
                        Halt::Redirected(error.clone())
                    } else {
                        Halt::Unauthorized(error.clone())
                    });
                    self.refused.cancel();
                }
            }
            Outcome::Failed { error, .. } if error.is_retryable() => {
                state.failed_in_a_row += 1;
                if state.failed_in_a_row >= BREAKER_THRESHOLD && state.halt.is_none() {
                    state.halt = Some(Halt::Down(error.clone()));
                }
            }
            Outcome::Failed { .. } | Outcome::NotAttempted(_) | Outcome::Interrupted => {}
        }
        state.halt.clone().filter(|_| !was_halted)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        // The lock is held for a few assignments that cannot panic.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Hears about an apply as it runs (progress bar, plain lines, logs).
pub(crate) trait Progress: Send + Sync {
    /// Before the first call.
    fn start(&self, _calls: usize) {}
    /// A call failed and will be tried again after `delay`.
    fn retrying(&self, _change: &Change, _error: &ProviderError, _attempt: u32, _delay: Duration) {}
    /// A pin call ended (or was not made).
    fn finished(&self, _change: &Change, _outcome: &Outcome) {}
    /// `provider`'s remaining pins will not be attempted, for `why`;
    /// `credentials` are the variables its keys come from.
    fn halted(&self, _provider: &str, _why: &Halt, _credentials: &[String]) {}
    /// A pin call that fetches its DAG itself (Kubo's) has fetched this
    /// much so far.
    fn fetching(&self, _change: &Change, _blocks: u64, _bytes: u64) {}
}

/// Progress that hears nothing.
#[cfg(test)]
pub(crate) struct Silent;
#[cfg(test)]
impl Progress for Silent {}

/// One failed call (a pin, or an unpin) and why.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) change: Change,
    pub(crate) error: ProviderError,
    pub(crate) attempts: u32,
}

/// A provider whose remaining pins were not attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotAttempted {
    pub(crate) why: Halt,
    /// How many of its pins were not attempted.
    pub(crate) pins: usize,
    /// The environment variables its credentials come from: what to check
    /// when it refused them.
    pub(crate) credentials: Vec<String>,
}

impl NotAttempted {
    /// One line for people and logs, after "not attempted: ".
    pub(crate) fn describe(&self, provider: &str) -> String {
        let n = self.pins;
        let pins = if n == 1 { "pin" } else { "pins" };
        format!(
            "{n} {pins} on `{provider}`: {}",
            self.why.describe(&self.credentials)
        )
    }
}

/// An unpin that was not made, and why.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub(crate) change: Change,
    pub(crate) reason: String,
}

/// What an apply did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    /// Pins the provider confirmed (including `already_pinned`).
    pub(crate) pinned: usize,
    /// Which they were, for `--wait`.
    pub(crate) confirmed: Vec<PinKey>,
    /// Of those, the provider said were pinned already.
    pub(crate) already_pinned: usize,
    /// Pins the provider removed (including `already_gone`).
    pub(crate) unpinned: usize,
    /// Of those, the provider no longer held.
    pub(crate) already_gone: usize,
    /// Unpins of moved CIDs whose new pin did not land: the old pin stays.
    pub(crate) kept: Vec<Kept>,
    /// Name or meta changes recorded; pins back in the manifest.
    pub(crate) updated: usize,
    /// Pins marked orphaned.
    pub(crate) orphaned: usize,
    /// Unchanged pins the plan left alone.
    pub(crate) unchanged: usize,
    /// Pins tried and failed.
    pub(crate) failed: Vec<Failure>,
    /// By provider: pins not attempted because it was down or refused the
    /// credentials.
    pub(crate) not_attempted: BTreeMap<String, NotAttempted>,
    /// Pins not done because the apply was interrupted.
    pub(crate) not_started: usize,
    pub(crate) interrupted: bool,
}

impl Report {
    pub(crate) fn succeeded(&self) -> bool {
        self.failed.is_empty()
            && self.kept.is_empty()
            && self.not_attempted.is_empty()
            && !self.interrupted
    }

    /// The providers that answered as every call to them would (a refused
    /// key, a redirect), with that answer: nothing more is asked of them.
    pub(crate) fn refusing(&self) -> BTreeMap<String, ProviderError> {
        let failed = self
            .failed
            .iter()
            .map(|f| (f.change.target.provider.to_string(), &f.error));
        let halted = self
            .not_attempted
            .iter()
            .map(|(p, n)| (p.clone(), n.why.error()));
        failed
            .chain(halted)
            .filter(|(_, e)| e.refuses_every_call())
            .map(|(p, e)| (p, e.clone()))
            .collect()
    }

    /// Changes of the plan that are not done after this apply.
    pub(crate) fn pending(&self) -> usize {
        self.failed.len()
            + self.kept.len()
            + self.not_attempted.values().map(|n| n.pins).sum::<usize>()
            + self.not_started
    }
}

/// Why an apply could not finish its work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    /// Before any call: the state could not be prepared.
    #[error(transparent)]
    State(#[from] StateFileError),
    #[error("the plan pins to provider `{0}`, which was not connected; nothing was changed")]
    MissingProvider(String),
    /// A confirmed pin could not be recorded: the calls stopped there.
    #[error(
        "{error}; the apply stopped there and made no further call. Every change recorded \
         before it is kept, and the next apply replays it; {unrecorded} confirmed change(s) \
         could not be recorded, and are planned again (a pin's provider will answer \
         \"already pinned\")"
    )]
    RecordFailed {
        error: StateFileError,
        unrecorded: usize,
        /// What the apply did up to there.
        report: Box<Report>,
    },
    /// Every call ended and was journaled, but the state file could not be
    /// rewritten.
    #[error("{error}; every confirmed pin is kept in the journal, which the next run replays")]
    SaveFailed {
        error: StateFileError,
        report: Box<Report>,
    },
}

impl ApplyError {
    /// What the apply did before it failed, when it got as far as calls.
    pub(crate) fn report(&self) -> Option<&Report> {
        match self {
            Self::RecordFailed { report, .. } | Self::SaveFailed { report, .. } => Some(report),
            Self::State(_) | Self::MissingProvider(_) => None,
        }
    }
}

/// Applies `plan` to `state` (loaded from `file`, whose lock the caller
/// holds), records as it goes, and saves the state at the end. `providers`
/// must hold every provider the plan's calls name. Pins go first; unpins
/// start once every pin has ended, and a moved CID's unpin only once its
/// new pins are confirmed.
pub(crate) async fn apply(
    plan: &Plan,
    providers: &Providers,
    store: &dyn StateStore,
    mut state: State,
    options: ApplyOptions,
    stop: &CancellationToken,
    progress: &Arc<dyn Progress>,
) -> Result<(Report, State), ApplyError> {
    let mut report = Report {
        unchanged: plan.summary.unchanged,
        ..Report::default()
    };
    if !plan.summary.has_changes() {
        return Ok((report, state));
    }
    let calls: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.calls(plan.providers.get(c.target.provider.as_str())))
        .collect();
    // Each provider gets its own pool of `concurrency` calls, so one that is
    // slow or down cannot hold the slots the others need.
    let mut by_provider: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for change in &calls {
        by_provider
            .entry(change.target.provider.as_str())
            .or_default()
            .push(change);
    }
    let mut pools: Vec<Pool> = Vec::new();
    for (name, changes) in by_provider {
        let provider = providers
            .get(name)
            .ok_or_else(|| ApplyError::MissingProvider(name.to_owned()))?;
        let config = plan.providers.get(name);
        let credentials = config.map_or_else(Vec::new, |c| {
            c.secret_refs().map(|r| r.var.clone()).collect()
        });
        let concurrency = config
            .and_then(|c| c.kind.provider_type().max_concurrency)
            .map_or(options.concurrency, |most| most.min(options.concurrency))
            .max(1);
        let (unpins, pins) = changes.into_iter().partition(|c| c.action == Action::Unpin);
        pools.push(Pool {
            name,
            provider: provider.as_ref(),
            breaker: Breaker::default(),
            pins,
            unpins,
            credentials,
            concurrency,
        });
    }

    state.ensure_lineage();
    let journal = store.recorder(&state)?;
    // Cancelled by the caller's stop, or by the recorder when a write fails.
    let halt = stop.child_token();
    let (tx, rx) = mpsc::channel::<Recorded>();
    let recorder = {
        let halt = halt.clone();
        std::thread::spawn(move || record(rx, state, journal, &halt))
    };
    let mut run = Run {
        report: &mut report,
        tx: &tx,
        confirmed: BTreeMap::new(),
        // Only moves need to look their new pins up: at 100,000 pins and
        // no move, the map would cost an allocation or three per pin.
        track_moves: calls.iter().any(|c| !c.moved_to.is_empty()),
        ended: 0,
    };

    // State-only changes first: they need no provider and cannot fail.
    for change in &plan.changes {
        if change.calls(plan.providers.get(change.target.provider.as_str())) {
            continue;
        }
        let status = match change.action {
            Action::Pin | Action::Repin | Action::Unpin => continue,
            Action::Update => {
                run.report.updated += 1;
                PinStatus::Managed
            }
            Action::Orphan => {
                run.report.orphaned += 1;
                PinStatus::Orphaned
            }
        };
        let key = change.key();
        run.record(Recorded::Pin(StoredPin {
            record: PinRecord {
                cid_as_pinned: PinRecord::as_pinned(&key, &change.cid),
                labels: change.labels.clone(),
                pin_id: None,
                pinned_at: "".into(),
                status,
                observed: None,
                foreign: false,
            },
            key,
        }));
    }

    progress.start(calls.len());
    let ctx = CallContext {
        retry: options.retry,
        concurrency: options.concurrency.max(1),
        halt: &halt,
        progress: progress.as_ref(),
    };
    let look_ahead = pools.iter().map(|pool| {
        let cids = pool
            .pins
            .iter()
            .filter(|c| matches!(c.action, Action::Pin | Action::Repin))
            .map(|c| c.cid.as_str())
            .collect();
        async move { (pool, pool.provider.look_ahead(cids, ctx.concurrency).await) }
    });
    let looked_ahead = tokio::select! {
        done = futures::future::join_all(look_ahead) => done,
        () = halt.cancelled() => Vec::new(),
    };
    // Credentials refused while looking ahead: no pin is tried.
    for (pool, result) in looked_ahead {
        if let Err(error) = result {
            let refused = Outcome::Failed { error, attempts: 1 };
            if let Some(why) = pool.breaker.observe(&refused) {
                ctx.progress.halted(pool.name, &why, &pool.credentials);
            }
        }
    }
    run_phase(&pools, |pool| pool.pins.clone(), &ctx, &mut run).await;
    // Make before break: a move's unpin needs its new pins pinned, not only
    // accepted (AIOZ accepts, then retrieves): wait for them first.
    let moved_to: BTreeSet<PinKey> = pools
        .iter()
        .flat_map(|pool| &pool.unpins)
        .flat_map(|change| {
            change.moved_to.iter().map(|to| PinKey {
                target: to.clone(),
                cid: change.canonical_cid.clone(),
            })
        })
        .collect();
    let awaited: Vec<crate::wait::Awaited> = moved_to
        .iter()
        .filter_map(|key| run.confirmed.get(key).cloned())
        .collect();
    let waited = if awaited.is_empty() || halt.is_cancelled() {
        crate::wait::Waited::default()
    } else {
        let refusing = pools
            .iter()
            .filter_map(|pool| {
                let error = pool.breaker.halt()?.error().clone();
                error
                    .refuses_every_call()
                    .then(|| (pool.name.to_owned(), error))
            })
            .collect();
        crate::wait::wait(
            &awaited,
            providers,
            options.move_wait,
            &halt,
            refusing,
            &|_, _, _| {},
        )
        .await
    };
    let mut ready: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for pool in &pools {
        for &change in &pool.unpins {
            let missing = change.moved_to.iter().find_map(|to| {
                let key = PinKey {
                    target: to.clone(),
                    cid: change.canonical_cid.clone(),
                };
                if !run.confirmed.contains_key(&key) {
                    Some(format!("its new pin on {to} did not land"))
                } else if !waited.pinned.contains(&key) {
                    let last = waited
                        .timed_out
                        .iter()
                        .find(|(k, _)| k == &key)
                        .map_or("failed", |(_, last)| last.as_str());
                    Some(format!("its new pin on {to} is not pinned yet ({last})"))
                } else {
                    None
                }
            });
            match missing {
                Some(why) if !halt.is_cancelled() => {
                    run.ended += 1;
                    run.report.kept.push(Kept {
                        change: change.clone(),
                        reason: format!("{why}; the old pin stays"),
                    });
                }
                // Interrupted: counted as not started below.
                Some(_) => {}
                None => ready.entry(pool.name).or_default().push(change),
            }
        }
    }
    run_phase(
        &pools,
        |pool| ready.get(pool.name).cloned().unwrap_or_default(),
        &ctx,
        &mut run,
    )
    .await;

    let ended = run.ended;
    drop(run);
    report.not_started = calls.len() - ended;
    report.interrupted = stop.is_cancelled();
    drop(tx);
    let recorded = recorder.join().unwrap_or_else(|_| {
        Err((
            StateFileError::io("record to", std::path::Path::new(&store.describe()))(
                std::io::Error::other("the recorder thread panicked"),
            ),
            0,
        ))
    });
    let state = match recorded {
        Ok(state) => state,
        Err((error, unrecorded)) => {
            return Err(ApplyError::RecordFailed {
                error,
                unrecorded,
                report: Box::new(report),
            });
        }
    };
    if let Err(error) = store.finish(&state) {
        return Err(ApplyError::SaveFailed {
            error,
            report: Box::new(report),
        });
    }
    Ok((report, state))
}

/// What a phase of calls needs besides its pools.
struct CallContext<'a> {
    retry: RetryPolicy,
    concurrency: usize,
    /// Cancelled by a stop or a failed write: no new call, no retry.
    halt: &'a CancellationToken,
    progress: &'a dyn Progress,
}

/// What the calls' outcomes are gathered into.
struct Run<'a> {
    report: &'a mut Report,
    tx: &'a mpsc::Sender<Recorded>,
    /// Whether the plan has moves, which need `confirmed`.
    track_moves: bool,
    /// Pins confirmed in this apply, for the moves' unpins.
    confirmed: BTreeMap<PinKey, crate::wait::Awaited>,
    /// Calls that ended (or were settled without one).
    ended: usize,
}

impl Run<'_> {
    fn record(&self, entry: Recorded) {
        // The recorder keeps receiving after a failed write (to count what
        // it could not record), so a send only fails if it panicked.
        let _ = self.tx.send(entry);
    }

    fn take(&mut self, change: &Change, outcome: Outcome, pools: &[Pool]) {
        match outcome {
            Outcome::Pinned(receipt) => {
                self.ended += 1;
                if change.action == Action::Update {
                    self.report.updated += 1;
                } else {
                    self.report.pinned += 1;
                    self.report.already_pinned += usize::from(receipt.already_pinned);
                }
                // "Already pinned" answers with no id: keep the one known.
                let pin_id = receipt.pin_id.or_else(|| change.pin_id.clone());
                self.report.confirmed.push(change.key());
                if self.track_moves {
                    self.confirmed.insert(
                        change.key(),
                        crate::wait::Awaited {
                            key: change.key(),
                            cid: change.cid.clone(),
                            pin_id: pin_id.clone(),
                            replication_min: change.labels.replication.map(|r| r.min.get()),
                        },
                    );
                }
                let key = change.key();
                self.record(Recorded::Pin(StoredPin {
                    record: PinRecord {
                        cid_as_pinned: PinRecord::as_pinned(&key, &change.cid),
                        labels: change.labels.clone(),
                        pin_id: pin_id.map(Into::into),
                        pinned_at: now_rfc3339().into(),
                        status: PinStatus::Managed,
                        observed: None,
                        foreign: receipt.foreign,
                    },
                    key,
                }));
            }
            Outcome::Unpinned(receipt) => {
                self.ended += 1;
                self.report.unpinned += 1;
                self.report.already_gone += usize::from(receipt.already_gone);
                self.record(Recorded::Unpin(change.key()));
            }
            Outcome::Failed { error, attempts } => {
                self.ended += 1;
                self.report.failed.push(Failure {
                    change: change.clone(),
                    error,
                    attempts,
                });
            }
            Outcome::NotAttempted(why) => {
                self.ended += 1;
                let provider = &change.target.provider;
                let credentials = || {
                    pools
                        .iter()
                        .find(|pool| pool.name == provider.as_str())
                        .map_or_else(Vec::new, |pool| pool.credentials.clone())
                };
                self.report
                    .not_attempted
                    .entry(provider.to_string())
                    .or_insert_with(|| NotAttempted {
                        why,
                        pins: 0,
                        credentials: credentials(),
                    })
                    .pins += 1;
            }
            Outcome::Interrupted => {}
        }
    }
}

/// Runs one phase: the changes `select` picks from each pool, each
/// provider's at most `concurrency` at a time, all providers at once.
async fn run_phase<'a>(
    pools: &'a [Pool<'a>],
    select: impl Fn(&Pool<'a>) -> Vec<&'a Change>,
    ctx: &CallContext<'_>,
    run: &mut Run<'_>,
) {
    // The calls are futures polled by this task, not spawned tasks: the
    // runtime is one thread (see the CLI), where a task per call only adds
    // a wake-up per answer.
    let streams = pools.iter().map(|pool| {
        futures::stream::iter(select(pool))
            .take_while(move |_| std::future::ready(!ctx.halt.is_cancelled()))
            .map(move |change| async move {
                if let Some(why) = pool.breaker.halt() {
                    return (change, Outcome::NotAttempted(why), None);
                }
                let outcome = call_with_retries(pool, change, ctx).await;
                let tripped = pool.breaker.observe(&outcome).map(|why| (pool, why));
                (change, outcome, tripped)
            })
            .buffer_unordered(pool.concurrency)
    });
    let mut calls = futures::stream::select_all(streams.map(Box::pin));
    while let Some((change, outcome, tripped)) = calls.next().await {
        if let Some((pool, why)) = tripped {
            ctx.progress.halted(pool.name, &why, &pool.credentials);
        }
        ctx.progress.finished(change, &outcome);
        run.take(change, outcome, pools);
    }
}

/// Passes on what a pin call that fetches its DAG has fetched.
struct Fetching<'a> {
    change: &'a Change,
    progress: &'a dyn Progress,
}

impl crate::provider::FetchProgress for Fetching<'_> {
    fn fetched(&self, blocks: u64, bytes: u64) {
        self.progress.fetching(self.change, blocks, bytes);
    }
}

/// One provider's share of an apply.
struct Pool<'a> {
    name: &'a str,
    provider: &'a dyn Provider,
    breaker: Breaker,
    pins: Vec<&'a Change>,
    unpins: Vec<&'a Change>,
    /// The variables its credentials come from, to name when refused.
    credentials: Vec<String>,
    /// Its calls at once: `--concurrency`, or fewer where its type says.
    concurrency: usize,
}

/// What the recorder journals.
enum Recorded {
    /// A pin confirmed, or a state-only change to one.
    Pin(StoredPin),
    /// A pin the provider removed.
    Unpin(PinKey),
}

/// The recorder: batches confirmed changes into journal appends until the
/// sender is dropped, then hands the state back. On a failed write it
/// cancels `halt`, so no further call is made, and returns the error with
/// the number of changes it could not record.
fn record(
    rx: mpsc::Receiver<Recorded>,
    mut state: State,
    mut journal: Box<dyn Recorder>,
    halt: &CancellationToken,
) -> Result<State, (StateFileError, usize)> {
    let mut pins = Vec::new();
    let mut unpinned = Vec::new();
    while let Ok(first) = rx.recv() {
        for entry in std::iter::once(first).chain(rx.try_iter()) {
            match entry {
                Recorded::Pin(pin) => pins.push(keep_provider_facts(&state, pin)),
                Recorded::Unpin(key) => unpinned.push(key),
            }
        }
        if let Err(e) = journal.append(state.serial + 1, &pins, &unpinned) {
            halt.cancel();
            // Count everything still to come, until apply drops its sender.
            return Err((e, pins.len() + unpinned.len() + rx.iter().count()));
        }
        state.serial += 1;
        for pin in pins.drain(..) {
            state.record(pin);
        }
        for key in unpinned.drain(..) {
            state.pins.remove(&key);
        }
    }
    Ok(state)
}

/// A state-only change (empty `pinned_at`) keeps what the provider told us
/// when the pin was made.
fn keep_provider_facts(state: &State, pin: StoredPin) -> StoredPin {
    match state.pins.get(&pin.key) {
        Some(old) if pin.record.pinned_at.is_empty() => StoredPin {
            record: PinRecord {
                pin_id: old.pin_id.clone(),
                pinned_at: old.pinned_at.clone(),
                observed: old.observed.clone(),
                foreign: old.foreign,
                ..pin.record
            },
            ..pin
        },
        _ => pin,
    }
}

/// The unpin of the pin a change names (an unpin, or a failed request a
/// re-pin removes first).
fn unpin_request(change: &Change) -> UnpinRequest<'_> {
    UnpinRequest {
        cid: &change.cid,
        cluster: change.target.cluster.as_deref(),
        pin_id: change.pin_id.as_deref(),
        replication_min: None,
    }
}

/// One pin or unpin, retried as the policy allows.
async fn call_with_retries(pool: &Pool<'_>, change: &Change, ctx: &CallContext<'_>) -> Outcome {
    let fetching = Fetching {
        change,
        progress: ctx.progress,
    };
    let fetching: &dyn crate::provider::FetchProgress = &fetching;
    let call = || async {
        if change.action == Action::Unpin {
            pool.provider
                .unpin(unpin_request(change))
                .await
                .map(Outcome::Unpinned)
        } else if change.action == Action::Update {
            let request = PinRequest {
                cid: &change.cid,
                cluster: change.target.cluster.as_deref(),
                labels: &change.labels,
                origins: &change.origins,
                progress: Some(fetching),
            };
            let pin_id = change.pin_id.as_deref().unwrap_or_default();
            pool.provider
                .relabel(request, pin_id)
                .await
                .map(Outcome::Pinned)
        } else {
            // A failed request is removed (by its id) before it is made again,
            // or the provider would answer that it holds it already.
            if change.action == Action::Repin && change.pin_id.is_some() {
                pool.provider.unpin(unpin_request(change)).await?;
            }
            let request = PinRequest {
                cid: &change.cid,
                cluster: change.target.cluster.as_deref(),
                labels: &change.labels,
                origins: &change.origins,
                progress: Some(fetching),
            };
            pool.provider.pin(request).await.map(Outcome::Pinned)
        }
    };
    // tokio's clock, so that tests with paused time see the elapsed time.
    let started = tokio::time::Instant::now();
    let mut rng = fastrand::Rng::new();
    let mut attempt = 1;
    loop {
        let error = match call().await {
            Ok(done) => return done,
            Err(e) => e,
        };
        let delay = if error.is_retryable() {
            ctx.retry
                .next_delay(attempt, started.elapsed(), error.retry_after(), &mut rng)
        } else {
            None
        };
        // No retry once the provider is halted (by this call's answer or
        // another's), nor once the apply is stopping.
        let delay = delay.filter(|_| pool.breaker.halt().is_none() && !ctx.halt.is_cancelled());
        let Some(delay) = delay else {
            return Outcome::Failed {
                error,
                attempts: attempt,
            };
        };
        ctx.progress.retrying(change, &error, attempt, delay);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = ctx.halt.cancelled() => return Outcome::Interrupted,
            // Another call was refused the credentials: this one would be too.
            () = pool.breaker.refused.cancelled() => {
                return Outcome::Failed { error, attempts: attempt };
            }
        }
        if pool.breaker.halt().is_some() {
            return Outcome::Failed {
                error,
                attempts: attempt,
            };
        }
        attempt += 1;
    }
}

/// Connects every provider `plan` calls, with the credentials `lookup`
/// gives, and makes no call: what `apply PLAN` does before its first one.
/// The saved-plan fuzz target drives it, since the checks on load are what
/// stand between an edited plan and the code that sends keys.
pub fn connect_for(plan: &Plan, lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    crate::provider::connect(
        &plan.providers,
        &providers_used(plan),
        lookup,
        crate::provider::HttpSettings::default(),
    )
    .map(drop)
}

/// The providers a plan needs credentials for: those it calls.
pub(crate) fn providers_used(plan: &Plan) -> BTreeSet<String> {
    plan.changes
        .iter()
        .filter(|c| c.calls(plan.providers.get(c.target.provider.as_str())))
        .map(|c| c.target.provider.to_string())
        .collect()
}

#[cfg(test)]
mod tests;
