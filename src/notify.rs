//! Calls the manifest's webhooks (`notify:`) on the events a person must
//! act on, without holding up the work that raised them.
//!
//! Each call runs in a task of its own with a timeout, and is tried again
//! with backoff; a failure is reported (logged, counted), never raised. The
//! URL and headers are filled from the environment: what they hold is a
//! secret, redacted from every report and never sent on a redirect.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use crate::manifest::{NotifyEvent, NotifyFormat, NotifyHook};
use crate::provider::secret::{Secret, Secrets};

/// Bound on one call to a webhook: three tries and their backoff take 18 s
/// at most, within what a stopping process waits for them.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Tries of one notice per webhook, and the wait before the second.
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The version of the JSON body; a change to its fields is a new one.
pub(crate) const BODY_VERSION: u32 = 1;

/// One event, as the webhooks are told it.
#[derive(Debug, Clone)]
pub(crate) struct Notice {
    pub(crate) event: NotifyEvent,
    /// One line for a person.
    pub(crate) summary: String,
    /// The event's figures (`failed`, `refused`, ...).
    pub(crate) details: serde_json::Value,
}

impl Notice {
    pub(crate) fn drift(repins: usize) -> Self {
        Self {
            event: NotifyEvent::Drift,
            summary: format!(
                "{repins} pin{} lost or failed at the provider; the next apply pins them again",
                if repins == 1 { " was" } else { "s were" }
            ),
            details: json!({"repin": repins}),
        }
    }

    /// An apply that left pins failed or not attempted, or could not run.
    pub(crate) fn apply_failed(failed: usize, why: Option<&str>) -> Self {
        Self {
            event: NotifyEvent::ApplyFailed,
            summary: match why {
                Some(why) => format!("the apply failed: {why}"),
                None => format!(
                    "the apply left {failed} pin{} failed",
                    if failed == 1 { "" } else { "s" }
                ),
            },
            details: json!({"failed": failed, "error": why}),
        }
    }

    pub(crate) fn blocked(refused: &[String]) -> Self {
        Self {
            event: NotifyEvent::Blocked,
            summary: format!(
                "a safety guard refused the plan's unpins: {}",
                refused.first().map_or("", String::as_str)
            ),
            details: json!({"refused": refused}),
        }
    }

    pub(crate) fn lease_lost() -> Self {
        Self {
            event: NotifyEvent::LeaseLost,
            summary: "the state's lease was lost (taken over, or the database is out of reach); \
                      watch stopped"
                .into(),
            details: json!({}),
        }
    }

    pub(crate) fn recovered() -> Self {
        Self {
            event: NotifyEvent::Recovered,
            summary: "the last reconcile succeeded after one that did not".into(),
            details: json!({}),
        }
    }
}

/// How a call to a webhook ended, for the log and the metrics.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The webhook, as the manifest writes its URL (`${VAR}` unfilled).
    pub(crate) hook: String,
    pub(crate) event: NotifyEvent,
    /// Why it failed after every try; `None`: delivered.
    pub(crate) failed: Option<String>,
}

/// Hears how each call ended.
pub(crate) type Report = Arc<dyn Fn(&Delivery) + Send + Sync>;

/// The manifest's webhooks, ready to call.
pub(crate) struct Notifier {
    hooks: Vec<Arc<Ready>>,
    client: reqwest::Client,
    manifest: String,
    report: Report,
    calls: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

struct Ready {
    shown: String,
    url: reqwest::Url,
    headers: HeaderMap,
    format: NotifyFormat,
    events: Vec<NotifyEvent>,
    secrets: Secrets,
}

impl Notifier {
    /// The webhooks of `hooks`, their `${VAR}`s filled through `lookup`;
    /// every variable that is not set is named at once.
    pub(crate) fn new(
        hooks: &[NotifyHook],
        manifest: &std::path::Path,
        lookup: impl Fn(&str) -> Option<String>,
        report: Report,
    ) -> anyhow::Result<Self> {
        let mut missing = Vec::new();
        let mut ready = Vec::new();
        for hook in hooks {
            let values: Vec<Secret> = hook
                .url
                .vars()
                .into_iter()
                .chain(hook.headers.iter().flat_map(|(_, v)| v.vars()))
                .filter_map(|var| match lookup(var).filter(|v| !v.is_empty()) {
                    Some(v) => Secret::new(&v),
                    None => {
                        missing.push(var.to_owned());
                        None
                    }
                })
                .collect();
            let (Ok(url), Ok(headers)) = (
                hook.url.fill(&lookup),
                hook.headers
                    .iter()
                    .map(|(name, value)| Ok((name.clone(), value.fill(&lookup)?)))
                    .collect::<Result<Vec<_>, String>>(),
            ) else {
                continue;
            };
            let shown = hook.url.as_written().to_owned();
            let url = reqwest::Url::parse(&url).map_err(|_| {
                anyhow::anyhow!("webhook {shown}: its URL does not parse once filled")
            })?;
            // Filled, it must still be https, or http to this machine.
            let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
            if url.scheme() != "https" && !(url.scheme() == "http" && local) {
                anyhow::bail!("webhook {shown}: once filled, its URL is not https");
            }
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                let mut value = HeaderValue::from_str(&value).map_err(|_| {
                    anyhow::anyhow!("webhook {shown}: header {name} cannot hold its value")
                })?;
                value.set_sensitive(true);
                map.insert(HeaderName::from_bytes(name.as_bytes())?, value);
            }
            ready.push(Arc::new(Ready {
                shown,
                url,
                headers: map,
                format: hook.format,
                events: hook.events.clone(),
                secrets: Secrets::new(values),
            }));
        }
        if !missing.is_empty() {
            missing.dedup();
            anyhow::bail!(
                "the webhooks of `notify` need {} from the environment",
                missing.join(", ")
            );
        }
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            // A URL or header holds a token: it goes nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pinsync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            hooks: ready,
            client,
            manifest: manifest.display().to_string(),
            report,
            calls: Mutex::new(Vec::new()),
        })
    }

    /// Calls every webhook that takes `notice`'s event, each in a task of
    /// its own on the current runtime: this returns at once.
    pub(crate) fn notify(&self, notice: &Notice) {
        let at = crate::state::now_rfc3339();
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.retain(|c| !c.is_finished());
        for hook in self
            .hooks
            .iter()
            .filter(|h| h.events.contains(&notice.event))
        {
            let body = match hook.format {
                NotifyFormat::Json => json!({
                    "version": BODY_VERSION,
                    "event": notice.event.as_str(),
                    "summary": notice.summary,
                    "manifest": self.manifest,
                    "at": at,
                    "details": notice.details,
                }),
                NotifyFormat::Slack => json!({
                    "text": format!("pinsync ({}): {}", self.manifest, notice.summary),
                }),
            };
            let (client, hook, report, event) = (
                self.client.clone(),
                hook.clone(),
                self.report.clone(),
                notice.event,
            );
            calls.push(tokio::spawn(async move {
                let failed = deliver(&client, &hook, &body).await.err();
                report(&Delivery {
                    hook: hook.shown.clone(),
                    event,
                    failed,
                });
            }));
        }
    }

    /// Waits for the calls still running, `within` at most: before the
    /// process exits. How many were left unfinished.
    pub(crate) async fn settle(&self, within: Duration) -> usize {
        let calls: Vec<_> =
            std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner));
        let deadline = tokio::time::Instant::now() + within;
        let mut left = 0;
        for call in calls {
            if tokio::time::timeout_at(deadline, call).await.is_err() {
                left += 1;
            }
        }
        left
    }
}

/// One notice to one webhook, tried [`ATTEMPTS`] times; why it failed,
/// with the secrets redacted.
async fn deliver(
    client: &reqwest::Client,
    hook: &Ready,
    body: &serde_json::Value,
) -> Result<(), String> {
    let mut backoff = FIRST_BACKOFF;
    let mut why = String::new();
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(hook.url.clone())
            .headers(hook.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .json(body)
            .send()
            .await;
        why = match sent {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("HTTP {}", r.status().as_u16()),
            // Without the URL, which holds the token; with the causes.
            Err(e) => {
                let e = e.without_url();
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                text
            }
        };
        if attempt < ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    Err(hook
        .secrets
        .redact(&format!("{why} after {ATTEMPTS} tries")))
}
