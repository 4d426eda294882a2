//! Runs a plan against the providers, recording each confirmed pin as it
//! lands so an interrupted apply loses no completed work.
//!
//! Calls run concurrently (bounded). Confirmed pins go to a recorder thread
//! that appends them to the journal in batches (group commit: one fsync for
//! whatever arrived meanwhile); the state file is rewritten once at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::plan::{Action, Change, Plan};
use crate::provider::{PinReceipt, PinRequest, Provider, ProviderError};
use crate::retry::RetryPolicy;
use crate::state::{
    Journal, PinRecord, PinStatus, State, StateFile, StateFileError, StoredPin, now_rfc3339,
};

/// How to run an apply.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Provider calls in flight at most.
    pub concurrency: usize,
    pub retry: RetryPolicy,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            retry: RetryPolicy::default(),
        }
    }
}

/// How one pin call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pinned(PinReceipt),
    /// `attempts` is 0 when the pin was not tried because its provider
    /// looked down; `error` is then the provider's last error.
    Failed {
        error: ProviderError,
        attempts: u32,
    },
}

/// Why a pin failed, with how hard it was tried, for people and logs.
pub fn failure_reason(error: &ProviderError, attempts: u32, provider: &str) -> String {
    match attempts {
        0 => format!("not attempted: provider `{provider}` looks down (last error: {error})"),
        1 => error.to_string(),
        n => format!("{error} (after {n} attempts)"),
    }
}

/// Pins of one provider that failed in a row, after all their retries, before
/// the provider is taken to be down for the rest of this apply.
const BREAKER_THRESHOLD: u32 = 3;

/// A circuit breaker for one provider within one apply: after
/// [`BREAKER_THRESHOLD`] pins in a row fail for reasons worth retrying
/// (outage, rate limit, timeouts), its remaining pins are not attempted, so
/// an outage costs minutes once, not once per pin. They are planned again
/// by the next apply (or watch's next reconcile).
#[derive(Default)]
struct Breaker {
    state: std::sync::Mutex<(u32, Option<ProviderError>)>,
}

impl Breaker {
    fn open_error(&self) -> Option<ProviderError> {
        let state = self.state.lock().expect("breaker lock is never poisoned");
        (state.0 >= BREAKER_THRESHOLD)
            .then(|| state.1.clone())
            .flatten()
    }

    fn observe(&self, outcome: &Outcome) {
        let mut state = self.state.lock().expect("breaker lock is never poisoned");
        match outcome {
            Outcome::Pinned(_) => *state = (0, None),
            Outcome::Failed { error, .. } if error.is_retryable() => {
                *state = (state.0 + 1, Some(error.clone()));
            }
            Outcome::Failed { .. } => {}
        }
    }
}

/// Hears about an apply as it runs (progress bar, plain lines, logs).
pub trait Progress: Send + Sync {
    /// Before the first call.
    fn start(&self, _calls: usize) {}
    /// A call failed and will be tried again after `delay`.
    fn retrying(&self, _change: &Change, _error: &ProviderError, _attempt: u32, _delay: Duration) {}
    /// A pin call ended.
    fn finished(&self, _change: &Change, _outcome: &Outcome) {}
}

/// Progress that hears nothing.
pub struct Silent;
impl Progress for Silent {}

/// One failed pin and why.
#[derive(Debug, Clone)]
pub struct Failure {
    pub change: Change,
    pub error: ProviderError,
    pub attempts: u32,
}

/// What an apply did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Pins the provider confirmed (including `already_pinned`).
    pub pinned: usize,
    /// Of those, the provider said were pinned already.
    pub already_pinned: usize,
    /// Name or meta changes recorded; pins back in the manifest.
    pub updated: usize,
    /// Pins marked orphaned.
    pub orphaned: usize,
    /// Unchanged pins the plan left alone.
    pub unchanged: usize,
    pub failed: Vec<Failure>,
    /// Pins not attempted because the apply was interrupted.
    pub not_started: usize,
    pub interrupted: bool,
}

impl Report {
    pub fn succeeded(&self) -> bool {
        self.failed.is_empty() && !self.interrupted
    }
}

/// Applies `plan` to `state` (loaded from `file`, whose lock the caller
/// holds), records as it goes, and saves the state at the end. `providers`
/// must hold every provider the plan's pin changes name.
pub async fn apply(
    plan: &Plan,
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    file: &StateFile,
    mut state: State,
    options: ApplyOptions,
    stop: &CancellationToken,
    progress: &Arc<dyn Progress>,
) -> Result<(Report, State), StateFileError> {
    let mut report = Report {
        unchanged: plan.summary.unchanged,
        ..Report::default()
    };
    if !plan.summary.has_changes() {
        return Ok((report, state));
    }
    // An earlier journal must be folded in before a new one starts.
    if file.has_journal() {
        file.save(&state)?;
    }
    state.ensure_lineage();
    let journal = Journal::create(&file.journal_path(), &state)?;
    let (tx, rx) = mpsc::channel::<StoredPin>();
    let recorder = std::thread::spawn(move || record(rx, state, journal));

    // State-only changes first: they need no provider and cannot fail.
    for change in &plan.changes {
        let status = match change.action {
            Action::Pin => continue,
            Action::Update => {
                report.updated += 1;
                PinStatus::Managed
            }
            Action::Orphan => {
                report.orphaned += 1;
                PinStatus::Orphaned
            }
        };
        let _ = tx.send(StoredPin {
            key: change.key(),
            record: PinRecord {
                cid_as_pinned: change.cid.clone(),
                labels: change.labels.clone(),
                pin_id: None,
                pinned_at: String::new(),
                status,
            },
        });
    }

    let pins: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Pin)
        .collect();
    progress.start(pins.len());
    // Each provider gets its own pool of `concurrency` calls, so one that is
    // slow or down cannot hold the slots the others need.
    let mut by_provider: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for change in &pins {
        by_provider
            .entry(change.target.provider.as_str())
            .or_default()
            .push(change);
    }
    let pools: Vec<(&dyn Provider, Breaker, Vec<&Change>)> = by_provider
        .into_iter()
        .map(|(name, changes)| {
            let provider = providers
                .get(name)
                .expect("apply is given every provider its plan pins to");
            (provider.as_ref(), Breaker::default(), changes)
        })
        .collect();
    // The calls are futures polled by this task, not spawned tasks: the
    // runtime is one thread (see the CLI), where a task per call only adds
    // a wake-up per answer.
    let pools = pools.iter().map(|(provider, breaker, changes)| {
        futures::stream::iter(changes)
            .take_while(|_| std::future::ready(!stop.is_cancelled()))
            .map(move |&change| async move {
                let outcome = match breaker.open_error() {
                    Some(error) => Outcome::Failed { error, attempts: 0 },
                    None => {
                        let outcome = pin_with_retries(
                            *provider,
                            change,
                            options.retry,
                            stop,
                            progress.as_ref(),
                        )
                        .await;
                        breaker.observe(&outcome);
                        outcome
                    }
                };
                (change, outcome)
            })
            .buffer_unordered(options.concurrency.max(1))
    });
    let mut calls = futures::stream::select_all(pools.map(Box::pin));
    let mut ended = 0;
    while let Some((change, outcome)) = calls.next().await {
        ended += 1;
        progress.finished(change, &outcome);
        match outcome {
            Outcome::Pinned(receipt) => {
                report.pinned += 1;
                report.already_pinned += usize::from(receipt.already_pinned);
                let _ = tx.send(StoredPin {
                    key: change.key(),
                    record: PinRecord {
                        cid_as_pinned: change.cid.clone(),
                        labels: change.labels.clone(),
                        pin_id: receipt.pin_id,
                        pinned_at: now_rfc3339(),
                        status: PinStatus::Managed,
                    },
                });
            }
            Outcome::Failed { error, attempts } => report.failed.push(Failure {
                change: change.clone(),
                error,
                attempts,
            }),
        }
    }
    drop(calls);
    report.not_started = pins.len() - ended;
    report.interrupted = stop.is_cancelled();
    drop(tx);
    let state = recorder.join().expect("recorder thread does not panic")?;
    file.save(&state)?;
    Ok((report, state))
}

/// The recorder: batches confirmed pins into journal appends until the
/// sender is dropped, then hands the state back.
fn record(
    rx: mpsc::Receiver<StoredPin>,
    mut state: State,
    mut journal: Journal,
) -> Result<State, StateFileError> {
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.extend(
            std::iter::once(first)
                .chain(rx.try_iter())
                .map(|pin| keep_provider_facts(&state, pin)),
        );
        state.serial += 1;
        journal.append(state.serial, &batch)?;
        for pin in batch.drain(..) {
            state.record(pin);
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
                ..pin.record
            },
            ..pin
        },
        _ => pin,
    }
}

async fn pin_with_retries(
    provider: &dyn Provider,
    change: &Change,
    policy: RetryPolicy,
    stop: &CancellationToken,
    progress: &dyn Progress,
) -> Outcome {
    let request = PinRequest {
        cid: &change.cid,
        cluster: change.target.cluster.as_deref(),
        labels: &change.labels,
    };
    let started = Instant::now();
    let mut rng = fastrand::Rng::new();
    let mut attempt = 1;
    loop {
        let error = match provider.pin(request).await {
            Ok(receipt) => return Outcome::Pinned(receipt),
            Err(e) => e,
        };
        let delay = if error.is_retryable() {
            policy.next_delay(attempt, started.elapsed(), error.retry_after(), &mut rng)
        } else {
            None
        };
        let Some(delay) = delay else {
            return Outcome::Failed {
                error,
                attempts: attempt,
            };
        };
        progress.retrying(change, &error, attempt, delay);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => return Outcome::Failed { error, attempts: attempt },
        }
        attempt += 1;
    }
}

/// The providers a plan needs credentials for: those it pins to.
pub fn providers_used(plan: &Plan) -> BTreeSet<String> {
    plan.changes
        .iter()
        .filter(|c| c.action == Action::Pin)
        .map(|c| c.target.provider.clone())
        .collect()
}
