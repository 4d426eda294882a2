//! Waiting for pinned: a provider accepts a pin before it holds it (AIOZ
//! answers `RETRIEVAL`, later `DONE`). `apply --wait`, and a move before it
//! unpins the old copy, poll the new pins, backing off, until each is
//! pinned or failed, or the time is up.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::manifest::PinKey;
use crate::provider::Providers;
use crate::provider::{Checked, ProviderError, UnpinRequest};
use crate::state::{ProviderStatus, State};

/// Status checks in flight at most.
const CHECKS_IN_FLIGHT: usize = 16;
/// The first wait between rounds; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(15);

/// One pin to wait for: its key and how its provider knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Awaited {
    pub(crate) key: PinKey,
    /// The CID as it was pinned.
    pub(crate) cid: String,
    pub(crate) pin_id: Option<String>,
    /// Peers that must hold it (its recorded `replication.min`).
    pub(crate) replication_min: Option<u32>,
}

impl Awaited {
    /// The pins of `state` under `keys` (those it holds).
    pub(crate) fn from_state(state: &State, keys: &[PinKey]) -> Vec<Self> {
        keys.iter()
            .filter_map(|k| {
                let r = state.pins.get(k)?;
                Some(Self {
                    key: k.clone(),
                    cid: r.sent_cid(k).into_owned(),
                    pin_id: r.pin_id.as_deref().map(Into::into),
                    replication_min: r.labels.replication.map(|r| r.min.get()),
                })
            })
            .collect()
    }

    fn request(&self) -> UnpinRequest<'_> {
        UnpinRequest {
            cid: &self.cid,
            cluster: self.key.target.cluster.as_deref(),
            pin_id: self.pin_id.as_deref(),
            replication_min: self.replication_min,
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Waited {
    pub(crate) pinned: Vec<PinKey>,
    /// Failed, or gone, on the provider, with what it said of why where
    /// it said more.
    pub(crate) failed: Vec<(PinKey, Option<String>)>,
    /// Not pinned when the time was up (or the wait was stopped), with the
    /// last status seen, or the last error.
    pub(crate) timed_out: Vec<(PinKey, String)>,
    /// Every status seen, the last for each pin, to record.
    pub(crate) seen: Vec<(PinKey, ProviderStatus)>,
    /// Status calls made.
    pub(crate) calls: usize,
}

/// Polls `pins` until each is pinned or failed, `timeout` passes, or `stop`
/// is cancelled. `on_round(pinned, pending, next)` hears after each round.
/// The providers in `refusing` already answered as every call to them
/// would (a refused key, a redirect): their pins are not asked, and
/// neither are a provider's once one of its answers is such.
pub(crate) async fn wait(
    pins: &[Awaited],
    providers: &Providers,
    timeout: Duration,
    stop: &CancellationToken,
    refusing: BTreeMap<String, ProviderError>,
    on_round: &dyn Fn(usize, usize, Duration),
) -> Waited {
    let deadline = tokio::time::Instant::now() + timeout;
    // Each pending pin with the last word on it.
    let mut pending: Vec<(&Awaited, String)> =
        pins.iter().map(|p| (p, "unanswered".to_owned())).collect();
    let mut waited = Waited::default();
    let mut pause = FIRST_PAUSE;
    // Checked by each call as it starts, so that no call follows the first
    // such answer.
    let refusing = std::sync::Mutex::new(refusing);
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let refused = |provider: &str| {
        let refusing = refusing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        refusing.get(provider).map(|e| format!("unanswered ({e})"))
    };
    loop {
        let checks = pending.iter().map(|(pin, _)| async {
            let name = pin.key.target.provider.as_str();
            if let Some(why) = refused(name) {
                return Err(why);
            }
            let Some(provider) = providers.get(name) else {
                return Err("unanswered (its provider is not connected)".to_owned());
            };
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            provider.status(pin.request()).await.map_err(|e| {
                let why = format!("unanswered ({e})");
                if e.refuses_every_call() {
                    refusing
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(name.to_owned())
                        .or_insert(e);
                }
                why
            })
        });
        let answers: Vec<Result<Checked, String>> = futures::stream::iter(checks)
            .buffered(CHECKS_IN_FLIGHT)
            .collect()
            .await;
        waited.calls = calls.load(std::sync::atomic::Ordering::Relaxed);
        let mut still = Vec::new();
        for ((pin, _), answer) in pending.into_iter().zip(answers) {
            match answer {
                Ok(Checked { status, detail }) => {
                    waited.seen.retain(|(k, _)| k != &pin.key);
                    waited.seen.push((pin.key.clone(), status));
                    match status {
                        ProviderStatus::Pinned => waited.pinned.push(pin.key.clone()),
                        s if s.is_lost() => waited.failed.push((pin.key.clone(), detail)),
                        s => still.push((pin, s.as_str().to_owned())),
                    }
                }
                // A call that fails is asked again next round; its error is
                // the last word if the time runs out.
                Err(why) => still.push((pin, why)),
            }
        }
        // A provider that refuses every call keeps its pins' last word.
        let (out, still): (Vec<_>, Vec<_>) = still
            .into_iter()
            .partition(|(pin, _)| refused(pin.key.target.provider.as_str()).is_some());
        waited
            .timed_out
            .extend(out.into_iter().map(|(pin, last)| (pin.key.clone(), last)));
        pending = still;
        let now = tokio::time::Instant::now();
        if pending.is_empty() || now >= deadline || stop.is_cancelled() {
            waited
                .timed_out
                .extend(pending.into_iter().map(|(p, last)| (p.key.clone(), last)));
            return waited;
        }
        let next = pause.min(deadline - now);
        on_round(waited.pinned.len(), pending.len(), next);
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = stop.cancelled() => {}
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Records in `state` what a wait saw of each pin.
pub(crate) fn record(state: &mut State, seen: &[(PinKey, ProviderStatus)]) {
    let at = crate::state::now_rfc3339();
    for (key, status) in seen {
        if let Some(record) = state.pins.get_mut(key) {
            record.observed = Some(Box::new(crate::state::Observed {
                status: *status,
                at: at.clone(),
            }));
        }
    }
}
