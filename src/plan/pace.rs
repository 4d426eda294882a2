//! How long a plan's calls take at each provider's rate limit: what
//! `plan` shows (`aioz: 2,000 calls, about 11 min at 180/min`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Action, Change, Plan};
use crate::manifest::{CallKind, ProviderConfig};

/// One provider's share of a plan's calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pace {
    /// Requests the changes make (a Pinning Service pin is a lookup, ten
    /// CIDs a call, and an add).
    pub(crate) calls: u64,
    /// The limit they are paced at, as the manifest writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rate_limit: Option<String>,
    /// How long they take at it, in seconds; none without a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seconds: Option<u64>,
}

impl Pace {
    pub(crate) fn duration(&self) -> Option<Duration> {
        self.seconds.map(Duration::from_secs)
    }
}

/// Each provider's calls in `plan`, and the time they take at its limits:
/// the slowest of its overall limit and the limits of each kind of call.
pub(crate) fn pace(plan: &Plan) -> BTreeMap<String, Pace> {
    let mut by_kind: BTreeMap<&str, BTreeMap<CallKind, f64>> = BTreeMap::new();
    for change in &plan.changes {
        let config = plan.providers.get(change.target.provider.as_str());
        let Some(config) = config else { continue };
        let calls = by_kind.entry(&change.target.provider).or_default();
        for (kind, n) in requests_for(change, config) {
            *calls.entry(kind).or_default() += n;
        }
    }
    by_kind
        .into_iter()
        .filter_map(|(name, calls)| {
            let config = plan.providers.get(name)?;
            let total: f64 = calls.values().sum();
            (total > 0.0).then(|| (name.to_owned(), provider_pace(config, &calls, total)))
        })
        .collect()
}

/// The requests one change makes on the provider `config` declares, by
/// kind of call; fractions where calls are shared (a Pinning Service looks
/// ten CIDs up a call). None for a change that is only recorded. Asks the
/// provider type's capabilities, not its name.
fn requests_for(change: &Change, config: &ProviderConfig) -> Vec<(CallKind, f64)> {
    if !change.calls(Some(config)) {
        return Vec::new();
    }
    let reads = config.kind.capabilities().reads_before_removing;
    let removes_first = change.action == Action::Repin && change.pin_id.is_some();
    match change.action {
        Action::Pin | Action::Repin => {
            let mut calls = Vec::new();
            if removes_first {
                if reads {
                    calls.push((CallKind::Status, 1.0));
                }
                calls.push((CallKind::Unpin, 1.0));
            }
            if let Some(batch) = config.kind.capabilities().lookup_batch {
                calls.push((CallKind::List, 1.0 / batch as f64));
            }
            calls.push((CallKind::Pin, 1.0));
            calls
        }
        Action::Unpin if reads => vec![(CallKind::Status, 1.0), (CallKind::Unpin, 1.0)],
        Action::Unpin => vec![(CallKind::Unpin, 1.0)],
        // A replace: the request is read, then replaced.
        Action::Update => vec![(CallKind::Status, 1.0), (CallKind::Pin, 1.0)],
        Action::Orphan => Vec::new(),
    }
}

fn provider_pace(config: &ProviderConfig, calls: &BTreeMap<CallKind, f64>, total: f64) -> Pace {
    let whole = |n: f64| n.ceil() as u64;
    let overall = config.rate_limit.map(|l| l.time_for(whole(total)));
    let kinds = calls
        .iter()
        .filter_map(|(kind, n)| config.rate_limits.get(kind).map(|l| l.time_for(whole(*n))));
    let slowest = overall.into_iter().chain(kinds).max();
    Pace {
        calls: whole(total),
        rate_limit: config.rate_limit.map(|l| l.to_string()),
        seconds: slowest.map(|d| d.as_secs()),
    }
}
