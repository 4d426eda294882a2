//! Fault injection: the emulator can be told (by flags or `POST /_emulator/faults`)
//! to answer slowly, fail, rate-limit, drop connections or send broken JSON,
//! so pinsync's retry and error paths can be exercised without a real outage.
//!
//! The decision is taken once per provider request, before the handler runs,
//! so a faulted request never touches the pin stores.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{aioz, pinarkive};

/// Which emulated service a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Provider {
    Aioz,
    Pinarkive,
    /// The IPFS Pinning Service API, under `/psa`.
    #[serde(rename = "psa")]
    PinningService,
    /// Kubo's RPC API, under `/kubo`.
    Kubo,
    /// ipfs-cluster's REST API, under `/cluster`.
    Cluster,
    /// Pinata's v3 Files API, under `/v3/files`.
    Pinata,
    /// QuickNode's IPFS REST API, under `/ipfs/rest`.
    #[serde(rename = "quicknode")]
    QuickNode,
    /// Lighthouse, under `/api/lighthouse` and `/api/user`.
    Lighthouse,
}

impl Provider {
    /// Classifies a request path; `None` for paths no service has.
    pub(crate) fn for_path(path: &str) -> Option<Provider> {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/api/pinning") || under("/api/apiKeys") {
            Some(Provider::Aioz)
        } else if under("/api/v3") || under("/api/v2") || under("/api/v1") {
            Some(Provider::Pinarkive)
        } else if under(crate::pinning_service::PREFIX) {
            Some(Provider::PinningService)
        } else if under(crate::kubo::PREFIX) {
            Some(Provider::Kubo)
        } else if under(crate::cluster::PREFIX) {
            Some(Provider::Cluster)
        } else if under(crate::pinata::PREFIX) {
            Some(Provider::Pinata)
        } else if under(crate::quicknode::PREFIX) {
            Some(Provider::QuickNode)
        } else if crate::lighthouse::PREFIXES.iter().any(|p| under(p)) {
            Some(Provider::Lighthouse)
        } else {
            None
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Provider> {
        [
            Provider::Aioz,
            Provider::Pinarkive,
            Provider::PinningService,
            Provider::Kubo,
            Provider::Cluster,
            Provider::Pinata,
            Provider::QuickNode,
            Provider::Lighthouse,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Provider::Aioz => "aioz",
            Provider::Pinarkive => "pinarkive",
            Provider::PinningService => "psa",
            Provider::Kubo => "kubo",
            Provider::Cluster => "cluster",
            Provider::Pinata => "pinata",
            Provider::QuickNode => "quicknode",
            Provider::Lighthouse => "lighthouse",
        }
    }
}

/// The whole fault configuration. A POST replaces it; missing fields take
/// these defaults, which inject nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FaultConfig {
    pub delay_ms: u64,
    pub error_rate: f64,
    pub error_status: u16,
    pub rate_limit_rate: f64,
    pub retry_after: Option<u64>,
    pub drop_rate: f64,
    pub malformed_rate: f64,
    pub wrong_shape_rate: f64,
    pub fail_next: VecDeque<FailNext>,
    pub only: Option<Provider>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            delay_ms: 0,
            error_rate: 0.0,
            error_status: 503,
            rate_limit_rate: 0.0,
            retry_after: None,
            drop_rate: 0.0,
            malformed_rate: 0.0,
            wrong_shape_rate: 0.0,
            fail_next: VecDeque::new(),
            only: None,
        }
    }
}

/// One scripted answer for an upcoming request, used once, in order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FailNext {
    /// Only for a request that is `"METHOD /path"` (the path without its
    /// query; a trailing `*` matches any rest), e.g. `"POST /psa/pins"`;
    /// requests that do not match pass this entry by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drop: bool,
    /// Let the call take effect, then drop the connection unanswered (an
    /// answer lost after the service acted).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drop_after: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub malformed: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub wrong_shape: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Answer `status` (default 400) with an error whose message lists the
    /// request's headers, credentials included, as some proxies do.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub echo_headers: bool,
    /// Answer `status` (default 307) with `Location` set to this origin
    /// (`http://127.0.0.2:PORT`) followed by the request's path and query,
    /// as a moved endpoint, a proxy or a hostile DNS answer would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
}

impl FaultConfig {
    /// Refuses values that cannot mean anything, so a typo in a test fails loudly.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let rates = [
            ("error_rate", self.error_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("drop_rate", self.drop_rate),
            ("malformed_rate", self.malformed_rate),
            ("wrong_shape_rate", self.wrong_shape_rate),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        let sum: f64 = rates.iter().map(|(_, r)| r).sum();
        if sum > 1.0 + 1e-9 {
            return Err(format!("the rates add up to {sum}, more than 1"));
        }
        check_status("error_status", self.error_status)?;
        for (i, entry) in self.fail_next.iter().enumerate() {
            if let Some(status) = entry.status {
                check_status(&format!("fail_next[{i}].status"), status)?;
            }
            let acts = entry.status.is_some()
                || entry.drop
                || entry.drop_after
                || entry.malformed
                || entry.wrong_shape
                || entry.body.is_some()
                || entry.echo_headers
                || entry.redirect.is_some();
            if !acts {
                return Err(format!(
                    "fail_next[{i}] needs one of status, drop, drop_after, malformed, wrong_shape, body, echo_headers, redirect"
                ));
            }
            if let Some(to) = &entry.redirect
                && !(to.starts_with("http://") || to.starts_with("https://"))
            {
                return Err(format!(
                    "fail_next[{i}].redirect must be an http(s) origin, got {to:?}"
                ));
            }
        }
        Ok(())
    }

    /// Decides what happens to one provider request: a scripted `fail_next`
    /// entry first (no delay), else the delay and one roll of the dice.
    pub(crate) fn decide(
        &mut self,
        provider: Option<Provider>,
        method: &str,
        path: &str,
    ) -> Decision {
        if self.only.is_some() && self.only != provider {
            return Decision::default();
        }
        let applies = |entry: &FailNext| {
            entry.on.as_deref().is_none_or(|on| {
                let Some((m, p)) = on.split_once(' ') else {
                    return false;
                };
                m.eq_ignore_ascii_case(method)
                    && match p.strip_suffix('*') {
                        Some(prefix) => path.starts_with(prefix),
                        None => path == p,
                    }
            })
        };
        let scripted = self
            .fail_next
            .iter()
            .position(applies)
            .and_then(|i| self.fail_next.remove(i));
        if let Some(entry) = scripted {
            let fault = if entry.drop {
                Fault::Drop
            } else if entry.drop_after {
                Fault::DropAfter
            } else if entry.malformed {
                Fault::Malformed
            } else if entry.wrong_shape {
                Fault::WrongShape
            } else if entry.echo_headers {
                Fault::EchoHeaders {
                    status: entry.status.unwrap_or(400),
                }
            } else if let Some(to) = entry.redirect {
                Fault::Redirect {
                    status: entry.status.unwrap_or(307),
                    to,
                }
            } else {
                Fault::Status {
                    status: entry.status.unwrap_or(200),
                    retry_after: entry.retry_after,
                    body: entry.body,
                }
            };
            return Decision {
                delay: Duration::ZERO,
                fault: Some(fault),
                scripted: true,
            };
        }
        let delay = Duration::from_millis(self.delay_ms);
        // One roll against cumulative thresholds, so each rate is exactly the
        // share of requests that get that fault.
        let roll = fastrand::f64();
        let mut threshold = 0.0;
        let mut hit = |rate: f64| {
            threshold += rate;
            rate > 0.0 && roll < threshold
        };
        let fault = if hit(self.drop_rate) {
            Some(Fault::Drop)
        } else if hit(self.error_rate) {
            Some(Fault::Status {
                status: self.error_status,
                retry_after: self.retry_after,
                body: None,
            })
        } else if hit(self.rate_limit_rate) {
            Some(Fault::Status {
                status: 429,
                retry_after: self.retry_after,
                body: None,
            })
        } else if hit(self.malformed_rate) {
            Some(Fault::Malformed)
        } else if hit(self.wrong_shape_rate) {
            Some(Fault::WrongShape)
        } else {
            None
        };
        Decision {
            delay,
            fault,
            scripted: false,
        }
    }
}

fn check_status(what: &str, status: u16) -> Result<(), String> {
    if (100..=599).contains(&status) {
        Ok(())
    } else {
        Err(format!(
            "{what} must be an HTTP status (100-599), got {status}"
        ))
    }
}

/// What to do with one provider request: wait `delay`, then answer with
/// `fault` instead of the handler if there is one.
#[derive(Default)]
pub(crate) struct Decision {
    pub delay: Duration,
    pub fault: Option<Fault>,
    /// The fault came from `fail_next` rather than from the rates.
    pub scripted: bool,
}

/// An answer that replaces the handler's.
pub(crate) enum Fault {
    Drop,
    DropAfter,
    Malformed,
    WrongShape,
    EchoHeaders {
        status: u16,
    },
    Redirect {
        status: u16,
        /// The origin the request is sent on to.
        to: String,
    },
    Status {
        status: u16,
        retry_after: Option<u64>,
        body: Option<Value>,
    },
}

impl Decision {
    /// A short label for the request log, e.g. `fail_next:status` or `drop`.
    pub(crate) fn label(&self) -> Option<String> {
        let kind = match self.fault.as_ref()? {
            Fault::Drop => "drop",
            Fault::DropAfter => "drop_after",
            Fault::Malformed => "malformed",
            Fault::WrongShape => "wrong_shape",
            Fault::EchoHeaders { .. } => "echo_headers",
            Fault::Redirect { .. } => "redirect",
            Fault::Status { status: 429, .. } if !self.scripted => "rate_limit",
            Fault::Status { .. } if !self.scripted => "error",
            Fault::Status { .. } => "status",
        };
        Some(if self.scripted {
            format!("fail_next:{kind}")
        } else {
            kind.to_string()
        })
    }
}

impl Fault {
    /// The answer this fault gives, in the provider's usual error shape.
    /// `uri` and `headers` are the request's, for `Redirect` and
    /// `EchoHeaders`.
    pub(crate) fn respond(
        self,
        provider: Option<Provider>,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Response {
        match self {
            Fault::Redirect { status, to } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
                let rest = uri.path_and_query().map_or("/", |pq| pq.as_str());
                let location = format!("{}{rest}", to.trim_end_matches('/'));
                (status, [(header::LOCATION, location)]).into_response()
            }
            Fault::EchoHeaders { status } => {
                let mut lines: Vec<String> = headers
                    .iter()
                    .map(|(name, value)| {
                        format!("{name}: {}", String::from_utf8_lossy(value.as_bytes()))
                    })
                    .collect();
                lines.sort();
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                let body = serde_json::json!({
                    "error": status.canonical_reason().unwrap_or("error"),
                    "message": format!("proxy: request headers were: {}", lines.join(", ")),
                });
                (status, axum::Json(body)).into_response()
            }
            Fault::Drop | Fault::DropAfter => dropped_connection(),
            Fault::Malformed => {
                // Cut off mid-object, as a truncated answer would be.
                let text = match provider {
                    Some(Provider::Aioz) => r#"{"data": {"id": "#,
                    Some(Provider::Pinarkive) => r#"{"cid": "#,
                    Some(Provider::PinningService) => r#"{"requestid": "#,
                    Some(Provider::Kubo) => r#"{"Pins": ["#,
                    Some(Provider::Cluster) => r#"{"cid": "#,
                    Some(Provider::Pinata) => r#"{"data": {"id": "#,
                    Some(Provider::QuickNode) => r#"{"requestId": "#,
                    Some(Provider::Lighthouse) => r#"{"fileList": ["#,
                    None => r#"{"error": "#,
                };
                json_text(StatusCode::OK, text)
            }
            Fault::WrongShape => json_text(StatusCode::OK, r#"{"ok": true}"#),
            Fault::Status {
                status,
                retry_after,
                body,
            } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let mut response = match (body, provider) {
                    (Some(body), _) => (status, axum::Json(body)).into_response(),
                    (None, Some(Provider::Aioz)) => aioz::error_for_status(status),
                    (None, Some(Provider::Pinarkive)) => {
                        pinarkive::error_for_status(status, retry_after)
                    }
                    (None, Some(Provider::PinningService)) => {
                        crate::pinning_service::error_for_status(status)
                    }
                    (None, Some(Provider::Kubo)) => crate::kubo::error_for_status(status),
                    (None, Some(Provider::Cluster)) => crate::cluster::error_for_status(status),
                    (None, Some(Provider::Pinata)) => crate::pinata::error_for_status(status),
                    (None, Some(Provider::QuickNode)) => crate::quicknode::error_for_status(status),
                    (None, Some(Provider::Lighthouse)) => {
                        crate::lighthouse::error_for_status(status)
                    }
                    (None, None) => (
                        status,
                        axum::Json(serde_json::json!({
                            "error": status.canonical_reason().unwrap_or("error"),
                        })),
                    )
                        .into_response(),
                };
                if let Some(secs) = retry_after {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                response
            }
        }
    }
}

fn json_text(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        text,
    )
        .into_response()
}

/// A response whose body fails before anything is written: hyper buffers
/// the status line and headers until the first body chunk, so the error
/// makes it close the connection with nothing sent. Clients see a
/// connection error (curl: "Empty reply from server"), not a status.
pub(crate) fn dropped_connection() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::other("emulator fault: connection dropped"))
    });
    Response::new(Body::from_stream(failing))
}
