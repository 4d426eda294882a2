//! The IPFS Pinning Service API (spec v1.0.0), spoken by Pinata, Filebase,
//! 4EVERLAND, Crust, AIOZ's `/api/psa` and ipfs-cluster.
//!
//! Its add is not idempotent (a retry after a lost answer, or a rerun after
//! a crash, makes a second billed request), so every pin first looks the
//! CID up and adopts a live request for it. Every request pinsync makes
//! carries `meta.pinsync` (the manifest's identity), and pinsync removes
//! only requests that carry it: pins made by hand or by another manifest
//! are never unpinned.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};

use super::http::{self, Answer};
use super::registry::{Capabilities, Connection, FieldValue, ProviderType, TypeField, UnpinBy};
use super::{
    Checked, ListedPin, Listing, PinReceipt, PinRequest, Provider, ProviderError, Secret,
    UnpinReceipt, UnpinRequest,
};
use crate::manifest::CallKind;
use crate::state::ProviderStatus;

mod starter;

/// `type: pinning-service`.
pub(crate) static TYPE: ProviderType = ProviderType {
    name: "pinning-service",
    title: "A Pinning Service",
    summary: "the IPFS Pinning Service API (Pinata, Filebase, 4EVERLAND, Crust, \
              AIOZ's /api/psa, ipfs-cluster); needs token and base_url",
    fields: &[
        TypeField::new(
            "token",
            true,
            FieldValue::Secret,
            "the environment variable holding the bearer token, as ${VAR}",
        ),
        TypeField::new(
            "take_over_unmarked",
            false,
            FieldValue::Flag,
            "`true` re-makes a request found for a wanted CID without any `meta.pinsync` \
             mark with this manifest's, so pinsync manages it from then on; by default it \
             is adopted as foreign: kept, never unpinned or replaced.",
        ),
    ],
    // Each service has its own endpoint, and its own limit: the README's
    // and init's ready blocks set them.
    default_base_url: None,
    default_rate_limit: None,
    max_concurrency: None,
    capabilities: Capabilities {
        clusters: false,
        unpin_by: UnpinBy::PinId,
        replace: true,
        lookup_batch: Some(LOOKUP_CIDS),
        reads_before_removing: true,
        ownership_marks: true,
        replication: false,
    },
    starter: starter::starter,
    connect,
};

fn connect(c: Connection<'_>) -> anyhow::Result<std::sync::Arc<dyn Provider>> {
    let token = c.required_secret("token")?;
    let ownership = Ownership {
        identity: c.identity(),
        take_over_unmarked: c.config.settings.flag("take_over_unmarked"),
    };
    Ok(std::sync::Arc::new(PinningService::new(
        c.client,
        &c.config.base_url,
        token,
        ownership,
    )?))
}

/// The meta key that marks a request as this manifest's.
pub(crate) const OWNER_KEY: &str = "pinsync";
/// Results asked for per list call: the spec's maximum.
const LIST_PAGE: usize = 1000;
/// CIDs one lookup may name: the spec's limit.
const LOOKUP_CIDS: usize = 10;
/// Every status, so queued and failed requests are seen too (without it a
/// list returns only `pinned`).
const ALL_STATUSES: &str = "queued,pinning,pinned,failed";

/// A Pinning Service API endpoint.
#[derive(Debug)]
pub(crate) struct PinningService {
    client: http::Client,
    /// `{base_url}/pins`.
    pins_url: reqwest::Url,
    /// `Authorization: Bearer <token>`, built once.
    bearer: Secret,
    ownership: Ownership,
    /// Lookups made ahead ([`Provider::look_ahead`]): the requests found for
    /// each CID, as sent. Taken by the CID's first pin; a retry, which may
    /// follow an add whose answer was lost, looks up afresh.
    looked_up: Mutex<HashMap<String, Vec<PinStatus>>>,
}

/// Which requests are this manifest's.
#[derive(Debug, Clone)]
pub(crate) struct Ownership {
    /// The value of `meta.pinsync` on the requests this manifest makes.
    pub(crate) identity: String,
    /// An unmarked request found for a CID is re-made with the mark, so it
    /// becomes this manifest's (`take_over_unmarked: true`); by default it
    /// is adopted as foreign and left alone.
    pub(crate) take_over_unmarked: bool,
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
    /// The total matched, by the spec; some services give the page's
    /// length, or an estimate. Only ever a hint that there is more.
    #[serde(default)]
    count: Option<u64>,
    results: Vec<PinStatus>,
}

impl PinResults {
    /// Whether `count` says more matched than this page holds.
    fn count_says_more(&self) -> bool {
        self.count.is_some_and(|c| c > self.results.len() as u64)
    }
}

#[derive(Debug, Deserialize)]
struct PinStatus {
    requestid: String,
    status: String,
    #[serde(default)]
    created: String,
    pin: PinBody,
}

#[derive(Debug, Deserialize)]
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
    pub(crate) fn new(
        client: http::Client,
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
            ownership,
            looked_up: Mutex::default(),
        })
    }

    async fn send(
        &self,
        kind: CallKind,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, ProviderError> {
        self.client
            .send(
                kind,
                request.header(AUTHORIZATION, self.bearer.header_value()),
            )
            .await
    }

    fn request_url(&self, request_id: &str) -> reqwest::Url {
        http::with_segment(&self.pins_url, request_id)
    }

    /// Requests for `cid`, of every status.
    async fn lookup(&self, cid: &str) -> Result<Vec<PinStatus>, ProviderError> {
        let mut found = self.lookup_many(&[cid]).await?;
        Ok(found.pop().unwrap_or_default())
    }

    /// Requests for each of up to [`LOOKUP_CIDS`] CIDs, of every status, in
    /// one call; in the order of `cids`. Matched by canonical CID, as a
    /// service may answer in another form than the one sent.
    async fn lookup_many(&self, cids: &[&str]) -> Result<Vec<Vec<PinStatus>>, ProviderError> {
        let mut url = self.pins_url.clone();
        url.query_pairs_mut()
            .append_pair("cid", &cids.join(","))
            .append_pair("status", ALL_STATUSES)
            .append_pair("limit", &LIST_PAGE.to_string());
        let answer = self.send(CallKind::List, self.client.get(url)).await?;
        let page = http::read_json::<PinResults>(&answer, "pins", "results")?;
        if page.results.len() >= LIST_PAGE || page.count_says_more() {
            // A page that may hide more (full, or cut short by a service's
            // own cap) is not an answer to add by.
            return Err(ProviderError::BadResponse(format!(
                "a lookup of {} CIDs answered {} requests of {}; not all were seen",
                cids.len(),
                page.results.len(),
                page.count
                    .map_or_else(|| "more".to_owned(), |c| c.to_string())
            )));
        }
        let results = page.results;
        let canonical = super::canonical_cid;
        let wanted: Vec<String> = cids.iter().map(|c| canonical(c)).collect();
        let mut found: Vec<Vec<PinStatus>> = cids.iter().map(|_| Vec::new()).collect();
        for status in results {
            let cid = canonical(&status.pin.cid);
            if let Some(i) = wanted.iter().position(|w| *w == cid) {
                found[i].push(status);
            }
        }
        Ok(found)
    }

    /// One batch of the look-ahead, handed back with its CIDs.
    async fn lookup_batch(
        &self,
        batch: Vec<String>,
    ) -> (Vec<String>, Result<Vec<Vec<PinStatus>>, ProviderError>) {
        let cids: Vec<&str> = batch.iter().map(String::as_str).collect();
        let found = self.lookup_many(&cids).await;
        (batch, found)
    }

    async fn look_ahead_once(
        &self,
        cids: Vec<&str>,
        concurrency: usize,
    ) -> Result<(), ProviderError> {
        // Owned, so the stream's futures borrow nothing but `self` (a
        // borrowed batch trips the compiler's higher-ranked lifetime check).
        let batches: Vec<Vec<String>> = cids
            .chunks(LOOKUP_CIDS)
            .map(|b| b.iter().map(|c| (*c).to_owned()).collect())
            .collect();
        let mut batches =
            futures::stream::iter(batches.into_iter().map(|batch| self.lookup_batch(batch)))
                .buffer_unordered(concurrency.max(1));
        while let Some((batch, found)) = batches.next().await {
            let found = match found {
                Ok(found) => found,
                Err(e) if e.refuses_every_call() => return Err(e),
                // Left to each pin's own lookup.
                Err(_) => continue,
            };
            let mut looked_up = self.looked_up.lock().unwrap_or_else(|e| e.into_inner());
            for (cid, requests) in batch.into_iter().zip(found) {
                looked_up.insert(cid, requests);
            }
        }
        Ok(())
    }

    async fn pin_once(&self, request: PinRequest<'_>) -> Result<PinReceipt, ProviderError> {
        // Look up first: a live request for the CID is adopted, not doubled.
        let ahead = self
            .looked_up
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(request.cid);
        let found = match ahead {
            Some(found) => found,
            None => self.lookup(request.cid).await?,
        };
        // Ours first (a rerun after a crash finds its own add), then the
        // most advanced.
        let live = found
            .into_iter()
            .filter(|p| p.status != "failed")
            .min_by_key(|p| self.preference(p));
        if let Some(existing) = live {
            let mark = existing.mark(&self.ownership.identity);
            if mark == Mark::Unmarked && self.ownership.take_over_unmarked {
                let replaced = self.replace(request, &existing.requestid).await?;
                return Ok(PinReceipt {
                    pin_id: Some(http::pin_id(&replaced.requestid)?),
                    already_pinned: true,
                    foreign: false,
                });
            }
            return Ok(PinReceipt {
                pin_id: Some(http::pin_id(&existing.requestid)?),
                already_pinned: true,
                foreign: mark != Mark::Ours,
            });
        }
        let body = self.body(request);
        let answer = self
            .send(
                CallKind::Pin,
                self.client.post(self.pins_url.clone()).json(&body),
            )
            .await?;
        let created: PinStatus = http::read_json(&answer, "add", "PinStatus")?;
        Ok(PinReceipt {
            pin_id: Some(http::pin_id(&created.requestid)?),
            already_pinned: false,
            foreign: false,
        })
    }

    async fn get(&self, request_id: &str) -> Result<Option<PinStatus>, ProviderError> {
        let answer = self
            .send(
                CallKind::Status,
                self.client.get(self.request_url(request_id)),
            )
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
            .send(
                CallKind::Unpin,
                self.client.delete(self.request_url(request_id)),
            )
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
            pin_id: Some(http::pin_id(&replaced.requestid)?),
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
            .send(
                CallKind::Pin,
                self.client.post(self.request_url(request_id)).json(&body),
            )
            .await?;
        http::read_json(&answer, "replace", "PinStatus")
    }

    /// Which of several requests for one CID stands for the pin: this
    /// manifest's before anyone else's, then the most advanced status.
    fn preference(&self, p: &PinStatus) -> (bool, u8) {
        (
            p.mark(&self.ownership.identity) != Mark::Ours,
            p.status().rank(),
        )
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
                .min_by_key(|p| self.preference(p)),
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
        let answer = self.send(CallKind::List, self.client.get(url)).await?;
        let page: PinResults = http::read_json(&answer, "pins", "results")?;
        // `count` is not trusted to end a listing (some services report the
        // page size): a short page ends it, unless `count` says there is
        // more (a service that caps `limit` lower); so does a page longer
        // than asked for (one without pagination, like ipfs-cluster).
        let more = page.results.len() == LIST_PAGE
            || (!page.results.is_empty()
                && page.results.len() < LIST_PAGE
                && page.count_says_more());
        let next = if more {
            Some(next_before(&page.results, cursor)?)
        } else {
            None
        };
        let pins = page
            .results
            .into_iter()
            .map(|p| {
                Ok(ListedPin {
                    status: p.status(),
                    foreign: Some(p.mark(&self.ownership.identity) != Mark::Ours),
                    cid: http::clean_message(&p.pin.cid),
                    cluster: None,
                    pin_id: Some(http::pin_id(&p.requestid)?),
                    name: p.pin.name.as_deref().map(http::clean_message),
                })
            })
            .collect::<Result<_, ProviderError>>()?;
        Ok(Listing { pins, next })
    }
}

/// The `before` of the page after `results`, a full page that was asked
/// for `before` = `cursor`. Newest first, so the next page is older than the
/// oldest seen; but services cut `created` short (often to the second), and
/// requests that share the oldest one's reported time may not all be on this
/// page. So the next page starts one unit of the reported precision later
/// and overlaps (the caller drops requests seen twice, by request id).
fn next_before(results: &[PinStatus], cursor: Option<&str>) -> Result<String, ProviderError> {
    let mut oldest: Option<SystemTime> = None;
    // The coarsest precision on the page: one truncated time means the
    // service truncates.
    let mut digits = 9;
    for result in results {
        let created = parse_created(&result.created).ok_or_else(|| {
            ProviderError::BadResponse(format!(
                "request {} has `created` {:?}, not an RFC 3339 time; the listing cannot be paged",
                http::clean_message(&result.requestid),
                http::clean_message(&result.created)
            ))
        })?;
        oldest = Some(oldest.map_or(created, |o| o.min(created)));
        digits = digits.min(fraction_digits(&result.created));
    }
    let unit_nanos = 10u128.pow(9 - digits);
    // A time before 1970 or past 2554 cannot be a cursor: refused, not
    // clamped (a clamped `before` would skip requests without a word).
    let out_of_range = || {
        ProviderError::BadResponse(
            "a request's `created` is before 1970 or after 2554; the listing cannot be paged"
                .into(),
        )
    };
    let since_epoch = oldest
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .map_err(|_| out_of_range())?
        .as_nanos();
    let start = since_epoch - since_epoch % unit_nanos;
    if u64::try_from(start + unit_nanos).is_err() {
        return Err(out_of_range());
    }
    let at = |nanos: u128| {
        let t = UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        match digits {
            0 => humantime::format_rfc3339_seconds(t).to_string(),
            1..=3 => humantime::format_rfc3339_millis(t).to_string(),
            4..=6 => humantime::format_rfc3339_micros(t).to_string(),
            _ => humantime::format_rfc3339_nanos(t).to_string(),
        }
    };
    let before = at(start + unit_nanos);
    if cursor == Some(before.as_str()) {
        let unit = if digits == 0 {
            "one second".to_owned()
        } else {
            format!("{:?}", Duration::from_nanos(unit_nanos as u64))
        };
        return Err(ProviderError::BadResponse(format!(
            "more than {LIST_PAGE} requests were created within {unit} ({}); the Pinning \
             Service API cannot page within it",
            at(start)
        )));
    }
    Ok(before)
}

/// How many fractional digits of a second an RFC 3339 time gives (at most 9).
fn fraction_digits(text: &str) -> u32 {
    let Some((_, after_dot)) = text.split_once('.') else {
        return 0;
    };
    let digits = after_dot.chars().take_while(char::is_ascii_digit).count();
    u32::try_from(digits.min(9)).unwrap_or(9)
}

/// `created` as RFC 3339: `Z` or an offset such as `+02:00`, any precision.
fn parse_created(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if text.ends_with(['Z', 'z']) {
        return humantime::parse_rfc3339(text).ok();
    }
    // `±HH:MM`: read the local time as UTC, then move it by the offset.
    let split = text
        .len()
        .checked_sub(6)
        .filter(|&i| text.is_char_boundary(i))?;
    let (local, offset) = text.split_at(split);
    let (east, hm) = match (offset.strip_prefix('+'), offset.strip_prefix('-')) {
        (Some(hm), _) => (true, hm),
        (_, Some(hm)) => (false, hm),
        _ => return None,
    };
    let (h, m) = hm.split_once(':')?;
    let (h, m) = (h.parse::<u64>().ok()?, m.parse::<u64>().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    let shift = Duration::from_secs((h * 60 + m) * 60);
    let local = humantime::parse_rfc3339(&format!("{local}Z")).ok()?;
    if east {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

impl Provider for PinningService {
    fn pin<'a>(
        &'a self,
        request: PinRequest<'a>,
    ) -> BoxFuture<'a, Result<PinReceipt, ProviderError>> {
        Box::pin(self.pin_once(request))
    }

    fn look_ahead<'a>(
        &'a self,
        cids: Vec<&'a str>,
        concurrency: usize,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.look_ahead_once(cids, concurrency))
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
    ) -> BoxFuture<'a, Result<Checked, ProviderError>> {
        Box::pin(async move { self.status_once(request).await.map(Checked::from) })
    }

    fn list<'a>(
        &'a self,
        cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Listing, ProviderError>> {
        Box::pin(self.list_once(cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(created: &[&str]) -> Vec<PinStatus> {
        created
            .iter()
            .enumerate()
            .map(|(i, c)| {
                serde_json::from_value(serde_json::json!({
                    "requestid": format!("r{i}"),
                    "status": "pinned",
                    "created": c,
                    "pin": {"cid": "bafy"}
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_next_page_starts_a_second_after_the_oldest_request_seen() {
        let results = page(&[
            "2026-03-01T10:00:09Z",
            "2026-03-01T10:00:05.700Z",
            "2026-03-01T10:00:07+00:00",
            "2026-03-01T12:00:08+02:00",
            "2026-03-01T09:00:06.5-01:00",
        ]);
        assert_eq!(
            next_before(&results, None).unwrap(),
            "2026-03-01T10:00:06Z",
            "one truncated time: the oldest second again"
        );
        let millis = page(&["2026-03-01T10:00:09.250Z", "2026-03-01T10:00:05.700Z"]);
        assert_eq!(
            next_before(&millis, None).unwrap(),
            "2026-03-01T10:00:05.701Z",
            "millisecond times: the oldest millisecond again"
        );
    }

    #[test]
    fn a_page_that_cannot_move_or_cannot_be_read_is_an_error_not_an_end() {
        let one_second = page(&["2026-03-01T10:00:05Z", "2026-03-01T10:00:05.900Z"]);
        let err = next_before(&one_second, Some("2026-03-01T10:00:06Z")).unwrap_err();
        assert!(err.to_string().contains("within one second"), "{err}");
        for bad in [
            "",
            "yesterday",
            "2026-03-01T10:00:05*02:00",
            "2026-03-01T10:00:05é0:00",
            "2026-03-01T10:00:05+99:00",
            "é",
            "2026-03-01T10:00:05",
        ] {
            let err = next_before(&page(&[bad]), None).unwrap_err();
            assert!(
                err.to_string().contains("not an RFC 3339 time"),
                "{bad}: {err}"
            );
        }
        // Through an offset, a time before 1970: refused, not clamped.
        let err = next_before(&page(&["1970-01-01T00:30:00+01:00"]), None).unwrap_err();
        assert!(err.to_string().contains("before 1970"), "{err}");
    }
}
