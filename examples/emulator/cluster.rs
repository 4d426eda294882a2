//! ipfs-cluster's REST API, under `/cluster`, as its `api/rest/restapi.go`
//! and `api/types.go` define it: `POST /pins/{cid}` with the options in the
//! query (`name`, `mode`, `replication-min`, `replication-max`,
//! `meta-KEY=VALUE`), `DELETE /pins/{cid}`, `GET /pins/{cid}` with a status
//! per peer, `GET /allocations?filter=pin` streamed, `POST /token` for a
//! JWT, and errors as `{"code", "message"}`.
//!
//! It has `--cluster-peers` peers. A pin is allocated to `replication-max`
//! of them (else `replication-min`, else all); each reports `pinning` for
//! `--cluster-pinning-ms`, then `pinned`, except the first
//! `--cluster-failing-peers`, which report `pin_error`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::kubo::ExpectedAuth;
use crate::store::{Shared, lock, parse_cid};

/// Where the API is mounted.
pub(crate) const PREFIX: &str = "/cluster";

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/cluster/pins/{cid}", post(pin).delete(unpin).get(status))
        .route("/cluster/allocations", get(allocations))
        .route("/cluster/token", post(token))
}

/// The pins the cluster tracks, by canonical CID.
#[derive(Default)]
pub(crate) struct ClusterStore {
    pins: BTreeMap<String, ClusterPin>,
    /// JWTs handed out by `POST /token`.
    tokens: Vec<String>,
}

#[derive(Clone)]
pub(crate) struct ClusterPin {
    pub cid: String,
    pub canonical: String,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    min: i64,
    max: i64,
    /// Indexes of the peers it is allocated to.
    allocations: Vec<usize>,
    pinned_at: Instant,
}

impl ClusterStore {
    pub(crate) fn all(&self) -> impl Iterator<Item = &ClusterPin> {
        self.pins.values()
    }

    pub(crate) fn lose(&mut self, canonical: &str) -> bool {
        self.pins.remove(canonical).is_some()
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Tracks a pin made by hand (a test's foreign pin).
    pub(crate) fn add_by_hand(&mut self, cid: &str, canonical: &str, peers: usize) {
        self.pins.insert(
            canonical.to_owned(),
            ClusterPin {
                cid: cid.to_owned(),
                canonical: canonical.to_owned(),
                name: "by hand".into(),
                metadata: BTreeMap::new(),
                min: -1,
                max: -1,
                allocations: (0..peers).collect(),
                pinned_at: Instant::now(),
            },
        );
    }
}

/// ipfs-cluster's error answer.
fn api_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"code": status.as_u16(), "message": message.into()});
    (status, axum::Json(body)).into_response()
}

/// The answer for an injected status.
pub(crate) fn error_for_status(status: StatusCode) -> Response {
    api_error(status, status.canonical_reason().unwrap_or("error"))
}

fn peer_id(i: usize) -> String {
    format!("12D3KooWEmulatedPeer{i}")
}

/// Basic auth as configured, or a token `POST /token` issued.
fn authorized(state: &Shared, headers: &HeaderMap) -> bool {
    let ExpectedAuth::Header(expected) = &state.settings.cluster_auth else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let issued = given
        .strip_prefix("Bearer ")
        .is_some_and(|t| lock(&state.cluster).tokens.iter().any(|k| k == t));
    given == expected || issued
}

fn unauthorized() -> Response {
    api_error(StatusCode::UNAUTHORIZED, "Unauthorized")
}

fn pin_json(p: &ClusterPin) -> Value {
    json!({
        "cid": p.cid,
        "type": 2,
        "allocations": p.allocations.iter().map(|i| peer_id(*i)).collect::<Vec<_>>(),
        "max_depth": -1,
        "reference": null,
        "shard_size": 0,
        "replication_factor_min": p.min,
        "replication_factor_max": p.max,
        "name": p.name,
        "mode": "recursive",
        "metadata": p.metadata,
        "origins": [],
    })
}

async fn pin(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(cid): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let canonical = match parse_cid(&cid) {
        Ok(p) => p.canonical,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, e),
    };
    let mut name = String::new();
    let mut metadata = BTreeMap::new();
    let (mut min, mut max) = (-1i64, -1i64);
    for (key, value) in query {
        let number = || value.parse::<i64>().ok().filter(|n| *n == -1 || *n >= 1);
        match key.as_str() {
            "name" => name = value,
            "mode" if value == "recursive" || value == "direct" => {}
            "replication-min" => match number() {
                Some(n) => min = n,
                None => return api_error(StatusCode::BAD_REQUEST, "bad replication-min"),
            },
            "replication-max" => match number() {
                Some(n) => max = n,
                None => return api_error(StatusCode::BAD_REQUEST, "bad replication-max"),
            },
            meta if meta.starts_with("meta-") => {
                metadata.insert(meta["meta-".len()..].to_owned(), value);
            }
            other => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown or bad query parameter {other:?}"),
                );
            }
        }
    }
    let peers = state.settings.cluster_peers;
    if max != -1 && min != -1 && max < min {
        return api_error(
            StatusCode::BAD_REQUEST,
            "replication-max must be at least replication-min",
        );
    }
    let wanted = [max, min]
        .into_iter()
        .find(|n| *n != -1)
        .map_or(peers, |n| (n as usize).min(peers));
    let pin = ClusterPin {
        cid,
        canonical: canonical.clone(),
        name,
        metadata,
        min,
        max,
        allocations: (0..wanted).collect(),
        pinned_at: Instant::now(),
    };
    let answer = pin_json(&pin);
    lock(&state.cluster).pins.insert(canonical, pin);
    axum::Json(answer).into_response()
}

async fn unpin(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(cid): Path<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let canonical = match parse_cid(&cid) {
        Ok(p) => p.canonical,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, e),
    };
    match lock(&state.cluster).pins.remove(&canonical) {
        Some(p) => axum::Json(pin_json(&p)).into_response(),
        None => api_error(StatusCode::NOT_FOUND, "cid is not part of the global state"),
    }
}

async fn status(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(cid): Path<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let canonical = match parse_cid(&cid) {
        Ok(p) => p.canonical,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, e),
    };
    let Some(pin) = lock(&state.cluster).pins.get(&canonical).cloned() else {
        return api_error(StatusCode::NOT_FOUND, "cid is not part of the global state");
    };
    let settings = &state.settings;
    let done = pin.pinned_at.elapsed() >= settings.cluster_pinning;
    let peer_map: serde_json::Map<String, Value> = (0..settings.cluster_peers)
        .map(|i| {
            let (status, error) = if !pin.allocations.contains(&i) {
                ("remote", "")
            } else if i < settings.cluster_failing_peers {
                ("pin_error", "emulated failure: not enough space")
            } else if done {
                ("pinned", "")
            } else {
                ("pinning", "")
            };
            (
                peer_id(i),
                json!({
                    "peername": format!("peer{i}"),
                    "ipfs_peer_id": format!("12D3KooWEmulatedIpfs{i}"),
                    "status": status,
                    "timestamp": humantime::format_rfc3339(std::time::SystemTime::now()).to_string(),
                    "error": error,
                    "attempt_count": 0,
                    "priority_pin": false,
                }),
            )
        })
        .collect();
    axum::Json(json!({
        "cid": pin.cid,
        "name": pin.name,
        "allocations": pin.allocations.iter().map(|i| peer_id(*i)).collect::<Vec<_>>(),
        "origins": [],
        "metadata": pin.metadata,
        "peer_map": peer_map,
    }))
    .into_response()
}

async fn allocations(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    if query
        .get("filter")
        .is_some_and(|f| f != "pin" && f != "all")
    {
        return Response::new(Body::empty());
    }
    let lines: Vec<Result<Bytes, Infallible>> = lock(&state.cluster)
        .pins
        .values()
        .map(|p| {
            let mut text = pin_json(p).to_string();
            text.push('\n');
            Ok(Bytes::from(text))
        })
        .collect();
    let mut response = Response::new(Body::from_stream(futures::stream::iter(lines)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::TRAILER, HeaderValue::from_static("X-Stream-Error"));
    response
}

async fn token(State(state): State<Shared>, headers: HeaderMap) -> Response {
    // A token is traded for Basic credentials only.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Basic "));
    if !basic || !authorized(&state, &headers) {
        return unauthorized();
    }
    let jwt = format!("eyJhbGciOiJIUzI1NiJ9.emulated.{}", fastrand::u64(..));
    lock(&state.cluster).tokens.push(jwt.clone());
    axum::Json(json!({"token": jwt})).into_response()
}
