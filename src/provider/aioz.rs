//! AIOZ W3IPFS: `POST /api/pinning/pinByHash` exactly as its page
//! documents, and `DELETE /api/pinning/unpin/{pinId}` by the id it returned.

use futures::future::BoxFuture;
use reqwest::header::HeaderName;
use serde::{Deserialize, Serialize};

use super::http::{self, Answer};
use super::registry::{
    Capabilities, Connection, FieldValue, ProviderType, Starter, TypeField, UnpinBy, commented,
};
use super::{
    Checked, ListedPin, Listing, PinReceipt, PinRequest, Provider, ProviderError, Secret,
    UnpinReceipt, UnpinRequest,
};
use crate::manifest::{CallKind, Per, RateLimit};
use crate::state::ProviderStatus;

/// `type: aioz`.
pub(crate) static TYPE: ProviderType = ProviderType {
    name: "aioz",
    title: "AIOZ",
    summary: "AIOZ W3IPFS pinning API; needs api_key and secret_key",
    fields: &[
        TypeField::new(
            "api_key",
            true,
            FieldValue::Secret,
            "the environment variable holding the API key, as ${VAR}",
        ),
        TypeField::new(
            "secret_key",
            true,
            FieldValue::Secret,
            "AIOZ needs an API key and a secret key",
        ),
    ],
    default_base_url: Some("https://api-ipfs.attoaioz.cyou"),
    // 180 requests a minute per account.
    default_rate_limit: Some(RateLimit {
        calls: 180,
        per: Per::Minute,
        burst: 1,
    }),
    max_concurrency: None,
    capabilities: Capabilities {
        clusters: false,
        unpin_by: UnpinBy::PinId,
        replace: false,
        lookup_batch: None,
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
            commented("  aioz:", "AIOZ W3IPFS pinning API"),
            "    type: aioz\n".into(),
            "    api_key: ${AIOZ_PINNING_API_KEY}\n".into(),
            "    secret_key: ${AIOZ_PINNING_SECRET_KEY}\n".into(),
            "    # base_url: https://api-ipfs.attoaioz.cyou   (the default)\n".into(),
            "    # rate_limit: 180/min   (the default; `none` turns pacing off)\n".into(),
        ]
        .concat(),
        target: "aioz",
        pin_extras: commented(
            "    # meta: {team: web}",
            "a string map, sent as metadata.keyvalues",
        ),
        variables: vec!["AIOZ_PINNING_API_KEY", "AIOZ_PINNING_SECRET_KEY"],
    }
}

fn connect(c: Connection<'_>) -> anyhow::Result<std::sync::Arc<dyn Provider>> {
    let api_key = c.required_secret("api_key")?;
    let secret_key = c.required_secret("secret_key")?;
    Ok(std::sync::Arc::new(Aioz::new(
        c.client,
        &c.config.base_url,
        api_key,
        secret_key,
    )?))
}

/// The documented credential headers (underscores, lower case).
const API_KEY_HEADER: HeaderName = HeaderName::from_static("pinning_api_key");
const SECRET_KEY_HEADER: HeaderName = HeaderName::from_static("pinning_secret_key");

/// The AIOZ W3IPFS pinning API.
#[derive(Debug)]
pub(crate) struct Aioz {
    client: http::Client,
    /// Parsed once, not per call.
    pin_url: reqwest::Url,
    /// `{base_url}/api/pinning/unpin/`, a pin id is added per call.
    unpin_base: reqwest::Url,
    /// `{base_url}/api/pinning/pins/`.
    list_url: reqwest::Url,
    /// `{base_url}/api/pinning/`, a pin id is added per call.
    one_base: reqwest::Url,
    api_key: Secret,
    secret_key: Secret,
}

#[derive(Serialize)]
struct PinByHash<'a> {
    hash_to_pin: &'a str,
    metadata: Metadata<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    keyvalues: &'a std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: PinData,
}

#[derive(Deserialize)]
struct PinData {
    id: String,
}

impl Aioz {
    /// Fails on a base URL that does not parse (a hand-edited saved plan).
    pub(crate) fn new(
        client: http::Client,
        base_url: &str,
        api_key: Secret,
        secret_key: Secret,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client,
            pin_url: http::endpoint(base_url, "/api/pinning/pinByHash")?,
            unpin_base: http::endpoint(base_url, "/api/pinning/unpin/")?,
            list_url: http::endpoint(base_url, "/api/pinning/pins/")?,
            one_base: http::endpoint(base_url, "/api/pinning/")?,
            api_key,
            secret_key,
        })
    }

    async fn pin_once(&self, request: PinRequest<'_>) -> Result<PinReceipt, ProviderError> {
        let body = PinByHash {
            hash_to_pin: request.cid,
            metadata: Metadata {
                name: request.labels.name.as_deref(),
                keyvalues: &request.labels.meta,
            },
        };
        let answer = self
            .client
            .send(
                CallKind::Pin,
                self.client
                    .post(self.pin_url.clone())
                    .header(API_KEY_HEADER, self.api_key.header_value())
                    .header(SECRET_KEY_HEADER, self.secret_key.header_value())
                    .json(&body),
            )
            .await?;
        read_answer(&answer)
    }

    async fn unpin_once(&self, request: UnpinRequest<'_>) -> Result<UnpinReceipt, ProviderError> {
        // The plan only unpins AIOZ pins whose id it recorded.
        let Some(pin_id) = request.pin_id else {
            return Err(ProviderError::Rejected {
                status: 0,
                message: "AIOZ unpins by pin id, and none is recorded for this pin".into(),
            });
        };
        let url = http::with_segment(&self.unpin_base, pin_id);
        let answer = self
            .client
            .send(
                CallKind::Unpin,
                self.client
                    .delete(url)
                    .header(API_KEY_HEADER, self.api_key.header_value())
                    .header(SECRET_KEY_HEADER, self.secret_key.header_value()),
            )
            .await?;
        let receipt = http::read_unpin_answer(&answer)?;
        // A 200 whose envelope does not say success did not unpin.
        if answer.status.is_success()
            && let Ok(envelope) = serde_json::from_slice::<serde_json::Value>(&answer.body)
            && let Some(status) = envelope.get("status").and_then(|s| s.as_str())
            && status != "success"
        {
            return Err(ProviderError::BadResponse(format!(
                "unpin answered status {:?}",
                http::clean_message(status)
            )));
        }
        Ok(receipt)
    }
}

fn read_answer(answer: &Answer) -> Result<PinReceipt, ProviderError> {
    if !answer.status.is_success() {
        let message = http::error_message(&answer.body);
        // Undocumented; the emulator and clients report it in the message.
        if answer.status.is_client_error()
            && message.to_ascii_lowercase().contains("already pinned")
        {
            return Ok(PinReceipt {
                pin_id: None,
                already_pinned: true,
                foreign: false,
            });
        }
        return Err(http::failure(answer, message));
    }
    let envelope: Envelope = serde_json::from_slice(&answer.body).map_err(|e| {
        ProviderError::BadResponse(format!(
            "pinByHash answered {} without the documented {{\"data\": {{\"id\"}}, \"status\"}}: {e}",
            answer.status.as_u16()
        ))
    })?;
    if envelope.status != "success" {
        return Err(ProviderError::BadResponse(format!(
            "pinByHash answered status {:?}",
            http::clean_message(&envelope.status)
        )));
    }
    Ok(PinReceipt {
        pin_id: Some(http::pin_id(&envelope.data.id)?),
        already_pinned: false,
        foreign: false,
    })
}

/// Pins asked for per list call: the most the service is known to serve.
const LIST_PAGE: usize = 1000;

#[derive(Deserialize)]
struct ListEnvelope {
    status: String,
    data: ListData,
}

#[derive(Deserialize)]
struct ListData {
    totals: ListTotals,
    pins: Vec<ListedAiozPin>,
}

#[derive(Deserialize)]
struct ListTotals {
    files: u64,
}

#[derive(Deserialize)]
struct ListedAiozPin {
    id: String,
    cid: String,
    #[serde(default)]
    pinned: bool,
    #[serde(default)]
    date_unpinned: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    metadata: Option<ListedMetadata>,
}

#[derive(Deserialize)]
struct ListedMetadata {
    #[serde(default)]
    name: Option<String>,
}

/// A PIN's `status` (`RETRIEVAL` after pinByHash, `DONE` once pinned),
/// read leniently.
fn status_of(status: Option<&str>, pinned: bool) -> ProviderStatus {
    match status.map(str::to_ascii_uppercase).as_deref() {
        Some("DONE" | "PINNED") => ProviderStatus::Pinned,
        Some("FAILED" | "ERROR") => ProviderStatus::Failed,
        Some("QUEUED") => ProviderStatus::Queued,
        Some(_) => ProviderStatus::Pinning,
        None if pinned => ProviderStatus::Pinned,
        None => ProviderStatus::Pinning,
    }
}

#[derive(Deserialize)]
struct OneEnvelope {
    data: ListedAiozPin,
}

/// What `date_unpinned` reads while a pin is pinned (Go's zero time).
const NOT_UNPINNED: &str = "0001-01-01T00:00:00Z";

impl Aioz {
    /// `GET /api/pinning/{pinId}`.
    async fn status_once(
        &self,
        request: UnpinRequest<'_>,
    ) -> Result<ProviderStatus, ProviderError> {
        let Some(pin_id) = request.pin_id else {
            return Err(ProviderError::Rejected {
                status: 0,
                message: "AIOZ reports a pin by its id, and none is recorded for it".into(),
            });
        };
        let answer = self
            .client
            .send(
                CallKind::Status,
                self.client
                    .get(http::with_segment(&self.one_base, pin_id))
                    .header(API_KEY_HEADER, self.api_key.header_value())
                    .header(SECRET_KEY_HEADER, self.secret_key.header_value()),
            )
            .await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(ProviderStatus::Missing);
        }
        let one: OneEnvelope = http::read_json(&answer, "pin", r#"{"data": PIN}"#)?;
        let unpinned = one
            .data
            .date_unpinned
            .as_deref()
            .is_some_and(|d| d != NOT_UNPINNED);
        Ok(if unpinned {
            ProviderStatus::Missing
        } else {
            status_of(one.data.status.as_deref(), one.data.pinned)
        })
    }

    async fn list_once(&self, cursor: Option<&str>) -> Result<Listing, ProviderError> {
        let offset: u64 = match cursor {
            None => 0,
            Some(c) => c
                .parse()
                .map_err(|_| ProviderError::BadResponse(format!("bad list cursor {c:?}")))?,
        };
        let mut url = self.list_url.clone();
        url.query_pairs_mut()
            .append_pair("offset", &offset.to_string())
            .append_pair("limit", &LIST_PAGE.to_string())
            .append_pair("pinned", "all")
            .append_pair("sortBy", "created_at")
            .append_pair("sortOrder", "ASC");
        let answer = self
            .client
            .send(
                CallKind::List,
                self.client
                    .get(url)
                    .header(API_KEY_HEADER, self.api_key.header_value())
                    .header(SECRET_KEY_HEADER, self.secret_key.header_value()),
            )
            .await?;
        let envelope: ListEnvelope =
            http::read_json(&answer, "pins list", r#"{"data": {"totals", "pins"}}"#)?;
        if envelope.status != "success" {
            return Err(ProviderError::BadResponse(format!(
                "pins list answered status {:?}",
                http::clean_message(&envelope.status)
            )));
        }
        let seen = offset + envelope.data.pins.len() as u64;
        // An empty page ends the listing whatever the totals say, so a
        // provider that miscounts cannot keep pinsync paging forever.
        let next = (!envelope.data.pins.is_empty() && seen < envelope.data.totals.files)
            .then(|| seen.to_string());
        let pins = envelope
            .data
            .pins
            .into_iter()
            // Unpinned records stay in the list; they are not held.
            .filter(|p| p.date_unpinned.as_deref().is_none_or(|d| d == NOT_UNPINNED))
            .map(|p| {
                let status = status_of(p.status.as_deref(), p.pinned);
                ListedPin {
                    cid: http::clean_message(&p.cid),
                    cluster: None,
                    pin_id: Some(http::clean_message(&p.id)),
                    status,
                    name: p
                        .metadata
                        .and_then(|m| m.name)
                        .map(|n| http::clean_message(&n)),
                    foreign: None,
                }
            })
            .collect();
        Ok(Listing { pins, next })
    }
}

impl Provider for Aioz {
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

    fn list<'a>(
        &'a self,
        cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Listing, ProviderError>> {
        Box::pin(self.list_once(cursor))
    }

    fn status<'a>(
        &'a self,
        request: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<Checked, ProviderError>> {
        Box::pin(async move { self.status_once(request).await.map(Checked::from) })
    }
}
