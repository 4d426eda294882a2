//! Kubo's RPC API (`/api/v0`): a node of your own, Filebase's RPC endpoint,
//! or ipfs-cluster's proxy. Every call is a `POST` with its argument in the
//! query, as kubo's `core/commands/pin/pin.go` defines them.
//!
//! `pin/add` answers only once the whole DAG is on the node, which can take
//! hours for a large DAG fetched from the network. It is sent with
//! `progress=true`, so the node reports what it has fetched every half
//! second and the call is never idle; it is bounded by `pin_timeout`
//! (default an hour), not by the request timeout of the other calls; and
//! at most [`MAX_CONCURRENCY`] run at once, so a few large DAGs do not
//! split the node's bandwidth among dozens. A pin that runs out of time is
//! reported with what was fetched: the node keeps those blocks, and the
//! next apply resumes it.
//!
//! A Kubo pin has a CID, a type and a name, and no owner: pinsync looks
//! each CID up before it pins it, adopts one the node holds already as
//! foreign, and only ever removes the pins its state records as its own
//! (those it made, or imported).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;

use super::http::{self, Answer};
use super::registry::{
    Capabilities, Connection, Credential, FieldValue, ProviderType, Starter, TypeField, UnpinBy,
    commented,
};
use super::{
    Checked, ListedPin, Listing, PinReceipt, PinRequest, Provider, ProviderError, Secret,
    UnpinReceipt, UnpinRequest,
};
use crate::manifest::CallKind;
use crate::state::ProviderStatus;

/// How long one `pin/add` may fetch when the manifest says nothing.
const DEFAULT_PIN_TIMEOUT: Duration = Duration::from_secs(3600);
/// `pin/add` calls at once on one node.
const MAX_CONCURRENCY: usize = 4;
/// Bound on a whole streamed listing (a million pins is about 100 MB).
const LIST_TIMEOUT: Duration = Duration::from_secs(600);

/// `type: kubo`.
pub(crate) static TYPE: ProviderType = ProviderType {
    name: "kubo",
    title: "Kubo",
    summary: "Kubo's RPC API (/api/v0): a node of your own, Filebase's RPC endpoint or \
              ipfs-cluster's proxy; no credential, username and password, or token",
    fields: &[
        TypeField {
            name: "token",
            required: false,
            value: FieldValue::Secret,
            description: "the environment variable holding a bearer token (Filebase's RPC \
                          endpoint takes its bucket's), as ${VAR}",
            requires: &[],
            conflicts: &["username"],
        },
        TypeField {
            name: "username",
            required: false,
            value: FieldValue::Text,
            description: "the user name for Basic auth (a node behind a proxy, Infura)",
            requires: &["password"],
            conflicts: &["token"],
        },
        TypeField {
            name: "password",
            required: false,
            value: FieldValue::Secret,
            description: "the environment variable holding the Basic auth password, as ${VAR}",
            requires: &["username"],
            conflicts: &[],
        },
        TypeField::new(
            "pin_timeout",
            false,
            FieldValue::Duration,
            "how long one pin/add may fetch its DAG (default 1h); one that runs out is \
             resumed by the next apply",
        ),
    ],
    default_base_url: Some("http://127.0.0.1:5001"),
    // A node of your own sets no limit; a service's proxy can be given one.
    default_rate_limit: None,
    max_concurrency: Some(MAX_CONCURRENCY),
    capabilities: Capabilities {
        clusters: false,
        unpin_by: UnpinBy::Cid,
        // Pinning again with another name would rename the pin, but boxo
        // takes the pin off while it walks the DAG again: cut short, the
        // CID would be left unpinned. A rename is only recorded.
        replace: false,
        // Each pin is looked up first: one the node holds already is
        // adopted as foreign, never taken over.
        lookup_batch: Some(1),
        reads_before_removing: false,
        ownership_marks: false,
        replication: false,
    },
    starter,
    connect,
};

fn starter() -> Starter {
    Starter {
        providers: [
            commented("  node:", "Kubo's RPC API: your own node"),
            "    type: kubo\n".into(),
            "    # base_url: http://127.0.0.1:5001   (the default)\n".into(),
            commented(
                "    # pin_timeout: 1h",
                "how long one pin/add may fetch its DAG",
            ),
            commented(
                "    # token: ${FILEBASE_RPC_TOKEN}",
                "Filebase's RPC (base_url: https://rpc.filebase.io)",
            ),
            commented(
                "    # username: pinsync",
                "Basic auth, with the password below",
            ),
            "    # password: ${KUBO_PASSWORD}\n".into(),
        ]
        .concat(),
        target: "node",
        pin_extras: String::new(),
        variables: Vec::new(),
    }
}

fn connect(c: Connection<'_>) -> anyhow::Result<std::sync::Arc<dyn Provider>> {
    let settings = &c.config.settings;
    let auth = c.credential()?.map(Credential::header);
    let pin_timeout = settings
        .duration("pin_timeout")
        .unwrap_or(DEFAULT_PIN_TIMEOUT);
    Ok(std::sync::Arc::new(Kubo::new(
        c.client,
        &c.config.base_url,
        auth,
        pin_timeout,
    )?))
}

/// A Kubo node's RPC API.
#[derive(Debug)]
pub(crate) struct Kubo {
    client: http::Client,
    add_url: reqwest::Url,
    rm_url: reqwest::Url,
    ls_url: reqwest::Url,
    version_url: reqwest::Url,
    /// Whether the node takes pin names (Kubo 0.26 and later), asked once.
    names: tokio::sync::OnceCell<bool>,
    /// `Authorization`: Basic or Bearer, or none for a node of your own.
    auth: Option<Secret>,
    pin_timeout: Duration,
}

/// One line of `pin/add`'s answer: progress while it fetches, then the
/// pins it made.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddOutput {
    #[serde(default)]
    pins: Option<Vec<String>>,
    #[serde(default)]
    progress: u64,
    #[serde(default)]
    bytes: u64,
}

/// One line of `pin/ls?stream=true`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LsObject {
    cid: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "Type")]
    kind: Option<String>,
}

/// `pin/ls?arg=` without `stream`: `{"Keys": {CID: {Type, Name}}}`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LsKeys {
    keys: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Kubo's error answer (go-ipfs-cmds): `{"Message", "Code", "Type": "error"}`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KuboError {
    message: String,
    #[serde(default)]
    code: u32,
}

impl Kubo {
    /// Fails on a base URL that does not parse (a hand-edited saved plan).
    pub(crate) fn new(
        client: http::Client,
        base_url: &str,
        auth: Option<Secret>,
        pin_timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client,
            add_url: http::endpoint(base_url, "/api/v0/pin/add")?,
            rm_url: http::endpoint(base_url, "/api/v0/pin/rm")?,
            ls_url: http::endpoint(base_url, "/api/v0/pin/ls")?,
            version_url: http::endpoint(base_url, "/api/v0/version")?,
            names: tokio::sync::OnceCell::new(),
            auth,
            pin_timeout,
        })
    }

    fn post(&self, url: reqwest::Url) -> reqwest::RequestBuilder {
        let builder = self.client.post(url);
        match &self.auth {
            Some(auth) => builder.header(AUTHORIZATION, auth.header_value()),
            None => builder,
        }
    }

    /// Whether the node takes `name` on `pin/add` and `names` on `pin/ls`:
    /// Kubo 0.26 and later. Asked once (`version`); a node that does not
    /// answer it (Filebase's RPC takes the pin calls only) is taken to.
    /// A call that fails on the way (a timeout, a 429, a 5xx) is not taken
    /// as the node's answer: the next call asks again.
    async fn takes_names(&self) -> bool {
        let asked = self
            .names
            .get_or_try_init(|| async {
                let answer = self
                    .client
                    .send(CallKind::Status, self.post(self.version_url.clone()))
                    .await
                    .map_err(drop)?;
                let status = answer.status;
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                    return Err(());
                }
                // A node without the call (Filebase's RPC) answers 404 or
                // 405: taken to take names.
                let version = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .filter(|_| status.is_success())
                    .and_then(|v| v.get("Version").and_then(|v| v.as_str()).map(str::to_owned));
                Ok(version.as_deref().is_none_or(takes_names))
            })
            .await;
        asked.copied().unwrap_or(true)
    }

    async fn pin_once(&self, request: PinRequest<'_>) -> Result<PinReceipt, ProviderError> {
        // A pin the node holds already was made by someone else (by hand,
        // by another tool, or by a run of pinsync that stopped before it
        // recorded it): it is adopted as foreign, never removed.
        if self.holds(request.cid, CallKind::List).await? {
            return Ok(PinReceipt {
                pin_id: Some(http::pin_id(request.cid)?),
                already_pinned: true,
                foreign: true,
            });
        }
        let named = request.labels.name.is_some() && self.takes_names().await;
        let mut url = self.add_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("arg", request.cid)
                .append_pair("recursive", "true")
                .append_pair("progress", "true");
            if let Some(name) = request.labels.name.as_ref().filter(|_| named) {
                query.append_pair("name", name);
            }
        }
        // reqwest's own bound is set past ours, so that running out of time
        // is told apart from a connection that failed.
        let builder = self
            .post(url)
            .timeout(self.pin_timeout.saturating_add(Duration::from_secs(60)));
        let (blocks, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
        let pinned: Mutex<Option<String>> = Mutex::new(None);
        let call = self.client.send_streamed(CallKind::Pin, builder, |line| {
            let out: AddOutput = serde_json::from_slice(line).map_err(|e| {
                ProviderError::BadResponse(format!(
                    "pin/add answered a line that is not its documented {{Pins}} or {{Progress, Bytes}}: {e}"
                ))
            })?;
            match out.pins {
                Some(pins) => {
                    *pinned.lock().unwrap_or_else(|e| e.into_inner()) = pins.into_iter().next();
                }
                None => {
                    blocks.store(out.progress, Ordering::Relaxed);
                    bytes.store(out.bytes, Ordering::Relaxed);
                    if let Some(progress) = request.progress {
                        progress.fetched(out.progress, out.bytes);
                    }
                }
            }
            Ok(())
        });
        let answered = match tokio::time::timeout(self.pin_timeout, call).await {
            Ok(answered) => answered?,
            Err(_) => {
                let (blocks, bytes) = (
                    blocks.load(Ordering::Relaxed),
                    bytes.load(Ordering::Relaxed),
                );
                return Err(ProviderError::Unfinished(format!(
                    "pin/add did not finish within {} (pin_timeout); the node had fetched \
                     {blocks} blocks ({}), which it keeps: the next apply resumes it",
                    humantime::format_duration(self.pin_timeout),
                    human_bytes(bytes)
                )));
            }
        };
        if let Err(answer) = answered {
            return Err(failure(&answer));
        }
        match pinned.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(cid) => Ok(PinReceipt {
                pin_id: Some(http::pin_id(&cid)?),
                already_pinned: false,
                foreign: false,
            }),
            None => Err(ProviderError::BadResponse(
                "pin/add ended without its {\"Pins\": [...]} line".into(),
            )),
        }
    }

    async fn unpin_once(&self, request: UnpinRequest<'_>) -> Result<UnpinReceipt, ProviderError> {
        let mut url = self.rm_url.clone();
        url.query_pairs_mut()
            .append_pair("arg", request.cid)
            .append_pair("recursive", "true");
        let answer = self.client.send(CallKind::Unpin, self.post(url)).await?;
        if answer.status.is_success() {
            return Ok(UnpinReceipt {
                already_gone: false,
            });
        }
        // Not pinned, or pinned only as part of another pin's DAG: either
        // way no pin of this CID is left to remove.
        if is_not_pinned(&answer) {
            return Ok(UnpinReceipt { already_gone: true });
        }
        Err(failure(&answer))
    }

    async fn status_once(
        &self,
        request: UnpinRequest<'_>,
    ) -> Result<ProviderStatus, ProviderError> {
        // pin/add answers only once the DAG is whole: a listed pin is pinned.
        Ok(if self.holds(request.cid, CallKind::Status).await? {
            ProviderStatus::Pinned
        } else {
            ProviderStatus::Missing
        })
    }

    /// Whether the node holds a recursive pin of `cid` (`pin/ls?arg=`).
    async fn holds(&self, cid: &str, kind: CallKind) -> Result<bool, ProviderError> {
        let mut url = self.ls_url.clone();
        url.query_pairs_mut()
            .append_pair("arg", cid)
            .append_pair("type", "recursive");
        let answer = self.client.send(kind, self.post(url)).await?;
        if !answer.status.is_success() {
            if is_not_pinned(&answer) {
                return Ok(false);
            }
            return Err(failure(&answer));
        }
        let keys: LsKeys = http::read_json(&answer, "pin/ls", r#"{"Keys": {...}}"#)?;
        Ok(!keys.keys.is_empty())
    }

    async fn list_once(&self) -> Result<Listing, ProviderError> {
        let mut url = self.ls_url.clone();
        url.query_pairs_mut().append_pair("type", "recursive");
        if self.takes_names().await {
            url.query_pairs_mut().append_pair("names", "true");
        }
        url.query_pairs_mut().append_pair("stream", "true");
        let builder = self.post(url).timeout(LIST_TIMEOUT);
        let mut pins = Vec::new();
        let answered = self
            .client
            .send_streamed(CallKind::List, builder, |line| {
                let pin: LsObject = serde_json::from_slice(line).map_err(|e| {
                    ProviderError::BadResponse(format!(
                        "pin/ls answered a line that is not its documented {{Cid, Name, Type}}: {e}"
                    ))
                })?;
                // Asked for recursive pins only; anything else is skipped.
                if pin.kind.as_deref().is_some_and(|k| k != "recursive") {
                    return Ok(());
                }
                pins.push(ListedPin {
                    cid: http::clean_message(&pin.cid),
                    cluster: None,
                    pin_id: Some(http::clean_message(&pin.cid)),
                    status: ProviderStatus::Pinned,
                    name: pin
                        .name
                        .filter(|n| !n.is_empty())
                        .map(|n| http::clean_message(&n)),
                    foreign: None,
                });
                Ok(())
            })
            .await?;
        if let Err(answer) = answered {
            return Err(failure(&answer));
        }
        // The whole listing comes in one streamed answer.
        Ok(Listing { pins, next: None })
    }
}

/// Whether a Kubo of `version` (`0.25.0`, `0.32.1-rc1`) takes pin names:
/// 0.26 and later. A version that does not read as one is taken to.
fn takes_names(version: &str) -> bool {
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (0, 26),
        _ => true,
    }
}

/// Whether a failed answer says the CID is not pinned (`pin/rm`'s "not
/// pinned or pinned indirectly", `pin/ls`'s "is not pinned").
fn is_not_pinned(answer: &Answer) -> bool {
    serde_json::from_slice::<KuboError>(&answer.body)
        .is_ok_and(|e| e.message.contains("not pinned"))
}

/// A failed answer as the error it is. Kubo answers 500 with its error
/// object for every failure of a command, and its `Code` tells them
/// apart: 2 is a fault of the node (worth another try), 3 a rate limit, 4
/// a refusal of the caller; 0, 1 and 5 are this call's own.
fn failure(answer: &Answer) -> ProviderError {
    let Ok(error) = serde_json::from_slice::<KuboError>(&answer.body) else {
        return answer.error();
    };
    let message = http::clean_message(&error.message);
    let status = answer.status.as_u16();
    if answer.status != StatusCode::INTERNAL_SERVER_ERROR {
        return http::failure(answer, message);
    }
    match error.code {
        2 => ProviderError::Unavailable { status, message },
        3 => ProviderError::RateLimited {
            retry_after: answer.retry_after,
            message,
        },
        4 => ProviderError::Unauthorized { status, message },
        _ => ProviderError::Rejected { status, message },
    }
}

/// Bytes for people: `12.3 MB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl Provider for Kubo {
    fn pin<'a>(
        &'a self,
        request: PinRequest<'a>,
    ) -> BoxFuture<'a, Result<PinReceipt, ProviderError>> {
        Box::pin(self.pin_once(request))
    }

    fn unpin<'a>(
        &'a self,
        request: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<UnpinReceipt, ProviderError>> {
        Box::pin(self.unpin_once(request))
    }

    fn status<'a>(
        &'a self,
        request: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<Checked, ProviderError>> {
        Box::pin(async move { self.status_once(request).await.map(Checked::from) })
    }

    fn list<'a>(
        &'a self,
        _cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Listing, ProviderError>> {
        Box::pin(self.list_once())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn kubo_error_codes_map_to_what_a_retry_can_do() {
        let error = |code: u32| {
            failure(&answer(
                500,
                &format!(r#"{{"Message": "m", "Code": {code}, "Type": "error"}}"#),
            ))
        };
        assert!(matches!(error(0), ProviderError::Rejected { .. }));
        assert!(matches!(error(1), ProviderError::Rejected { .. }));
        assert!(matches!(error(2), ProviderError::Unavailable { .. }));
        assert!(matches!(error(3), ProviderError::RateLimited { .. }));
        assert!(matches!(error(4), ProviderError::Unauthorized { .. }));
        assert!(matches!(error(5), ProviderError::Rejected { .. }));
        // A proxy's own failure, without Kubo's error object.
        assert!(matches!(
            failure(&answer(502, "<html>bad gateway</html>")),
            ProviderError::Unavailable { status: 502, .. }
        ));
        assert!(matches!(
            failure(&answer(401, "")),
            ProviderError::Unauthorized { status: 401, .. }
        ));
    }

    #[test]
    fn only_kubos_not_pinned_errors_count_as_gone() {
        assert!(is_not_pinned(&answer(
            500,
            r#"{"Message": "not pinned or pinned indirectly", "Code": 0, "Type": "error"}"#
        )));
        assert!(is_not_pinned(&answer(
            500,
            r#"{"Message": "path 'bafy' is not pinned", "Code": 0, "Type": "error"}"#
        )));
        assert!(!is_not_pinned(&answer(500, "not pinned")));
        assert!(!is_not_pinned(&answer(
            500,
            r#"{"Message": "context canceled", "Code": 0, "Type": "error"}"#
        )));
    }

    #[test]
    fn names_are_sent_from_kubo_0_26() {
        assert!(!takes_names("0.25.0"));
        assert!(!takes_names("0.9.1"));
        assert!(takes_names("0.26.0"));
        assert!(takes_names("0.32.1-rc1"));
        assert!(takes_names("1.0.0"));
        assert!(takes_names("unknown"));
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(999), "999 bytes");
        assert_eq!(human_bytes(12_345_678), "12.3 MB");
    }
}
