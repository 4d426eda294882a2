//! The IPFS Pinning Service API (spec v1.0.0), spoken by Pinata, Filebase,
//! 4EVERLAND, Crust, AIOZ's `/api/psa` and ipfs-cluster.
//!
//! Its add is not idempotent (a retry after a lost answer, or a rerun after
//! a crash, makes a second billed request), so every pin first looks the
//! CID up and adopts a live request for it. Every request pinsync makes
//! carries `meta.pinsync` (the manifest's identity), and pinsync removes
//! only requests that carry it: pins made by hand or by another manifest
//! are never unpinned.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};

use super::http::{self, Answer};
use super::{
    ListedPin, Listing, PinReceipt, PinRequest, Provider, ProviderError, Secret, UnpinReceipt,
    UnpinRequest,
};
use crate::state::ProviderStatus;

/// The meta key that marks a request as this manifest's.
pub const OWNER_KEY: &str = "pinsync";
/// Results asked for per list call: the spec's maximum.
const LIST_PAGE: usize = 1000;
/// Every status, so queued and failed requests are seen too (without it a
/// list returns only `pinned`).
const ALL_STATUSES: &str = "queued,pinning,pinned,failed";

/// A Pinning Service API endpoint.
#[derive(Debug)]
pub struct PinningService {
    client: reqwest::Client,
    /// `{base_url}/pins`.
    pins_url: reqwest::Url,
    /// `Authorization: Bearer <token>`, built once.
    bearer: Secret,
    token: Secret,
    ownership: Ownership,
}

/// Which requests are this manifest's.
#[derive(Debug, Clone)]
pub struct Ownership {
    /// The value of `meta.pinsync` on the requests this manifest makes.
    pub identity: String,
    /// An unmarked request found for a CID is re-made with the mark, so it
    /// becomes this manifest's (`take_over_unmarked: true`); by default it
    /// is adopted as foreign and left alone.
    pub take_over_unmarked: bool,
}

/// Whose a request is, by its `meta.pinsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Ours,
    /// No mark: made by hand or by another tool.
    Unmarked,
    /// Another manifest's.
    Other,
}

#[derive(Serialize)]
struct Pin<'a> {
    cid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    origins: &'a [String],
    meta: BTreeMap<&'a str, &'a str>,
}

#[derive(Deserialize)]
struct PinResults {
    results: Vec<PinStatus>,
}

#[derive(Deserialize)]
struct PinStatus {
    requestid: String,
    status: String,
    #[serde(default)]
    created: String,
    pin: PinBody,
}

#[derive(Deserialize)]
struct PinBody {
    cid: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    meta: Option<BTreeMap<String, serde_json::Value>>,
}

impl PinStatus {
    fn status(&self) -> ProviderStatus {
        match self.status.as_str() {
            "pinned" => ProviderStatus::Pinned,
            "pinning" => ProviderStatus::Pinning,
            "failed" => ProviderStatus::Failed,
            _ => ProviderStatus::Queued,
        }
    }

    fn mark(&self, identity: &str) -> Mark {
        match self.pin.meta.as_ref().and_then(|m| m.get(OWNER_KEY)) {
            None => Mark::Unmarked,
            Some(v) if v.as_str() == Some(identity) => Mark::Ours,
            Some(_) => Mark::Other,
        }
    }
}

impl PinningService {
    /// Fails on a base URL that does not parse, or a token a header cannot
    /// carry after `Bearer `.
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        token: Secret,
        ownership: Ownership,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client,
            pins_url: http::endpoint(base_url, "/pins")?,
            bearer: token
                .prefixed("Bearer ")
                .ok_or_else(|| anyhow::anyhow!("the token cannot follow `Bearer `"))?,
            token,
            ownership,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, ProviderError> {
        http::send(
            request.header(AUTHORIZATION, self.bearer.header_value()),
            &[&self.token],
        )
        .await
    }

    fn request_url(&self, request_id: &str) -> reqwest::Url {
        http::with_segment(&self.pins_url, request_id)
    }

    /// Requests for `cid`, of every status.
    async fn lookup(&self, cid: &str) -> Result<Vec<PinStatus>, ProviderError> {
        let mut url = self.pins_url.clone();
        url.query_pairs_mut()
            .append_pair("cid", cid)
            .append_pair("status", ALL_STATUSES);
        let answer = self.send(self.client.get(url)).await?;
        Ok(http::read_json::<PinResults>(&answer, "pins", "results")?.results)
    }

    async fn pin_once(&self, request: PinRequest<'_>) -> Result<PinReceipt, ProviderError> {
        // Look up first: a live request for the CID is adopted, not doubled.
        let live = self
            .lookup(request.cid)
            .await?
            .into_iter()
            .filter(|p| p.status != "failed")
            .min_by_key(|p| crate::refresh::rank(p.status()));
        if let Some(existing) = live {
            let mark = existing.mark(&self.ownership.identity);
            if mark == Mark::Unmarked && self.ownership.take_over_unmarked {
                let replaced = self.replace(request, &existing.requestid).await?;
                return Ok(PinReceipt {
                    pin_id: Some(http::clean_message(&replaced.requestid)),
                    already_pinned: true,
                    foreign: false,
                });
            }
            return Ok(PinReceipt {
                pin_id: Some(http::clean_message(&existing.requestid)),
                already_pinned: true,
                foreign: mark != Mark::Ours,
            });
        }
        let body = self.body(request);
        let answer = self
            .send(self.client.post(self.pins_url.clone()).json(&body))
            .await?;
        let created: PinStatus = http::read_json(&answer, "add", "PinStatus")?;
        Ok(PinReceipt {
            pin_id: Some(http::clean_message(&created.requestid)),
            already_pinned: false,
            foreign: false,
        })
    }

    async fn get(&self, request_id: &str) -> Result<Option<PinStatus>, ProviderError> {
        let answer = self
            .send(self.client.get(self.request_url(request_id)))
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        http::read_json(&answer, "get", "PinStatus").map(Some)
    }

    async fn unpin_once(&self, request: UnpinRequest<'_>) -> Result<UnpinReceipt, ProviderError> {
        let Some(request_id) = request.pin_id else {
            return Err(ProviderError::Rejected {
                status: 0,
                message: "a Pinning Service request is removed by its id, and none is recorded"
                    .into(),
            });
        };
        let Some(current) = self.get(request_id).await? else {
            return Ok(UnpinReceipt { already_gone: true });
        };
        // Only requests this manifest made are ever removed.
        if current.mark(&self.ownership.identity) != Mark::Ours {
            return Err(ProviderError::Rejected {
                status: 0,
                message: format!(
                    "request {} does not carry meta.{OWNER_KEY} = {:?} (made by hand or by another manifest); left pinned",
                    http::clean_message(request_id),
                    self.ownership.identity
                ),
            });
        }
        let answer = self
            .send(self.client.delete(self.request_url(request_id)))
            .await?;
        // 202 by the spec; some services answer 200.
        http::read_unpin_answer(&answer)
    }

    /// `POST /pins/{requestid}`: replaces a request this manifest made with
    /// one carrying the new labels; the new request id is the receipt's.
    async fn replace_once(
        &self,
        request: PinRequest<'_>,
        request_id: &str,
    ) -> Result<PinReceipt, ProviderError> {
        let Some(current) = self.get(request_id).await? else {
            // Gone: pinning it again is the same change.
            return self.pin_once(request).await;
        };
        if current.mark(&self.ownership.identity) != Mark::Ours {
            return Err(ProviderError::Rejected {
                status: 0,
                message: format!(
                    "request {} does not carry meta.{OWNER_KEY} = {:?}; its labels are left as they are",
                    http::clean_message(request_id),
                    self.ownership.identity
                ),
            });
        }
        let replaced = self.replace(request, request_id).await?;
        Ok(PinReceipt {
            pin_id: Some(http::clean_message(&replaced.requestid)),
            already_pinned: false,
            foreign: false,
        })
    }

    /// `POST /pins/{requestid}` with the manifest's labels and the mark.
    async fn replace(
        &self,
        request: PinRequest<'_>,
        request_id: &str,
    ) -> Result<PinStatus, ProviderError> {
        let body = self.body(request);
        let answer = self
            .send(self.client.post(self.request_url(request_id)).json(&body))
            .await?;
        http::read_json(&answer, "replace", "PinStatus")
    }

    /// The body of an add or a replace: the manifest's labels and the mark.
    fn body<'a>(&'a self, request: PinRequest<'a>) -> Pin<'a> {
        let mut meta: BTreeMap<&str, &str> = request
            .labels
            .meta
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        meta.insert(OWNER_KEY, &self.ownership.identity);
        Pin {
            cid: request.cid,
            name: request.labels.name.as_deref(),
            origins: request.origins,
            meta,
        }
    }

    async fn status_once(
        &self,
        request: UnpinRequest<'_>,
    ) -> Result<ProviderStatus, ProviderError> {
        let found = match request.pin_id {
            Some(id) => self.get(id).await?,
            None => self
                .lookup(request.cid)
                .await?
                .into_iter()
                .min_by_key(|p| crate::refresh::rank(p.status())),
        };
        Ok(found.map_or(ProviderStatus::Missing, |p| p.status()))
    }

    async fn list_once(&self, cursor: Option<&str>) -> Result<Listing, ProviderError> {
        let mut url = self.pins_url.clone();
        url.query_pairs_mut()
            .append_pair("status", ALL_STATUSES)
            .append_pair("limit", &LIST_PAGE.to_string());
        if let Some(before) = cursor {
            url.query_pairs_mut().append_pair("before", before);
        }
        let answer = self.send(self.client.get(url)).await?;
        let page: PinResults = http::read_json(&answer, "pins", "results")?;
        // Newest first; the next page is before the oldest seen. `count` is
        // not trusted (some services report the page size): a short page
        // ends the listing.
        let next = (page.results.len() >= LIST_PAGE)
            .then(|| {
                page.results
                    .iter()
                    .map(|p| p.created.as_str())
                    .min()
                    .map(str::to_owned)
            })
            .flatten()
            .filter(|c| !c.is_empty());
        let pins = page
            .results
            .into_iter()
            .map(|p| ListedPin {
                status: p.status(),
                foreign: p.mark(&self.ownership.identity) != Mark::Ours,
                cid: http::clean_message(&p.pin.cid),
                cluster: None,
                pin_id: Some(http::clean_message(&p.requestid)),
                name: p.pin.name.as_deref().map(http::clean_message),
            })
            .collect();
        Ok(Listing { pins, next })
    }
}

impl Provider for PinningService {
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

    fn relabel<'a>(
        &'a self,
        request: PinRequest<'a>,
        pin_id: &'a str,
    ) -> BoxFuture<'a, Result<PinReceipt, ProviderError>> {
        Box::pin(self.replace_once(request, pin_id))
    }

    fn status<'a>(
        &'a self,
        request: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderStatus, ProviderError>> {
        Box::pin(self.status_once(request))
    }

    fn list<'a>(
        &'a self,
        cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Listing, ProviderError>> {
        Box::pin(self.list_once(cursor))
    }
}
