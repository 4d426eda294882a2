//! The control API under `/_emulator/`: lets tests and benchmarks look at
//! what the emulator holds and received, and change its fault configuration,
//! without going through (or being counted as) provider calls. No auth.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::faults::{FaultConfig, Provider};
use crate::limits::Limit;
use crate::pinning_service::{NewRequest, Traps};
use crate::store::{Shared, lock};

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/_emulator/pins", get(pins))
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/faults", get(get_faults).post(set_faults))
        .route("/_emulator/reset", post(reset))
        .route("/_emulator/pins/status", post(set_pin_status))
        .route("/_emulator/psa", get(get_traps).post(set_traps))
        .route("/_emulator/limits", get(get_limits).post(set_limits))
        .route("/_emulator/psa/requests", post(add_psa_requests))
        .route("/_emulator/kubo/fetched", get(kubo_fetched))
        .route("/_emulator/pinata/queue", get(pinata_queue))
}

/// A pin of any provider, in one shape tests can compare.
#[derive(Serialize)]
struct ControlPin {
    provider: Provider,
    cid: String,
    canonical_cid: String,
    cluster: Option<String>,
    name: Option<String>,
    keyvalues: Option<BTreeMap<String, String>>,
    id: Option<String>,
    pinned_at: String,
    unpinned: bool,
}

#[derive(Deserialize)]
struct PinsQuery {
    #[serde(default)]
    include_unpinned: bool,
}

/// Pins held now. AIOZ keeps the records of unpinned pins; they are left out
/// unless `?include_unpinned=true`, so "held" means what a user would expect.
async fn pins(State(state): State<Shared>, Query(query): Query<PinsQuery>) -> Response {
    let mut all: Vec<ControlPin> = lock(&state.aioz)
        .all()
        .iter()
        .filter(|p| query.include_unpinned || p.date_unpinned.is_none())
        .map(|p| ControlPin {
            provider: Provider::Aioz,
            cid: p.cid.clone(),
            canonical_cid: p.canonical.clone(),
            cluster: None,
            name: p.name.clone(),
            keyvalues: p.keyvalues.clone(),
            id: Some(p.id.clone()),
            pinned_at: p.date_pinned.clone(),
            unpinned: p.date_unpinned.is_some(),
        })
        .collect();
    all.extend(lock(&state.pinarkive).all().map(|p| ControlPin {
        provider: Provider::Pinarkive,
        cid: p.cid.clone(),
        canonical_cid: p.canonical.clone(),
        cluster: Some(p.cluster.clone()),
        name: p.name.clone(),
        keyvalues: None,
        id: None,
        pinned_at: p.created_at.clone(),
        unpinned: false,
    }));
    all.extend(lock(&state.psa).all().map(|r| ControlPin {
        provider: Provider::PinningService,
        cid: r.cid.clone(),
        canonical_cid: r.canonical.clone(),
        cluster: None,
        name: r.name.clone(),
        keyvalues: Some(r.meta.clone()),
        id: Some(r.id.clone()),
        pinned_at: humantime::format_rfc3339_millis(r.created).to_string(),
        unpinned: false,
    }));
    all.extend(lock(&state.kubo).all().map(|p| ControlPin {
        provider: Provider::Kubo,
        cid: p.cid.clone(),
        canonical_cid: p.canonical.clone(),
        cluster: None,
        name: Some(p.name.clone()).filter(|n| !n.is_empty()),
        keyvalues: None,
        id: None,
        pinned_at: String::new(),
        unpinned: false,
    }));
    all.extend(lock(&state.cluster).all().map(|p| ControlPin {
        provider: Provider::Cluster,
        cid: p.cid.clone(),
        canonical_cid: p.canonical.clone(),
        cluster: None,
        name: Some(p.name.clone()).filter(|n| !n.is_empty()),
        keyvalues: Some(p.metadata.clone()),
        id: None,
        pinned_at: String::new(),
        unpinned: false,
    }));
    // Pinata's pins are its files; jobs still queued are not pins yet.
    let pinata = lock(&state.pinata).all_files(state.settings.pinata_pinning);
    all.extend(pinata.into_iter().map(|f| ControlPin {
        provider: Provider::Pinata,
        cid: f.cid,
        canonical_cid: f.canonical,
        cluster: None,
        name: f.name,
        keyvalues: f.keyvalues,
        id: Some(f.id),
        pinned_at: f.created_at,
        unpinned: false,
    }));
    all.extend(lock(&state.quicknode).all().map(|o| ControlPin {
        provider: Provider::QuickNode,
        cid: o.cid.clone(),
        canonical_cid: o.canonical.clone(),
        cluster: None,
        name: Some(o.name.clone()),
        // Non-string meta values as their JSON text.
        keyvalues: o.meta.as_ref().map(|meta| {
            meta.iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        }),
        id: Some(o.request_id.clone()),
        pinned_at: o.created_at.clone(),
        unpinned: false,
    }));
    all.extend(lock(&state.lighthouse).all().map(|u| {
        ControlPin {
            provider: Provider::Lighthouse,
            cid: u.cid.clone(),
            canonical_cid: u.canonical.clone(),
            cluster: None,
            name: Some(u.file_name.clone()),
            keyvalues: None,
            id: Some(u.id.clone()),
            pinned_at: humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(u.created_ms),
            )
            .to_string(),
            unpinned: false,
        }
    }));
    // Sorted so tests can compare whole lists; pinned_at orders repeated AIOZ
    // pins of the same content (an unpinned record and its successor).
    all.sort_by(|a, b| {
        (
            a.provider.name(),
            &a.canonical_cid,
            &a.cluster,
            &a.pinned_at,
        )
            .cmp(&(
                b.provider.name(),
                &b.canonical_cid,
                &b.cluster,
                &b.pinned_at,
            ))
    });
    axum::Json(all).into_response()
}

async fn requests(State(state): State<Shared>) -> Response {
    let entries = lock(&state.log).entries().to_vec();
    axum::Json(entries).into_response()
}

async fn stats(State(state): State<Shared>) -> Response {
    let pins = lock(&state.aioz).active_count()
        + lock(&state.pinarkive).count()
        + lock(&state.psa).count()
        + lock(&state.pinata).file_count(state.settings.pinata_pinning)
        + lock(&state.quicknode).count()
        + lock(&state.lighthouse).count();
    let rate_limited = lock(&state.limits).refused().clone();
    axum::Json(json!({
        "requests": state.counters.requests.load(Ordering::Relaxed),
        "pin_calls": state.counters.pin_calls.load(Ordering::Relaxed),
        "pins": pins,
        "rate_limited": rate_limited,
    }))
    .into_response()
}

async fn get_faults(State(state): State<Shared>) -> Response {
    let config = lock(&state.faults).clone();
    axum::Json(config).into_response()
}

/// Replaces the whole fault configuration; an empty body resets it.
async fn set_faults(State(state): State<Shared>, body: Bytes) -> Response {
    let config: FaultConfig = if body.iter().all(u8::is_ascii_whitespace) {
        FaultConfig::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(config) => config,
            Err(e) => return bad_request(format!("invalid fault config: {e}")),
        }
    };
    if let Err(e) = config.validate() {
        return bad_request(format!("invalid fault config: {e}"));
    }
    *lock(&state.faults) = config.clone();
    axum::Json(config).into_response()
}

/// What happens to a pin behind pinsync's back: `{"provider": "aioz",
/// "cid": CID, "status": "FAILED"}` (AIOZ: DONE, RETRIEVAL, FAILED), or
/// `{"provider": ..., "cid": ..., "lost": true}`: gone, not even listed.
///
/// Statuses by provider: psa and quicknode take their own statuses;
/// `by_hand` (cluster, pinata, quicknode, lighthouse) adds someone else's
/// pin of the CID; pinata takes a failure status for the CID's queued job
/// (expired, over_free_limit, over_max_size, invalid_object,
/// bad_host_node); lighthouse takes `permanent` (its uploads cannot be
/// deleted).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinChange {
    provider: Provider,
    cid: String,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    lost: bool,
}

async fn set_pin_status(State(state): State<Shared>, body: Bytes) -> Response {
    let change: PinChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return bad_request(format!("invalid pin change: {e}")),
    };
    let canonical = match crate::store::parse_cid(&change.cid) {
        Ok(p) => p.canonical,
        Err(e) => return bad_request(e),
    };
    let done = match (change.provider, change.lost, change.status.as_deref()) {
        (Provider::Aioz, true, None) => lock(&state.aioz).lose(&canonical),
        (Provider::Aioz, false, Some(status)) => {
            match crate::store::AIOZ_STATUSES.iter().find(|s| **s == status) {
                Some(s) => lock(&state.aioz).set_status(&canonical, s),
                None => return bad_request(format!("unknown AIOZ status {status:?}")),
            }
        }
        (Provider::Pinarkive, true, None) => {
            lock(&state.pinarkive).remove(&canonical, change.cluster.as_deref()) > 0
        }
        (Provider::PinningService, true, None) => lock(&state.psa).lose(&canonical),
        (Provider::Kubo, true, None) => lock(&state.kubo).lose(&canonical),
        (Provider::Cluster, true, None) => lock(&state.cluster).lose(&canonical),
        (Provider::Cluster, false, Some("by_hand")) => {
            lock(&state.cluster).add_by_hand(&change.cid, &canonical, state.settings.cluster_peers);
            true
        }
        (Provider::Pinata, true, None) => {
            lock(&state.pinata).lose(&canonical, state.settings.pinata_pinning)
        }
        (Provider::Pinata, false, Some("by_hand")) => {
            lock(&state.pinata).add_by_hand(&change.cid, &canonical);
            true
        }
        (Provider::Pinata, false, Some(status)) => {
            match crate::pinata::FAILED_STATUSES
                .iter()
                .find(|s| **s == status)
            {
                Some(s) => lock(&state.pinata).fail(&canonical, s, state.settings.pinata_pinning),
                None => return bad_request(format!("unknown Pinata status {status:?}")),
            }
        }
        (Provider::QuickNode, true, None) => lock(&state.quicknode).lose(&canonical),
        (Provider::QuickNode, false, Some("by_hand")) => {
            lock(&state.quicknode).add_by_hand(&change.cid, &canonical);
            true
        }
        (Provider::QuickNode, false, Some(status)) => {
            match crate::quicknode::status_named(status) {
                Some(s) => lock(&state.quicknode).set_status(&canonical, s),
                None => return bad_request(format!("unknown QuickNode status {status:?}")),
            }
        }
        (Provider::Lighthouse, true, None) => lock(&state.lighthouse).lose(&canonical),
        (Provider::Lighthouse, false, Some("by_hand")) => {
            lock(&state.lighthouse).add_by_hand(&change.cid, &canonical);
            true
        }
        (Provider::Lighthouse, false, Some("permanent")) => {
            lock(&state.lighthouse).make_permanent(&canonical)
        }
        (Provider::PinningService, false, Some(status)) => {
            match crate::pinning_service::status_named(status) {
                Some(s) => lock(&state.psa).set_status(&canonical, s),
                None => return bad_request(format!("unknown Pinning Service status {status:?}")),
            }
        }
        _ => {
            return bad_request(
                "give `lost: true`, or a `status` the provider takes: its own statuses \
                 (aioz, psa, quicknode), a failure status (pinata), `permanent` \
                 (lighthouse), `by_hand` (cluster, pinata, quicknode, lighthouse)"
                    .to_string(),
            );
        }
    };
    if !done {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such pin"})),
        )
            .into_response();
    }
    axum::Json(json!({"changed": true})).into_response()
}

/// What the Kubo node has fetched of each DAG it has not pinned yet, in
/// milliseconds of fetching, by canonical CID.
async fn kubo_fetched(State(state): State<Shared>) -> Response {
    axum::Json(lock(&state.kubo).fetched().clone()).into_response()
}

/// Pinata's queue: `{"peak", "backfilled", "queued"}`, the most jobs
/// queued at once (working or backfilled), how many jobs were ever
/// backfilled, and how many are queued now.
async fn pinata_queue(State(state): State<Shared>) -> Response {
    let counters = lock(&state.pinata).queue_counters(state.settings.pinata_pinning);
    axum::Json(counters).into_response()
}

async fn reset(State(state): State<Shared>) -> Response {
    *lock(&state.aioz) = Default::default();
    *lock(&state.pinarkive) = Default::default();
    *lock(&state.psa) = Default::default();
    lock(&state.kubo).clear();
    lock(&state.cluster).clear();
    lock(&state.pinata).clear();
    lock(&state.quicknode).clear();
    lock(&state.lighthouse).clear();
    *lock(&state.faults) = FaultConfig::default();
    lock(&state.limits).reset_counts();
    lock(&state.log).clear();
    state.counters.requests.store(0, Ordering::Relaxed);
    state.counters.pin_calls.store(0, Ordering::Relaxed);
    axum::Json(json!({"reset": true})).into_response()
}

async fn get_limits(State(state): State<Shared>) -> Response {
    axum::Json(lock(&state.limits).current()).into_response()
}

/// Replaces every provider's limit (`{"aioz": {"per_second": 20, "burst":
/// 20, "headers_always": true}}`); an empty object lifts them all. The
/// buckets start full and the refusal counts at zero.
async fn set_limits(State(state): State<Shared>, body: Bytes) -> Response {
    let limits: BTreeMap<Provider, Limit> = match serde_json::from_slice(&body) {
        Ok(limits) => limits,
        Err(e) => return bad_request(format!("invalid limits: {e}")),
    };
    if let Some(e) = limits.values().find_map(|l| l.validate().err()) {
        return bad_request(format!("invalid limits: {e}"));
    }
    let mut current = lock(&state.limits);
    current.set(limits);
    current.reset_counts();
    axum::Json(current.current()).into_response()
}

async fn get_traps(State(state): State<Shared>) -> Response {
    axum::Json(lock(&state.psa).traps.clone()).into_response()
}

/// Replaces the Pinning Service traps; an empty body turns them all off.
async fn set_traps(State(state): State<Shared>, body: Bytes) -> Response {
    let traps: Traps = if body.iter().all(u8::is_ascii_whitespace) {
        Traps::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(traps) => traps,
            Err(e) => return bad_request(format!("invalid traps: {e}")),
        }
    };
    if let Err(e) = traps.validate() {
        return bad_request(format!("invalid traps: {e}"));
    }
    lock(&state.psa).traps = traps.clone();
    axum::Json(traps).into_response()
}

/// Requests made by hand (or by another tool) on the Pinning Service:
/// `[{"cid": CID, "name": ..., "meta": {...}}, ...]`, or `{"count": N}` for
/// N requests of made-up CIDs (for benchmarks). Answers their ids.
#[derive(Deserialize)]
#[serde(untagged)]
enum HandMade {
    Listed(Vec<HandMadeRequest>),
    Generated { count: usize },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HandMadeRequest {
    cid: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
}

async fn add_psa_requests(State(state): State<Shared>, body: Bytes) -> Response {
    let wanted = match serde_json::from_slice(&body) {
        Ok(HandMade::Listed(list)) => list,
        Ok(HandMade::Generated { count }) => (0..count)
            .map(|i| HandMadeRequest {
                cid: crate::store::made_up_cid(i as u64),
                name: Some(format!("generated-{i}")),
                meta: BTreeMap::new(),
            })
            .collect(),
        Err(e) => return bad_request(format!("invalid requests: {e}")),
    };
    let mut new = Vec::with_capacity(wanted.len());
    for w in wanted {
        match crate::store::parse_cid(&w.cid) {
            Ok(p) => new.push(NewRequest {
                cid: w.cid,
                canonical: p.canonical,
                name: w.name,
                origins: Vec::new(),
                meta: w.meta,
            }),
            Err(e) => return bad_request(e),
        }
    }
    let mut store = lock(&state.psa);
    let ids: Vec<String> = new.into_iter().map(|n| store.add(n).id).collect();
    axum::Json(json!({"requestids": ids})).into_response()
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": message})),
    )
        .into_response()
}
