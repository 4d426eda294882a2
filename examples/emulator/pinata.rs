//! Pinata's v3 Files API (public network), as docs.pinata.cloud's API
//! reference describes it (`pin-by-cid`, `query-pin-requests`,
//! `cancel-pin-request`, `list-files`, `delete-file`; summed up in
//! `/work/shared/provider-docs/hosted.md`): bearer JWT auth, errors as
//! `{"error": {"reason", "details"}}`, answers wrapped in `{"data": ...}`,
//! lists paged with an opaque `pageToken` / `next_page_token`.
//!
//! Pinning by CID is a queue job, not yet a file. Pinata's pin-by-CID page:
//! "Pinata can only search 250 files at a time per account, so if you have
//! more than 250 items in your queue then the extra items will sit in a
//! backfilled status". So 250 jobs hold working slots and go `prechecking`
//! → `searching` → `retrieving` over `--pinata-pinning-ms`; then the job
//! leaves the queue and becomes a file with its own id. Jobs queued while
//! every slot is taken report `backfilled` and take a slot, first in first
//! out, when one frees. All this is computed lazily from `Instant`s on each
//! call, as `cluster.rs` does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::requests::{is_json, json_object};
use crate::store::{Shared, lock, made_up_size, parse_cid};

/// Where the API lives: pinsync's base URL is the emulator's origin.
pub(crate) const PREFIX: &str = "/v3/files";
/// Jobs worked at once per account; the rest wait as `backfilled`.
pub(crate) const WORKING_SLOTS: usize = 250;
/// `limit` when none is given, and the largest one taken.
const DEFAULT_LIMIT: usize = 10;
/// The most one page of files holds.
const MAX_LIMIT: usize = 1000;
/// The most one page of the queue holds (its SDK's documents: 250).
const MAX_QUEUE_LIMIT: usize = 250;
/// The failure statuses a test may give a queued job.
pub(crate) const FAILED_STATUSES: [&str; 5] = [
    "expired",
    "over_free_limit",
    "over_max_size",
    "invalid_object",
    "bad_host_node",
];

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/v3/files/public", get(list_files))
        .route("/v3/files/public/{id}", delete(delete_file))
        .route(
            "/v3/files/public/pin_by_cid",
            get(list_queue).post(pin_by_cid),
        )
        .route("/v3/files/public/pin_by_cid/{id}", delete(cancel))
}

// ---------------------------------------------------------------- store

/// One pin-by-CID request in the queue.
#[derive(Clone)]
struct Job {
    id: String,
    seq: u64,
    cid: String,
    canonical: String,
    name: Option<String>,
    keyvalues: Option<BTreeMap<String, String>>,
    group_id: Option<String>,
    host_nodes: Vec<String>,
    date_queued: String,
    /// When it got a working slot; `None` while backfilled.
    started: Option<Instant>,
    /// Set by a test (`/_emulator/pins/status`): listed, never a file.
    failed: Option<&'static str>,
}

impl Job {
    /// Its status now (the queue has been advanced, so a working job is
    /// not done yet).
    fn status(&self, pinning: Duration, now: Instant) -> &'static str {
        if let Some(failed) = self.failed {
            return failed;
        }
        let Some(started) = self.started else {
            return "backfilled";
        };
        let elapsed = now.saturating_duration_since(started);
        if elapsed * 3 < pinning {
            "prechecking"
        } else if elapsed * 3 < pinning * 2 {
            "searching"
        } else {
            "retrieving"
        }
    }

    fn view(&self, pinning: Duration, now: Instant) -> Value {
        json!({
            "id": self.id,
            "cid": self.cid,
            "name": self.name,
            "status": self.status(pinning, now),
            "keyvalues": self.keyvalues,
            "host_nodes": self.host_nodes,
            "group_id": self.group_id,
            "date_queued": self.date_queued,
        })
    }
}

/// A pinned file, made when its job finished (or by hand).
#[derive(Clone)]
pub(crate) struct PinataFile {
    pub id: String,
    seq: u64,
    pub cid: String,
    pub canonical: String,
    pub name: Option<String>,
    pub keyvalues: Option<BTreeMap<String, String>>,
    pub group_id: Option<String>,
    size: u64,
    pub created_at: String,
}

impl PinataFile {
    fn view(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "cid": self.cid,
            "size": self.size,
            "number_of_files": 1,
            "mime_type": "application/octet-stream",
            "group_id": self.group_id,
            "keyvalues": self.keyvalues,
            "created_at": self.created_at,
        })
    }
}

/// The queue and the files of the one account.
#[derive(Default)]
pub(crate) struct PinataStore {
    /// Jobs still in the queue (working, backfilled or failed), by seq.
    jobs: BTreeMap<u64, Job>,
    job_ids: HashMap<String, u64>,
    /// Jobs holding a slot, in the order they got it: as every job takes
    /// the same time, also the order they finish in.
    working: VecDeque<u64>,
    /// Backfilled jobs, first in first out.
    waiting: VecDeque<u64>,
    files: BTreeMap<u64, PinataFile>,
    file_ids: HashMap<String, u64>,
    seq: u64,
    /// The most jobs (working and backfilled) queued at once.
    peak: usize,
    /// Jobs that were ever backfilled.
    backfilled: u64,
}

/// What a pin-by-CID call asks for, checked.
struct NewJob {
    cid: String,
    canonical: String,
    name: Option<String>,
    keyvalues: Option<BTreeMap<String, String>>,
    group_id: Option<String>,
    host_nodes: Vec<String>,
}

/// `rfc3339` with microseconds, as Pinata writes `created_at`.
fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string()
}

impl PinataStore {
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Finishes every job whose time is up, in order, handing each freed
    /// slot to the oldest backfilled job at the moment it freed.
    fn advance(&mut self, pinning: Duration) {
        let now = Instant::now();
        let wall = SystemTime::now();
        while let Some(&seq) = self.working.front() {
            let Some(started) = self.jobs.get(&seq).and_then(|j| j.started) else {
                self.working.pop_front();
                continue;
            };
            let done_at = started + pinning;
            if done_at > now {
                break;
            }
            self.working.pop_front();
            let Some(job) = self.jobs.remove(&seq) else {
                continue;
            };
            self.job_ids.remove(&job.id);
            let created = wall - now.duration_since(done_at);
            let file_seq = self.next_seq();
            let file = PinataFile {
                id: uuid::Uuid::new_v4().to_string(),
                seq: file_seq,
                size: made_up_size(&job.canonical),
                cid: job.cid,
                canonical: job.canonical,
                name: job.name,
                keyvalues: job.keyvalues,
                group_id: job.group_id,
                created_at: timestamp(created),
            };
            self.file_ids.insert(file.id.clone(), file_seq);
            self.files.insert(file_seq, file);
            self.fill(done_at);
        }
    }

    /// Gives free slots to backfilled jobs, starting their clocks at `at`.
    fn fill(&mut self, at: Instant) {
        while self.working.len() < WORKING_SLOTS {
            let Some(seq) = self.waiting.pop_front() else {
                break;
            };
            if let Some(job) = self.jobs.get_mut(&seq) {
                job.started = Some(at);
                self.working.push_back(seq);
            }
        }
    }

    /// Frees whatever slot or place in line a job held.
    fn unqueue(&mut self, seq: u64) {
        self.working.retain(|s| *s != seq);
        self.waiting.retain(|s| *s != seq);
        self.fill(Instant::now());
    }

    fn queue(&mut self, new: NewJob, pinning: Duration) -> Job {
        self.advance(pinning);
        let seq = self.next_seq();
        let mut job = Job {
            id: uuid::Uuid::new_v4().to_string(),
            seq,
            cid: new.cid,
            canonical: new.canonical,
            name: new.name,
            keyvalues: new.keyvalues,
            group_id: new.group_id,
            host_nodes: new.host_nodes,
            date_queued: timestamp(SystemTime::now()),
            started: None,
            failed: None,
        };
        if self.working.len() < WORKING_SLOTS && self.waiting.is_empty() {
            job.started = Some(Instant::now());
            self.working.push_back(seq);
        } else {
            self.waiting.push_back(seq);
            self.backfilled += 1;
        }
        self.peak = self.peak.max(self.working.len() + self.waiting.len());
        self.job_ids.insert(job.id.clone(), seq);
        self.jobs.insert(seq, job.clone());
        job
    }

    fn cancel(&mut self, id: &str, pinning: Duration) -> bool {
        self.advance(pinning);
        let Some(seq) = self.job_ids.remove(id) else {
            return false;
        };
        self.jobs.remove(&seq);
        self.unqueue(seq);
        true
    }

    /// Fails the queued jobs of this content; false if none is queued.
    pub(crate) fn fail(
        &mut self,
        canonical: &str,
        status: &'static str,
        pinning: Duration,
    ) -> bool {
        self.advance(pinning);
        let seqs: Vec<u64> = self
            .jobs
            .values()
            .filter(|j| j.canonical == canonical)
            .map(|j| j.seq)
            .collect();
        for &seq in &seqs {
            if let Some(job) = self.jobs.get_mut(&seq) {
                job.failed = Some(status);
            }
            self.unqueue(seq);
        }
        !seqs.is_empty()
    }

    fn delete_file(&mut self, id: &str, pinning: Duration) -> bool {
        self.advance(pinning);
        match self.file_ids.remove(id) {
            Some(seq) => self.files.remove(&seq).is_some(),
            None => false,
        }
    }

    /// Removes every file of this content behind the client's back.
    pub(crate) fn lose(&mut self, canonical: &str, pinning: Duration) -> bool {
        self.advance(pinning);
        let before = self.files.len();
        self.files.retain(|_, f| f.canonical != canonical);
        let files = &self.files;
        self.file_ids.retain(|_, seq| files.contains_key(seq));
        self.files.len() < before
    }

    /// A file someone else made: no keyvalues, named "by hand".
    pub(crate) fn add_by_hand(&mut self, cid: &str, canonical: &str) {
        let seq = self.next_seq();
        let file = PinataFile {
            id: uuid::Uuid::new_v4().to_string(),
            seq,
            cid: cid.to_owned(),
            canonical: canonical.to_owned(),
            name: Some("by hand".into()),
            keyvalues: None,
            group_id: None,
            size: made_up_size(canonical),
            created_at: timestamp(SystemTime::now()),
        };
        self.file_ids.insert(file.id.clone(), seq);
        self.files.insert(seq, file);
    }

    /// Every file, after finishing what is due.
    pub(crate) fn all_files(&mut self, pinning: Duration) -> Vec<PinataFile> {
        self.advance(pinning);
        self.files.values().cloned().collect()
    }

    pub(crate) fn file_count(&mut self, pinning: Duration) -> usize {
        self.advance(pinning);
        self.files.len()
    }

    /// `{"peak", "backfilled", "queued"}`: `queued` counts the jobs working
    /// or backfilled now (failed ones are listed but not worked).
    pub(crate) fn queue_counters(&mut self, pinning: Duration) -> Value {
        self.advance(pinning);
        json!({
            "peak": self.peak,
            "backfilled": self.backfilled,
            "queued": self.working.len() + self.waiting.len(),
        })
    }
}

// ---------------------------------------------------------------- errors

/// Pinata's error answer: `{"error": {"reason", "details"}}`.
struct ApiError {
    status: StatusCode,
    reason: &'static str,
    details: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"reason": self.reason, "details": self.details}});
        (self.status, axum::Json(body)).into_response()
    }
}

fn bad(details: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        reason: "BAD_REQUEST",
        details: details.into(),
    }
}

fn not_found(details: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        reason: "NOT_FOUND",
        details: details.into(),
    }
}

/// The answer for an injected status, or an unknown path.
pub(crate) fn error_for_status(status: StatusCode) -> Response {
    let reason = match status.as_u16() {
        401 => "INVALID_CREDENTIALS",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        429 => "RATE_LIMITED",
        500..=599 => "INTERNAL_SERVER_ERROR",
        _ => "BAD_REQUEST",
    };
    ApiError {
        status,
        reason,
        details: status.canonical_reason().unwrap_or("error").to_string(),
    }
    .into_response()
}

type Answer = Result<Response, ApiError>;

/// `Authorization: Bearer <JWT>`, exactly.
fn check_auth(state: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let jwt = state.settings.pinata_jwt.as_bytes();
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|t| t == jwt);
    if ok {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            reason: "INVALID_CREDENTIALS",
            details: "Invalid or expired JWT".into(),
        })
    }
}

// ---------------------------------------------------------------- paging

/// An opaque page token: the seq of the last item listed, encoded.
fn page_token(kind: &str, seq: u64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{seq}"))
}

fn read_page_token(kind: &str, token: &str) -> Result<u64, ApiError> {
    use base64::Engine as _;
    let bad_token = || bad(format!("invalid pageToken {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad_token())?;
    let text = String::from_utf8(bytes).map_err(|_| bad_token())?;
    text.strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|seq| seq.parse().ok())
        .ok_or_else(bad_token)
}

/// The paging and ordering parameters both lists take.
struct Paging {
    limit: usize,
    descending: bool,
    after: Option<u64>,
}

/// A list call's query: plain parameters, and `keyvalues[KEY]` filters.
struct ListQuery {
    plain: HashMap<String, String>,
    keyvalues: BTreeMap<String, String>,
}

/// Reads the query, refusing parameters `known` does not list (besides
/// `keyvalues[KEY]` where `keyvalues` is true). Repeated keys: the last wins.
fn read_query(
    query: &[(String, String)],
    known: &[&str],
    keyvalues: bool,
) -> Result<ListQuery, ApiError> {
    let mut plain = HashMap::new();
    let mut kv = BTreeMap::new();
    for (key, value) in query {
        let kv_key = key
            .strip_prefix("keyvalues[")
            .and_then(|k| k.strip_suffix(']'));
        match kv_key {
            Some(k) if keyvalues && !k.is_empty() => {
                kv.insert(k.to_owned(), value.clone());
            }
            _ if known.contains(&key.as_str()) => {
                plain.insert(key.clone(), value.clone());
            }
            _ => return Err(bad(format!("unknown query parameter {key:?}"))),
        }
    }
    Ok(ListQuery {
        plain,
        keyvalues: kv,
    })
}

fn read_paging(query: &HashMap<String, String>, kind: &str) -> Result<Paging, ApiError> {
    let max = if kind == "jobs" {
        MAX_QUEUE_LIMIT
    } else {
        MAX_LIMIT
    };
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => return Err(bad(format!("limit must be from 1 to {max}"))),
        },
    };
    let order = query.get("order").or_else(|| query.get("sort"));
    let descending = match order.map(String::as_str) {
        None | Some("ASC") => false,
        Some("DESC" | "DSC") => true,
        Some(other) => return Err(bad(format!("order must be ASC or DESC, not {other:?}"))),
    };
    let after = match query.get("pageToken").map(String::as_str) {
        None | Some("") => None,
        Some(token) => Some(read_page_token(kind, token)?),
    };
    Ok(Paging {
        limit,
        descending,
        after,
    })
}

/// One page of `items` (ascending by seq), and the next page's token
/// (`""` on the last page).
fn page<'a, T>(
    items: impl Iterator<Item = (u64, &'a T)>,
    paging: &Paging,
    kind: &str,
) -> (Vec<&'a T>, String) {
    let mut ordered: Vec<(u64, &'a T)> = items.collect();
    if paging.descending {
        ordered.reverse();
    }
    let past = |seq: u64| match paging.after {
        None => true,
        Some(after) if paging.descending => seq < after,
        Some(after) => seq > after,
    };
    let mut taken: Vec<(u64, &T)> = ordered
        .into_iter()
        .filter(|(seq, _)| past(*seq))
        .take(paging.limit + 1)
        .collect();
    let more = taken.len() > paging.limit;
    taken.truncate(paging.limit);
    let token = match taken.last() {
        Some((seq, _)) if more => page_token(kind, *seq),
        _ => String::new(),
    };
    (taken.into_iter().map(|(_, t)| t).collect(), token)
}

// ---------------------------------------------------------------- handlers

/// The pin-by-CID body, as the API reference's schema lists it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinByCidBody {
    cid: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default)]
    keyvalues: Option<BTreeMap<String, String>>,
    #[serde(default)]
    host_nodes: Option<Vec<String>>,
}

async fn pin_by_cid(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    check_auth(&state, &headers)?;
    if !is_json(&headers) {
        return Err(bad("Content-Type must be application/json"));
    }
    let request: PinByCidBody =
        json_object(&body).map_err(|e| bad(format!("invalid request body: {e}")))?;
    let parsed = parse_cid(&request.cid).map_err(|e| bad(format!("invalid cid: {e}")))?;
    let new = NewJob {
        cid: request.cid,
        canonical: parsed.canonical,
        name: request.name,
        keyvalues: request.keyvalues,
        group_id: request.group_id,
        host_nodes: request.host_nodes.unwrap_or_default(),
    };
    let job = lock(&state.pinata).queue(new, state.settings.pinata_pinning);
    // The answer of the API reference's example, `hose_nodes` typo included.
    Ok(axum::Json(json!({
        "data": {
            "id": job.id,
            "name": job.name,
            "cid": job.cid,
            "keyvalues": job.keyvalues,
            "group_id": job.group_id,
            "status": "prechecking",
            "date_queued": job.date_queued,
            "hose_nodes": job.host_nodes,
        }
    }))
    .into_response())
}

/// Both spellings the docs use for the third step.
fn queue_status(name: &str) -> Option<&'static str> {
    match name {
        "retrieving" | "retreiving" => Some("retrieving"),
        "prechecking" => Some("prechecking"),
        "searching" => Some("searching"),
        "backfilled" => Some("backfilled"),
        other => FAILED_STATUSES.iter().find(|s| **s == other).copied(),
    }
}

async fn list_queue(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    check_auth(&state, &headers)?;
    // `sort` (ASC or DSC) and `includesCount` are what Pinata's own SDK
    // sends, where the OpenAPI document says `order`.
    let known = [
        "cid",
        "status",
        "order",
        "sort",
        "includesCount",
        "limit",
        "pageToken",
    ];
    let query = read_query(&query, &known, false)?.plain;
    let paging = read_paging(&query, "jobs")?;
    let cid = match query.get("cid") {
        None => None,
        Some(c) => Some(parse_cid(c).map_err(|e| bad(format!("invalid cid: {e}")))?),
    };
    let status = match query.get("status") {
        None => None,
        Some(s) => Some(queue_status(s).ok_or_else(|| bad(format!("unknown status {s:?}")))?),
    };
    let pinning = state.settings.pinata_pinning;
    let mut store = lock(&state.pinata);
    store.advance(pinning);
    let now = Instant::now();
    let matching = store.jobs.iter().filter(|(_, j)| {
        cid.as_ref().is_none_or(|c| c.canonical == j.canonical)
            && status.is_none_or(|s| j.status(pinning, now) == s)
    });
    let (jobs, token) = page(matching.map(|(s, j)| (*s, j)), &paging, "jobs");
    let jobs: Vec<Value> = jobs.into_iter().map(|j| j.view(pinning, now)).collect();
    drop(store);
    Ok(axum::Json(json!({"data": {"jobs": jobs, "next_page_token": token}})).into_response())
}

async fn cancel(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    check_auth(&state, &headers)?;
    if !lock(&state.pinata).cancel(&id, state.settings.pinata_pinning) {
        return Err(not_found(format!(
            "no pin by CID request {id:?} in the queue"
        )));
    }
    Ok(axum::Json(json!({"data": null})).into_response())
}

async fn list_files(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    check_auth(&state, &headers)?;
    let known = [
        "cid",
        "name",
        "group",
        "mimeType",
        "cidPending",
        "order",
        "limit",
        "pageToken",
    ];
    let ListQuery {
        plain: query,
        keyvalues,
    } = read_query(&query, &known, true)?;
    let paging = read_paging(&query, "files")?;
    let cid = match query.get("cid") {
        None => None,
        Some(c) => Some(parse_cid(c).map_err(|e| bad(format!("invalid cid: {e}")))?),
    };
    let name = query.get("name");
    let group = query.get("group");
    let mut store = lock(&state.pinata);
    store.advance(state.settings.pinata_pinning);
    let matching = store.files.values().filter(|f| {
        cid.as_ref().is_none_or(|c| c.canonical == f.canonical)
            && name.is_none_or(|n| f.name.as_ref() == Some(n))
            && group.is_none_or(|g| f.group_id.as_ref() == Some(g))
            && keyvalues
                .iter()
                .all(|(k, v)| f.keyvalues.as_ref().is_some_and(|kv| kv.get(k) == Some(v)))
    });
    let (files, token) = page(matching.map(|f| (f.seq, f)), &paging, "files");
    let files: Vec<Value> = files.into_iter().map(PinataFile::view).collect();
    drop(store);
    Ok(axum::Json(json!({"data": {"files": files, "next_page_token": token}})).into_response())
}

async fn delete_file(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    check_auth(&state, &headers)?;
    if !lock(&state.pinata).delete_file(&id, state.settings.pinata_pinning) {
        return Err(not_found(format!("no file {id:?}")));
    }
    Ok(axum::Json(json!({"data": null})).into_response())
}
