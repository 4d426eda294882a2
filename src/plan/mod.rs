//! The plan: what must change for the state to match the manifest.
//!
//! [`plan`] is a pure function of (manifest, state); it does no I/O, so it is
//! tested directly and a plan can be printed, saved and applied later.

pub mod saved_plan;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::{Labels, Manifest, PinKey, ProviderConfig, Target};
use crate::state::{PinStatus, State};

/// Version of the plan document (`--json`, `--out`).
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `+`: pin on the provider and record it.
    Pin,
    /// `~`: already pinned; its name or meta changed, or it is back in the
    /// manifest after being orphaned. Recorded in the state; no provider
    /// call, as the providers offer no call to relabel a pin.
    Update,
    /// `-`: no longer in the manifest. Left pinned (pinsync does not unpin);
    /// marked orphaned in the state.
    Orphan,
}

/// What a pin looked like in the state before an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous {
    #[serde(flatten)]
    pub labels: Labels,
    pub status: PinStatus,
}

/// One change to one (target, CID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    #[serde(flatten)]
    pub target: Target,
    /// The CID as the manifest writes it (for `orphan`: as it was pinned).
    pub cid: String,
    /// The canonical CIDv1 that identifies the pin.
    pub canonical_cid: String,
    #[serde(flatten)]
    pub labels: Labels,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Previous>,
}

impl Change {
    pub fn key(&self) -> PinKey {
        PinKey {
            target: self.target.clone(),
            cid: self.canonical_cid.clone(),
        }
    }
}

/// Counts for the one-line summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub pin: usize,
    pub update: usize,
    pub orphan: usize,
    pub unchanged: usize,
}

impl Summary {
    pub fn has_changes(&self) -> bool {
        self.pin + self.update + self.orphan > 0
    }
}

/// Which state a plan was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRef {
    pub lineage: String,
    pub serial: u64,
}

/// A plan: the changes, and everything needed to apply them later
/// (providers by name with their credential *variable names*, never values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub state: StateRef,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub changes: Vec<Change>,
    pub summary: Summary,
}

/// Diffs the manifest against the state.
pub fn plan(manifest: &Manifest, state: &State) -> Plan {
    let mut changes = Vec::with_capacity(manifest.pins.len());
    let mut summary = Summary::default();
    let mut desired = manifest.pins.iter().map(|(k, v)| (k, v)).peekable();
    let mut recorded = state.pins.iter().peekable();
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
                    action: Action::Pin,
                    target: key.target.clone(),
                    cid: pin.cid.clone(),
                    canonical_cid: key.cid.clone(),
                    labels: pin.labels.clone(),
                    previous: None,
                });
            }
            Ordering::Greater => {
                let (key, record) = recorded.next().expect("peeked");
                if record.status == PinStatus::Managed {
                    summary.orphan += 1;
                    changes.push(Change {
                        action: Action::Orphan,
                        target: key.target.clone(),
                        cid: record.cid_as_pinned.clone(),
                        canonical_cid: key.cid.clone(),
                        labels: record.labels.clone(),
                        previous: None,
                    });
                }
            }
            Ordering::Equal => {
                let (key, pin) = desired.next().expect("peeked");
                let (_, record) = recorded.next().expect("peeked");
                if record.status == PinStatus::Managed && record.labels == pin.labels {
                    summary.unchanged += 1;
                    continue;
                }
                summary.update += 1;
                changes.push(Change {
                    action: Action::Update,
                    target: key.target.clone(),
                    cid: record.cid_as_pinned.clone(),
                    canonical_cid: key.cid.clone(),
                    labels: pin.labels.clone(),
                    previous: Some(Previous {
                        labels: record.labels.clone(),
                        status: record.status,
                    }),
                });
            }
        }
    }
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        state: StateRef {
            lineage: state.lineage.clone(),
            serial: state.serial,
        },
        providers: manifest.providers.clone(),
        changes,
        summary,
    }
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
            state
                .pins
                .insert(key.clone(), record(&pin.cid, pin.labels.clone()));
        }
        state
    }

    fn record(cid: &str, labels: Labels) -> PinRecord {
        PinRecord {
            cid_as_pinned: cid.into(),
            labels,
            pin_id: None,
            pinned_at: "2026-01-01T00:00:00Z".into(),
            status: PinStatus::Managed,
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
        let p = plan(&m, &State::new());
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
                unchanged: 0
            }
        );
    }

    #[test]
    fn applied_state_has_no_changes() {
        let m = manifest(&format!(
            "  - cid: {HOME_V0}\n    name: home\n  - cid: {DOCS}\n    meta: {{team: web}}\n"
        ));
        let p = plan(&m, &applied(&m));
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
        assert!(plan(&rewritten, &state).changes.is_empty());
    }

    #[test]
    fn renamed_pin_is_an_update_with_the_old_name() {
        let before = manifest(&format!("  - cid: {DOCS}\n    name: old\n"));
        let after = manifest(&format!("  - cid: {DOCS}\n    name: new\n"));
        let p = plan(&after, &applied(&before));
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
        let p = plan(&after, &state);
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
                unchanged: 1
            }
        );

        for c in &p.changes {
            state.pins.get_mut(&c.key()).unwrap().status = PinStatus::Orphaned;
        }
        assert!(
            plan(&after, &state).changes.is_empty(),
            "an orphan is reported once"
        );

        let back = plan(&before, &state);
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
        let p = plan(&m, &s);
        assert_eq!(
            p.state,
            StateRef {
                lineage: s.lineage.clone(),
                serial: 7
            }
        );
        assert_eq!(p.providers.len(), 2);
    }
}
