//! What `watch --listen` serves: Prometheus metrics at `/metrics`, and
//! `/healthz` and `/readyz` for a supervisor.
//!
//! Labels stay bounded: targets, providers, kinds of call and results,
//! never CIDs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::manifest::CallKind;
use crate::provider::Pacers;
use crate::state::{PinStatus, State};
use crate::watch::{Outcome, Role};

/// Reconciles in a row without a success, in intervals, before `/readyz`
/// says not ready.
const READY_INTERVALS: u32 = 3;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PinLabels {
    target: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    provider: String,
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: &'static str,
}

/// How one provider call ended, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    Ok,
    /// 429.
    RateLimited,
    /// Another 4xx.
    Refused,
    /// 5xx.
    ServerError,
    /// No answer: refused or dropped connection, timeout.
    Transport,
    /// A 3xx, which pinsync does not follow.
    Redirected,
}

impl CallOutcome {
    /// The outcome of an answer with this status.
    pub(crate) fn of(status: reqwest::StatusCode) -> Self {
        match status.as_u16() {
            200..=299 => Self::Ok,
            300..=399 => Self::Redirected,
            429 => Self::RateLimited,
            400..=499 => Self::Refused,
            _ => Self::ServerError,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::RateLimited => "rate_limited",
            Self::Refused => "refused",
            Self::ServerError => "server_error",
            Self::Transport => "transport",
            Self::Redirected => "redirected",
        }
    }
}

/// Every metric, and what `/readyz` judges by.
pub(crate) struct Metrics {
    registry: Registry,
    pins: Family<PinLabels, Gauge>,
    reconciles: Family<ResultLabels, Counter>,
    last_success: Gauge<f64, AtomicU64>,
    apply_seconds: Histogram,
    calls: Family<CallLabels, Counter>,
    retries: Family<ProviderLabels, Counter>,
    pace: Family<ProviderLabels, Gauge<f64, AtomicU64>>,
    role: Family<RoleLabels, Gauge>,
    notifications: Family<NotifyLabels, Counter>,
    health: Mutex<Health>,
    /// The series of `pins` set last, to remove those that are gone.
    pin_series: Mutex<Vec<PinLabels>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotifyLabels {
    event: &'static str,
    outcome: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// What readiness is judged by.
#[derive(Debug)]
struct Health {
    interval: Duration,
    role: Role,
    last_success: Option<Instant>,
    /// The last reconcile's result and why, when it was not a success.
    last: Option<(Outcome, Option<String>)>,
}

impl Metrics {
    /// Metrics for a watch that reconciles every `interval`.
    pub(crate) fn new(interval: Duration) -> Arc<Self> {
        let mut registry = Registry::with_prefix("pinsync");
        let pins = Family::<PinLabels, Gauge>::default();
        registry.register(
            "pins",
            "Pins the state records, by target and status: managed, orphaned, and of \
             those lost or failed at the last refresh",
            pins.clone(),
        );
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by result: ok, failed, blocked, invalid_manifest, error",
            reconciles.clone(),
        );
        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "When a reconcile last ended ok, in seconds since the Unix epoch",
            last_success.clone(),
        );
        let apply_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 16));
        registry.register(
            "apply_duration_seconds",
            "How long each reconcile's apply took",
            apply_seconds.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "provider_calls",
            "Provider calls by provider, kind (pin, unpin, list, status) and outcome \
             (ok, rate_limited, refused, server_error, transport, redirected)",
            calls.clone(),
        );
        let retries = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_retries",
            "Provider calls made again after a failure",
            retries.clone(),
        );
        let pace = Family::<ProviderLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "provider_pace_calls_per_second",
            "Each paced provider's pace now (the adaptive pace, after the service's 429s)",
            pace.clone(),
        );
        let role = Family::<RoleLabels, Gauge>::default();
        registry.register(
            "lease_role",
            "1 for the role this server plays on its state: active (holds the lock) or \
             standby (waits for the lease)",
            role.clone(),
        );
        let notifications = Family::<NotifyLabels, Counter>::default();
        registry.register(
            "notifications",
            "Webhook calls by event and outcome (delivered, or failed after its tries)",
            notifications.clone(),
        );
        let metrics = Self {
            pin_series: Mutex::new(Vec::new()),
            notifications,
            registry,
            pins,
            reconciles,
            last_success,
            apply_seconds,
            calls,
            retries,
            pace,
            role,
            health: Mutex::new(Health {
                interval,
                role: Role::Active,
                last_success: None,
                last: None,
            }),
        };
        metrics.set_role(Role::Active);
        Arc::new(metrics)
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One provider call and how it ended.
    pub(crate) fn call(&self, provider: &str, kind: CallKind, outcome: CallOutcome) {
        self.calls
            .get_or_create(&CallLabels {
                provider: provider.to_owned(),
                kind: kind.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// A webhook told of `event`, or not.
    pub(crate) fn notified(&self, event: &'static str, delivered: bool) {
        let outcome = if delivered { "delivered" } else { "failed" };
        self.notifications
            .get_or_create(&NotifyLabels { event, outcome })
            .inc();
    }

    /// A call about to be made again.
    pub(crate) fn retry(&self, provider: &str) {
        self.retries
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
            })
            .inc();
    }

    pub(crate) fn set_role(&self, role: Role) {
        self.health().role = role;
        for (r, name) in [(Role::Active, "active"), (Role::Standby, "standby")] {
            self.role
                .get_or_create(&RoleLabels { role: name })
                .set(i64::from(r == role));
        }
    }

    /// A reconcile ended: its result, how long its apply took (none when it
    /// made no call), and why it did not succeed.
    pub(crate) fn reconciled(&self, outcome: Outcome, apply: Option<Duration>, why: Option<&str>) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: outcome.as_str(),
            })
            .inc();
        if let Some(d) = apply {
            self.apply_seconds.observe(d.as_secs_f64());
        }
        let mut health = self.health();
        if outcome == Outcome::Ok {
            health.last_success = Some(Instant::now());
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
        health.last = Some((outcome, why.map(str::to_owned)));
    }

    /// The state's pins by target and status.
    pub(crate) fn pins(&self, state: &State) {
        // Counted by the target itself; its text is made once a series,
        // not once a pin (a watch at a million pins counts them all).
        let mut counts: BTreeMap<(&crate::manifest::Target, &'static str), i64> = BTreeMap::new();
        for (key, record) in &state.pins {
            let target = &key.target;
            let status = match record.status {
                PinStatus::Managed => "managed",
                PinStatus::Orphaned => "orphaned",
            };
            *counts.entry((target, status)).or_default() += 1;
            if let Some(seen) = record.observed.as_ref().filter(|o| o.status.is_lost()) {
                let drift = if seen.status == crate::state::ProviderStatus::Failed {
                    "failed"
                } else {
                    "lost"
                };
                *counts.entry((target, drift)).or_default() += 1;
            }
        }
        let series: Vec<PinLabels> = counts
            .into_iter()
            .map(|((target, status), n)| {
                let labels = PinLabels {
                    target: target.to_string(),
                    status,
                };
                self.pins.get_or_create(&labels).set(n);
                labels
            })
            .collect();
        // Series gone from the state leave the family; the others were
        // replaced in place, so a scrape never sees the family empty.
        let mut last = self
            .pin_series
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for gone in last.iter().filter(|l| !series.contains(l)) {
            self.pins.remove(gone);
        }
        *last = series;
    }

    /// The text `/metrics` serves, each provider's pace read now.
    pub(crate) fn encode(&self, pacers: &Pacers) -> String {
        for (provider, rate) in pacers.rates() {
            self.pace
                .get_or_create(&ProviderLabels { provider })
                .set(rate);
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Ready when a reconcile succeeded within the last few intervals; else
    /// why not.
    pub(crate) fn readiness(&self) -> Result<String, String> {
        let health = self.health();
        if health.role == Role::Standby {
            return Err("standby: another server holds the lease".into());
        }
        let window = health.interval * READY_INTERVALS;
        let why = || match &health.last {
            Some((outcome, Some(why))) => {
                format!(" (last result {}: {why})", outcome.as_str())
            }
            Some((outcome, None)) => format!(" (last result {})", outcome.as_str()),
            None => String::new(),
        };
        match health.last_success {
            Some(at) if at.elapsed() <= window => Ok(format!(
                "ready: last success {} s ago",
                at.elapsed().as_secs()
            )),
            Some(at) => Err(format!(
                "no successful reconcile for {} s, more than {READY_INTERVALS} intervals{}",
                at.elapsed().as_secs(),
                why()
            )),
            None => Err(format!("no successful reconcile yet{}", why())),
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` from a thread of
/// its own (it answers while a standby waits for the lease, before any
/// runtime runs). Binds before it returns, so a taken port is an error.
pub(crate) fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    pacers: Pacers,
) -> anyhow::Result<SocketAddr> {
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the metrics server")?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = axum::Router::new()
                    .route(
                        "/metrics",
                        axum::routing::get({
                            let metrics = metrics.clone();
                            move || async move {
                                (
                                    [(
                                        axum::http::header::CONTENT_TYPE,
                                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                    )],
                                    metrics.encode(&pacers),
                                )
                            }
                        }),
                    )
                    .route("/healthz", axum::routing::get(|| async { "ok\n" }))
                    .route(
                        "/readyz",
                        axum::routing::get(move || async move {
                            match metrics.readiness() {
                                Ok(text) => (axum::http::StatusCode::OK, text + "\n"),
                                Err(why) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, why + "\n"),
                            }
                        }),
                    );
                let _ = axum::serve(listener, app).await;
            });
        })
        .context("start the metrics thread")?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_a_success_within_the_window_and_never_as_a_standby() {
        let metrics = Metrics::new(Duration::from_secs(60));
        assert_eq!(
            metrics.readiness(),
            Err("no successful reconcile yet".into())
        );
        metrics.reconciled(
            Outcome::Failed,
            Some(Duration::from_secs(1)),
            Some("aioz down"),
        );
        assert_eq!(
            metrics.readiness(),
            Err("no successful reconcile yet (last result failed: aioz down)".into())
        );
        metrics.reconciled(Outcome::Ok, None, None);
        assert!(metrics.readiness().is_ok());
        // A success older than three intervals is not ready any more.
        metrics.health().last_success = Instant::now().checked_sub(Duration::from_secs(181));
        assert!(
            metrics
                .readiness()
                .is_err_and(|why| why.contains("no successful reconcile for 181 s"))
        );
        metrics.set_role(Role::Standby);
        assert_eq!(
            metrics.readiness(),
            Err("standby: another server holds the lease".into())
        );
        let text = metrics.encode(&Pacers::default());
        assert!(
            text.contains(r#"pinsync_lease_role{role="standby"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"pinsync_reconciles_total{result="failed"} 1"#),
            "{text}"
        );
    }
}
