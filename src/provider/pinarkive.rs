//! Pinarkive API v3: `POST /api/v3/files/pin/{cid}` and
//! `DELETE /api/v3/files/remove/{cid}`, exactly as documented.

use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderName};
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

/// `type: pinarkive`.
pub(crate) static TYPE: ProviderType = ProviderType {
    name: "pinarkive",
    title: "Pinarkive",
    summary: "Pinarkive API v3, with clusters; needs api_key",
    fields: &[
        TypeField::new(
            "api_key",
            true,
            FieldValue::Secret,
            "the environment variable holding the API key, as ${VAR}",
        ),
        TypeField::new(
            "auth",
            false,
            FieldValue::Choice(&["header", "bearer"]),
            "how the key is sent: `header` (X-API-Key, the default) or \
             `bearer` (Authorization: Bearer).",
        ),
    ],
    default_base_url: Some("https://api.pinarkive.com"),
    // About 100 requests a minute, in bursts of 10.
    default_rate_limit: Some(RateLimit {
        calls: 100,
        per: Per::Minute,
        burst: 10,
    }),
    max_concurrency: None,
    capabilities: Capabilities {
        clusters: true,
        unpin_by: UnpinBy::Cid,
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
            commented(
                "  arkive:",
                "Pinarkive API v3: about 10 requests a second, 100 a minute",
            ),
            "    type: pinarkive\n".into(),
            "    api_key: ${PINARKIVE_API_KEY}\n".into(),
            commented(
                "    # auth: bearer",
                "send Authorization: Bearer, not X-API-Key",
            ),
            "    # base_url: https://api.pinarkive.com   (the default)\n".into(),
            "    # rate_limit: {rate: 100/min, burst: 10}   (the default)\n".into(),
        ]
        .concat(),
        target: "arkive",
        pin_extras: commented(
            "    # to: [arkive/cl1-eu]",
            "a cluster: cl0-global, cl1-eu, ...",
        ),
        variables: vec!["PINARKIVE_API_KEY"],
    }
}

fn connect(c: Connection<'_>) -> anyhow::Result<std::sync::Arc<dyn Provider>> {
    let api_key = c.required_secret("api_key")?;
    let bearer = c.config.settings.text("auth") == Some("bearer");
    Ok(std::sync::Arc::new(Pinarkive::new(
        c.client,
        &c.config.base_url,
        api_key,
        bearer,
    )?))
}

/// The Pinarkive pinning API.
#[derive(Debug)]
pub(crate) struct Pinarkive {
    client: http::Client,
    /// `{base_url}/api/v3/files/pin/`, parsed once: parsing a URL per call
    /// showed in profiles at thousands of pins a second.
    pin_base: reqwest::Url,
    /// `{base_url}/api/v3/files/remove/`.
    remove_base: reqwest::Url,
    /// `{base_url}/api/v3/users/me/uploads`.
    uploads_url: reqwest::Url,
    /// `{base_url}/api/v3/status/`, a CID is added per call.
    status_base: reqwest::Url,
    /// `X-API-Key: <key>` or `Authorization: Bearer <key>`, built once.
    auth: (HeaderName, Secret),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PinBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cl: Option<&'a str>,
}

impl Pinarkive {
    /// Fails on a base URL that does not parse (a hand-edited saved plan).
    pub(crate) fn new(
        client: http::Client,
        base_url: &str,
        api_key: Secret,
        bearer: bool,
    ) -> anyhow::Result<Self> {
        let pin_base = http::endpoint(base_url, "/api/v3/files/pin/")?;
        let remove_base = http::endpoint(base_url, "/api/v3/files/remove/")?;
        let uploads_url = http::endpoint(base_url, "/api/v3/users/me/uploads")?;
        let status_base = http::endpoint(base_url, "/api/v3/status/")?;
        let auth = match bearer {
            false => (HeaderName::from_static("x-api-key"), api_key),
            true => (
                AUTHORIZATION,
                api_key
                    .prefixed("Bearer ")
                    .ok_or_else(|| anyhow::anyhow!("the key cannot follow `Bearer `"))?,
            ),
        };
        Ok(Self {
            client,
            pin_base,
            remove_base,
            uploads_url,
            status_base,
            auth,
        })
    }

    async fn pin_once(&self, request: PinRequest<'_>) -> Result<PinReceipt, ProviderError> {
        let url = http::with_segment(&self.pin_base, request.cid);
        let body = PinBody {
            custom_name: request.labels.name.as_deref(),
            cl: request.cluster,
        };
        let (name, key) = &self.auth;
        let builder = self
            .client
            .post(url)
            .header(name, key.header_value())
            .json(&body);
        read_answer(&self.client.send(CallKind::Pin, builder).await?)
    }

    async fn unpin_once(&self, request: UnpinRequest<'_>) -> Result<UnpinReceipt, ProviderError> {
        let (name, key) = &self.auth;
        let mut builder = self
            .client
            .delete(http::with_segment(&self.remove_base, request.cid))
            .header(name, key.header_value());
        // The cluster is chosen with the documented `X-Cluster` header.
        if let Some(cluster) = request.cluster {
            builder = builder.header("x-cluster", cluster);
        }
        http::read_unpin_answer(&self.client.send(CallKind::Unpin, builder).await?)
    }
}

fn read_answer(answer: &Answer) -> Result<PinReceipt, ProviderError> {
    if !answer.status.is_success() {
        let message = http::error_message(&answer.body);
        let lower = message.to_ascii_lowercase();
        if answer.status == StatusCode::CONFLICT
            || lower.contains("already_pinned")
            || lower.contains("already pinned")
        {
            return Ok(PinReceipt {
                pin_id: None,
                already_pinned: true,
                foreign: false,
            });
        }
        return Err(http::failure(answer, message));
    }
    // The docs answer `{cid, clusterId, expiresAt}`, the SDK reads
    // `{pinned, customName}`: accept either, and nothing else.
    let json: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|e| {
        ProviderError::BadResponse(format!(
            "pin answered {} with invalid JSON: {e}",
            answer.status.as_u16()
        ))
    })?;
    let documented = json.get("cid").is_some_and(|c| c.is_string())
        || json.get("pinned").and_then(|p| p.as_bool()) == Some(true);
    if !documented {
        return Err(ProviderError::BadResponse(format!(
            "pin answered {} without `cid` or `pinned: true`",
            answer.status.as_u16()
        )));
    }
    Ok(PinReceipt {
        pin_id: None,
        already_pinned: false,
        foreign: false,
    })
}

/// Uploads asked for per list call.
const LIST_PAGE: usize = 1000;

/// The docs answer `{uploads, total}`, the SDK `{uploads, pagination:
/// {total}}`: both are read.
#[derive(Deserialize)]
struct Uploads {
    uploads: Vec<Upload>,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct Pagination {
    #[serde(default)]
    total: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upload {
    cid: String,
    #[serde(default)]
    cluster_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl Pinarkive {
    /// `GET /api/v3/status/{cid}?cl=CLUSTER`. The answer's shape is not
    /// documented: a `status` string is read where there is one; a 200
    /// without it is taken as pinned, a 404 as missing.
    async fn status_once(
        &self,
        request: UnpinRequest<'_>,
    ) -> Result<ProviderStatus, ProviderError> {
        let mut url = http::with_segment(&self.status_base, request.cid);
        if let Some(cluster) = request.cluster {
            url.query_pairs_mut().append_pair("cl", cluster);
        }
        let (name, key) = &self.auth;
        let builder = self.client.get(url).header(name, key.header_value());
        let answer = self.client.send(CallKind::Status, builder).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(ProviderStatus::Missing);
        }
        let json: serde_json::Value = http::read_json(&answer, "status", "JSON")?;
        let status = json
            .get("status")
            .and_then(|s| s.as_str())
            .map(str::to_ascii_lowercase);
        Ok(match status.as_deref() {
            None | Some("pinned" | "done" | "ok") => ProviderStatus::Pinned,
            Some("failed" | "error") => ProviderStatus::Failed,
            Some("queued") => ProviderStatus::Queued,
            Some(_) => ProviderStatus::Pinning,
        })
    }

    async fn list_once(&self, cursor: Option<&str>) -> Result<Listing, ProviderError> {
        // The cursor is the page number and how many were seen before it.
        let (page, seen) = match cursor.map(|c| c.split_once(':')) {
            None => (1u64, 0u64),
            Some(Some((p, s))) => match (p.parse(), s.parse()) {
                (Ok(p), Ok(s)) => (p, s),
                _ => return Err(ProviderError::BadResponse("bad list cursor".into())),
            },
            Some(None) => return Err(ProviderError::BadResponse("bad list cursor".into())),
        };
        let mut url = self.uploads_url.clone();
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("limit", &LIST_PAGE.to_string());
        let (name, key) = &self.auth;
        let builder = self.client.get(url).header(name, key.header_value());
        let answer = self.client.send(CallKind::List, builder).await?;
        let uploads: Uploads = http::read_json(&answer, "uploads", r#"{"uploads", "total"}"#)?;
        let total = uploads
            .total
            .or_else(|| uploads.pagination.and_then(|p| p.total));
        let seen = seen + uploads.uploads.len() as u64;
        // Without a total, page until an empty page.
        let more = !uploads.uploads.is_empty() && total.is_none_or(|t| seen < t);
        let next = more.then(|| format!("{}:{seen}", page + 1));
        let pins = uploads
            .uploads
            .into_iter()
            .map(|u| ListedPin {
                cid: http::clean_message(&u.cid),
                cluster: u.cluster_id.map(|c| http::clean_message(&c)),
                pin_id: None,
                // Pinarkive lists what it holds; it reports no other status.
                status: ProviderStatus::Pinned,
                name: u.name.map(|n| http::clean_message(&n)),
                foreign: None,
            })
            .collect();
        Ok(Listing { pins, next })
    }
}

impl Provider for Pinarkive {
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
