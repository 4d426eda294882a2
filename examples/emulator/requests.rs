//! The gate every provider request passes: it counts the request, records it
//! in the request log (so tests can check the exact headers and bodies
//! pinsync sent), and applies the fault configuration before any handler
//! runs. Control-API requests (`/_emulator/...`) go straight through.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::faults::{Fault, Provider};
use crate::store::{Shared, lock};

/// Bodies larger than this are refused; pin calls are a few hundred bytes.
const MAX_BODY: usize = 1024 * 1024;

/// One provider request as received, and what the emulator answered.
#[derive(Clone, Serialize)]
pub(crate) struct LoggedRequest {
    pub provider: Option<Provider>,
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<Value>,
    pub raw_body: String,
    /// `null` while in flight, when the connection was dropped, or when the
    /// client went away before the answer.
    pub status: Option<u16>,
    /// The injected fault, if any (`drop`, `error`, `fail_next:status`,
    /// `limit` for a refusal by the rate limit, ...).
    pub fault: Option<String>,
    /// When it arrived: milliseconds since the emulator started.
    pub received_ms: u64,
}

/// When the emulator started, for `received_ms`.
pub(crate) fn started() -> Instant {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// Requests in arrival order. An entry is added on arrival and completed with
/// its status afterwards, so requests a client abandons are still listed.
#[derive(Default)]
pub(crate) struct RequestLog {
    /// Bumped by every reset, so a request that arrived before a reset does
    /// not write its status into an entry of the new log.
    generation: u64,
    entries: Vec<LoggedRequest>,
}

impl RequestLog {
    pub(crate) fn clear(&mut self) {
        self.generation += 1;
        self.entries.clear();
    }

    pub(crate) fn entries(&self) -> &[LoggedRequest] {
        &self.entries
    }
}

/// True when the request says its body is JSON, as the documented calls do.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses a body that must be a JSON object. serde would also accept an
/// array for a struct (fields by position), which no documented call sends.
pub(crate) fn json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("the body must be a JSON object".to_string());
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// True for the calls that create pins, counted in `stats.pin_calls`.
fn is_pin_call(method: &Method, path: &str) -> bool {
    method == Method::POST
        && (path == "/api/pinning/pinByHash"
            || path.starts_with("/api/v3/files/pin/")
            || path == "/psa/pins"
            || path == "/kubo/api/v0/pin/add"
            || path.starts_with("/cluster/pins/")
            || path == "/v3/files/public/pin_by_cid"
            || path == "/ipfs/rest/v1/pinning"
            || path == "/api/lighthouse/pin")
}

pub(crate) async fn gate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return next.run(request).await;
    }
    let started = Instant::now();
    let provider = Provider::for_path(path);
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    if is_pin_call(request.method(), path) {
        state.counters.pin_calls.fetch_add(1, Ordering::Relaxed);
    }
    let verbose_line = state
        .settings
        .verbose
        .then(|| format!("{} {}", request.method(), request.uri()));

    let (request, slot) = if state.settings.keep_request_log {
        match record(&state, provider, request).await {
            Ok(recorded) => recorded,
            Err(response) => return response,
        }
    } else {
        (request, None)
    };

    let verdict = lock(&state.limits).take(provider);
    let decision = if verdict.refused_for.is_some() {
        // Over the limit: refused before faults or the handler.
        crate::faults::Decision::default()
    } else {
        lock(&state.faults).decide(provider, request.method().as_str(), request.uri().path())
    };
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let label = if verdict.refused_for.is_some() {
        Some("limit".to_string())
    } else {
        decision.label()
    };
    let (mut response, answered) = match decision.fault {
        _ if verdict.refused_for.is_some() => {
            let refusal = Fault::Status {
                status: 429,
                retry_after: None,
                body: None,
            };
            (
                refusal.respond(provider, request.uri(), request.headers()),
                true,
            )
        }
        Some(Fault::Drop) => (
            Fault::Drop.respond(provider, request.uri(), request.headers()),
            false,
        ),
        Some(Fault::DropAfter) => {
            let (uri, headers) = (request.uri().clone(), request.headers().clone());
            let _ = next.run(request).await;
            (Fault::DropAfter.respond(provider, &uri, &headers), false)
        }
        Some(fault) => (
            fault.respond(provider, request.uri(), request.headers()),
            true,
        ),
        None => (next.run(request).await, true),
    };
    if let Some(headers) = verdict.headers {
        response.headers_mut().extend(headers);
    }
    let status = answered.then(|| response.status().as_u16());

    if let Some((generation, index)) = slot {
        let mut log = lock(&state.log);
        if log.generation == generation
            && let Some(entry) = log.entries.get_mut(index)
        {
            entry.status = status;
            entry.fault = label.clone();
        }
    }
    if let Some(line) = verbose_line {
        let status = status.map_or("dropped".to_string(), |s| s.to_string());
        let fault = label.map(|l| format!(" [fault {l}]")).unwrap_or_default();
        eprintln!("{line} -> {status}{fault} in {:?}", started.elapsed());
    }
    response
}

/// Reads the body (to log it) and puts it back; returns the log slot.
async fn record(
    state: &Shared,
    provider: Option<Provider>,
    request: Request,
) -> Result<(Request, Option<(u64, usize)>), Response> {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let message = "request body too large or unreadable";
            return Err((StatusCode::PAYLOAD_TOO_LARGE, message).into_response());
        }
    };
    let mut headers = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|joined: &mut String| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    let entry = LoggedRequest {
        provider,
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |pq| pq.to_string()),
        headers,
        body: if bytes.is_empty() {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
        },
        raw_body: String::from_utf8_lossy(&bytes).into_owned(),
        status: None,
        fault: None,
        received_ms: u64::try_from(started().elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let slot = {
        let mut log = lock(&state.log);
        log.entries.push(entry);
        (log.generation, log.entries.len() - 1)
    };
    Ok((Request::from_parts(parts, Body::from(bytes)), Some(slot)))
}
