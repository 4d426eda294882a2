//! The IPFS Pinning Service API v1.0.0 as the spec and the providers' README
//! describe it, under `/psa`: bearer auth, requests keyed by a request id,
//! lists newest first paged with `before`, `{"error": {reason, details}}`
//! errors. Unlike the npm mock, an add is not idempotent: every add makes a
//! new request, as on the real services.
//!
//! The traps real services set are switches (`POST /_emulator/psa`), so a
//! client can be tested against each: `count` as the page size, `created`
//! truncated to the second, every status listed by default, DELETE
//! answering 200, `{code, message}` errors, ipfs-cluster's CID request ids
//! and missing pagination, and a clock that makes many requests share one
//! second.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::requests::{is_json, json_object};
use crate::store::{Shared, lock, parse_cid};

/// Where the API is mounted: pinsync's `base_url` is `http://ADDR/psa`.
pub(crate) const PREFIX: &str = "/psa";
/// The spec's largest page, and its default.
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 10;
/// The spec's limits on one list's CIDs and one pin's origins.
const MAX_CIDS: usize = 10;
const MAX_ORIGINS: usize = 20;
const STATUSES: [&str; 4] = ["queued", "pinning", "pinned", "failed"];
/// What every request lists as its delegate.
const DELEGATE: &str = "/dnsaddr/emulator.invalid/p2p/12D3KooWEmulatorPinningServiceDelegate";

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/psa/pins", get(list).post(add)).route(
        "/psa/pins/{requestid}",
        get(get_one).post(replace).delete(remove),
    )
}

/// The switchable traps. All off by default: the emulator then follows the
/// spec (which itself lists only `pinned` without `status`, and pages by 10).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Traps {
    /// `count` is the page's length, not the total matched.
    pub count_is_page_size: bool,
    /// `created` is reported to the second, while requests are ordered, and
    /// `before`/`after` compared, to the millisecond.
    pub truncate_created: bool,
    /// A list without `status` returns every status, not only `pinned`.
    pub status_default_all: bool,
    /// DELETE answers 200 rather than 202.
    pub delete_answers_200: bool,
    /// Errors are `{code, message}` rather than `{"error": {reason, details}}`.
    pub code_message_errors: bool,
    /// ipfs-cluster: the CID is the request id (an add of a CID held is the
    /// same request), and a list answers every match, ignoring `limit`,
    /// `before` and `after`.
    pub cluster_style: bool,
    /// New requests are created at this time (RFC 3339), each
    /// `clock_step_ms` after the one before, instead of now.
    pub clock: Option<String>,
    pub clock_step_ms: u64,
    /// A new request is `queued` this long, then `pinned`.
    pub pinning_ms: u64,
}

impl Traps {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if let Some(clock) = &self.clock {
            humantime::parse_rfc3339(clock)
                .map_err(|e| format!("clock {clock:?} is not RFC 3339: {e}"))?;
        }
        Ok(())
    }
}

/// One pin request the service holds.
#[derive(Clone)]
pub(crate) struct PsaRequest {
    pub id: String,
    pub cid: String,
    pub canonical: String,
    pub name: Option<String>,
    pub origins: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub created: SystemTime,
    /// Creation order, to order requests created in the same instant.
    seq: u64,
    /// Set by a test (`/_emulator/pins/status`); otherwise queued, then pinned.
    pub status: Option<&'static str>,
    pinned_at: Instant,
}

impl PsaRequest {
    pub(crate) fn status(&self) -> &'static str {
        self.status.unwrap_or(if Instant::now() < self.pinned_at {
            "queued"
        } else {
            "pinned"
        })
    }

    fn key(&self) -> (SystemTime, u64) {
        (self.created, self.seq)
    }
}

/// Every request, by id, and the traps.
#[derive(Default)]
pub(crate) struct PsaStore {
    requests: HashMap<String, PsaRequest>,
    seq: u64,
    pub traps: Traps,
}

/// A new request's content, checked.
pub(crate) struct NewRequest {
    pub cid: String,
    pub canonical: String,
    pub name: Option<String>,
    pub origins: Vec<String>,
    pub meta: BTreeMap<String, String>,
}

impl PsaStore {
    /// Makes a request (or, ipfs-cluster style, returns the CID's own).
    pub(crate) fn add(&mut self, new: NewRequest) -> PsaRequest {
        self.seq += 1;
        let id = if self.traps.cluster_style {
            new.canonical.clone()
        } else {
            request_id(self.seq)
        };
        let created = match &self.traps.clock {
            Some(clock) => {
                let start = humantime::parse_rfc3339(clock).unwrap_or(UNIX_EPOCH);
                start + Duration::from_millis(self.traps.clock_step_ms * self.seq)
            }
            None => SystemTime::now(),
        };
        let request = PsaRequest {
            id: id.clone(),
            cid: new.cid,
            canonical: new.canonical,
            name: new.name,
            origins: new.origins,
            meta: new.meta,
            created,
            seq: self.seq,
            status: None,
            pinned_at: Instant::now() + Duration::from_millis(self.traps.pinning_ms),
        };
        self.requests.insert(id, request.clone());
        request
    }

    pub(crate) fn get(&self, id: &str) -> Option<&PsaRequest> {
        self.requests.get(id)
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<PsaRequest> {
        self.requests.remove(id)
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &PsaRequest> {
        self.requests.values()
    }

    pub(crate) fn count(&self) -> usize {
        self.requests.len()
    }

    /// Sets the status of every request for a CID; false if there is none.
    pub(crate) fn set_status(&mut self, canonical: &str, status: &'static str) -> bool {
        let mut found = false;
        for r in self
            .requests
            .values_mut()
            .filter(|r| r.canonical == canonical)
        {
            r.status = Some(status);
            found = true;
        }
        found
    }

    /// Removes every request for a CID behind the client's back.
    pub(crate) fn lose(&mut self, canonical: &str) -> bool {
        let before = self.requests.len();
        self.requests.retain(|_, r| r.canonical != canonical);
        self.requests.len() < before
    }
}

pub(crate) fn status_named(name: &str) -> Option<&'static str> {
    STATUSES.iter().find(|s| **s == name).copied()
}

/// A UUID-shaped id, unique within this run.
fn request_id(seq: u64) -> String {
    let random = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (random >> 32) as u32,
        (random >> 16) as u16,
        (random as u16) & 0xfff,
        (seq >> 48) as u16 & 0xfff,
        seq & 0xffff_ffff_ffff
    )
}

/// A Pinning Service error.
pub(crate) struct ApiError {
    status: StatusCode,
    reason: &'static str,
    details: String,
    code_message: bool,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.code_message {
            json!({"code": self.status.as_u16(), "message": format!("{}: {}", self.reason, self.details)})
        } else {
            json!({"error": {"reason": self.reason, "details": self.details}})
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// The spec's error for a bare status (injected faults).
pub(crate) fn error_for_status(status: StatusCode) -> Response {
    let reason = match status.as_u16() {
        401 => "UNAUTHORIZED",
        404 => "NOT_FOUND",
        409 => "INSUFFICIENT_FUNDS",
        429 => "RATE_LIMITED",
        500..=599 => "INTERNAL_SERVER_ERROR",
        _ => "BAD_REQUEST",
    };
    ApiError {
        status,
        reason,
        details: status.canonical_reason().unwrap_or("error").to_string(),
        code_message: false,
    }
    .into_response()
}

type Answer = Result<Response, ApiError>;

/// Checks the bearer token, and gives the error shape the traps ask for.
fn open(state: &Shared, headers: &HeaderMap) -> Result<Errors, ApiError> {
    let errors = Errors {
        code_message: lock(&state.psa).traps.code_message_errors,
    };
    let token = state.settings.psa_token.as_bytes();
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|t| t == token);
    if ok {
        Ok(errors)
    } else {
        Err(errors.make(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing or invalid access token",
        ))
    }
}

/// Builds errors in the shape the traps ask for.
#[derive(Clone, Copy)]
struct Errors {
    code_message: bool,
}

impl Errors {
    fn make(
        self,
        status: StatusCode,
        reason: &'static str,
        details: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            reason,
            details: details.into(),
            code_message: self.code_message,
        }
    }

    fn bad(self, details: impl Into<String>) -> ApiError {
        self.make(StatusCode::BAD_REQUEST, "BAD_REQUEST", details)
    }

    fn not_found(self) -> ApiError {
        self.make(StatusCode::NOT_FOUND, "NOT_FOUND", "no such pin request")
    }
}

/// A PinStatus answer.
fn view(r: &PsaRequest, truncate: bool) -> serde_json::Value {
    let created = if truncate {
        let secs = r
            .created
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
    } else {
        humantime::format_rfc3339_millis(r.created).to_string()
    };
    let mut pin = json!({"cid": r.cid});
    if let Some(name) = &r.name {
        pin["name"] = json!(name);
    }
    if !r.origins.is_empty() {
        pin["origins"] = json!(r.origins);
    }
    if !r.meta.is_empty() {
        pin["meta"] = json!(r.meta);
    }
    json!({
        "requestid": r.id,
        "status": r.status(),
        "created": created,
        "pin": pin,
        "delegates": [DELEGATE],
        "info": {},
    })
}

/// The body of an add or a replace: the spec's Pin object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    cid: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    origins: Vec<String>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
}

fn read_pin(errors: Errors, headers: &HeaderMap, body: &[u8]) -> Result<NewRequest, ApiError> {
    if !is_json(headers) {
        return Err(errors.bad("Content-Type must be application/json"));
    }
    let pin: PinBody = json_object(body).map_err(|e| errors.bad(format!("invalid Pin: {e}")))?;
    let parsed = parse_cid(&pin.cid).map_err(|e| errors.bad(e))?;
    if pin.name.as_ref().is_some_and(|n| n.chars().count() > 255) {
        return Err(errors.bad("name is longer than 255 characters"));
    }
    if pin.origins.len() > MAX_ORIGINS {
        return Err(errors.bad(format!("more than {MAX_ORIGINS} origins")));
    }
    if let Some(bad) = pin.origins.iter().find(|o| !o.starts_with('/')) {
        return Err(errors.bad(format!("origin {bad:?} is not a multiaddr")));
    }
    Ok(NewRequest {
        cid: pin.cid,
        canonical: parsed.canonical,
        name: pin.name,
        origins: pin.origins,
        meta: pin.meta,
    })
}

async fn add(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    let errors = open(&state, &headers)?;
    let new = read_pin(errors, &headers, &body)?;
    let mut store = lock(&state.psa);
    let truncate = store.traps.truncate_created;
    let existing = store
        .traps
        .cluster_style
        .then(|| store.get(&new.canonical).cloned())
        .flatten();
    let request = match existing {
        Some(r) => r,
        None => store.add(new),
    };
    drop(store);
    Ok((StatusCode::ACCEPTED, axum::Json(view(&request, truncate))).into_response())
}

async fn get_one(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let errors = open(&state, &headers)?;
    let store = lock(&state.psa);
    let found = store.get(&id).ok_or_else(|| errors.not_found())?;
    Ok(axum::Json(view(found, store.traps.truncate_created)).into_response())
}

async fn replace(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let errors = open(&state, &headers)?;
    let new = read_pin(errors, &headers, &body)?;
    let mut store = lock(&state.psa);
    if store.remove(&id).is_none() {
        return Err(errors.not_found());
    }
    let request = store.add(new);
    let truncate = store.traps.truncate_created;
    drop(store);
    Ok((StatusCode::ACCEPTED, axum::Json(view(&request, truncate))).into_response())
}

async fn remove(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let errors = open(&state, &headers)?;
    let mut store = lock(&state.psa);
    if store.remove(&id).is_none() {
        return Err(errors.not_found());
    }
    let status = if store.traps.delete_answers_200 {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok(status.into_response())
}

/// The list's filters, each checked as the spec defines it.
struct Filter {
    cids: Option<Vec<String>>,
    name: Option<(String, String)>,
    statuses: Vec<&'static str>,
    before: Option<SystemTime>,
    after: Option<SystemTime>,
    limit: usize,
    meta: BTreeMap<String, String>,
}

fn read_filter(
    errors: Errors,
    query: &BTreeMap<String, String>,
    traps: &Traps,
) -> Result<Filter, ApiError> {
    const KNOWN: [&str; 8] = [
        "cid", "name", "match", "status", "before", "after", "limit", "meta",
    ];
    if let Some(unknown) = query.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(errors.bad(format!("unknown query parameter {unknown:?}")));
    }
    let cids = match query.get("cid") {
        None => None,
        Some(list) => {
            let cids: Vec<&str> = list.split(',').collect();
            if cids.len() > MAX_CIDS {
                return Err(errors.bad(format!("more than {MAX_CIDS} CIDs")));
            }
            let canonical = cids
                .iter()
                .map(|c| parse_cid(c).map(|p| p.canonical))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| errors.bad(e))?;
            Some(canonical)
        }
    };
    let statuses = match query.get("status") {
        None if traps.status_default_all => STATUSES.to_vec(),
        None => vec!["pinned"],
        Some(list) => list
            .split(',')
            .map(|s| status_named(s).ok_or_else(|| errors.bad(format!("unknown status {s:?}"))))
            .collect::<Result<_, _>>()?,
    };
    let time = |key: &str| -> Result<Option<SystemTime>, ApiError> {
        query
            .get(key)
            .map(|t| {
                humantime::parse_rfc3339(t)
                    .map_err(|e| errors.bad(format!("{key} {t:?} is not RFC 3339: {e}")))
            })
            .transpose()
    };
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(errors.bad(format!("limit must be from 1 to {MAX_LIMIT}"))),
        },
    };
    let name = query.get("name").map(|n| {
        (
            n.clone(),
            query
                .get("match")
                .cloned()
                .unwrap_or_else(|| "exact".into()),
        )
    });
    let meta = match query.get("meta") {
        None => BTreeMap::new(),
        Some(m) => serde_json::from_str(m).map_err(|e| errors.bad(format!("meta: {e}")))?,
    };
    Ok(Filter {
        cids,
        name,
        statuses,
        before: time("before")?,
        after: time("after")?,
        limit,
        meta,
    })
}

impl Filter {
    fn matches(&self, r: &PsaRequest, paged: bool) -> bool {
        let name_matches = match &self.name {
            None => true,
            Some((want, how)) => {
                let have = r.name.as_deref().unwrap_or("");
                match how.as_str() {
                    "iexact" => have.eq_ignore_ascii_case(want),
                    "partial" => have.contains(want.as_str()),
                    "ipartial" => have.to_lowercase().contains(&want.to_lowercase()),
                    _ => have == want,
                }
            }
        };
        self.cids.as_ref().is_none_or(|c| c.contains(&r.canonical))
            && name_matches
            && self.statuses.contains(&r.status())
            && self.meta.iter().all(|(k, v)| r.meta.get(k) == Some(v))
            && (!paged || self.before.is_none_or(|b| r.created < b))
            && (!paged || self.after.is_none_or(|a| r.created > a))
    }
}

async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Answer {
    let errors = open(&state, &headers)?;
    let store = lock(&state.psa);
    let traps = store.traps.clone();
    let filter = read_filter(errors, &query, &traps)?;
    let paged = !traps.cluster_style;
    let mut matched: Vec<&PsaRequest> = store.all().filter(|r| filter.matches(r, paged)).collect();
    // Newest first.
    matched.sort_by_key(|r| std::cmp::Reverse(r.key()));
    let total = matched.len();
    let page = if paged {
        &matched[..total.min(filter.limit)]
    } else {
        &matched[..]
    };
    let results: Vec<serde_json::Value> = page
        .iter()
        .map(|r| view(r, traps.truncate_created))
        .collect();
    drop(store);
    let count = if traps.count_is_page_size {
        results.len()
    } else {
        total
    };
    Ok(axum::Json(json!({"count": count, "results": results})).into_response())
}
