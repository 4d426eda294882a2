//! How long a plan's calls take at each provider's rate limit: what
//! `plan` shows (`aioz: 2,000 calls, about 11 min at 180/min`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Plan;
use crate::manifest::{CallKind, ProviderConfig};

/// One provider's share of a plan's calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pace {
    /// Requests the changes make (a Pinning Service pin is a lookup, ten
    /// CIDs a call, and an add).
    pub calls: u64,
    /// The limit they are paced at, as the manifest writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    /// How long they take at it, in seconds; none without a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
}

impl Pace {
    pub fn duration(&self) -> Option<Duration> {
        self.seconds.map(Duration::from_secs)
    }
}

/// Each provider's calls in `plan`, and the time they take at its limits:
/// the slowest of its overall limit and the limits of each kind of call.
pub fn pace(plan: &Plan) -> BTreeMap<String, Pace> {
    let mut by_kind: BTreeMap<&str, BTreeMap<CallKind, f64>> = BTreeMap::new();
    for change in &plan.changes {
        let config = plan.providers.get(change.target.provider.as_str());
        let Some(config) = config else { continue };
        let calls = by_kind.entry(&change.target.provider).or_default();
        for (kind, n) in crate::provider::requests_for(change, config) {
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
