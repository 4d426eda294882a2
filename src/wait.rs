//! Waiting for pinned: a provider accepts a pin before it holds it (AIOZ
//! answers `RETRIEVAL`, later `DONE`). `apply --wait` polls the new pins,
//! backing off, until each is pinned or failed, or the time is up, and
//! records each status it saw.

use std::time::Duration;

use futures::StreamExt as _;

use crate::apply::Providers;
use crate::manifest::PinKey;
use crate::provider::UnpinRequest;
use crate::state::{Observed, ProviderStatus, State};

/// Status checks in flight at most.
const CHECKS_IN_FLIGHT: usize = 16;
/// The first wait between rounds; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(15);

/// How a wait ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Waited {
    pub pinned: usize,
    /// Failed, or gone, on the provider.
    pub failed: Vec<PinKey>,
    /// Still not pinned when the time was up, with the last status seen.
    pub timed_out: Vec<(PinKey, Option<ProviderStatus>)>,
    /// Status calls made.
    pub calls: usize,
}

/// Polls `keys` (pins of `state`) until each is pinned or failed, or
/// `timeout` passes. `on_round(pinned, pending, next)` hears after each
/// round. Each status seen is recorded in `state`.
pub async fn wait(
    state: &mut State,
    keys: &[PinKey],
    providers: &Providers,
    timeout: Duration,
    on_round: &dyn Fn(usize, usize, Duration),
) -> Waited {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pending: Vec<(PinKey, Option<ProviderStatus>)> = keys
        .iter()
        .filter(|k| state.pins.contains_key(k))
        .map(|k| (k.clone(), None))
        .collect();
    let mut waited = Waited::default();
    let mut pause = FIRST_PAUSE;
    loop {
        let checks = pending.iter().map(|(key, _)| {
            let record = &state.pins[key];
            let provider = providers.get(&key.target.provider);
            async move {
                let provider = provider?;
                let request = UnpinRequest {
                    cid: &record.cid_as_pinned,
                    cluster: key.target.cluster.as_deref(),
                    pin_id: record.pin_id.as_deref(),
                };
                // A call that fails is asked again next round.
                provider.status(request).await.ok()
            }
        });
        let answers: Vec<Option<ProviderStatus>> = futures::stream::iter(checks)
            .buffered(CHECKS_IN_FLIGHT)
            .collect()
            .await;
        waited.calls += answers.len();
        let at = crate::state::now_rfc3339();
        let mut still = Vec::new();
        for ((key, last), answer) in pending.into_iter().zip(answers) {
            let status = answer.or(last);
            if let (Some(s), Some(record)) = (answer, state.pins.get_mut(&key)) {
                record.observed = Some(Observed {
                    status: s,
                    at: at.clone(),
                });
            }
            match status {
                Some(ProviderStatus::Pinned) => waited.pinned += 1,
                Some(s) if s.is_lost() => waited.failed.push(key),
                _ => still.push((key, status)),
            }
        }
        pending = still;
        let now = tokio::time::Instant::now();
        if pending.is_empty() || now >= deadline {
            waited.timed_out = pending;
            return waited;
        }
        let next = pause.min(deadline - now);
        on_round(waited.pinned, pending.len(), next);
        tokio::time::sleep(next).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
