//! In-memory state of the emulator: the pins each emulated provider holds,
//! plus the small helpers (CID parsing, timestamps) the providers share.
//!
//! Everything lives behind short `std::sync::Mutex` sections: handlers lock,
//! copy or mutate a record, unlock, and build their JSON answers outside the
//! lock, so the benchmark's 64 concurrent pin calls do not queue on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use cid::Cid;
use serde::Serialize;

use crate::faults::FaultConfig;
use crate::requests::RequestLog;

/// What `date_unpinned` reads while a pin is still pinned (Go's zero time, as AIOZ shows it).
pub(crate) const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// Fixed owner of every AIOZ pin: the emulator has a single account.
pub(crate) const AIOZ_USER_ID: &str = "c2452942-5dc5-4a0d-9c38-77a66edcf43a";
/// AIOZ's pinByHash answer carries this all-zero id for pins that have no uploaded file.
pub(crate) const AIOZ_FILE_RECORD_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Settings fixed at start-up.
pub(crate) struct Settings {
    pub aioz_api_key: String,
    pub aioz_secret_key: String,
    pub pinarkive_api_key: String,
    /// Bearer token Pinning Service API calls must send.
    pub psa_token: String,
    pub keep_request_log: bool,
    pub verbose: bool,
    /// How long a new AIOZ pin reports `RETRIEVAL` before `DONE`.
    pub aioz_pinning: std::time::Duration,
    pub kubo_auth: crate::kubo::ExpectedAuth,
    /// How long Kubo's pin/add fetches a CID it does not hold.
    pub kubo_fetch: std::time::Duration,
    pub kubo_progress: std::time::Duration,
    pub kubo_stream_error_after: Option<usize>,
    /// What `version` answers; before 0.26, `name` and `names` are refused.
    pub kubo_version: String,
    pub cluster_auth: crate::kubo::ExpectedAuth,
    pub cluster_peers: usize,
    /// How long each allocated peer reports `pinning`.
    pub cluster_pinning: std::time::Duration,
    pub cluster_failing_peers: usize,
    /// The JWT Pinata calls must send as `Authorization: Bearer`.
    pub pinata_jwt: String,
    /// How long a Pinata queue job takes from getting a slot to done.
    pub pinata_pinning: std::time::Duration,
    /// The key QuickNode calls must send in `x-api-key`.
    pub quicknode_api_key: String,
    /// How long a QuickNode object takes from `queued` to `pinned`.
    pub quicknode_pinning: std::time::Duration,
    /// The key Lighthouse calls must send as `Authorization: Bearer`.
    pub lighthouse_api_key: String,
    /// Uploads in one page of Lighthouse's `files_uploaded`.
    pub lighthouse_page_size: usize,
}

/// Counters kept as atomics so `/_emulator/stats` works without the request log.
#[derive(Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub pin_calls: AtomicU64,
}

/// Everything the handlers share, behind one `Arc`.
pub(crate) struct AppState {
    pub settings: Settings,
    pub aioz: Mutex<AiozStore>,
    pub pinarkive: Mutex<PinarkiveStore>,
    pub psa: Mutex<crate::pinning_service::PsaStore>,
    pub kubo: Mutex<crate::kubo::KuboStore>,
    pub cluster: Mutex<crate::cluster::ClusterStore>,
    pub pinata: Mutex<crate::pinata::PinataStore>,
    pub quicknode: Mutex<crate::quicknode::QuickNodeStore>,
    pub lighthouse: Mutex<crate::lighthouse::LighthouseStore>,
    pub faults: Mutex<FaultConfig>,
    pub limits: Mutex<crate::limits::Limits>,
    pub log: Mutex<RequestLog>,
    pub counters: Counters,
}

pub(crate) type Shared = std::sync::Arc<AppState>;

/// Locks a mutex, ignoring poisoning: a panicking handler must not take the
/// whole emulator down with it, and every critical section leaves the data
/// consistent before it can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A CID as a client sent it, with the forms the emulator keys and reports by.
pub(crate) struct ParsedCid {
    /// CIDv1 string: a CIDv0 `Qm…` and its `bafy…` form name the same content.
    pub canonical: String,
    /// Hex of the multihash, what AIOZ reports as `root_hash`.
    pub root_hash: String,
}

/// Parses a CID strictly: the `cid` crate also accepts `/ipfs/<cid>` paths,
/// which a real service would not take as a CID, so paths and blanks are refused.
pub(crate) fn parse_cid(s: &str) -> Result<ParsedCid, String> {
    if s.is_empty() || s.contains('/') || s.chars().any(char::is_whitespace) {
        return Err(format!("{s:?} is not a CID"));
    }
    let cid = Cid::try_from(s).map_err(|e| format!("{s:?} is not a CID: {e}"))?;
    let root_hash = hex(&cid.hash().to_bytes());
    let v1 = cid
        .into_v1()
        .map_err(|e| format!("{s:?} is not a CID: {e}"))?;
    Ok(ParsedCid {
        canonical: v1.to_string(),
        root_hash,
    })
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// A made-up size in bytes for some content, the same on every call, for
/// services whose listings report one.
pub(crate) fn made_up_size(canonical: &str) -> u64 {
    // FNV-1a, kept to a plausible file size.
    let hash = canonical.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    1024 + hash % (16 * 1024 * 1024)
}

/// Now, with nanoseconds, as AIOZ (a Go service) writes its timestamps.
pub(crate) fn now_nanos() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// Now, with milliseconds, as Pinarkive (a JavaScript service) writes its timestamps.
pub(crate) fn now_millis() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

// ---------------------------------------------------------------- AIOZ

/// One AIOZ pin record. Unpinned records are kept (with `date_unpinned` set),
/// as AIOZ's list and get calls can still return them.
#[derive(Clone)]
pub(crate) struct AiozPin {
    pub id: String,
    pub cid: String,
    pub canonical: String,
    pub root_hash: String,
    pub date_pinned: String,
    pub date_unpinned: Option<String>,
    pub name: Option<String>,
    pub keyvalues: Option<BTreeMap<String, String>>,
    /// `DONE` once pinned (at once, here), or what a test set:
    /// `RETRIEVAL`, `FAILED`.
    pub status: &'static str,
    /// Until then it reports `RETRIEVAL` (unless a test set a status).
    pub done_at: std::time::Instant,
}

/// The statuses a test may give an AIOZ pin.
pub(crate) const AIOZ_STATUSES: [&str; 3] = ["DONE", "RETRIEVAL", "FAILED"];

impl AiozPin {
    /// The PIN object as a read (get, list, unpin) shows it: `DONE` from the
    /// first read after creation, unless a test set another status.
    pub(crate) fn view(&self) -> AiozPinView<'_> {
        let status = if self.status == "DONE" && std::time::Instant::now() < self.done_at {
            "RETRIEVAL"
        } else {
            self.status
        };
        AiozPinView {
            size: Some(0),
            pinned: self.date_unpinned.is_none() && status == "DONE",
            status,
            ..self.created_view()
        }
    }

    /// The PIN object as pinByHash answers it: exactly the fields of the
    /// provider's example, still `RETRIEVAL` and not yet pinned.
    pub(crate) fn created_view(&self) -> AiozPinView<'_> {
        AiozPinView {
            id: &self.id,
            file_record_id: AIOZ_FILE_RECORD_ID,
            root_hash: &self.root_hash,
            cid: &self.cid,
            size: None,
            user_id: AIOZ_USER_ID,
            date_pinned: &self.date_pinned,
            date_unpinned: self.date_unpinned.as_deref().unwrap_or(ZERO_TIME),
            pinned: false,
            is_pin_by_hash: true,
            is_dir: false,
            metadata: AiozMetadataView {
                name: self.name.as_deref(),
                keyvalues: self.keyvalues.as_ref(),
            },
            status: "RETRIEVAL",
        }
    }
}

/// AIOZ's PIN object, fields in the order the provider's example shows them
/// (a struct rather than `json!`, whose maps would sort the keys).
#[derive(Serialize)]
pub(crate) struct AiozPinView<'a> {
    id: &'a str,
    file_record_id: &'static str,
    root_hash: &'a str,
    cid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    user_id: &'static str,
    date_pinned: &'a str,
    date_unpinned: &'a str,
    pinned: bool,
    is_pin_by_hash: bool,
    is_dir: bool,
    metadata: AiozMetadataView<'a>,
    status: &'static str,
}

#[derive(Serialize)]
struct AiozMetadataView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keyvalues: Option<&'a BTreeMap<String, String>>,
}

/// AIOZ pins in creation order, indexed by pin id and by active canonical CID.
#[derive(Default)]
pub(crate) struct AiozStore {
    pins: Vec<AiozPin>,
    by_id: HashMap<String, usize>,
    active: HashMap<String, usize>,
}

/// Which pins an AIOZ list call asks for (`pinned=all|true|false`).
#[derive(Clone, Copy)]
pub(crate) enum PinnedFilter {
    All,
    Pinned,
    NotPinned,
}

impl AiozStore {
    /// Adds a pin unless its content is already pinned; returns the new record.
    pub(crate) fn pin(&mut self, pin: AiozPin) -> Result<AiozPin, ()> {
        if self.active.contains_key(&pin.canonical) {
            return Err(());
        }
        let idx = self.pins.len();
        self.by_id.insert(pin.id.clone(), idx);
        self.active.insert(pin.canonical.clone(), idx);
        self.pins.push(pin.clone());
        Ok(pin)
    }

    pub(crate) fn get(&self, id: &str) -> Option<AiozPin> {
        self.by_id.get(id).map(|&i| self.pins[i].clone())
    }

    /// Marks a pin unpinned (once; a second unpin keeps the first date).
    pub(crate) fn unpin(&mut self, id: &str) -> Option<AiozPin> {
        let &idx = self.by_id.get(id)?;
        let pin = &mut self.pins[idx];
        if pin.date_unpinned.is_none() {
            pin.date_unpinned = Some(now_nanos());
            self.active.remove(&pin.canonical);
        }
        Some(pin.clone())
    }

    /// Returns the total matching the filter and one page of it, in creation order.
    pub(crate) fn list(
        &self,
        filter: PinnedFilter,
        descending: bool,
        offset: usize,
        limit: usize,
    ) -> (usize, Vec<AiozPin>) {
        let keep = |p: &&AiozPin| match filter {
            PinnedFilter::All => true,
            PinnedFilter::Pinned => p.date_unpinned.is_none(),
            PinnedFilter::NotPinned => p.date_unpinned.is_some(),
        };
        let total = match filter {
            PinnedFilter::All => self.pins.len(),
            PinnedFilter::Pinned => self.active.len(),
            PinnedFilter::NotPinned => self.pins.len() - self.active.len(),
        };
        let page = if descending {
            let it = self.pins.iter().rev().filter(keep);
            it.skip(offset).take(limit).cloned().collect()
        } else {
            let it = self.pins.iter().filter(keep);
            it.skip(offset).take(limit).cloned().collect()
        };
        (total, page)
    }

    pub(crate) fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Sets the status of the active pin of this content; false if none.
    pub(crate) fn set_status(&mut self, canonical: &str, status: &'static str) -> bool {
        let Some(&idx) = self.active.get(canonical) else {
            return false;
        };
        self.pins[idx].status = status;
        true
    }

    /// Loses the active pin of this content without a trace, as a failing
    /// provider might: it is no longer listed or found by id.
    pub(crate) fn lose(&mut self, canonical: &str) -> bool {
        let Some(idx) = self.active.remove(canonical) else {
            return false;
        };
        let pin = self.pins.remove(idx);
        self.by_id.remove(&pin.id);
        // Indices after `idx` moved down by one.
        for i in self.by_id.values_mut().chain(self.active.values_mut()) {
            if *i > idx {
                *i -= 1;
            }
        }
        true
    }

    pub(crate) fn all(&self) -> &[AiozPin] {
        &self.pins
    }
}

// ---------------------------------------------------------------- Pinarkive

/// One Pinarkive pin: a CID on one cluster.
#[derive(Clone)]
pub(crate) struct PinarkivePin {
    pub cid: String,
    pub canonical: String,
    pub cluster: String,
    pub name: Option<String>,
    pub created_at: String,
}

impl PinarkivePin {
    /// An entry of `/users/me/uploads`, with the fields Pinarkive's docs show.
    pub(crate) fn upload_view(&self) -> UploadView<'_> {
        UploadView {
            cid: &self.cid,
            cluster_id: &self.cluster,
            expires_at: None,
            created_at: &self.created_at,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UploadView<'a> {
    cid: &'a str,
    cluster_id: &'a str,
    expires_at: Option<&'a str>,
    created_at: &'a str,
}

/// Pinarkive pins keyed by (canonical CID, cluster), listed in creation order.
#[derive(Default)]
pub(crate) struct PinarkiveStore {
    pins: BTreeMap<u64, PinarkivePin>,
    index: HashMap<(String, String), u64>,
    next_seq: u64,
}

impl PinarkiveStore {
    /// Adds a pin unless this content is already pinned on that cluster.
    pub(crate) fn pin(&mut self, pin: PinarkivePin) -> Result<(), ()> {
        let key = (pin.canonical.clone(), pin.cluster.clone());
        if self.index.contains_key(&key) {
            return Err(());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.index.insert(key, seq);
        self.pins.insert(seq, pin);
        Ok(())
    }

    /// Removes the content from one cluster, or from every cluster holding it
    /// when none is named; returns how many pins went.
    pub(crate) fn remove(&mut self, canonical: &str, cluster: Option<&str>) -> usize {
        let keys: Vec<(String, String)> = match cluster {
            Some(cl) => vec![(canonical.to_string(), cl.to_string())],
            None => crate::pinarkive::CLUSTERS
                .iter()
                .map(|cl| (canonical.to_string(), cl.to_string()))
                .collect(),
        };
        let mut removed = 0;
        for key in keys {
            if let Some(seq) = self.index.remove(&key) {
                self.pins.remove(&seq);
                removed += 1;
            }
        }
        removed
    }

    pub(crate) fn list(&self, offset: usize, limit: usize) -> (usize, Vec<PinarkivePin>) {
        let page = self.pins.values().skip(offset).take(limit).cloned();
        (self.pins.len(), page.collect())
    }

    pub(crate) fn count(&self) -> usize {
        self.pins.len()
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &PinarkivePin> {
        self.pins.values()
    }
}

/// A valid CIDv1 (raw, sha2-256) made up from `n`: distinct for each `n`,
/// for requests generated in bulk. The digest is not a real hash of any data.
pub(crate) fn made_up_cid(n: u64) -> String {
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&n.to_be_bytes());
    digest[8..16].copy_from_slice(b"emulated");
    let hash = cid::multihash::Multihash::<64>::wrap(0x12, &digest).expect("32 bytes fit");
    Cid::new_v1(0x55, hash).to_string()
}
