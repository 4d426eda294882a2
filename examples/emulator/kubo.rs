//! Kubo's RPC API (`/api/v0`), under `/kubo`, as kubo's
//! `core/commands/pin/pin.go` and go-ipfs-cmds define it: every call a
//! `POST` with its arguments in the query, errors as HTTP 500 with
//! `{"Message", "Code", "Type": "error"}`, streamed answers one JSON object
//! a line with a failure reported in the `X-Stream-Error` trailer.
//!
//! `pin/add` takes `--kubo-fetch-ms` to fetch a CID the node does not
//! hold, reporting `{"Progress", "Bytes"}` every `--kubo-progress-ms` with
//! `progress=true`. What it fetched stays when the client goes away, so a
//! later `pin/add` of the same CID resumes, as Kubo keeps fetched blocks.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body::Frame;
use serde_json::json;

use crate::store::{Shared, lock, parse_cid};

/// Where the API is mounted.
pub(crate) const PREFIX: &str = "/kubo";
/// Bytes a millisecond of fetching brings, and blocks a millisecond.
const BYTES_PER_MS: u64 = 1000;
const MS_PER_BLOCK: u64 = 10;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/kubo/api/v0/pin/add", post(add))
        .route("/kubo/api/v0/pin/rm", post(rm))
        .route("/kubo/api/v0/pin/ls", post(ls))
        .route("/kubo/api/v0/version", post(version))
}

/// Whether this Kubo takes pin names: 0.26 and later.
fn takes_names(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (0, 26)
}

/// go-ipfs-cmds refuses an option the command does not define.
fn unknown_option(name: &str) -> Refused {
    kubo_error(
        StatusCode::BAD_REQUEST,
        format!("Unrecognized option \"{name}\""),
        1,
    )
}

async fn version(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, Refused> {
    check_auth(&state, &headers)?;
    Ok(axum::Json(json!({
        "Version": state.settings.kubo_version,
        "Commit": "",
        "Repo": "16",
        "System": "amd64/linux",
        "Golang": "go1.23.4",
    }))
    .into_response())
}

/// The pins a node holds, and what it has fetched of DAGs not yet pinned.
#[derive(Default)]
pub(crate) struct KuboStore {
    /// By canonical CID.
    pins: BTreeMap<String, KuboPin>,
    /// Milliseconds of fetching done, by canonical CID.
    fetched: HashMap<String, u64>,
}

#[derive(Clone)]
pub(crate) struct KuboPin {
    /// As the client wrote it.
    pub cid: String,
    pub canonical: String,
    pub name: String,
}

impl KuboStore {
    pub(crate) fn all(&self) -> impl Iterator<Item = &KuboPin> {
        self.pins.values()
    }

    pub(crate) fn lose(&mut self, canonical: &str) -> bool {
        self.fetched.remove(canonical);
        self.pins.remove(canonical).is_some()
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Milliseconds of fetching done of each DAG not yet pinned.
    pub(crate) fn fetched(&self) -> &HashMap<String, u64> {
        &self.fetched
    }
}

/// How callers must authenticate (`--kubo-auth`, `--cluster-auth`).
#[derive(Clone, Debug)]
pub(crate) enum ExpectedAuth {
    None,
    /// The whole `Authorization` value expected: `Basic ...` or `Bearer ...`.
    Header(String),
}

impl ExpectedAuth {
    /// `none`, `basic:USER:PASSWORD` or `bearer:TOKEN`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        use base64::Engine as _;
        if text == "none" {
            return Ok(Self::None);
        }
        if let Some(pair) = text.strip_prefix("basic:") {
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            return Ok(Self::Header(format!("Basic {encoded}")));
        }
        if let Some(token) = text.strip_prefix("bearer:") {
            return Ok(Self::Header(format!("Bearer {token}")));
        }
        Err(format!(
            "{text:?} is not none, basic:USER:PASSWORD or bearer:TOKEN"
        ))
    }
}

/// A refused call: Kubo's error answer, or a proxy's plain 401.
enum Refused {
    Kubo(StatusCode, String, u32),
    Unauthorized,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Kubo(status, message, code) => {
                let body = json!({"Message": message, "Code": code, "Type": "error"});
                (status, axum::Json(body)).into_response()
            }
            Refused::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "401 Unauthorized\n").into_response()
            }
        }
    }
}

/// Kubo's error answer.
fn kubo_error(status: StatusCode, message: impl Into<String>, code: u32) -> Refused {
    Refused::Kubo(status, message.into(), code)
}

/// The answer for an injected status.
pub(crate) fn error_for_status(status: StatusCode) -> Response {
    let code = match status.as_u16() {
        429 => 3,
        401 | 403 => 4,
        500..=599 => 2,
        _ => 1,
    };
    kubo_error(
        status,
        status.canonical_reason().unwrap_or("error").to_string(),
        code,
    )
    .into_response()
}

/// A proxy in front of the node refuses a missing or wrong credential
/// with a plain 401, as nginx's basic auth and Filebase's RPC do.
fn check_auth(state: &Shared, headers: &HeaderMap) -> Result<(), Refused> {
    let ExpectedAuth::Header(expected) = &state.settings.kubo_auth else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given == Some(expected.as_str()) {
        return Ok(());
    }
    Err(Refused::Unauthorized)
}

/// The query, as go-ipfs-cmds reads it: options by name, `arg` repeated.
struct Args(Vec<(String, String)>);

impl Args {
    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    /// A boolean option: absent is `default`; anything but true/false is
    /// refused, as go-ipfs-cmds refuses it.
    fn flag(&self, name: &str, default: bool) -> Result<bool, Refused> {
        match self.one(name) {
            None => Ok(default),
            Some("true" | "") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(kubo_error(
                StatusCode::BAD_REQUEST,
                format!("Could not convert value '{other}' to type 'bool' (for option '-{name}')"),
                1,
            )),
        }
    }

    /// The one CID argument a pin call takes here.
    fn cid(&self) -> Result<(String, String), Refused> {
        let args = self.all("arg");
        let [cid] = args.as_slice() else {
            return Err(kubo_error(
                StatusCode::BAD_REQUEST,
                "argument \"ipfs-path\" is required",
                1,
            ));
        };
        match parse_cid(cid) {
            Ok(parsed) => Ok(((*cid).to_owned(), parsed.canonical)),
            Err(e) => Err(kubo_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("invalid path {cid:?}: {e}"),
                0,
            )),
        }
    }
}

/// Headers of a streamed answer, as go-ipfs-cmds sends them.
fn streamed(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-chunked-output", HeaderValue::from_static("1"));
    headers.insert(header::TRAILER, HeaderValue::from_static("X-Stream-Error"));
    response
}

fn line(value: &serde_json::Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

async fn add(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Refused> {
    check_auth(&state, &headers)?;
    let args = Args(query);
    let recursive = args.flag("recursive", true)?;
    let progress = args.flag("progress", false)?;
    let (cid, canonical) = args.cid()?;
    if !recursive {
        return Err(kubo_error(
            StatusCode::BAD_REQUEST,
            "this emulator keeps recursive pins only",
            1,
        ));
    }
    if args.one("name").is_some() && !takes_names(&state.settings.kubo_version) {
        return Err(unknown_option("name"));
    }
    let name = args.one("name").unwrap_or_default().to_owned();
    let fetch_ms = state.settings.kubo_fetch.as_millis() as u64;
    let tick = state.settings.kubo_progress.max(Duration::from_millis(1));
    let done = {
        let pin = KuboPin {
            cid: cid.clone(),
            canonical: canonical.clone(),
            name,
        };
        move |state: &Shared| {
            let mut store = lock(&state.kubo);
            store.fetched.remove(&pin.canonical);
            // Pinning again with another name renames the pin.
            store.pins.insert(pin.canonical.clone(), pin.clone());
            line(&json!({"Pins": [pin.cid]}))
        }
    };
    let held = lock(&state.kubo).pins.contains_key(&canonical);
    if held || fetch_ms == 0 {
        return Ok(streamed(Body::from(done(&state))));
    }
    if !progress {
        // Answers only once the DAG is whole.
        loop {
            tokio::time::sleep(tick).await;
            if advance(&state, &canonical, tick, fetch_ms) >= fetch_ms {
                return Ok(streamed(Body::from(done(&state))));
            }
        }
    }
    let state = state.clone();
    let frames = futures::stream::unfold(false, move |finished| {
        let state = state.clone();
        let canonical = canonical.clone();
        let done = done.clone();
        async move {
            if finished {
                return None;
            }
            tokio::time::sleep(tick).await;
            let ms = advance(&state, &canonical, tick, fetch_ms);
            if ms >= fetch_ms {
                let last =
                    line(&json!({"Progress": ms / MS_PER_BLOCK, "Bytes": ms * BYTES_PER_MS}));
                let mut both = last.to_vec();
                both.extend_from_slice(&done(&state));
                return Some((Ok::<_, Infallible>(Bytes::from(both)), true));
            }
            let progress = json!({"Progress": ms / MS_PER_BLOCK, "Bytes": ms * BYTES_PER_MS});
            Some((Ok(line(&progress)), false))
        }
    });
    Ok(streamed(Body::from_stream(frames)))
}

/// Fetches `tick` more of `canonical`'s DAG; returns the milliseconds done.
fn advance(state: &Shared, canonical: &str, tick: Duration, fetch_ms: u64) -> u64 {
    let mut store = lock(&state.kubo);
    let done = store.fetched.entry(canonical.to_owned()).or_default();
    *done = (*done + tick.as_millis() as u64).min(fetch_ms);
    *done
}

async fn rm(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Refused> {
    check_auth(&state, &headers)?;
    let args = Args(query);
    args.flag("recursive", true)?;
    let (cid, canonical) = args.cid()?;
    if lock(&state.kubo).pins.remove(&canonical).is_none() {
        return Err(kubo_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "not pinned or pinned indirectly",
            0,
        ));
    }
    Ok(axum::Json(json!({"Pins": [cid]})).into_response())
}

async fn ls(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Refused> {
    check_auth(&state, &headers)?;
    let args = Args(query);
    let stream = args.flag("stream", false)?;
    if args.one("names").is_some() && !takes_names(&state.settings.kubo_version) {
        return Err(unknown_option("names"));
    }
    let names = args.flag("names", false)?;
    let kind = args.one("type").unwrap_or("all");
    if !matches!(kind, "all" | "recursive" | "direct" | "indirect") {
        return Err(kubo_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("invalid type '{kind}', must be one of {{direct, indirect, recursive, all}}"),
            0,
        ));
    }
    // Every pin here is recursive.
    let listed = |p: &KuboPin| {
        let name = if names { p.name.clone() } else { String::new() };
        (p.cid.clone(), name)
    };
    let pins: Vec<(String, String)> = if !args.all("arg").is_empty() {
        let (cid, canonical) = args.cid()?;
        match lock(&state.kubo).pins.get(&canonical) {
            Some(p) if matches!(kind, "all" | "recursive") => vec![listed(p)],
            _ => {
                return Err(kubo_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("path '{cid}' is not pinned"),
                    0,
                ));
            }
        }
    } else if matches!(kind, "all" | "recursive") {
        lock(&state.kubo).pins.values().map(listed).collect()
    } else {
        Vec::new()
    };
    if !stream {
        let keys: serde_json::Map<String, serde_json::Value> = pins
            .into_iter()
            .map(|(cid, name)| (cid, json!({"Type": "recursive", "Name": name})))
            .collect();
        return Ok(axum::Json(json!({"Keys": keys})).into_response());
    }
    let break_after = state.settings.kubo_stream_error_after;
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = Vec::new();
    for (i, (cid, name)) in pins.into_iter().enumerate() {
        if break_after == Some(i) {
            let mut trailers = HeaderMap::new();
            trailers.insert(
                "x-stream-error",
                HeaderValue::from_static("context canceled"),
            );
            frames.push(Ok(Frame::trailers(trailers)));
            break;
        }
        let mut object = json!({"Cid": cid, "Type": "recursive"});
        if !name.is_empty() {
            object["Name"] = json!(name);
        }
        frames.push(Ok(Frame::data(line(&object))));
    }
    let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
    Ok(streamed(Body::new(body)))
}
