//! Lighthouse's API, as its docs and SDK describe it (docs.lighthouse.storage
//! "List Files" (gitbook `how-to/list-files.md`), the SDK's
//! `src/Lighthouse/getUploads` and `src/Lighthouse/deleteFile`; summed up in
//! `/work/shared/provider-docs/hosted.md`): bearer auth, `POST
//! /api/lighthouse/pin`, uploads listed 2000 to a page with `lastKey` (the
//! `id` of the previous page's last upload), deletion by file id, errors as
//! `{"message"}`.
//!
//! The pin call's answer is undocumented; the emulator answers
//! `{"data": {"cid", "fileName"}}`. Pinning a CID the account already
//! holds adds no second upload.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::requests::{is_json, json_object};
use crate::store::{Shared, lock, made_up_size, parse_cid};

/// The path prefixes the API lives under.
pub(crate) const PREFIXES: [&str; 2] = ["/api/lighthouse", "/api/user"];
/// The wallet every upload belongs to: the emulator has a single account.
const PUBLIC_KEY: &str = "0x4e6d5be93ab7c1f75e30dd5a7f574f42f675eed3";

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/lighthouse/pin", post(pin))
        .route("/api/user/files_uploaded", get(files_uploaded))
        .route("/api/user/delete_file", delete(delete_file))
}

// ---------------------------------------------------------------- store

/// One upload record.
#[derive(Clone)]
pub(crate) struct Upload {
    pub id: String,
    seq: u64,
    pub cid: String,
    pub canonical: String,
    pub file_name: String,
    /// Epoch milliseconds.
    pub created_ms: u64,
    size: u64,
    /// Set by a test: on the Permanent Plan, so it cannot be deleted.
    permanent: bool,
}

impl Upload {
    /// An entry of `fileList`, with the fields of the docs' sample.
    fn view(&self) -> Value {
        json!({
            "publicKey": PUBLIC_KEY,
            "fileName": self.file_name,
            "mimeType": "application/octet-stream",
            "txHash": "",
            "status": "queued",
            "createdAt": self.created_ms,
            "fileSizeInBytes": self.size.to_string(),
            "cid": self.cid,
            "id": self.id,
            "lastUpdate": self.created_ms,
            "encryption": false,
        })
    }
}

/// The account's uploads in upload order, by id and by content.
#[derive(Default)]
pub(crate) struct LighthouseStore {
    uploads: BTreeMap<u64, Upload>,
    by_id: HashMap<String, u64>,
    /// How many uploads each canonical CID has.
    by_cid: HashMap<String, usize>,
    seq: u64,
}

fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

impl LighthouseStore {
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    fn add(&mut self, cid: &str, canonical: &str, file_name: String) {
        self.seq += 1;
        let upload = Upload {
            id: uuid::Uuid::new_v4().to_string(),
            seq: self.seq,
            cid: cid.to_owned(),
            canonical: canonical.to_owned(),
            file_name,
            created_ms: now_ms(),
            size: made_up_size(canonical),
            permanent: false,
        };
        self.by_id.insert(upload.id.clone(), upload.seq);
        *self.by_cid.entry(upload.canonical.clone()).or_default() += 1;
        self.uploads.insert(upload.seq, upload);
    }

    fn remove_seq(&mut self, seq: u64) {
        if let Some(upload) = self.uploads.remove(&seq) {
            self.by_id.remove(&upload.id);
            if let Some(n) = self.by_cid.get_mut(&upload.canonical) {
                *n -= 1;
                if *n == 0 {
                    self.by_cid.remove(&upload.canonical);
                }
            }
        }
    }

    fn seqs_of(&self, canonical: &str) -> Vec<u64> {
        self.uploads
            .values()
            .filter(|u| u.canonical == canonical)
            .map(|u| u.seq)
            .collect()
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Upload> {
        self.uploads.values()
    }

    pub(crate) fn count(&self) -> usize {
        self.uploads.len()
    }

    /// Removes every upload of this content behind the client's back.
    pub(crate) fn lose(&mut self, canonical: &str) -> bool {
        let seqs = self.seqs_of(canonical);
        for &seq in &seqs {
            self.remove_seq(seq);
        }
        !seqs.is_empty()
    }

    /// An upload someone else made, even of content already held.
    pub(crate) fn add_by_hand(&mut self, cid: &str, canonical: &str) {
        self.add(cid, canonical, "by hand".into());
    }

    /// Puts the uploads of this content on the Permanent Plan; false if none.
    pub(crate) fn make_permanent(&mut self, canonical: &str) -> bool {
        let seqs = self.seqs_of(canonical);
        for seq in &seqs {
            if let Some(u) = self.uploads.get_mut(seq) {
                u.permanent = true;
            }
        }
        !seqs.is_empty()
    }
}

// ---------------------------------------------------------------- errors

/// Lighthouse's error answer: `{"message"}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"message": self.1}))).into_response()
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// The answer for an injected status, or an unknown path.
pub(crate) fn error_for_status(status: StatusCode) -> Response {
    let message = match status.as_u16() {
        401 => "authentication failed",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => status.canonical_reason().unwrap_or("error"),
    };
    ApiError(status, message.into()).into_response()
}

type Answer = Result<Response, ApiError>;

/// `Authorization: Bearer <api key>`, exactly.
fn check_auth(state: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let key = state.settings.lighthouse_api_key.as_bytes();
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|t| t == key);
    if ok {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "authentication failed".into(),
        ))
    }
}

/// Refuses query parameters other than `known`; the last of a repeated one wins.
fn read_query(
    query: Vec<(String, String)>,
    known: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let mut map = HashMap::new();
    for (key, value) in query {
        if !known.contains(&key.as_str()) {
            return Err(bad(format!("unknown query parameter {key:?}")));
        }
        map.insert(key, value);
    }
    Ok(map)
}

// ---------------------------------------------------------------- handlers

/// The pin body: the docs show `cid`; the SDK may add a `fileName`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PinBody {
    cid: String,
    #[serde(default)]
    file_name: Option<String>,
}

async fn pin(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    check_auth(&state, &headers)?;
    if !is_json(&headers) {
        return Err(bad("Content-Type must be application/json"));
    }
    let request: PinBody =
        json_object(&body).map_err(|e| bad(format!("invalid request body: {e}")))?;
    let canonical = parse_cid(&request.cid)
        .map_err(|e| bad(format!("invalid cid: {e}")))?
        .canonical;
    let file_name = request.file_name.unwrap_or_else(|| request.cid.clone());
    {
        let mut store = lock(&state.lighthouse);
        if !store.by_cid.contains_key(&canonical) {
            store.add(&request.cid, &canonical, file_name.clone());
        }
    }
    Ok(axum::Json(json!({"data": {"cid": request.cid, "fileName": file_name}})).into_response())
}

async fn files_uploaded(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    check_auth(&state, &headers)?;
    // `fileType` is what Lighthouse's own SDK adds (`all`).
    let query = read_query(query, &["lastKey", "fileType"])?;
    let page_size = state.settings.lighthouse_page_size;
    let store = lock(&state.lighthouse);
    let after = match query.get("lastKey").map(String::as_str) {
        None | Some("null") => 0,
        Some(key) => *store
            .by_id
            .get(key)
            .ok_or_else(|| bad(format!("invalid lastKey {key:?}")))?,
    };
    let file_list: Vec<Value> = store
        .uploads
        .range(after + 1..)
        .take(page_size)
        .map(|(_, u)| u.view())
        .collect();
    let total = store.count();
    drop(store);
    Ok(axum::Json(json!({"fileList": file_list, "totalFiles": total})).into_response())
}

async fn delete_file(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    check_auth(&state, &headers)?;
    let query = read_query(query, &["id"])?;
    let id = query
        .get("id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| bad("id is required"))?;
    let mut store = lock(&state.lighthouse);
    let seq = *store
        .by_id
        .get(id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "File not found".into()))?;
    if store.uploads.get(&seq).is_some_and(|u| u.permanent) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "Only files in the Annual Plan can be deleted. Files in the Permanent Plan cannot be deleted."
                .into(),
        ));
    }
    store.remove_seq(seq);
    drop(store);
    Ok(axum::Json(json!({"message": "File deleted successfully."})).into_response())
}
