//! Refresh: ask each provider what it holds of the pins the state records,
//! and record its word (status and when it was asked), with no pin or
//! unpin call. A pin the provider lost or failed is drift, which the next
//! plan re-pins.
//!
//! Each provider is listed page by page, in the largest pages its API
//! serves, rather than asked pin by pin: 10,000 AIOZ pins are 10 calls.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use tokio_util::sync::CancellationToken;

use crate::manifest::{CanonicalCid, ContentId, PinKey};
use crate::provider::Providers;
use crate::provider::{ListedPin, Provider, ProviderError};
use crate::retry::RetryPolicy;
use crate::state::{Observed, ProviderStatus, State};

/// Pages listed from one provider at most: a provider whose cursor never
/// ends must not keep a refresh going for ever (10 million pins at 1,000 a
/// page).
const MAX_PAGES: usize = 10_000;

/// What a refresh found on one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProviderRefresh {
    /// List calls made, retries included.
    pub(crate) calls: usize,
    /// Pins the provider listed, all of them, recorded or not.
    pub(crate) listed: usize,
    /// The state's pins on this provider, by what it said of them.
    pub(crate) statuses: BTreeMap<ProviderStatus, usize>,
    /// Pin ids the state lacked and the listing gave (AIOZ unpins by id).
    pub(crate) ids_learned: usize,
}

impl ProviderRefresh {
    /// The state's pins on this provider that it lost or failed.
    pub(crate) fn drift(&self) -> usize {
        self.statuses
            .iter()
            .filter(|(s, _)| s.is_lost())
            .map(|(_, n)| n)
            .sum()
    }
}

/// What a refresh did, by provider; `errors` are providers that could not
/// be listed (their pins keep what was known of them).
#[derive(Debug, Clone, Default)]
pub(crate) struct RefreshReport {
    pub(crate) providers: BTreeMap<String, ProviderRefresh>,
    pub(crate) errors: BTreeMap<String, ProviderError>,
}

/// Refreshes every pin of `state` on the `providers` given, recording in
/// `state` what each said. A provider that cannot be listed is reported in
/// `errors` and its pins are left as they were.
pub(crate) async fn refresh(
    state: &mut State,
    providers: &Providers,
    retry: RetryPolicy,
    stop: &CancellationToken,
) -> RefreshReport {
    let recorded: BTreeSet<&str> = state
        .pins
        .keys()
        .map(|k| k.target.provider.as_str())
        .collect();
    let listings = futures::future::join_all(
        providers
            .iter()
            .filter(|(name, _)| recorded.contains(name.as_str()))
            .map(|(name, provider)| async move {
                (name.clone(), list_all(provider.as_ref(), retry, stop).await)
            }),
    )
    .await;
    let at = crate::state::now_rfc3339();
    let mut report = RefreshReport::default();
    for (name, listing) in listings {
        match listing {
            Ok((pins, calls)) => {
                let mut found = observe(state, &name, &pins, &at);
                found.calls = calls;
                report.providers.insert(name, found);
            }
            Err(e) => {
                report.errors.insert(name, e);
            }
        }
    }
    report
}

/// Every page of one provider's listing, retrying each page as `retry`
/// allows; with the number of calls made.
pub(crate) async fn list_all(
    provider: &dyn Provider,
    retry: RetryPolicy,
    stop: &CancellationToken,
) -> Result<(Vec<ListedPin>, usize), ProviderError> {
    let mut pins = Vec::new();
    // Pages may overlap (a Pinning Service's by a second): a pin id seen
    // once is not listed again.
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut calls = 0;
    let mut rng = fastrand::Rng::new();
    for _ in 0..MAX_PAGES {
        let started = tokio::time::Instant::now();
        let mut attempt = 1;
        let page = loop {
            calls += 1;
            let error = match provider.list(cursor.as_deref()).await {
                Ok(page) => break page,
                Err(e) => e,
            };
            let delay = error
                .is_retryable()
                .then(|| {
                    retry.next_delay(attempt, started.elapsed(), error.retry_after(), &mut rng)
                })
                .flatten();
            let Some(delay) = delay else {
                return Err(error);
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => return Err(error),
            }
            attempt += 1;
        };
        pins.extend(page.pins.into_iter().filter(|p| {
            p.pin_id
                .as_ref()
                .is_none_or(|id| seen_ids.insert(id.clone()))
        }));
        match page.next {
            Some(next) if Some(&next) == cursor.as_ref() => {
                return Err(ProviderError::BadResponse(
                    "the listing's cursor does not move".into(),
                ));
            }
            Some(next) => cursor = Some(next),
            None => return Ok((pins, calls)),
        }
    }
    // A partial listing would make every pin it did not reach look lost.
    Err(ProviderError::BadResponse(format!(
        "the listing did not end after {MAX_PAGES} pages"
    )))
}

/// Records in `state`, for each of its pins on `provider`, what `listed`
/// says of it (`missing` when it is not listed), and pin ids it lacked.
/// A pin recorded without a cluster matches the CID on any cluster.
pub(crate) fn observe(
    state: &mut State,
    provider: &str,
    listed: &[ListedPin],
    at: &str,
) -> ProviderRefresh {
    let mut by_cid: BTreeMap<CanonicalCid, Vec<&ListedPin>> = BTreeMap::new();
    for pin in listed {
        // A CID the provider reports that does not parse is nobody's pin.
        if let Ok(cid) = ContentId::parse(&pin.cid) {
            by_cid
                .entry(cid.canonical().to_owned())
                .or_default()
                .push(pin);
        }
    }
    let mut found = ProviderRefresh {
        listed: listed.len(),
        ..ProviderRefresh::default()
    };
    let on_provider = |k: &PinKey| k.target.provider == provider;
    for (key, record) in state.pins.iter_mut().filter(|(k, _)| on_provider(k)) {
        let candidates = by_cid.get(&key.cid).map(Vec::as_slice).unwrap_or_default();
        let candidates = || {
            candidates.iter().filter(|p| {
                key.target.cluster.is_none()
                    || p.cluster.as_deref() == key.target.cluster.as_deref()
            })
        };
        // The best word of any listing of it: pinsync's own request before
        // someone else's, then a pinned copy.
        let best = candidates().min_by_key(|p| (p.foreign == Some(true), p.status.rank()));
        // Whose the recorded request is, as the service shows it now (a
        // state from before ownership was recorded learns it here). A
        // service that keeps no mark cannot say: a pin adopted as someone
        // else's stays so.
        if let Some(foreign) = candidates()
            .find(|p| p.pin_id.is_some() && p.pin_id.as_deref() == record.pin_id.as_deref())
            .and_then(|p| p.foreign)
        {
            record.foreign = foreign;
        }
        let status = best.map_or(ProviderStatus::Missing, |p| p.status);
        if record.pin_id.is_none()
            && let Some(id) = best.and_then(|p| p.pin_id.clone())
        {
            record.pin_id = Some(id.into());
            found.ids_learned += 1;
        }
        record.observed = Some(Box::new(Observed {
            status,
            at: at.to_owned(),
        }));
        *found.statuses.entry(status).or_default() += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Labels, Target};
    use crate::state::{PinRecord, PinStatus, StoredPin};

    const A: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    const B_V0: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
    const C: &str = "Qmc1135ziMvmFG534i75E8HpJoLqzLzgKBxfjBV9cBsMAs";

    fn state(pins: &[(&str, Option<&str>, &str)]) -> State {
        let mut state = State::new();
        for &(provider, cluster, cid) in pins {
            state.record(StoredPin {
                key: PinKey {
                    target: Target {
                        provider: provider.into(),
                        cluster: cluster.map(Into::into),
                    },
                    cid: ContentId::parse(cid).unwrap().canonical().to_owned(),
                },
                record: PinRecord {
                    cid_as_pinned: (!cid.starts_with('b')).then(|| cid.into()),
                    labels: Labels {
                        name: None,
                        meta: Default::default(),
                        replication: None,
                    },
                    pin_id: None,
                    pinned_at: "2026-01-01T00:00:00Z".into(),
                    status: PinStatus::Managed,
                    observed: None,
                    foreign: false,
                },
            });
        }
        state
    }

    fn listed(
        cid: &str,
        cluster: Option<&str>,
        id: Option<&str>,
        status: ProviderStatus,
    ) -> ListedPin {
        ListedPin {
            cid: cid.into(),
            cluster: cluster.map(Into::into),
            pin_id: id.map(Into::into),
            status,
            name: None,
            foreign: Some(false),
        }
    }

    fn observed(state: &State) -> Vec<(String, ProviderStatus)> {
        state
            .pins
            .iter()
            .map(|(k, r)| {
                (
                    format!("{} {}", k.target, r.sent_cid(k)),
                    r.observed.as_ref().unwrap().status,
                )
            })
            .collect()
    }

    #[test]
    fn each_recorded_pin_gets_the_providers_word_or_missing() {
        let mut s = state(&[("aioz", None, A), ("aioz", None, B_V0), ("aioz", None, C)]);
        let list = [
            // Listed in its other form (CIDv1 of a CIDv0 pin): the same pin.
            listed(
                &ContentId::parse(B_V0).unwrap().canonical().to_string(),
                None,
                Some("id-b"),
                ProviderStatus::Failed,
            ),
            listed(A, None, Some("id-a"), ProviderStatus::Pinned),
            // A second, failed request for the same CID does not hide the pinned one.
            listed(A, None, Some("id-a2"), ProviderStatus::Failed),
            listed("not a cid", None, None, ProviderStatus::Pinned),
        ];
        let found = observe(&mut s, "aioz", &list, "2026-12-01T00:00:00Z");
        let mut got = observed(&s);
        got.sort();
        let mut want = vec![
            (format!("aioz {A}"), ProviderStatus::Pinned),
            (format!("aioz {B_V0}"), ProviderStatus::Failed),
            (format!("aioz {C}"), ProviderStatus::Missing),
        ];
        want.sort();
        assert_eq!(got, want);
        assert_eq!(found.listed, 4);
        assert_eq!(found.drift(), 2);
        assert_eq!(found.ids_learned, 2, "AIOZ ids the state lacked");
        let a = s.pins.iter().find(|(k, r)| r.sent_cid(k) == A).unwrap().1;
        assert_eq!(
            a.pin_id.as_deref(),
            Some("id-a"),
            "the id of the copy that speaks for it"
        );
        assert!(
            s.pins
                .values()
                .all(|r| r.observed.as_ref().unwrap().at == "2026-12-01T00:00:00Z")
        );
    }

    #[test]
    fn only_a_listing_that_knows_the_mark_changes_whose_a_pin_is() {
        let mut s = state(&[("lh", None, A), ("qn", None, A)]);
        for record in s.pins.values_mut() {
            record.foreign = true;
            record.pin_id = Some("id-a".into());
        }
        // A service without marks cannot say; one with them can.
        let mut unknown = listed(A, None, Some("id-a"), ProviderStatus::Pinned);
        unknown.foreign = None;
        observe(&mut s, "lh", &[unknown], "2026-12-01T00:00:00Z");
        observe(
            &mut s,
            "qn",
            &[listed(A, None, Some("id-a"), ProviderStatus::Pinned)],
            "2026-12-01T00:00:00Z",
        );
        let foreign: Vec<(String, bool)> = s
            .pins
            .iter()
            .map(|(k, r)| (k.target.provider.to_string(), r.foreign))
            .collect();
        assert_eq!(foreign, [("lh".into(), true), ("qn".into(), false)]);
    }

    #[test]
    fn clusters_must_match_unless_the_pin_names_none() {
        let mut s = state(&[
            ("arkive", Some("cl1-eu"), A),
            ("arkive", None, C),
            ("aioz", None, A),
        ]);
        let list = [
            listed(A, Some("cl0-global"), None, ProviderStatus::Pinned),
            listed(C, Some("cl2-de"), None, ProviderStatus::Pinned),
        ];
        observe(&mut s, "arkive", &list, "t");
        let got: BTreeMap<String, Option<ProviderStatus>> = s
            .pins
            .iter()
            .map(|(k, r)| (k.target.to_string(), r.observed.as_ref().map(|o| o.status)))
            .collect();
        assert_eq!(
            got["arkive/cl1-eu"],
            Some(ProviderStatus::Missing),
            "on another cluster"
        );
        assert_eq!(
            got["arkive"],
            Some(ProviderStatus::Pinned),
            "no cluster named: any"
        );
        assert_eq!(got["aioz"], None, "another provider's pins are not touched");
    }
}
