//! The state: pinsync's record of what it has pinned where.
//!
//! [`State`] is the in-memory model; [`StateFile`] reads and writes it
//! (atomic replace plus a journal of confirmed pins); [`StateLock`] keeps
//! two writers apart.

mod journal;
mod location;
mod lock;
pub(crate) mod pin_table;
mod postgres;
pub(crate) mod state_file;
mod state_file_error;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::manifest::{CanonicalCid, Labels, Manifest, Name, PinKey, Replication};

pub(crate) use journal::Journal;
pub(crate) use location::StateLocation;
pub(crate) use lock::{LockError, StateLock};
pub(crate) use pin_table::PinTable;
pub(crate) use postgres::{PgLocation, PgStore, is_postgres_url};
pub(crate) use state_file::{Restored, StateFile};
pub(crate) use state_file_error::StateFileError;
pub(crate) use store::{HeldLock, Recorder, StateStore};

/// Version of the state file format this build writes. Version 2 added
/// what the provider last said of each pin, version 3 the `foreign` mark
/// of adopted Pinning Service requests; an older state is read as one with
/// nothing observed and nothing foreign, and the first write keeps it as
/// the backup. Version 4 leaves out `"status": "managed"`, the status of
/// nearly every pin (19 of its 210 bytes).
pub(crate) const STATE_FORMAT_VERSION: u32 = 4;

/// The versions this build reads.
pub(crate) const READS_STATE_VERSIONS: [u32; 4] = [1, 2, 3, 4];

/// What pinsync has pinned, keyed by (target, canonical CID).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// Random id given when the state is first written (empty before); a
    /// saved plan only applies to the state it was made from.
    pub(crate) lineage: String,
    /// Grows by one on every write.
    pub(crate) serial: u64,
    /// Every recorded pin, in key order.
    pub(crate) pins: PinTable,
}

/// Whether a recorded pin is still asked for by the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PinStatus {
    /// In the manifest and pinned.
    #[default]
    Managed,
    /// Gone from the manifest; still pinned on the provider (pinsync does
    /// not unpin), kept here so nothing is forgotten.
    Orphaned,
}

/// A shared string behind one pointer, not two: at two million records
/// each word is 16 MB. For what a record holds once and rarely changes
/// (when it was pinned, a CID as sent), not for what is looked at often.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ThinStr(Arc<Box<str>>);

impl ThinStr {
    /// Whether both are the one copy.
    #[cfg(test)]
    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for ThinStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ThinStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ThinStr {
    fn from(text: &str) -> Self {
        Self(Arc::new(text.into()))
    }
}

impl From<String> for ThinStr {
    fn from(text: String) -> Self {
        Self(Arc::new(text.into_boxed_str()))
    }
}

impl std::fmt::Debug for ThinStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl std::fmt::Display for ThinStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// One pin the provider confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PinRecord {
    /// The CID as it was sent to the provider, where that is not the
    /// key's canonical text (see [`PinRecord::sent_cid`]).
    pub(crate) cid_as_pinned: Option<ThinStr>,
    pub(crate) labels: Labels,
    /// The provider's id for the pin, where it gives one (AIOZ's `data.id`,
    /// which unpinning needs).
    pub(crate) pin_id: Option<Box<str>>,
    /// When the provider confirmed it (RFC 3339). The same for every pin
    /// confirmed in one second: a loaded state gives equal neighbours one
    /// copy.
    pub(crate) pinned_at: ThinStr,
    pub(crate) status: PinStatus,
    /// What the provider last said of the pin (`pinsync refresh`); boxed,
    /// as most records never hold it.
    pub(crate) observed: Option<Box<Observed>>,
    /// Adopted, not made: a Pinning Service request that lacks this
    /// manifest's `meta.pinsync` mark (made by hand or by another manifest).
    /// pinsync never unpins or replaces it.
    pub(crate) foreign: bool,
}

impl PinRecord {
    /// A managed record of `labels`, pinned at a fixed time, for tests.
    #[cfg(test)]
    pub(crate) fn managed(labels: Labels) -> Self {
        Self {
            cid_as_pinned: None,
            labels,
            pin_id: None,
            pinned_at: "2026-01-01T00:00:00Z".into(),
            status: PinStatus::Managed,
            observed: None,
            foreign: false,
        }
    }

    /// What [`PinRecord::cid_as_pinned`] holds for `sent` as the CID of
    /// `key`: nothing when it is the canonical text.
    pub(crate) fn as_pinned(key: &PinKey, sent: &str) -> Option<ThinStr> {
        (key.cid != *sent).then(|| sent.into())
    }

    /// The CID the provider was sent for the pin `key`.
    pub(crate) fn sent_cid(&self, key: &PinKey) -> std::borrow::Cow<'_, str> {
        match &self.cid_as_pinned {
            Some(sent) => std::borrow::Cow::Borrowed(sent),
            None => std::borrow::Cow::Owned(key.cid.to_string()),
        }
    }
}

/// The provider's word on a pin, and when it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observed {
    pub(crate) status: ProviderStatus,
    /// RFC 3339.
    pub(crate) at: String,
}

/// A pin's status on its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProviderStatus {
    Queued,
    Pinning,
    Pinned,
    Failed,
    /// The provider does not hold it (lost, or removed behind pinsync's back).
    Missing,
}

impl ProviderStatus {
    /// Which of several answers for one pin counts: pinned before pinning,
    /// before queued, before failed, before missing.
    pub(crate) fn rank(self) -> u8 {
        match self {
            Self::Pinned => 0,
            Self::Pinning => 1,
            Self::Queued => 2,
            Self::Failed => 3,
            Self::Missing => 4,
        }
    }

    /// Whether the pin needs pinning again: drift.
    pub(crate) fn is_lost(self) -> bool {
        matches!(self, Self::Failed | Self::Missing)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Pinning => "pinning",
            Self::Pinned => "pinned",
            Self::Failed => "failed",
            Self::Missing => "missing",
        }
    }
}

impl State {
    /// A state that was never written: no lineage, serial 0, no pins.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes each record whose name is the manifest's for the same pin
    /// hold the manifest's copy, freeing its own: `watch` keeps both for
    /// its whole life, and at a million pins on two targets the state's
    /// names alone are 2,000,000 allocations.
    pub(crate) fn share_names(&mut self, manifest: &Manifest) {
        let mut wanted = manifest.pins.iter().peekable();
        for (key, record) in self.pins.iter_mut() {
            while wanted.next_if(|(k, _)| k < key).is_some() {}
            let Some((_, pin)) = wanted.next_if(|(k, _)| k == key) else {
                continue;
            };
            if let (Some(ours), Some(theirs)) = (&mut record.labels.name, &pin.labels.name)
                && ours == theirs
            {
                *ours = theirs.clone();
            }
        }
    }

    /// Gives a state that was never written its lineage, before its first write.
    pub(crate) fn ensure_lineage(&mut self) {
        if self.lineage.is_empty() {
            self.lineage = new_lineage();
        }
    }

    /// Records one confirmed pin (or a change to its labels or status).
    pub(crate) fn record(&mut self, pin: StoredPin) {
        self.pins.insert(pin.key, pin.record);
    }
}

/// A pin as stored on disk: its key and its record side by side, as one
/// flat JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredPin {
    pub(crate) key: PinKey,
    pub(crate) record: PinRecord,
}

// Written by hand rather than with `#[serde(flatten)]`, which buffers every
// object and is several times slower on a state of 100,000 pins.
#[derive(Serialize)]
struct FlatPinRef<'a> {
    provider: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a str>,
    cid: &'a CanonicalCid,
    /// Left out when it is the canonical `cid` itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    cid_as_pinned: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    meta: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replication: Option<Replication>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pin_id: Option<&'a str>,
    pinned_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<PinStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_status: Option<ProviderStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checked_at: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    foreign: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlatPin {
    provider: Name,
    #[serde(default)]
    cluster: Option<Name>,
    cid: CanonicalCid,
    #[serde(default)]
    cid_as_pinned: Option<Box<str>>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
    #[serde(default)]
    replication: Option<Replication>,
    #[serde(default)]
    pin_id: Option<Box<str>>,
    pinned_at: String,
    #[serde(default)]
    status: PinStatus,
    #[serde(default)]
    provider_status: Option<ProviderStatus>,
    #[serde(default)]
    checked_at: Option<String>,
    #[serde(default)]
    foreign: bool,
}

/// A borrowed pin, serialised in the stored shape without cloning it.
pub(crate) struct PinRef<'a> {
    pub(crate) key: &'a PinKey,
    pub(crate) record: &'a PinRecord,
}

impl<'a> PinRef<'a> {
    /// The stored shape; `status_always`: with `status` even when it is
    /// `managed` (for `state list --json`, read by scripts).
    fn flat(&self, status_always: bool) -> FlatPinRef<'a> {
        let (k, r) = (self.key, self.record);
        FlatPinRef {
            provider: &k.target.provider,
            cluster: k.target.cluster.as_deref(),
            cid: &k.cid,
            cid_as_pinned: r.cid_as_pinned.as_deref(),
            name: r.labels.name.as_deref(),
            meta: &r.labels.meta,
            replication: r.labels.replication,
            pin_id: r.pin_id.as_deref(),
            pinned_at: &r.pinned_at,
            status: (status_always || r.status != PinStatus::Managed).then_some(r.status),
            provider_status: r.observed.as_ref().map(|o| o.status),
            checked_at: r.observed.as_ref().map(|o| o.at.as_str()),
            foreign: r.foreign,
        }
    }
}

/// The state file's and the database's shape: `managed` left out.
impl Serialize for PinRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.flat(false).serialize(serializer)
    }
}

/// With every field, `status` too (the journal, `state list --json`).
impl Serialize for StoredPin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PinRef {
            key: &self.key,
            record: &self.record,
        }
        .flat(true)
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for StoredPin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let f = FlatPin::deserialize(deserializer)?;
        if let Some(Err(e)) = f.replication.map(|r| r.check()) {
            return Err(serde::de::Error::custom(e));
        }
        // Kept only where it differs, so that equal records compare equal.
        let cid_as_pinned = f
            .cid_as_pinned
            .filter(|sent| f.cid != **sent)
            .map(|sent| ThinStr(Arc::new(sent)));
        Ok(Self {
            key: PinKey {
                target: crate::manifest::Target {
                    provider: f.provider,
                    cluster: f.cluster,
                },
                cid: f.cid,
            },
            record: PinRecord {
                cid_as_pinned,
                labels: Labels {
                    name: f.name.map(Into::into),
                    meta: f.meta.into(),
                    replication: f.replication,
                },
                pin_id: f.pin_id,
                pinned_at: f.pinned_at.into(),
                status: f.status,
                observed: f.provider_status.map(|status| {
                    Box::new(Observed {
                        status,
                        at: f.checked_at.unwrap_or_default(),
                    })
                }),
                foreign: f.foreign,
            },
        })
    }
}

fn new_lineage() -> String {
    let mut rng = fastrand::Rng::new();
    (0..4)
        .map(|_| format!("{:08x}", rng.u32(..)))
        .collect::<Vec<_>>()
        .join("-")
}

/// Current time in RFC 3339 with seconds, UTC.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_record_named_as_the_manifest_names_its_pin_shares_the_manifest_s_name() {
        let text = "version: 1\nproviders:\n  aioz:\n    type: aioz\n    api_key: ${K}\n    secret_key: ${S}\n  arkive:\n    type: pinarkive\n    api_key: ${P}\ndefaults:\n  to: [aioz, arkive]\npins:\n  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi\n    name: docs\n  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG\n    name: home\n";
        let manifest =
            crate::manifest::parse(std::path::Path::new("pins.yaml"), text.as_bytes()).unwrap();
        let mut state = State::new();
        for (i, (key, pin)) in manifest.pins.iter().enumerate() {
            let mut labels = pin.labels.clone();
            // Read from a file: copies of their own; the last one renamed.
            let name = if i == 3 {
                "renamed"
            } else {
                labels.name.as_deref().unwrap()
            };
            labels.name = Some(Arc::from(name));
            state.pins.insert(key.clone(), PinRecord::managed(labels));
        }
        let before = state.clone();
        state.share_names(&manifest);
        assert_eq!(state, before, "the same names");
        let shared: Vec<bool> = manifest
            .pins
            .iter()
            .map(|(key, pin)| {
                let ours = state.pins.get(key).unwrap().labels.name.as_ref().unwrap();
                Arc::ptr_eq(ours, pin.labels.name.as_ref().unwrap())
            })
            .collect();
        assert_eq!(shared, [true, true, true, false]);
        // The manifest's two targets of a pin already share one copy.
        let (a, b) = (&manifest.pins[0], &manifest.pins[2]);
        assert_eq!(a.0.cid, b.0.cid);
        assert!(Arc::ptr_eq(
            a.1.labels.name.as_ref().unwrap(),
            b.1.labels.name.as_ref().unwrap()
        ));
    }
}
