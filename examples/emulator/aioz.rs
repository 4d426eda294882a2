//! The AIOZ W3IPFS pinning API as its documentation describes it
//! (`/work/shared/provider-docs/aioz-pin-by-hash.md` and the README table):
//! key headers with underscores, pinByHash with `hash_to_pin`, pins addressed
//! by the id pinByHash returned. It is strict on purpose, so that a request
//! pinsync gets wrong fails here rather than against the real service.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::requests::{is_json, json_object};
use crate::store::{AiozPin, AiozPinView, PinnedFilter, Shared, lock, now_nanos, parse_cid};

/// Largest page a list call returns, whatever `limit` asks for.
const MAX_PAGE: usize = 1000;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/apiKeys/testAuthentication", get(test_authentication))
        .route("/api/pinning/pinByHash", post(pin_by_hash))
        .route("/api/pinning/pins/", get(list_pins))
        .route("/api/pinning/{pin_id}", get(get_pin))
        .route("/api/pinning/unpin/{pin_id}", delete(unpin))
}

/// An AIOZ error answer. Its shape is undocumented; clients read `message`
/// and treat `status != "success"` as failure, so that is what it carries.
pub(crate) struct Fail(pub StatusCode, pub String);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            status: &'static str,
            message: String,
        }
        let body = Body {
            status: "fail",
            message: self.1,
        };
        (self.0, axum::Json(body)).into_response()
    }
}

pub(crate) fn fail(status: StatusCode, message: impl Into<String>) -> Fail {
    Fail(status, message.into())
}

/// The error an injected fault gives for a bare status code.
pub(crate) fn error_for_status(status: StatusCode) -> Response {
    let message = match status.as_u16() {
        401 => "invalid api key".to_string(),
        404 => "pin not found".to_string(),
        429 => "rate limit exceeded".to_string(),
        _ => status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
    };
    fail(status, message).into_response()
}

/// AIOZ's success envelope, `data` first as in the provider's example.
#[derive(Serialize)]
struct Success<T> {
    data: T,
    status: &'static str,
}

fn success<T: Serialize>(data: T) -> Response {
    let status = "success";
    axum::Json(Success { data, status }).into_response()
}

#[derive(Serialize)]
struct PinList<'a> {
    totals: Totals,
    pins: Vec<AiozPinView<'a>>,
}

#[derive(Serialize)]
struct Totals {
    files: usize,
    size: u64,
}

/// Checks `pinning_api_key` and `pinning_secret_key` (underscores: a dashed
/// `pinning-api-key` is a different header and does not count).
fn check_keys(state: &Shared, headers: &HeaderMap) -> Result<(), Fail> {
    let api = headers.get("pinning_api_key");
    let secret = headers.get("pinning_secret_key");
    let (Some(api), Some(secret)) = (api, secret) else {
        return Err(fail(
            StatusCode::UNAUTHORIZED,
            "invalid api key: headers pinning_api_key and pinning_secret_key are required",
        ));
    };
    let settings = &state.settings;
    if api.as_bytes() != settings.aioz_api_key.as_bytes()
        || secret.as_bytes() != settings.aioz_secret_key.as_bytes()
    {
        return Err(fail(StatusCode::UNAUTHORIZED, "invalid api key"));
    }
    Ok(())
}

/// What every handler returns: an answer, or an AIOZ error answer.
type Answer = Result<Response, Fail>;

async fn test_authentication(State(state): State<Shared>, headers: HeaderMap) -> Answer {
    check_keys(&state, &headers)?;
    let message = "Congratulations! You are communicating with the AIOZ W3IPFS API!";
    Ok(axum::Json(json!({"message": message})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinByHashBody {
    hash_to_pin: String,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    keyvalues: Option<BTreeMap<String, String>>,
}

async fn pin_by_hash(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    check_keys(&state, &headers)?;
    if !is_json(&headers) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "Content-Type must be application/json",
        ));
    }
    let request: PinByHashBody = json_object(&body).map_err(|e| {
        fail(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {e}"),
        )
    })?;
    let parsed = parse_cid(&request.hash_to_pin)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("invalid hash_to_pin: {e}")))?;
    let (name, keyvalues) = match request.metadata {
        Some(m) => (m.name, m.keyvalues),
        None => (None, None),
    };
    let pin = AiozPin {
        id: uuid::Uuid::new_v4().to_string(),
        cid: request.hash_to_pin,
        canonical: parsed.canonical,
        root_hash: parsed.root_hash,
        date_pinned: now_nanos(),
        date_unpinned: None,
        name,
        keyvalues,
        status: "DONE",
        done_at: std::time::Instant::now() + state.settings.aioz_pinning,
    };
    // Undocumented case; the emulator's choice is to refuse a second pin of
    // the same content (a CIDv0 and its CIDv1 are the same content).
    let created = lock(&state.aioz).pin(pin);
    match created {
        Ok(pin) => Ok(success(pin.created_view())),
        Err(()) => Err(fail(StatusCode::BAD_REQUEST, "this file is already pinned")),
    }
}

async fn get_pin(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(pin_id): Path<String>,
) -> Answer {
    check_keys(&state, &headers)?;
    let pin = lock(&state.aioz).get(&pin_id);
    let pin = pin.ok_or_else(|| fail(StatusCode::NOT_FOUND, "pin not found"))?;
    Ok(success(pin.view()))
}

async fn unpin(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(pin_id): Path<String>,
) -> Answer {
    check_keys(&state, &headers)?;
    let pin = lock(&state.aioz).unpin(&pin_id);
    let pin = pin.ok_or_else(|| fail(StatusCode::NOT_FOUND, "pin not found"))?;
    Ok(success(pin.view()))
}

async fn list_pins(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    check_keys(&state, &headers)?;
    let number = |key: &str, default: usize| match query.get(key) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| {
            fail(
                StatusCode::BAD_REQUEST,
                format!("{key} must be a non-negative integer"),
            )
        }),
    };
    let offset = number("offset", 0)?;
    let limit = number("limit", 10)?.min(MAX_PAGE);
    let filter = match query.get("pinned").map(String::as_str) {
        None | Some("all") => PinnedFilter::All,
        Some("true") => PinnedFilter::Pinned,
        Some("false") => PinnedFilter::NotPinned,
        Some(_) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "pinned must be all, true or false",
            ));
        }
    };
    if let Some(sort_by) = query.get("sortBy")
        && sort_by != "created_at"
    {
        return Err(fail(StatusCode::BAD_REQUEST, "sortBy must be created_at"));
    }
    let descending = match query.get("sortOrder").map(|s| s.to_ascii_uppercase()) {
        None => false,
        Some(s) if s == "ASC" => false,
        Some(s) if s == "DESC" => true,
        Some(_) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "sortOrder must be ASC or DESC",
            ));
        }
    };
    let (total, page) = lock(&state.aioz).list(filter, descending, offset, limit);
    let pins = page.iter().map(AiozPin::view).collect();
    let totals = Totals {
        files: total,
        size: 0,
    };
    Ok(success(PinList { totals, pins }))
}
