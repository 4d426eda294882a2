//! The Pinarkive API v3 as its documentation describes it
//! (`/work/shared/provider-docs/pinarkive-pin.md` and the README table):
//! `X-API-Key` or bearer auth, pins addressed by CID and cluster, the
//! documented error bodies, and 410 for the retired v1 and v2 paths.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::requests::{is_json, json_object};
use crate::store::{PinarkivePin, Shared, UploadView, lock, now_millis, parse_cid};

/// The clusters Pinarkive documents; the first is the default.
pub(crate) const CLUSTERS: [&str; 6] = [
    "cl0-global",
    "cl1-eu",
    "cl1-na",
    "cl2-es",
    "cl2-us",
    "cl2-de",
];
/// Per-minute request limit Pinarkive documents, reported in 429 answers.
const RATE_LIMIT: u64 = 100;
/// Largest page the uploads list returns, whatever `limit` asks for.
const MAX_PAGE: usize = 1000;
const USER_ID: &str = "000000000000000000000001";

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v3/health", get(health))
        .route("/api/v3/users/me", get(me))
        .route("/api/v3/users/me/uploads", get(uploads))
        .route("/api/v3/files/pin/{cid}", post(pin))
        .route("/api/v3/files/remove/{cid}", delete(remove))
        .route("/api/v3/status/{cid}", get(status))
}

/// A Pinarkive error answer: `{error, message, code?}`, `error` being the
/// status's reason phrase.
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    code: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            message: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            code: Option<&'a str>,
        }
        let body = Body {
            error: self.status.canonical_reason().unwrap_or("Error"),
            message: self.message,
            code: self.code,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>, code: Option<&'static str>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
        code,
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, message, None)
}

/// What every handler returns: an answer, or a Pinarkive error answer.
type Answer = Result<Response, ApiError>;

/// The error an injected fault gives for a bare status code.
pub(crate) fn error_for_status(status: StatusCode, retry_after: Option<u64>) -> Response {
    match status.as_u16() {
        429 => rate_limited(retry_after),
        401 => unauthorized().into_response(),
        404 => error(status, "Pin not found for this CID", None).into_response(),
        500 => error(status, "Internal server error", None).into_response(),
        503 => error(status, "Service temporarily unavailable", None).into_response(),
        _ => error(status, status.canonical_reason().unwrap_or("Error"), None).into_response(),
    }
}

/// Pinarkive's documented 429: body and `X-RateLimit-*` headers (the caller
/// adds `Retry-After` when a delay is configured).
fn rate_limited(retry_after: Option<u64>) -> Response {
    let window = retry_after.unwrap_or(60);
    let reset = SystemTime::now() + Duration::from_secs(window);
    let reset_time = humantime::format_rfc3339_millis(reset).to_string();
    let reset_epoch = reset
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        error: &'static str,
        message: &'static str,
        code: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
        limit: u64,
        remaining: u64,
        reset_time: String,
    }
    let body = Body {
        error: "Too Many Requests",
        message: "Rate limit exceeded",
        code: "RATE_LIMIT",
        retry_after,
        limit: RATE_LIMIT,
        remaining: 0,
        reset_time,
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(RATE_LIMIT));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset_epoch));
    response
}

fn unauthorized() -> ApiError {
    error(
        StatusCode::UNAUTHORIZED,
        "Invalid API key",
        Some("INVALID_API_KEY"),
    )
}

/// Accepts `X-API-Key: KEY` or `Authorization: Bearer KEY`.
fn check_key(state: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let key = state.settings.pinarkive_api_key.as_bytes();
    let by_header = headers
        .get("x-api-key")
        .is_some_and(|v| v.as_bytes() == key);
    let by_bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|token| token == key);
    if by_header || by_bearer {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

/// The cluster a request names with the `X-Cluster` header, if any.
fn cluster_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("x-cluster") {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) => Ok(Some(s.to_string())),
            Err(_) => Err(bad_request("Unknown cluster")),
        },
    }
}

fn check_cluster(cluster: &str) -> Result<(), ApiError> {
    if CLUSTERS.contains(&cluster) {
        Ok(())
    } else {
        Err(bad_request("Unknown cluster"))
    }
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn me(State(state): State<Shared>, headers: HeaderMap) -> Answer {
    check_key(&state, &headers)?;
    #[derive(Serialize)]
    struct Me {
        id: &'static str,
        email: &'static str,
    }
    let body = Me {
        id: USER_ID,
        email: "emulator@example.invalid",
    };
    Ok(axum::Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PinBody {
    #[serde(default)]
    original_name: Option<String>,
    #[serde(default)]
    custom_name: Option<String>,
    #[serde(default)]
    cl: Option<String>,
    #[serde(default)]
    timelock: Option<String>,
}

async fn pin(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(cid): Path<String>,
    body: Bytes,
) -> Answer {
    check_key(&state, &headers)?;
    let parsed = parse_cid(&cid).map_err(|_| bad_request("Invalid CID"))?;
    // The body is optional; when there is one it must be the documented object.
    let request = if body.is_empty() {
        None
    } else if !is_json(&headers) {
        return Err(bad_request("Content-Type must be application/json"));
    } else {
        let request = json_object::<PinBody>(&body)
            .map_err(|e| bad_request(format!("Invalid request body: {e}")))?;
        Some(request)
    };
    let header_cluster = cluster_header(&headers)?;
    let (name, body_cluster, timelock) = match request {
        Some(r) => (r.custom_name.or(r.original_name), r.cl, r.timelock),
        None => (None, None, None),
    };
    let cluster = body_cluster
        .or(header_cluster)
        .unwrap_or_else(|| CLUSTERS[0].to_string());
    check_cluster(&cluster)?;
    if timelock.is_some() {
        let message = "timelock requires a premium plan";
        return Err(error(StatusCode::FORBIDDEN, message, None));
    }
    let record = PinarkivePin {
        cid: cid.clone(),
        canonical: parsed.canonical,
        cluster: cluster.clone(),
        name,
        created_at: now_millis(),
    };
    let added = lock(&state.pinarkive).pin(record);
    if added.is_err() {
        let code = Some("ALREADY_PINNED");
        return Err(error(StatusCode::CONFLICT, "CID already pinned", code));
    }
    // Keys in the documented order: cid, clusterId, expiresAt.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Pinned {
        cid: String,
        cluster_id: String,
        expires_at: Option<String>,
    }
    let body = Pinned {
        cid,
        cluster_id: cluster,
        expires_at: None,
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

async fn remove(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(cid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    check_key(&state, &headers)?;
    let parsed = parse_cid(&cid).map_err(|_| bad_request("Invalid CID"))?;
    // The server unpins from the cluster it recorded; a client may narrow it
    // with `?cl=` or `X-Cluster`, otherwise every cluster holding it is cleared.
    let cluster = match query.get("cl") {
        Some(cl) => Some(cl.clone()),
        None => cluster_header(&headers)?,
    };
    if let Some(cl) = &cluster {
        check_cluster(cl)?;
    }
    let removed = lock(&state.pinarkive).remove(&parsed.canonical, cluster.as_deref());
    if removed == 0 {
        let message = "Pin not found for this CID";
        return Err(error(StatusCode::NOT_FOUND, message, None));
    }
    #[derive(Serialize)]
    struct Removed {
        cid: String,
        removed: bool,
    }
    let body = Removed { cid, removed: true };
    Ok(axum::Json(body).into_response())
}

/// `GET /api/v3/status/{cid}?cl=`: its answer is undocumented; the
/// emulator answers `{cid, clusterId, status: "pinned"}`, or 404.
async fn status(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(cid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    check_key(&state, &headers)?;
    let parsed = parse_cid(&cid).map_err(|_| bad_request("Invalid CID"))?;
    let cluster = query.get("cl").cloned();
    if let Some(cl) = &cluster {
        check_cluster(cl)?;
    }
    let held = lock(&state.pinarkive)
        .all()
        .find(|p| {
            p.canonical == parsed.canonical && cluster.as_ref().is_none_or(|c| *c == p.cluster)
        })
        .map(|p| p.cluster.clone());
    let Some(cluster_id) = held else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "Pin not found for this CID",
            None,
        ));
    };
    Ok(
        axum::Json(serde_json::json!({"cid": cid, "clusterId": cluster_id, "status": "pinned"}))
            .into_response(),
    )
}

async fn uploads(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    check_key(&state, &headers)?;
    let number = |key: &str, default: usize| match query.get(key) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(bad_request(format!("{key} must be a positive integer"))),
        },
    };
    let page = number("page", 1)?;
    let limit = number("limit", 20)?.min(MAX_PAGE);
    let offset = (page - 1).saturating_mul(limit);
    let (total, pins) = lock(&state.pinarkive).list(offset, limit);
    #[derive(Serialize)]
    struct Uploads<'a> {
        uploads: Vec<UploadView<'a>>,
        total: usize,
    }
    let uploads = pins.iter().map(PinarkivePin::upload_view).collect();
    Ok(axum::Json(Uploads { uploads, total }).into_response())
}

/// Anything else under the Pinarkive prefixes: v1 and v2 are retired (410),
/// unknown v3 paths are 404.
pub(crate) fn not_found(path: &str) -> Response {
    let retired = ["/api/v1", "/api/v2"].iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    if retired {
        let body = json!({"error": "api_version_deprecated"});
        return (StatusCode::GONE, axum::Json(body)).into_response();
    }
    error(StatusCode::NOT_FOUND, "Route not found", None).into_response()
}
