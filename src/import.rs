//! Import: adopt pins a provider already holds. Pins the manifest wants and
//! the state lacks are recorded, with their ids, so the first apply makes no
//! call for them (Terraform's import); what the manifest lacks can be
//! printed as manifest entries to adopt at once. No write call is made.

use std::collections::{BTreeMap, BTreeSet};

use crate::manifest::{CanonicalCid, ContentId, Labels, Manifest, Name, PinKey, Target};
use crate::provider::ListedPin;
use crate::state::{Observed, PinRecord, PinStatus, State, StoredPin};

/// What an import found on one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Imported {
    /// Pins the manifest wants that are now recorded.
    pub(crate) adopted: usize,
    /// Wanted and listed, but failed there: left to apply to pin.
    pub(crate) failed: usize,
    /// Held there, not in the manifest: `(target, listed pin)`.
    pub(crate) unmanaged: Vec<(Target, ListedPin)>,
}

/// Records in `state` the pins of `listed` (from provider `provider`) that
/// the manifest wants on a target in `only` (all when `None`) and the state
/// does not hold yet. `at` is when the listing was made.
pub(crate) fn adopt(
    manifest: &Manifest,
    state: &mut State,
    provider: &str,
    listed: &[ListedPin],
    only: Option<&Target>,
    at: &str,
) -> Imported {
    let wanted: BTreeMap<&CanonicalCid, Vec<(&Target, &Labels)>> = manifest
        .pins
        .iter()
        .filter(|(k, _)| k.target.provider == provider)
        .filter(|(k, _)| only.is_none_or(|t| covers(t, &k.target)))
        .fold(BTreeMap::new(), |mut m, (k, pin)| {
            m.entry(&k.cid).or_default().push((&k.target, &pin.labels));
            m
        });
    let mut found = Imported::default();
    // The best listing of each wanted key (a pinned copy wins over an old
    // failed request for the same CID), chosen before any is recorded.
    let mut best: BTreeMap<PinKey, (&ListedPin, &Labels)> = BTreeMap::new();
    for pin in listed {
        let Ok(cid) = ContentId::parse(&pin.cid) else {
            continue;
        };
        let listed_target = Target {
            provider: provider.into(),
            cluster: pin.cluster.as_deref().map(Name::new),
        };
        let targets: Vec<(&Target, &Labels)> = wanted
            .get(cid.canonical())
            .map(|ts| {
                ts.iter()
                    .copied()
                    .filter(|(t, _)| t.cluster.is_none() || t.cluster == listed_target.cluster)
                    .collect()
            })
            .unwrap_or_default();
        if targets.is_empty() {
            if only.is_none_or(|t| covers(t, &listed_target)) {
                found.unmanaged.push((listed_target, pin.clone()));
            }
            continue;
        }
        for (target, wanted_labels) in targets {
            let key = PinKey {
                target: target.clone(),
                cid: cid.canonical().to_owned(),
            };
            if state.pins.contains_key(&key) {
                continue;
            }
            let entry = best.entry(key).or_insert((pin, wanted_labels));
            let rank = |p: &ListedPin| (p.foreign == Some(true), p.status.rank());
            if rank(pin) < rank(entry.0) {
                *entry = (pin, wanted_labels);
            }
        }
    }
    for (key, (pin, wanted_labels)) in best {
        if pin.status.is_lost() {
            found.failed += 1;
            continue;
        }
        found.adopted += 1;
        let cid_as_pinned = PinRecord::as_pinned(&key, &pin.cid);
        state.record(StoredPin {
            key,
            record: PinRecord {
                cid_as_pinned,
                // The provider's own name where it reports one (a
                // manifest that names it otherwise shows as `~`);
                // what it does not report is taken as the manifest's.
                labels: Labels {
                    name: pin
                        .name
                        .as_deref()
                        .map(Into::into)
                        .or_else(|| wanted_labels.name.clone()),
                    meta: wanted_labels.meta.clone(),
                    replication: None,
                },
                pin_id: pin.pin_id.as_deref().map(Into::into),
                pinned_at: at.into(),
                status: PinStatus::Managed,
                observed: Some(Box::new(Observed {
                    status: pin.status,
                    at: at.to_owned(),
                })),
                // A service that keeps no mark cannot say: what is
                // imported is adopted as this manifest's.
                foreign: pin.foreign == Some(true),
            },
        });
    }
    found
}

/// Whether `filter` (`provider` or `provider/cluster`) takes in `target`.
fn covers(filter: &Target, target: &Target) -> bool {
    filter.provider == target.provider
        && (filter.cluster.is_none() || filter.cluster == target.cluster)
}

/// YAML `pins:` entries for pins held that the manifest lacks, one per CID
/// with every target it is held on, ready to paste into the manifest.
pub(crate) fn manifest_entries(unmanaged: &[(Target, ListedPin)]) -> String {
    let mut by_cid: BTreeMap<&str, (Option<&str>, BTreeSet<String>)> = BTreeMap::new();
    for (target, pin) in unmanaged {
        let entry = by_cid.entry(pin.cid.as_str()).or_default();
        entry.0 = entry.0.or(pin.name.as_deref());
        entry.1.insert(target.to_string());
    }
    let mut out = String::from("pins:\n");
    for (cid, (name, targets)) in by_cid {
        // Quoted as JSON strings, which YAML reads as they are.
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
        out.push_str(&format!("  - cid: {}\n", quote(cid)));
        if let Some(name) = name {
            out.push_str(&format!("    name: {}\n", quote(name)));
        }
        let to: Vec<String> = targets.iter().map(|t| quote(t)).collect();
        out.push_str(&format!("    to: [{}]\n", to.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::state::ProviderStatus;

    const A: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    const B_V0: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
    const C: &str = "Qmc1135ziMvmFG534i75E8HpJoLqzLzgKBxfjBV9cBsMAs";

    fn manifest(pins: &str) -> Manifest {
        let text = format!(
            "version: 1\nproviders:\n  aioz:\n    type: aioz\n    api_key: ${{K}}\n    secret_key: ${{S}}\n  arkive:\n    type: pinarkive\n    api_key: ${{P}}\npins:\n{pins}"
        );
        crate::manifest::parse(Path::new("pins.yaml"), text.as_bytes()).unwrap()
    }

    fn listed(cid: &str, cluster: Option<&str>, status: ProviderStatus) -> ListedPin {
        ListedPin {
            cid: cid.into(),
            cluster: cluster.map(Into::into),
            pin_id: Some(format!("id-{cid}")),
            status,
            name: Some("held".into()),
            foreign: Some(false),
        }
    }

    #[test]
    fn wanted_pins_are_adopted_with_their_ids_and_the_rest_reported() {
        let m = manifest(&format!(
            "  - cid: {A}\n    to: [aioz]\n  - cid: {B_V0}\n    to: [aioz]\n"
        ));
        let mut state = State::new();
        let list = [
            listed(A, None, ProviderStatus::Pinned),
            // The CIDv1 of a CIDv0 the manifest writes: the same pin.
            listed(
                &ContentId::parse(B_V0).unwrap().canonical().to_string(),
                None,
                ProviderStatus::Failed,
            ),
            listed(C, None, ProviderStatus::Pinned),
        ];
        let found = adopt(&m, &mut state, "aioz", &list, None, "t");
        assert_eq!((found.adopted, found.failed), (1, 1));
        assert_eq!(found.unmanaged.len(), 1);
        let (key, record) = state.pins.iter().next().unwrap();
        assert_eq!(key.cid, A);
        assert_eq!(record.pin_id.as_deref(), Some(format!("id-{A}").as_str()));
        // A second import adopts nothing more.
        assert_eq!(adopt(&m, &mut state, "aioz", &list, None, "t").adopted, 0);
        assert_eq!(state.pins.len(), 1);
        assert_eq!(
            manifest_entries(&found.unmanaged),
            format!("pins:\n  - cid: \"{C}\"\n    name: \"held\"\n    to: [\"aioz\"]\n")
        );
    }

    #[test]
    fn clusters_and_the_target_filter_are_respected() {
        let m = manifest(&format!(
            "  - cid: {A}\n    to: [arkive/cl1-eu, arkive/cl2-de]\n  - cid: {C}\n    to: [arkive]\n"
        ));
        let list = [
            listed(A, Some("cl1-eu"), ProviderStatus::Pinned),
            listed(A, Some("cl0-global"), ProviderStatus::Pinned),
            listed(C, Some("cl2-us"), ProviderStatus::Pinned),
        ];
        let mut state = State::new();
        let only = Target::parse("arkive/cl1-eu").unwrap();
        let found = adopt(&m, &mut state, "arkive", &list, Some(&only), "t");
        assert_eq!(found.adopted, 1, "only arkive/cl1-eu");
        assert!(
            found.unmanaged.is_empty(),
            "the others are outside the filter"
        );
        let found = adopt(&m, &mut state, "arkive", &list, None, "t");
        // C on any cluster (the manifest names none); A on cl0-global is not wanted.
        assert_eq!(found.adopted, 1);
        assert_eq!(found.unmanaged.len(), 1);
        let targets: Vec<String> = state.pins.keys().map(|k| k.target.to_string()).collect();
        assert_eq!(targets, ["arkive", "arkive/cl1-eu"]);
    }

    #[test]
    fn a_pinned_copy_wins_over_an_older_failed_request() {
        let m = manifest(&format!("  - cid: {A}\n    to: [aioz]\n"));
        let mut failed = listed(A, None, ProviderStatus::Failed);
        failed.pin_id = Some("old".into());
        let list = [failed, listed(A, None, ProviderStatus::Pinned)];
        let mut state = State::new();
        let found = adopt(&m, &mut state, "aioz", &list, None, "t");
        assert_eq!((found.adopted, found.failed), (1, 0));
        let record = state.pins.values().next().unwrap();
        assert_eq!(record.pin_id.as_deref(), Some(format!("id-{A}").as_str()));
    }
}
