//! The plan: what must change for the state to match the manifest.
//!
//! [`plan`] is a pure function of (manifest, state, options); it does no
//! I/O, so it is tested directly and a plan can be printed, saved and
//! applied later. [`guards`] says whether a plan unpins too much.

mod pace;
pub mod saved_plan;

pub(crate) use pace::{Pace, pace};

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::manifest::{CanonicalCid, DesiredPin, Labels, Manifest, PinKey, ProviderConfig, Target};
use crate::state::{PinStatus, State};

/// Version of the plan document (`--json`, `--out`).
/// Version 2 added unpins and their order, version 3 origins and each
/// provider's rate limits; an older plan is refused (made again, it says
/// everything this build would act on).
pub(crate) const PLAN_FORMAT_VERSION: u32 = 4;

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    /// `+`: pin on the provider and record it.
    Pin,
    /// `~`: already pinned; its name or meta changed, or it is back in the
    /// manifest after being orphaned. Recorded in the state; no provider
    /// call, as the providers offer no call to relabel a pin.
    Update,
    /// `-`: no longer in the manifest, and not pruned (or it cannot be
    /// unpinned: see `reason`). Left pinned; marked orphaned in the state.
    Orphan,
    /// `-`: no longer in the manifest, pruned: unpinned on the provider and
    /// dropped from the state. Unpins come after every pin of the plan.
    Unpin,
    /// `!`: drift: the provider lost or failed a pin the manifest wants
    /// (`pinsync refresh` found it); pinned again, a failed request first
    /// removed by its id.
    Repin,
}

/// What a pin looked like in the state before an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Previous {
    #[serde(flatten)]
    pub(crate) labels: Labels,
    pub(crate) status: PinStatus,
}

/// One change to one (target, CID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Change {
    pub(crate) action: Action,
    #[serde(flatten)]
    pub(crate) target: Target,
    /// The CID as the manifest writes it (for `orphan`: as it was pinned).
    pub(crate) cid: String,
    /// The canonical CIDv1 that identifies the pin.
    pub(crate) canonical_cid: CanonicalCid,
    #[serde(flatten)]
    pub(crate) labels: Labels,
    /// `pin`, `repin`, `update`: the manifest's origins for the pin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) previous: Option<Previous>,
    /// `unpin`: the provider's id for the pin, which AIOZ unpins by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pin_id: Option<String>,
    /// `unpin` of a CID this plan pins elsewhere (a move): the unpin waits
    /// for those pins, and is skipped if any of them fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) moved_to: Vec<Target>,
    /// `orphan` under pruning: why it cannot be unpinned; `repin`: what
    /// the provider said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

impl Change {
    /// Whether this change is a call to `provider`: pins, re-pins, unpins,
    /// and a label change where the API can make it (the Pinning Service
    /// API's replace); other label changes are only recorded.
    pub(crate) fn calls(&self, provider: Option<&ProviderConfig>) -> bool {
        match self.action {
            Action::Pin | Action::Repin | Action::Unpin => true,
            Action::Orphan => false,
            Action::Update => {
                provider.is_some_and(|c| c.kind.capabilities().replace)
                    && self.pin_id.is_some()
                    && self
                        .previous
                        .as_ref()
                        .is_some_and(|p| p.labels != self.labels)
            }
        }
    }

    /// A change with nothing but its action, pin and labels.
    fn new(action: Action, key: &PinKey, cid: &str, labels: &Labels) -> Self {
        Self {
            action,
            target: key.target.clone(),
            cid: cid.to_owned(),
            canonical_cid: key.cid.clone(),
            labels: labels.clone(),
            origins: Vec::new(),
            previous: None,
            pin_id: None,
            moved_to: Vec::new(),
            reason: None,
        }
    }

    pub(crate) fn key(&self) -> PinKey {
        PinKey {
            target: self.target.clone(),
            cid: self.canonical_cid.clone(),
        }
    }
}

/// Counts for the one-line summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) pin: usize,
    pub(crate) update: usize,
    pub(crate) orphan: usize,
    #[serde(default)]
    pub(crate) unpin: usize,
    #[serde(default)]
    pub(crate) repin: usize,
    pub(crate) unchanged: usize,
}

impl Summary {
    pub(crate) fn has_changes(&self) -> bool {
        self.pin + self.update + self.orphan + self.unpin + self.repin > 0
    }
}

/// How to plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Unpin what the manifest no longer asks for (`--prune`, or
    /// `prune: true` in the manifest).
    pub(crate) prune: bool,
}

/// Which state a plan was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateRef {
    pub(crate) lineage: String,
    pub(crate) serial: u64,
}

/// A plan: the changes, and everything needed to apply them later
/// (providers by name with their credential *variable names*, never values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub(crate) format_version: u32,
    pub(crate) state: StateRef,
    pub(crate) providers: BTreeMap<String, ProviderConfig>,
    pub(crate) changes: Vec<Change>,
    pub(crate) summary: Summary,
    /// Each provider's calls and the time they take at its rate limit.
    /// Worked out from the rest, never read from a saved plan.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) pace: BTreeMap<String, Pace>,
}

impl Plan {
    /// How many changes it holds, unchanged pins included.
    pub fn change_count(&self) -> usize {
        self.changes.len()
    }
}

/// Diffs the manifest against the state.
pub fn plan(manifest: &Manifest, state: &State, options: PlanOptions) -> Plan {
    let desired = manifest.pins.iter().map(|(k, v)| (k, v));
    plan_of(manifest, state, options, desired, state.pins.iter(), 0)
}

/// [`plan`] of the pins `keys` (sorted) only: after an edit read file by
/// file, those it touched (watch). The rest of the manifest is in sync
/// with the state already, and is counted unchanged, so that the guards
/// still weigh the whole manifest.
pub(crate) fn plan_of_pins(
    manifest: &Manifest,
    state: &State,
    options: PlanOptions,
    keys: &[PinKey],
) -> Plan {
    let desired: Vec<(&PinKey, &DesiredPin)> = keys
        .iter()
        .filter_map(|k| Some((k, manifest.pin(k)?)))
        .collect();
    let recorded = keys.iter().filter_map(|k| Some((k, state.pins.get(k)?)));
    let untouched = manifest.pins.len() - desired.len();
    plan_of(
        manifest,
        state,
        options,
        desired.into_iter(),
        recorded,
        untouched,
    )
}

/// Walks `desired` and `recorded` (each sorted by key) together into a
/// plan; `untouched` more pins of the manifest are in sync.
fn plan_of<'a>(
    manifest: &Manifest,
    state: &State,
    options: PlanOptions,
    desired: impl Iterator<Item = (&'a PinKey, &'a DesiredPin)>,
    recorded: impl Iterator<Item = (&'a PinKey, &'a crate::state::PinRecord)>,
    untouched: usize,
) -> Plan {
    let prune = options.prune || manifest.prune;
    let mut changes = Vec::with_capacity(manifest.pins.len() - untouched);
    let mut unpins = Vec::new();
    let mut summary = Summary {
        unchanged: untouched,
        ..Summary::default()
    };
    let mut desired = desired.peekable();
    let mut recorded = recorded.peekable();
    // Both maps are sorted by key: walk them together, O(n + m).
    loop {
        let order = match (desired.peek(), recorded.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((d, _)), Some((r, _))) => d.cmp(r),
        };
        match order {
            Ordering::Less => {
                let (key, pin) = desired.next().expect("peeked");
                summary.pin += 1;
                changes.push(Change {
                    origins: pin.origins().to_vec(),
                    ..Change::new(Action::Pin, key, &pin.sent_cid(key), &pin.labels)
                });
            }
            Ordering::Greater => {
                let (key, record) = recorded.next().expect("peeked");
                let unpinnable = prune.then(|| unpinnable(manifest, key, record));
                let change = |action, reason| Change {
                    pin_id: record.pin_id.as_deref().map(Into::into),
                    reason,
                    ..Change::new(action, key, &record.sent_cid(key), &record.labels)
                };
                match unpinnable {
                    Some(Ok(())) => {
                        summary.unpin += 1;
                        unpins.push(change(Action::Unpin, None));
                    }
                    // Shown once, when it leaves the manifest; after that it
                    // is an orphan like any other, or no plan would settle.
                    Some(Err(reason)) if record.status == PinStatus::Managed => {
                        summary.orphan += 1;
                        changes.push(change(Action::Orphan, Some(reason)));
                    }
                    Some(Err(_)) => {}
                    None if record.status == PinStatus::Managed => {
                        summary.orphan += 1;
                        changes.push(change(Action::Orphan, None));
                    }
                    None => {}
                }
            }
            Ordering::Equal => {
                let (key, pin) = desired.next().expect("peeked");
                let (_, record) = recorded.next().expect("peeked");
                if let Some(observed) = record.observed.as_ref().filter(|o| o.status.is_lost()) {
                    summary.repin += 1;
                    let failed = observed.status == crate::state::ProviderStatus::Failed;
                    let reason = if failed {
                        "the provider reports it failed"
                    } else {
                        "the provider no longer holds it"
                    };
                    changes.push(Change {
                        // Only a failed request of ours is removed (by this
                        // id) before pinning again; a missing one, or one
                        // made by someone else, is just pinned.
                        pin_id: record
                            .pin_id
                            .as_deref()
                            .filter(|_| failed && !record.foreign)
                            .map(Into::into),
                        reason: Some(format!("{reason} (checked {})", observed.at)),
                        origins: pin.origins().to_vec(),
                        ..Change::new(Action::Repin, key, &pin.sent_cid(key), &pin.labels)
                    });
                    continue;
                }
                if record.status == PinStatus::Managed && record.labels == pin.labels {
                    summary.unchanged += 1;
                    continue;
                }
                summary.update += 1;
                changes.push(Change {
                    previous: Some(Previous {
                        labels: record.labels.clone(),
                        status: record.status,
                    }),
                    // A Pinning Service replaces the request by its id; one
                    // made by someone else keeps its labels there.
                    pin_id: record
                        .pin_id
                        .as_deref()
                        .filter(|_| !record.foreign)
                        .map(Into::into),
                    reason: record.foreign.then(|| {
                        foreign(manifest.providers.get(key.target.provider.as_str()))
                            + "; its labels there are left as they are"
                    }),
                    origins: pin.origins().to_vec(),
                    ..Change::new(Action::Update, key, &record.sent_cid(key), &pin.labels)
                });
            }
        }
    }
    if !unpins.is_empty() {
        keep_shared_cluster_copies(manifest, state, &mut unpins, &mut changes, &mut summary);
        mark_moves(&changes, &mut unpins);
        // Unpins come last: every pin of the plan lands before any of them.
        changes.append(&mut unpins);
    }
    let mut plan = Plan {
        format_version: PLAN_FORMAT_VERSION,
        state: StateRef {
            lineage: state.lineage.clone(),
            serial: state.serial,
        },
        providers: manifest.providers.clone(),
        changes,
        summary,
        pace: BTreeMap::new(),
    };
    plan.pace = pace(&plan);
    plan
}

/// Why a recorded pin is left as it is on its provider: it was adopted,
/// on a type that marks pins (`config`) because it lacks the mark, on one
/// that does not because it was there before pinsync pinned it.
fn foreign(config: Option<&ProviderConfig>) -> String {
    let marks = config.is_none_or(|c| c.kind.capabilities().ownership_marks);
    if marks {
        "adopted, not made by this manifest (the pin lacks its `pinsync` mark)".into()
    } else {
        "adopted, not made by this manifest (it was there before pinsync pinned it)".into()
    }
}

/// Whether pinsync can unpin a recorded pin, or why not.
fn unpinnable(
    manifest: &Manifest,
    key: &PinKey,
    record: &crate::state::PinRecord,
) -> Result<(), String> {
    let Some(config) = manifest.providers.get(key.target.provider.as_str()) else {
        return Err(format!(
            "provider `{}` is no longer in the manifest; declare it again to unpin",
            key.target.provider
        ));
    };
    if record.foreign {
        return Err(foreign(Some(config)) + "; pinsync never removes it");
    }
    if config.kind.capabilities().unpins_by_pin_id() && record.pin_id.is_none() {
        return Err(format!(
            "{} unpins by pin id, and none is recorded for this pin",
            config.kind.provider_type().title
        ));
    }
    Ok(())
}

/// A service that unpins by CID (Pinarkive) removes it from the cluster it
/// recorded, or every cluster. An unpin of a CID that is also wanted or recorded on
/// another of its clusters could take that copy too, so it is kept
/// orphaned, with the reason, rather than risked.
fn keep_shared_cluster_copies(
    manifest: &Manifest,
    state: &State,
    unpins: &mut Vec<Change>,
    changes: &mut Vec<Change>,
    summary: &mut Summary,
) {
    let by_cid = |provider: &str| {
        manifest
            .providers
            .get(provider)
            .is_some_and(|c| c.kind.has_clusters() && !c.kind.capabilities().unpins_by_pin_id())
    };
    if !unpins.iter().any(|c| by_cid(&c.target.provider)) {
        return;
    }
    // Targets of each (provider, CID), wanted or recorded.
    let mut targets: BTreeMap<(&str, &CanonicalCid), BTreeSet<&Target>> = BTreeMap::new();
    let keys = manifest
        .pins
        .iter()
        .map(|(k, _)| k)
        .chain(state.pins.keys());
    for key in keys.filter(|k| by_cid(&k.target.provider)) {
        targets
            .entry((key.target.provider.as_str(), &key.cid))
            .or_default()
            .insert(&key.target);
    }
    let (shared, kept): (Vec<Change>, Vec<Change>) =
        std::mem::take(unpins).into_iter().partition(|c| {
            by_cid(&c.target.provider)
                && targets
                    .get(&(c.target.provider.as_str(), &c.canonical_cid))
                    .is_some_and(|t| t.len() > 1)
        });
    *unpins = kept;
    for mut change in shared {
        let title = manifest
            .providers
            .get(change.target.provider.as_str())
            .map_or("this service", |c| c.kind.provider_type().title);
        summary.unpin -= 1;
        let recorded_orphan = state
            .pins
            .get(&change.key())
            .is_some_and(|r| r.status == PinStatus::Orphaned);
        if recorded_orphan {
            continue;
        }
        summary.orphan += 1;
        change.action = Action::Orphan;
        change.reason = Some(format!(
            "{title} removes a CID from every cluster (or the one it recorded), and this CID \
             is pinned on another cluster here too"
        ));
        changes.push(change);
    }
}

/// A CID unpinned from one target while this plan pins (or re-pins) it on
/// another is a move: its unpin waits for those pins (make before break).
fn mark_moves(changes: &[Change], unpins: &mut [Change]) {
    let unpinned: BTreeSet<&CanonicalCid> = unpins.iter().map(|c| &c.canonical_cid).collect();
    let mut pinned_to: BTreeMap<&CanonicalCid, Vec<&Target>> = BTreeMap::new();
    for c in changes
        .iter()
        .filter(|c| matches!(c.action, Action::Pin | Action::Repin))
    {
        if unpinned.contains(&c.canonical_cid) {
            pinned_to
                .entry(&c.canonical_cid)
                .or_default()
                .push(&c.target);
        }
    }
    for unpin in unpins {
        if let Some(targets) = pinned_to.get(&unpin.canonical_cid) {
            unpin.moved_to = targets.iter().map(|&t| t.clone()).collect();
        }
    }
}

/// What may pass a guard: `--max-unpins N` or `--force-unpins`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UnpinAllowance {
    pub(crate) max_unpins: Option<usize>,
    pub(crate) force: bool,
}

/// The safety guards a plan's unpins trip, each as a message saying how to
/// pass it; empty when the plan may be applied. `state` is the one the plan
/// was made from (a target's pins are counted there).
pub(crate) fn guards(plan: &Plan, state: &State, allowance: UnpinAllowance) -> Vec<String> {
    let unpins = plan.summary.unpin;
    if unpins == 0 || allowance.force || allowance.max_unpins.is_some_and(|max| unpins <= max) {
        return Vec::new();
    }
    let pass = format!("pass it with --max-unpins {unpins} (or more), or --force-unpins");
    let mut fired = Vec::new();
    // Argo CD's allowEmpty: an empty manifest is far more often a mistake
    // (a bad merge, a wrong path) than an intent.
    if plan.summary.pin + plan.summary.repin + plan.summary.update + plan.summary.unchanged == 0 {
        fired.push(format!(
            "the manifest asks for no pins, and this plan would unpin all {unpins} pinsync manages; {pass}"
        ));
        return fired;
    }
    let mut by_target: BTreeMap<&Target, usize> = BTreeMap::new();
    for c in plan.changes.iter().filter(|c| c.action == Action::Unpin) {
        *by_target.entry(&c.target).or_default() += 1;
    }
    for (target, n) in by_target {
        let held = state
            .pins
            .keys()
            .filter(|k| &k.target == target)
            .count()
            .max(n);
        let guard = plan
            .providers
            .get(target.provider.as_str())
            .map(|c| c.unpin_guard)
            .unwrap_or_default();
        let over_count = n > guard.count as usize;
        let over_share = n * 100 > held * guard.percent as usize;
        if over_count && over_share {
            fired.push(format!(
                "this plan would unpin {n} of the {held} pins on {target}, more than {} and more than {}% of them; {pass}",
                guard.count, guard.percent
            ));
        }
    }
    fired
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::state::PinRecord;

    const HOME_V0: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
    const DOCS: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

    fn manifest(pins: &str) -> Manifest {
        let text = format!(
            "version: 1\nproviders:\n  aioz:\n    type: aioz\n    api_key: ${{K}}\n    secret_key: ${{S}}\n  arkive:\n    type: pinarkive\n    api_key: ${{P}}\ndefaults:\n  to: [aioz]\npins:\n{pins}"
        );
        crate::manifest::parse(Path::new("pins.yaml"), text.as_bytes()).unwrap()
    }

    /// The state after applying `m` completely.
    fn applied(m: &Manifest) -> State {
        let mut state = State::new();
        for (key, pin) in &m.pins {
            state.pins.insert(
                key.clone(),
                record(pin.cid_as_written(), pin.labels.clone()),
            );
        }
        state
    }

    fn record(cid_as_pinned: Option<&str>, labels: Labels) -> PinRecord {
        PinRecord {
            cid_as_pinned: cid_as_pinned.map(Into::into),
            ..PinRecord::managed(labels)
        }
    }

    fn actions(p: &Plan) -> Vec<(Action, String)> {
        p.changes
            .iter()
            .map(|c| (c.action, format!("{} {}", c.target, c.cid)))
            .collect()
    }

    #[test]
    fn empty_state_pins_every_target() {
        let m = manifest(&format!(
            "  - cid: {HOME_V0}\n    to: [aioz, arkive/cl0-global]\n  - cid: {DOCS}\n"
        ));
        let p = plan(&m, &State::new(), PlanOptions::default());
        let got: std::collections::BTreeSet<_> = actions(&p).into_iter().collect();
        let want: std::collections::BTreeSet<_> = [
            (Action::Pin, format!("aioz {DOCS}")),
            (Action::Pin, format!("aioz {HOME_V0}")),
            (Action::Pin, format!("arkive/cl0-global {HOME_V0}")),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
        let keys: Vec<PinKey> = p.changes.iter().map(Change::key).collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "changes are in key order"
        );
        assert_eq!(
            p.summary,
            Summary {
                pin: 3,
                update: 0,
                orphan: 0,
                unpin: 0,
                repin: 0,
                unchanged: 0
            }
        );
    }

    #[test]
    fn applied_state_has_no_changes() {
        let m = manifest(&format!(
            "  - cid: {HOME_V0}\n    name: home\n  - cid: {DOCS}\n    meta: {{team: web}}\n"
        ));
        let p = plan(&m, &applied(&m), PlanOptions::default());
        assert!(p.changes.is_empty());
        assert_eq!(p.summary.unchanged, 2);
        assert!(!p.summary.has_changes());
    }

    #[test]
    fn rewriting_a_cid_in_its_other_form_is_not_a_change() {
        let m = manifest(&format!("  - cid: {HOME_V0}\n"));
        let state = applied(&m);
        let v1 = m.pins[0].0.cid.clone();
        let rewritten = manifest(&format!("  - cid: {v1}\n"));
        assert!(
            plan(&rewritten, &state, PlanOptions::default())
                .changes
                .is_empty()
        );
    }

    #[test]
    fn renamed_pin_is_an_update_with_the_old_name() {
        let before = manifest(&format!("  - cid: {DOCS}\n    name: old\n"));
        let after = manifest(&format!("  - cid: {DOCS}\n    name: new\n"));
        let p = plan(&after, &applied(&before), PlanOptions::default());
        assert_eq!(p.changes.len(), 1);
        let c = &p.changes[0];
        assert_eq!(c.action, Action::Update);
        assert_eq!(c.labels.name.as_deref(), Some("new"));
        assert_eq!(
            c.previous.as_ref().unwrap().labels.name.as_deref(),
            Some("old")
        );
    }

    #[test]
    fn removed_pin_is_orphaned_once_and_readopted_when_back() {
        let before = manifest(&format!("  - cid: {DOCS}\n  - cid: {HOME_V0}\n"));
        let after = manifest(&format!("  - cid: {DOCS}\n"));
        let mut state = applied(&before);
        let p = plan(&after, &state, PlanOptions::default());
        assert_eq!(
            actions(&p),
            vec![(Action::Orphan, format!("aioz {HOME_V0}"))]
        );
        assert_eq!(
            p.summary,
            Summary {
                pin: 0,
                update: 0,
                orphan: 1,
                unpin: 0,
                repin: 0,
                unchanged: 1
            }
        );

        for c in &p.changes {
            state.pins.get_mut(&c.key()).unwrap().status = PinStatus::Orphaned;
        }
        assert!(
            plan(&after, &state, PlanOptions::default())
                .changes
                .is_empty(),
            "an orphan is reported once"
        );

        let back = plan(&before, &state, PlanOptions::default());
        assert_eq!(
            actions(&back),
            vec![(Action::Update, format!("aioz {HOME_V0}"))]
        );
        assert_eq!(
            back.changes[0].previous.as_ref().unwrap().status,
            PinStatus::Orphaned
        );
    }

    #[test]
    fn plan_carries_the_state_it_was_made_from() {
        let m = manifest("  []\n");
        let mut s = State::new();
        s.serial = 7;
        let p = plan(&m, &s, PlanOptions::default());
        assert_eq!(
            p.state,
            StateRef {
                lineage: s.lineage.clone(),
                serial: 7
            }
        );
        assert_eq!(p.providers.len(), 2);
    }

    const PRUNE: PlanOptions = PlanOptions { prune: true };

    /// `n` pins on `to`, the state holding them all with pin ids.
    fn many(n: usize, to: &str) -> (String, State) {
        let mut pins = String::new();
        for i in 0..n {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let mh = cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
            pins.push_str(&format!(
                "  - cid: {}\n    to: [{to}]\n",
                cid::Cid::new_v1(0x55, mh)
            ));
        }
        let mut state = applied(&manifest(&pins));
        for (i, record) in state.pins.values_mut().enumerate() {
            record.pin_id = Some(format!("id-{i}").into());
        }
        (pins, state)
    }

    /// A plan of some pins is the whole plan's changes of those pins, with
    /// the rest of the manifest counted unchanged; its guards weigh the
    /// whole manifest.
    #[test]
    fn a_plan_of_some_pins_is_the_whole_plan_of_those_pins() {
        let (pins, state) = many(40, "aioz");
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..50 {
            // Some pins dropped, some renamed, some added on arkive.
            let mut edited = String::new();
            for (i, pin) in pins.split("  - cid: ").skip(1).enumerate() {
                match rng.u8(0..5) {
                    0 => {}
                    1 => edited += &format!("  - cid: {}    name: renamed\n", pin),
                    2 => {
                        edited += &format!(
                            "  - cid: {}  - cid: {}    to: [arkive]\n",
                            pin,
                            pin.lines().next().unwrap().to_owned() + "\n"
                        )
                    }
                    _ => edited += &format!("  - cid: {pin}"),
                }
                let _ = i;
            }
            let m = manifest(&edited);
            let options = PlanOptions { prune: rng.bool() };
            let whole = plan(&m, &state, options);
            let mut keys: Vec<PinKey> = state.pins.keys().cloned().collect();
            keys.extend(m.pins.iter().map(|(k, _)| k.clone()));
            keys.sort();
            keys.dedup();
            keys.retain(|_| rng.bool());
            let some = plan_of_pins(&m, &state, options, &keys);
            let of_keys: Vec<&Change> = whole
                .changes
                .iter()
                .filter(|c| keys.contains(&c.key()))
                .collect();
            assert_eq!(some.changes.iter().collect::<Vec<_>>(), of_keys);
            let in_sync = m.pin_count()
                - whole
                    .changes
                    .iter()
                    .filter(|c| m.pin(&c.key()).is_some())
                    .count();
            assert_eq!(
                some.summary.pin
                    + some.summary.update
                    + some.summary.repin
                    + some.summary.unchanged,
                m.pin_count()
            );
            assert_eq!(whole.summary.unchanged, in_sync);
        }
        // Emptied: refused as a whole plan is, whatever pins are planned.
        let empty = manifest("  []\n");
        let keys: Vec<PinKey> = state.pins.keys().take(3).cloned().collect();
        let some = plan_of_pins(&empty, &state, PRUNE, &keys);
        assert!(!guards(&some, &state, UnpinAllowance::default()).is_empty());
        // Three of forty: not refused, as a whole plan of them is not.
        let (mut fewer, _) = many(40, "aioz");
        fewer = fewer
            .split("  - cid: ")
            .skip(4)
            .map(|p| format!("  - cid: {p}"))
            .collect();
        let m = manifest(&fewer);
        let some = plan_of_pins(&m, &state, PRUNE, &keys);
        assert_eq!(some.summary.unpin, 3);
        assert_eq!(some.summary.unchanged, 37);
        assert!(guards(&some, &state, UnpinAllowance::default()).is_empty());
    }

    #[test]
    fn without_prune_a_removed_pin_is_orphaned_and_with_it_unpinned() {
        let before = manifest(&format!(
            "  - cid: {DOCS}\n  - cid: {HOME_V0}\n    to: [arkive]\n"
        ));
        let after = manifest(&format!("  - cid: {DOCS}\n"));
        let mut state = applied(&before);
        let kept = plan(&after, &state, PlanOptions::default());
        assert_eq!(
            actions(&kept),
            vec![(Action::Orphan, format!("arkive {HOME_V0}"))]
        );
        let pruned = plan(&after, &state, PRUNE);
        assert_eq!(
            actions(&pruned),
            vec![(Action::Unpin, format!("arkive {HOME_V0}"))]
        );
        assert_eq!(pruned.summary.unpin, 1);
        assert_eq!(pruned.summary.orphan, 0);
        // An orphan recorded by an earlier apply is pruned too.
        for r in state.pins.values_mut() {
            r.status = PinStatus::Orphaned;
            r.pin_id = Some("id".into());
        }
        let pruned = plan(&manifest("  []\n"), &state, PRUNE);
        assert_eq!(pruned.summary.unpin, 2);
        // `prune: true` in the manifest is the same as the flag.
        let mut after = after;
        after.prune = true;
        assert_eq!(
            plan(&after, &state, PlanOptions::default()).summary.unpin,
            1
        );
    }

    #[test]
    fn a_pin_that_cannot_be_unpinned_stays_orphaned_with_the_reason() {
        let before = manifest(&format!("  - cid: {DOCS}\n"));
        let state = applied(&before); // AIOZ, no pin id recorded
        let p = plan(&manifest("  []\n"), &state, PRUNE);
        assert_eq!(actions(&p), vec![(Action::Orphan, format!("aioz {DOCS}"))]);
        assert!(
            p.changes[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("AIOZ unpins by pin id")
        );
        // A provider gone from the manifest cannot be called at all.
        let mut m = manifest("  []\n");
        m.providers.remove("aioz");
        let mut state = state;
        state
            .pins
            .values_mut()
            .for_each(|r| r.pin_id = Some("id".into()));
        let p = plan(&m, &state, PRUNE);
        assert!(
            p.changes[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("no longer in the manifest")
        );
    }

    /// A Pinning Service request adopted without this manifest's mark is
    /// never unpinned, replaced, or removed before a re-pin.
    #[test]
    fn a_foreign_pin_is_left_as_it_is_on_the_service() {
        let psa = |pins: &str| {
            let text = format!(
                "version: 1\nproviders:\n  psa:\n    type: pinning-service\n    base_url: https://psa.example\n    token: ${{T}}\ndefaults:\n  to: [psa]\npins:\n{pins}"
            );
            crate::manifest::parse(Path::new("pins.yaml"), text.as_bytes()).unwrap()
        };
        let before = psa(&format!("  - cid: {DOCS}\n    name: docs\n"));
        let mut state = applied(&before);
        for r in state.pins.values_mut() {
            r.pin_id = Some("req-1".into());
            r.foreign = true;
        }
        let config = before.providers.get("psa");

        let pruned = plan(&psa("  []\n"), &state, PRUNE);
        assert_eq!(actions(&pruned), [(Action::Orphan, format!("psa {DOCS}"))]);
        assert!(
            pruned.changes[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("adopted, not made by this manifest")
        );

        let renamed = plan(
            &psa(&format!("  - cid: {DOCS}\n    name: docs-v2\n")),
            &state,
            PRUNE,
        );
        let update = &renamed.changes[0];
        assert_eq!(update.action, Action::Update);
        assert!(!update.calls(config), "no replace of a foreign request");
        assert!(
            update
                .reason
                .as_deref()
                .unwrap()
                .contains("labels there are left")
        );

        for r in state.pins.values_mut() {
            r.observed = Some(Box::new(crate::state::Observed {
                status: crate::state::ProviderStatus::Failed,
                at: "2026-01-01T00:00:00Z".into(),
            }));
        }
        let repin = plan(&before, &state, PlanOptions::default());
        assert_eq!(repin.changes[0].action, Action::Repin);
        assert_eq!(
            repin.changes[0].pin_id, None,
            "the foreign request is not removed first"
        );

        // The same pin made by this manifest is unpinned and replaced.
        for r in state.pins.values_mut() {
            r.foreign = false;
            r.observed = None;
        }
        assert_eq!(plan(&psa("  []\n"), &state, PRUNE).summary.unpin, 1);
        let renamed = plan(
            &psa(&format!("  - cid: {DOCS}\n    name: docs-v2\n")),
            &state,
            PRUNE,
        );
        assert!(renamed.changes[0].calls(config));
    }

    #[test]
    fn unpins_come_after_every_pin_and_a_move_names_its_new_targets() {
        let before = manifest(&format!("  - cid: {DOCS}\n    to: [arkive/cl1-eu]\n"));
        let after = manifest(&format!(
            "  - cid: {DOCS}\n    to: [aioz]\n  - cid: {HOME_V0}\n    to: [arkive/cl2-de]\n"
        ));
        let p = plan(&after, &applied(&before), PRUNE);
        let order: Vec<Action> = p.changes.iter().map(|c| c.action).collect();
        assert_eq!(order, [Action::Pin, Action::Pin, Action::Unpin]);
        let unpin = p.changes.last().unwrap();
        assert_eq!(unpin.target.to_string(), "arkive/cl1-eu");
        let moved: Vec<String> = unpin.moved_to.iter().map(ToString::to_string).collect();
        assert_eq!(moved, ["aioz"]);
    }

    #[test]
    fn the_guard_fires_past_both_its_count_and_its_share() {
        let (pins, state) = many(100, "aioz");
        let keep = |n: usize| manifest(&pins.lines().collect::<Vec<_>>()[..2 * n].join("\n"));
        let none = UnpinAllowance::default();
        // 11 of 100: over the count, under 25%.
        assert!(guards(&plan(&keep(89), &state, PRUNE), &state, none).is_empty());
        // 26 of 100: over both.
        let p = plan(&keep(74), &state, PRUNE);
        let fired = guards(&p, &state, none);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert!(
            fired[0].contains("unpin 26 of the 100 pins on aioz"),
            "{}",
            fired[0]
        );
        assert!(fired[0].contains("--max-unpins 26"), "{}", fired[0]);
        // Passed by an allowance that covers it, not by a smaller one.
        let max = |n| UnpinAllowance {
            max_unpins: Some(n),
            force: false,
        };
        assert!(guards(&p, &state, max(26)).is_empty());
        assert!(!guards(&p, &state, max(25)).is_empty());
        assert!(
            guards(
                &p,
                &state,
                UnpinAllowance {
                    max_unpins: None,
                    force: true
                }
            )
            .is_empty()
        );
        // 10 of 20 (50%) is under the count of 10.
        let (pins, small) = many(20, "aioz");
        let half = manifest(&pins.lines().collect::<Vec<_>>()[..20].join("\n"));
        assert!(guards(&plan(&half, &small, PRUNE), &small, none).is_empty());
    }

    #[test]
    fn the_guard_is_set_per_provider() {
        let (pins, state) = many(20, "aioz");
        let mut m = manifest(&pins.lines().collect::<Vec<_>>()[..30].join("\n"));
        let p = plan(&m, &state, PRUNE);
        assert_eq!(p.summary.unpin, 5);
        assert!(guards(&p, &state, UnpinAllowance::default()).is_empty());
        m.providers.get_mut("aioz").unwrap().unpin_guard = crate::manifest::UnpinGuard {
            count: 2,
            percent: 10,
        };
        let p = plan(&m, &state, PRUNE);
        assert_eq!(guards(&p, &state, UnpinAllowance::default()).len(), 1);
    }

    #[test]
    fn an_empty_manifest_never_unpins_without_an_allowance() {
        let (_, state) = many(3, "aioz");
        let p = plan(&manifest("  []\n"), &state, PRUNE);
        let fired = guards(&p, &state, UnpinAllowance::default());
        assert!(
            fired[0].contains("the manifest asks for no pins"),
            "{fired:?}"
        );
        assert!(
            guards(
                &p,
                &state,
                UnpinAllowance {
                    max_unpins: Some(3),
                    force: false
                }
            )
            .is_empty()
        );
        // Without pruning nothing is unpinned, so nothing fires.
        let p = plan(&manifest("  []\n"), &state, PlanOptions::default());
        assert!(guards(&p, &state, UnpinAllowance::default()).is_empty());
    }

    #[test]
    fn a_pinarkive_unpin_that_could_take_another_clusters_copy_is_kept() {
        let before = manifest(&format!(
            "  - cid: {DOCS}\n    to: [arkive, arkive/cl1-eu]\n  - cid: {HOME_V0}\n    to: [arkive/cl1-eu]\n"
        ));
        // `arkive` (no cluster) leaves; the CID stays wanted on cl1-eu.
        let after = manifest(&format!(
            "  - cid: {DOCS}\n    to: [arkive/cl1-eu]\n  - cid: {HOME_V0}\n    to: [arkive/cl0-global]\n"
        ));
        let mut state = applied(&before);
        let p = plan(&after, &state, PRUNE);
        let docs = p.changes.iter().find(|c| c.cid == DOCS).unwrap();
        assert_eq!(docs.action, Action::Orphan);
        assert!(
            docs.reason
                .as_deref()
                .unwrap()
                .contains("removes a CID from every cluster")
        );
        // A move between two of its clusters is kept too: the new copy
        // could go with the old.
        let home: Vec<Action> = p
            .changes
            .iter()
            .filter(|c| c.cid == HOME_V0)
            .map(|c| c.action)
            .collect();
        assert_eq!(home, [Action::Pin, Action::Orphan]);
        assert_eq!(p.summary.unpin, 0);
        // Once recorded as orphans, they are not changes any more.
        for r in state.pins.values_mut() {
            r.status = PinStatus::Orphaned;
        }
        let p = plan(&after, &state, PRUNE);
        assert!(
            p.changes.iter().all(|c| c.action != Action::Orphan),
            "{:?}",
            actions(&p)
        );
    }

    #[test]
    fn a_re_pin_counts_as_a_move_target_and_removes_only_a_failed_request_first() {
        use crate::state::{Observed, ProviderStatus};
        let before = manifest(&format!("  - cid: {DOCS}\n    to: [aioz, arkive/cl1-eu]\n"));
        let after = manifest(&format!("  - cid: {DOCS}\n    to: [aioz]\n"));
        let mut state = applied(&before);
        for (key, r) in state.pins.iter_mut() {
            r.pin_id = Some("id".into());
            if key.target.provider == "aioz" {
                r.observed = Some(Box::new(Observed {
                    status: ProviderStatus::Missing,
                    at: "t".into(),
                }));
            }
        }
        let p = plan(&after, &state, PRUNE);
        let repin = p
            .changes
            .iter()
            .find(|c| c.action == Action::Repin)
            .unwrap();
        assert_eq!(
            repin.pin_id, None,
            "a missing pin is pinned, not deleted first"
        );
        let unpin = p
            .changes
            .iter()
            .find(|c| c.action == Action::Unpin)
            .unwrap();
        assert_eq!(unpin.moved_to.len(), 1, "the unpin waits for the re-pin");
        for r in state.pins.values_mut().filter(|r| r.observed.is_some()) {
            r.observed = Some(Box::new(Observed {
                status: ProviderStatus::Failed,
                at: "t".into(),
            }));
        }
        let p = plan(&after, &state, PRUNE);
        let repin = p
            .changes
            .iter()
            .find(|c| c.action == Action::Repin)
            .unwrap();
        assert_eq!(
            repin.pin_id.as_deref(),
            Some("id"),
            "a failed request is removed by its id"
        );
        // Re-pins are wanted pins: the empty-manifest guard does not fire.
        assert!(guards(&p, &state, UnpinAllowance::default()).is_empty());
    }
}
