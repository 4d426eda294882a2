//! QuickNode's IPFS REST API (`/ipfs/rest/v1`), as QuickNode's docs
//! describe it (quicknode.com/docs/ipfs/Pinning: `create-pinnedObject-by-CID`,
//! `get-pinnedObjects`, `get-pinnedObject`, `update-pinnedObject`,
//! `delete-pinnedObject`; summed up in `/work/shared/provider-docs/hosted.md`):
//! the raw key in `x-api-key`, errors as `{"message"}`, pinned objects
//! addressed by the `requestId` the pin call returned.
//!
//! Every pin call makes a new pinned object, even for a CID already held.
//! An object reports `queued`, then `pinning`, then `pinned`, each half of
//! `--quicknode-pinning-ms` (computed from `Instant`, as `cluster.rs` does).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::requests::{is_json, json_object};
use crate::store::{Shared, lock, made_up_size, now_millis, parse_cid};

/// Where the API is mounted; pinsync's base URL is `http://ADDR/ipfs/rest/v1`.
pub(crate) const PREFIX: &str = "/ipfs/rest";
/// `perPage` when none is given, and the largest one taken.
const DEFAULT_PER_PAGE: usize = 10;
const MAX_PER_PAGE: usize = 100;
/// The longest name the docs allow.
const MAX_NAME: usize = 255;
/// The statuses a test may set.
pub(crate) const STATUSES: [&str; 4] = ["queued", "pinning", "pinned", "failed"];

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ipfs/rest/v1/pinning", get(list).post(create))
        .route(
            "/ipfs/rest/v1/pinning/{request_id}",
            get(get_one).patch(update).delete(remove),
        )
}

// ---------------------------------------------------------------- store

/// One pinned object.
#[derive(Clone)]
pub(crate) struct PinnedObject {
    /// The integer id the list shows, in creation order.
    id: u64,
    uuid: String,
    pub request_id: String,
    pub cid: String,
    pub canonical: String,
    pub name: String,
    origins: Vec<String>,
    pub meta: Option<Map<String, Value>>,
    pub created_at: String,
    updated_at: String,
    /// Its progression: `queued` for the first half of `pinning` from
    /// `started`, `pinning` for the second, then `pinned`.
    started: Instant,
    pinning: Duration,
    /// Set by a test; stops the progression.
    status: Option<&'static str>,
}

impl PinnedObject {
    fn status(&self) -> &'static str {
        if let Some(status) = self.status {
            return status;
        }
        let elapsed = self.started.elapsed();
        if elapsed >= self.pinning {
            "pinned"
        } else if elapsed * 2 < self.pinning {
            "queued"
        } else {
            "pinning"
        }
    }

    /// `size` is a string once the content is pinned, null before.
    fn size(&self, status: &str) -> Value {
        if status == "pinned" {
            json!(made_up_size(&self.canonical).to_string())
        } else {
            Value::Null
        }
    }

    /// The pin and update answer: `origins` joined into one string, as the
    /// create page types it.
    fn answer(&self, status: &str) -> Value {
        json!({
            "requestId": self.request_id,
            "status": status,
            "cid": self.cid,
            "name": self.name,
            "origins": self.origins.join(","),
            "meta": self.meta,
            "uuid": self.uuid,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "contentType": null,
            "size": null,
        })
    }

    /// One object as `GET /pinning/{requestId}` shows it.
    fn view(&self) -> Value {
        let status = self.status();
        json!({
            "id": self.id,
            "uuid": self.uuid,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "requestId": self.request_id,
            "cid": self.cid,
            "name": self.name,
            "contentType": null,
            "size": self.size(status),
            "origins": self.origins,
            "status": status,
            "meta": self.meta,
        })
    }

    /// One item of `GET /pinning`: the object and where it came from.
    fn list_view(&self) -> Value {
        let mut item = self.view();
        if let Value::Object(map) = &mut item {
            map.insert("source".into(), json!("pin_by_cid"));
            map.insert("parentId".into(), Value::Null);
            map.insert("type".into(), json!("file"));
            map.insert("path".into(), Value::Null);
        }
        item
    }
}

/// The account's pinned objects, by integer id (creation order).
#[derive(Default)]
pub(crate) struct QuickNodeStore {
    objects: BTreeMap<u64, PinnedObject>,
    by_request: HashMap<String, u64>,
    next_id: u64,
}

impl QuickNodeStore {
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    fn add(&mut self, new: PinBody, canonical: String, pinning: Duration) -> PinnedObject {
        self.next_id += 1;
        let now = now_millis();
        let object = PinnedObject {
            id: self.next_id,
            uuid: uuid::Uuid::new_v4().to_string(),
            request_id: uuid::Uuid::new_v4().to_string(),
            cid: new.cid,
            canonical,
            name: new.name,
            origins: new.origins.unwrap_or_default(),
            meta: new.meta,
            created_at: now.clone(),
            updated_at: now,
            started: Instant::now(),
            pinning,
            status: None,
        };
        self.by_request.insert(object.request_id.clone(), object.id);
        self.objects.insert(object.id, object.clone());
        object
    }

    fn get(&self, request_id: &str) -> Option<&PinnedObject> {
        self.by_request
            .get(request_id)
            .and_then(|id| self.objects.get(id))
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &PinnedObject> {
        self.objects.values()
    }

    pub(crate) fn count(&self) -> usize {
        self.objects.len()
    }

    /// Removes every object of this content behind the client's back.
    pub(crate) fn lose(&mut self, canonical: &str) -> bool {
        let before = self.objects.len();
        self.objects.retain(|_, o| o.canonical != canonical);
        let objects = &self.objects;
        self.by_request.retain(|_, id| objects.contains_key(id));
        self.objects.len() < before
    }

    /// An object someone else made: no meta, named "by hand", pinned.
    pub(crate) fn add_by_hand(&mut self, cid: &str, canonical: &str) {
        let body = PinBody {
            cid: cid.to_owned(),
            name: "by hand".into(),
            origins: None,
            meta: None,
        };
        self.add(body, canonical.to_owned(), Duration::ZERO);
    }

    /// Sets the status of every object of this content; false if none.
    pub(crate) fn set_status(&mut self, canonical: &str, status: &'static str) -> bool {
        let mut found = false;
        for o in self
            .objects
            .values_mut()
            .filter(|o| o.canonical == canonical)
        {
            o.status = Some(status);
            found = true;
        }
        found
    }
}

/// The status a test names, if QuickNode has it.
pub(crate) fn status_named(name: &str) -> Option<&'static str> {
    STATUSES.iter().find(|s| **s == name).copied()
}

// ---------------------------------------------------------------- errors

/// QuickNode's error answer: `{"message"}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"message": self.1}))).into_response()
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "Pinned object not found".into())
}

/// The answer for an injected status, or an unknown path.
pub(crate) fn error_for_status(status: StatusCode) -> Response {
    let message = match status.as_u16() {
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => status.canonical_reason().unwrap_or("error"),
    };
    ApiError(status, message.into()).into_response()
}

type Answer = Result<Response, ApiError>;

/// `x-api-key: <key>`, the raw key: a `Bearer ` value is a malformed token.
fn check_auth(state: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers.get("x-api-key").map(|v| v.as_bytes());
    if given.is_some_and(|v| v.starts_with(b"Bearer ")) {
        return Err(ApiError(StatusCode::UNAUTHORIZED, "malformed token".into()));
    }
    if given != Some(state.settings.quicknode_api_key.as_bytes()) {
        return Err(ApiError(StatusCode::UNAUTHORIZED, "Unauthorized".into()));
    }
    Ok(())
}

// ---------------------------------------------------------------- handlers

/// The body of a pin or an update, as the create page lists it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    cid: String,
    name: String,
    #[serde(default)]
    origins: Option<Vec<String>>,
    #[serde(default)]
    meta: Option<Map<String, Value>>,
}

/// Reads and checks a pin or update body; answers it with the CID's
/// canonical form.
fn read_body(headers: &HeaderMap, body: &[u8]) -> Result<(PinBody, String), ApiError> {
    if !is_json(headers) {
        return Err(bad("Content-Type must be application/json"));
    }
    let pin: PinBody = json_object(body).map_err(|e| bad(format!("invalid body: {e}")))?;
    let canonical = parse_cid(&pin.cid).map_err(|e| bad(format!("invalid cid: {e}")))?;
    let chars = pin.name.chars().count();
    if !(1..=MAX_NAME).contains(&chars) {
        return Err(bad(format!("name must be 1 to {MAX_NAME} characters long")));
    }
    Ok((pin, canonical.canonical))
}

async fn create(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    check_auth(&state, &headers)?;
    let (pin, canonical) = read_body(&headers, &body)?;
    let pinning = state.settings.quicknode_pinning;
    let object = lock(&state.quicknode).add(pin, canonical, pinning);
    Ok(axum::Json(object.answer("queued")).into_response())
}

async fn get_one(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Answer {
    check_auth(&state, &headers)?;
    let object = lock(&state.quicknode).get(&request_id).cloned();
    let object = object.ok_or_else(not_found)?;
    Ok(axum::Json(object.view()).into_response())
}

async fn update(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Answer {
    check_auth(&state, &headers)?;
    let (pin, canonical) = read_body(&headers, &body)?;
    let updated = {
        let mut store = lock(&state.quicknode);
        let id = *store.by_request.get(&request_id).ok_or_else(not_found)?;
        let object = store.objects.get_mut(&id).ok_or_else(not_found)?;
        if object.canonical != canonical {
            return Err(bad("cid cannot be changed"));
        }
        object.name = pin.name;
        if let Some(origins) = pin.origins {
            object.origins = origins;
        }
        if let Some(meta) = pin.meta {
            object.meta = Some(meta);
        }
        object.updated_at = now_millis();
        object.clone()
    };
    Ok(axum::Json(updated.answer(updated.status())).into_response())
}

async fn remove(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Answer {
    check_auth(&state, &headers)?;
    let mut store = lock(&state.quicknode);
    let id = store.by_request.remove(&request_id).ok_or_else(not_found)?;
    store.objects.remove(&id);
    drop(store);
    Ok(axum::Json(true).into_response())
}

async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    check_auth(&state, &headers)?;
    let mut page_number = 1;
    let mut per_page = DEFAULT_PER_PAGE;
    for (key, value) in &query {
        let n = value.parse::<usize>().ok().filter(|n| *n >= 1);
        match key.as_str() {
            "pageNumber" => {
                page_number = n.ok_or_else(|| bad("pageNumber must be a whole number from 1"))?
            }
            "perPage" => {
                per_page = n
                    .filter(|n| *n <= MAX_PER_PAGE)
                    .ok_or_else(|| bad(format!("perPage must be from 1 to {MAX_PER_PAGE}")))?
            }
            other => return Err(bad(format!("unknown query parameter {other:?}"))),
        }
    }
    let store = lock(&state.quicknode);
    let total = store.count();
    let data: Vec<Value> = store
        .objects
        .values()
        .skip((page_number - 1).saturating_mul(per_page))
        .take(per_page)
        .map(PinnedObject::list_view)
        .collect();
    drop(store);
    Ok(axum::Json(json!({
        "data": data,
        "totalItems": total,
        "totalPages": total.div_ceil(per_page),
        "pageNumber": page_number,
    }))
    .into_response())
}
