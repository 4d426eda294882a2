//! Pinata's v3 Files API, as its OpenAPI document (`pinata-api-v3.yaml`)
//! and its guide define it.
//!
//! A pin is a request in Pinata's queue (`POST /v3/files/public/pin_by_cid`)
//! until Pinata has fetched the CID; then the request leaves the queue and
//! the CID is a file with an id of its own, which is what an unpin removes
//! (`DELETE /v3/files/public/{id}`, the id found with
//! `GET /v3/files/public?cid=`). Pinata works 250 requests of an account at
//! once; pinsync never has more than that in the queue, so none waits
//! `backfilled`. Every request carries `keyvalues.pinsync=IDENTITY`, and
//! only files carrying it are ever removed.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};

use super::http;
use super::pinning_service::OWNER_KEY;
use super::registry::{
    Capabilities, Connection, FieldValue, ProviderType, Starter, TypeField, UnpinBy, commented,
};
use super::{
    Checked, ListedPin, Listing, PinReceipt, PinRequest, Provider, ProviderError, Secret,
    UnpinReceipt, UnpinRequest,
};
use crate::manifest::{CallKind, Per, RateLimit};
use crate::state::ProviderStatus;

/// Pin-by-CID requests Pinata works at once for an account; past them, a
/// request waits in the queue as `backfilled`.
const QUEUE_SLOTS: usize = 250;
/// How long to wait before reading the queue again while it is full: the
/// first wait, and the longest.
const QUEUE_POLL: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));
/// How long a pin waits for a place in a full queue before it fails, to be
/// tried again by the retry policy (which a stop ends).
const QUEUE_WAIT: Duration = Duration::from_secs(600);
/// Files one listing call asks for.
const FILES_PAGE: usize = 1000;
/// Requests one listing of the queue asks for (its SDK's documents give
/// 250 as the most).
const QUEUE_PAGE: usize = 250;
/// Pages one reading of the queue or of a CID's files reads, at most (a
/// hostile answer cannot keep pinsync reading).
const MAX_PAGES: usize = 10_000;

/// `type: pinata`.
pub(crate) static TYPE: ProviderType = ProviderType {
    name: "pinata",
    title: "Pinata",
    summary: "Pinata's v3 Files API: pins by CID through its queue; a JWT",
    fields: &[
        TypeField::new(
            "jwt",
            true,
            FieldValue::Secret,
            "the environment variable holding the API key's JWT, as ${VAR}",
        ),
        TypeField::new(
            "group_id",
            false,
            FieldValue::Text,
            "the id of the Pinata group every pin joins",
        ),
    ],
    default_base_url: Some("https://api.pinata.cloud"),
    // The Free plan's 60 a minute, the lowest published; the adaptive pace
    // finds a paid plan's 250 or 500 only if the manifest says so.
    default_rate_limit: Some(RateLimit {
        calls: 60,
        per: Per::Minute,
        burst: 1,
    }),
    max_concurrency: None,
    capabilities: Capabilities {
        clusters: false,
        unpin_by: UnpinBy::Cid,
        replace: false,
        // A CID Pinata holds already is not looked up: a second request
        // makes a second file, this manifest's, and the first is left be.
        lookup_batch: None,
        reads_before_removing: true,
        ownership_marks: true,
        replication: false,
    },
    starter,
    connect,
};

fn starter() -> Starter {
    Starter {
        providers: [
            commented("  pinata:", "Pinata's v3 Files API"),
            "    type: pinata\n".into(),
            "    jwt: ${PINATA_JWT}\n".into(),
            commented("    # group_id: 0193...", "every pin joins this group"),
            commented(
                "    # rate_limit: 250/min",
                "your plan's: 60 (the default), 250 or 500",
            ),
        ]
        .concat(),
        target: "pinata",
        pin_extras: commented("    # meta: {team: web}", "sent as keyvalues"),
        variables: vec!["PINATA_JWT"],
    }
}

fn connect(c: Connection<'_>) -> anyhow::Result<std::sync::Arc<dyn Provider>> {
    let jwt = c
        .required_secret("jwt")?
        .prefixed("Bearer ")
        .ok_or_else(|| anyhow::anyhow!("the JWT cannot follow `Bearer `"))?;
    let base = &c.config.base_url;
    Ok(std::sync::Arc::new(Pinata {
        client: c.client.clone(),
        queue_url: http::endpoint(base, "/v3/files/public/pin_by_cid")?,
        files_url: http::endpoint(base, "/v3/files/public")?,
        jwt,
        group_id: c.config.settings.text("group_id").map(str::to_owned),
        identity: c.identity(),
        queue: tokio::sync::Mutex::default(),
    }))
}

/// Pinata's v3 Files API.
#[derive(Debug)]
pub(crate) struct Pinata {
    client: http::Client,
    /// `/v3/files/public/pin_by_cid`: the queue.
    queue_url: reqwest::Url,
    /// `/v3/files/public`: the files.
    files_url: reqwest::Url,
    jwt: Secret,
    /// The group this provider's pins join, and the only one whose files
    /// it reads or removes.
    group_id: Option<String>,
    /// The mark on this manifest's pins.
    identity: String,
    queue: tokio::sync::Mutex<Queue>,
}

/// What pinsync knows of the account's queue.
#[derive(Debug, Default)]
struct Queue {
    /// Requests in it as last counted, and those queued since; `None`
    /// until the first pin counts them.
    waiting: Option<usize>,
    /// When it was last counted.
    counted_at: Option<tokio::time::Instant>,
    /// Why counting it failed for good (a refused key, a redirect): the
    /// pins waiting their turn fail with it rather than each ask again.
    refused: Option<ProviderError>,
}

#[derive(Serialize)]
struct PinByCid<'a> {
    cid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<&'a str>,
    keyvalues: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    host_nodes: &'a [String],
}

/// `{"data": ...}`, the envelope of every answer.
#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

/// A list that must be in the answer, where `null` is an empty one.
fn listed<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A request in the queue, as `pin_by_cid` answers and lists it.
#[derive(Deserialize)]
struct Job {
    id: String,
    #[serde(default)]
    cid: Option<String>,
    #[serde(default)]
    name: Option<String>,
    status: String,
    #[serde(default)]
    keyvalues: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default)]
    date_queued: Option<String>,
}

#[derive(Deserialize)]
struct Jobs {
    /// `rows` in its SDK's types.
    #[serde(alias = "rows", deserialize_with = "listed")]
    jobs: Vec<Job>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// A file, as `GET /v3/files/public` lists it.
#[derive(Deserialize)]
struct File {
    id: String,
    cid: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    keyvalues: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    group_id: Option<String>,
}

#[derive(Deserialize)]
struct Files {
    #[serde(deserialize_with = "listed")]
    files: Vec<File>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// The next page's token: none when the answer gives none or an empty one.
fn next_token(token: Option<String>) -> Option<String> {
    token.filter(|t| !t.is_empty())
}

/// Where a listing is: the requests still queued first, then the files.
/// `list`'s cursor is one of these, written `queue:TOKEN` or `files:TOKEN`.
enum Phase<'a> {
    Files(Option<&'a str>),
    Queue(Option<&'a str>),
}

impl<'a> Phase<'a> {
    fn parse(cursor: Option<&'a str>) -> Result<Self, ProviderError> {
        let Some(cursor) = cursor else {
            return Ok(Self::Queue(None));
        };
        let token = |t: &'a str| (!t.is_empty()).then_some(t);
        if let Some(t) = cursor.strip_prefix("files:") {
            Ok(Self::Files(token(t)))
        } else if let Some(t) = cursor.strip_prefix("queue:") {
            Ok(Self::Queue(token(t)))
        } else {
            Err(ProviderError::BadResponse(format!(
                "bad list cursor {cursor:?}"
            )))
        }
    }
}

/// A queued request's status, as the guide describes each.
fn job_status(status: &str) -> ProviderStatus {
    match status {
        // Checked, or waiting for one of the 250 slots.
        "prechecking" | "backfilled" => ProviderStatus::Queued,
        // `retreiving` is how the OpenAPI document spells it.
        "searching" | "retrieving" | "retreiving" => ProviderStatus::Pinning,
        "expired" | "over_free_limit" | "over_max_size" | "invalid_object" | "bad_host_node" => {
            ProviderStatus::Failed
        }
        // An unknown word: still in the queue, not failed.
        _ => ProviderStatus::Queued,
    }
}

/// Whether a request takes one of the queue's places.
fn is_waiting(status: &str) -> bool {
    job_status(status) != ProviderStatus::Failed
}

/// Whether two CIDs Pinata and the manifest write name the same content.
fn same_cid(a: &str, b: &str) -> bool {
    a == b || super::canonical_cid(a) == super::canonical_cid(b)
}

fn is_ours(keyvalues: Option<&BTreeMap<String, serde_json::Value>>, identity: &str) -> bool {
    keyvalues
        .and_then(|k| k.get(OWNER_KEY))
        .and_then(serde_json::Value::as_str)
        == Some(identity)
}

fn too_long(cid: &str) -> ProviderError {
    ProviderError::BadResponse(format!(
        "the listing of {} did not end after {MAX_PAGES} pages",
        http::clean_message(cid)
    ))
}

impl Pinata {
    fn authorized(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        builder.header(AUTHORIZATION, self.jwt.header_value())
    }

    /// Whether a file or request is in this provider's group.
    fn in_group(&self, group_id: Option<&str>) -> bool {
        self.group_id.is_none() || self.group_id.as_deref() == group_id
    }

    /// Whether a file or request is this provider's: this manifest's mark,
    /// in its group.
    fn owns(
        &self,
        keyvalues: Option<&BTreeMap<String, serde_json::Value>>,
        group: Option<&str>,
    ) -> bool {
        is_ours(keyvalues, &self.identity) && self.in_group(group)
    }

    /// One page of a listing at `url` (the files or the queue).
    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        url: &reqwest::Url,
        query: &[(&str, &str)],
        kind: CallKind,
        (call, shape): (&str, &str),
    ) -> Result<T, ProviderError> {
        let mut url = url.clone();
        url.query_pairs_mut().extend_pairs(query);
        let answer = self
            .client
            .send(kind, self.authorized(self.client.get(url)))
            .await?;
        let page: Data<T> = http::read_json(&answer, call, shape)?;
        Ok(page.data)
    }

    /// One page of the files of this provider's group, of one CID or all.
    async fn files(
        &self,
        cid: Option<&str>,
        token: Option<&str>,
        kind: CallKind,
    ) -> Result<Files, ProviderError> {
        let limit = FILES_PAGE.to_string();
        let mut query = Vec::new();
        query.extend(cid.map(|c| ("cid", c)));
        query.extend(self.group_id.as_deref().map(|g| ("group", g)));
        query.push(("limit", limit.as_str()));
        query.extend(token.map(|t| ("pageToken", t)));
        let what = (
            "the files listing",
            r#"{"data": {"files", "next_page_token"}}"#,
        );
        let mut page: Files = self.page(&self.files_url, &query, kind, what).await?;
        page.files.retain(|f| self.in_group(f.group_id.as_deref()));
        Ok(page)
    }

    /// One page of the queue, of one CID or all.
    async fn jobs(
        &self,
        cid: Option<&str>,
        token: Option<&str>,
        kind: CallKind,
    ) -> Result<Jobs, ProviderError> {
        let limit = QUEUE_PAGE.to_string();
        let mut query = Vec::new();
        query.extend(cid.map(|c| ("cid", c)));
        query.push(("limit", limit.as_str()));
        query.extend(token.map(|t| ("pageToken", t)));
        let what = (
            "the pin_by_cid queue",
            r#"{"data": {"jobs", "next_page_token"}}"#,
        );
        self.page(&self.queue_url, &query, kind, what).await
    }

    /// This provider's files of `cid` (one page in practice).
    async fn files_of(&self, cid: &str) -> Result<Vec<File>, ProviderError> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .files(Some(cid), token.as_deref(), CallKind::Status)
                .await?;
            all.extend(page.files.into_iter().filter(|f| same_cid(&f.cid, cid)));
            match next_token(page.next_page_token) {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(all),
            }
        }
        Err(too_long(cid))
    }

    /// This manifest's requests of `cid` in the queue, the latest first.
    async fn jobs_of(&self, cid: &str) -> Result<Vec<Job>, ProviderError> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .jobs(Some(cid), token.as_deref(), CallKind::Status)
                .await?;
            all.extend(page.jobs.into_iter().filter(|j| {
                j.cid.as_deref().is_some_and(|c| same_cid(c, cid))
                    && self.owns(j.keyvalues.as_ref(), j.group_id.as_deref())
            }));
            match next_token(page.next_page_token) {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => {
                    all.sort_by(|a, b| b.date_queued.cmp(&a.date_queued));
                    return Ok(all);
                }
            }
        }
        Err(too_long(cid))
    }

    /// Requests of the account waiting in the queue now, whoever made them.
    async fn count_waiting(&self) -> Result<usize, ProviderError> {
        let mut waiting = 0;
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.jobs(None, token.as_deref(), CallKind::List).await?;
            waiting += page.jobs.iter().filter(|j| is_waiting(&j.status)).count();
            match next_token(page.next_page_token) {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(waiting),
            }
        }
        Err(ProviderError::BadResponse(format!(
            "the pin_by_cid queue did not end after {MAX_PAGES} pages"
        )))
    }

    /// Takes a place in the queue: while all 250 are taken, waits (the
    /// queue free to the others meanwhile) and reads it again, backing off,
    /// for [`QUEUE_WAIT`] at most.
    async fn take_place(&self) -> Result<(), ProviderError> {
        let started = tokio::time::Instant::now();
        let mut delay = QUEUE_POLL.0;
        loop {
            {
                let mut queue = self.queue.lock().await;
                if let Some(refused) = &queue.refused {
                    return Err(refused.clone());
                }
                // Waiters share one count in each shortest wait.
                let due = queue
                    .counted_at
                    .is_none_or(|at| at.elapsed() >= QUEUE_POLL.0);
                let full = queue.waiting.is_none_or(|n| n >= QUEUE_SLOTS);
                if full && due {
                    match self.count_waiting().await {
                        Ok(n) => {
                            queue.waiting = Some(n);
                            queue.counted_at = Some(tokio::time::Instant::now());
                        }
                        Err(e) => {
                            if e.refuses_every_call() {
                                queue.refused = Some(e.clone());
                            }
                            return Err(e);
                        }
                    }
                }
                if let Some(n) = queue.waiting.filter(|n| *n < QUEUE_SLOTS) {
                    queue.waiting = Some(n + 1);
                    return Ok(());
                }
            }
            if started.elapsed() >= QUEUE_WAIT {
                return Err(ProviderError::Unavailable {
                    status: 0,
                    message: format!(
                        "Pinata's queue has held {QUEUE_SLOTS} waiting requests for {} s",
                        QUEUE_WAIT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(QUEUE_POLL.1);
        }
    }

    /// Gives back a place taken for a request that was not queued.
    async fn give_back_place(&self) {
        if let Some(n) = self.queue.lock().await.waiting.as_mut() {
            *n = n.saturating_sub(1);
        }
    }

    async fn pin_once(&self, request: PinRequest<'_>) -> Result<PinReceipt, ProviderError> {
        let mut keyvalues: BTreeMap<&str, &str> = request
            .labels
            .meta
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // The mark is pinsync's own.
        keyvalues.insert(OWNER_KEY, &self.identity);
        let body = PinByCid {
            cid: request.cid,
            name: request.labels.name.as_deref(),
            group_id: self.group_id.as_deref(),
            keyvalues,
            host_nodes: request.origins,
        };
        self.take_place().await?;
        let sent = self
            .client
            .send(
                CallKind::Pin,
                self.authorized(self.client.post(self.queue_url.clone()))
                    .json(&body),
            )
            .await;
        let job = sent.and_then(|answer| {
            http::read_json::<Data<Job>>(&answer, "pin_by_cid", r#"{"data": {"id", "status"}}"#)
        });
        match job {
            // The request's id is not recorded: what an unpin removes is
            // the file it becomes, whose id `refresh` learns.
            Ok(_) => Ok(PinReceipt {
                pin_id: None,
                already_pinned: false,
                foreign: false,
            }),
            Err(e) => {
                self.give_back_place().await;
                Err(e)
            }
        }
    }

    /// Removes this provider's file of the CID: the one whose id is
    /// recorded, else every one carrying the mark in its group; a request
    /// still queued is cancelled.
    async fn unpin_once(&self, request: UnpinRequest<'_>) -> Result<UnpinReceipt, ProviderError> {
        let files = self.files_of(request.cid).await?;
        let ours: Vec<&File> = match request.pin_id {
            Some(id) => files.iter().filter(|f| f.id == id).collect(),
            None => files
                .iter()
                .filter(|f| self.owns(f.keyvalues.as_ref(), f.group_id.as_deref()))
                .collect(),
        };
        if let Some(other) = ours
            .iter()
            .find(|f| !self.owns(f.keyvalues.as_ref(), f.group_id.as_deref()))
        {
            return Err(ProviderError::Rejected {
                status: 0,
                message: format!(
                    "Pinata's file {} does not carry keyvalues.{OWNER_KEY} = {:?} (made by hand or by another manifest); left pinned",
                    http::clean_message(&other.id),
                    self.identity
                ),
            });
        }
        if ours.is_empty() {
            // The recorded file is gone; without one, a request of this
            // manifest's may still be queued.
            return match request.pin_id {
                Some(_) => Ok(UnpinReceipt { already_gone: true }),
                None => self.cancel(request.cid).await,
            };
        }
        let mut receipt = UnpinReceipt { already_gone: true };
        for file in ours {
            let url = http::with_segment(&self.files_url, &file.id);
            let answer = self
                .client
                .send(CallKind::Unpin, self.authorized(self.client.delete(url)))
                .await?;
            receipt.already_gone &= http::read_unpin_answer(&answer)?.already_gone;
        }
        Ok(receipt)
    }

    /// Cancels this manifest's requests of `cid` still in the queue
    /// (`DELETE /v3/files/public/pin_by_cid/{id}`). A request that became
    /// a file meanwhile leaves the queue: its file is then removed.
    async fn cancel(&self, cid: &str) -> Result<UnpinReceipt, ProviderError> {
        let waiting: Vec<Job> = self
            .jobs_of(cid)
            .await?
            .into_iter()
            .filter(|j| is_waiting(&j.status))
            .collect();
        if waiting.is_empty() {
            // Read the files again: a request done between the two reads is
            // a file now.
            let files = self.files_of(cid).await?;
            if files
                .iter()
                .any(|f| self.owns(f.keyvalues.as_ref(), f.group_id.as_deref()))
            {
                return Err(ProviderError::Unavailable {
                    status: 0,
                    message: "the request became a file while it was being removed".into(),
                });
            }
            return Ok(UnpinReceipt { already_gone: true });
        }
        for job in &waiting {
            let url = http::with_segment(&self.queue_url, &job.id);
            let answer = self
                .client
                .send(CallKind::Unpin, self.authorized(self.client.delete(url)))
                .await?;
            http::read_unpin_answer(&answer)?;
            self.give_back_place().await;
        }
        Ok(UnpinReceipt {
            already_gone: false,
        })
    }

    /// The queue first, then the files: a request that is done between the
    /// two reads is a file by the second, never missing from both.
    async fn status_once(&self, request: UnpinRequest<'_>) -> Result<Checked, ProviderError> {
        let jobs = self.jobs_of(request.cid).await?;
        if let Some(job) = jobs.iter().find(|j| is_waiting(&j.status)) {
            return Ok(job_status(&job.status).into());
        }
        let files = self.files_of(request.cid).await?;
        let pinned = files.iter().any(|f| match request.pin_id {
            Some(id) => f.id == id,
            None => self.owns(f.keyvalues.as_ref(), f.group_id.as_deref()),
        });
        if pinned {
            return Ok(ProviderStatus::Pinned.into());
        }
        Ok(match jobs.first() {
            Some(failed) => Checked {
                status: ProviderStatus::Failed,
                detail: Some(format!(
                    "Pinata's queue says {}",
                    http::clean_message(&failed.status)
                )),
            },
            None => ProviderStatus::Missing.into(),
        })
    }

    /// The requests still queued first, then the files, so that a request
    /// done meanwhile is listed as its file rather than missed.
    async fn list_once(&self, cursor: Option<&str>) -> Result<Listing, ProviderError> {
        match Phase::parse(cursor)? {
            Phase::Queue(token) => {
                let page = self.jobs(None, token, CallKind::List).await?;
                let pins = page
                    .jobs
                    .into_iter()
                    .filter(|j| self.in_group(j.group_id.as_deref()))
                    .filter_map(|j| {
                        Some(ListedPin {
                            foreign: Some(!is_ours(j.keyvalues.as_ref(), &self.identity)),
                            cid: http::clean_message(j.cid.as_deref()?),
                            cluster: None,
                            // A request's id is not what an unpin removes.
                            pin_id: None,
                            status: job_status(&j.status),
                            name: j.name.map(|n| http::clean_message(&n)),
                        })
                    })
                    .collect();
                let next = match next_token(page.next_page_token) {
                    Some(t) => format!("queue:{t}"),
                    None => "files:".to_owned(),
                };
                Ok(Listing {
                    pins,
                    next: Some(next),
                })
            }
            Phase::Files(token) => {
                let page = self.files(None, token, CallKind::List).await?;
                let pins = page
                    .files
                    .into_iter()
                    .map(|f| {
                        Ok(ListedPin {
                            foreign: Some(!is_ours(f.keyvalues.as_ref(), &self.identity)),
                            cid: http::clean_message(&f.cid),
                            cluster: None,
                            pin_id: Some(http::pin_id(&f.id)?),
                            status: ProviderStatus::Pinned,
                            name: f.name.map(|n| http::clean_message(&n)),
                        })
                    })
                    .collect::<Result<_, ProviderError>>()?;
                Ok(Listing {
                    pins,
                    next: next_token(page.next_page_token).map(|t| format!("files:{t}")),
                })
            }
        }
    }
}

impl Provider for Pinata {
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
        Box::pin(self.status_once(request))
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

    #[test]
    fn the_queues_statuses_map_to_pinsyncs() {
        use ProviderStatus::*;
        for (word, status) in [
            ("prechecking", Queued),
            ("backfilled", Queued),
            ("searching", Pinning),
            ("retrieving", Pinning),
            ("retreiving", Pinning),
            ("expired", Failed),
            ("over_free_limit", Failed),
            ("over_max_size", Failed),
            ("invalid_object", Failed),
            ("bad_host_node", Failed),
            ("something new", Queued),
        ] {
            assert_eq!(job_status(word), status, "{word}");
            assert_eq!(is_waiting(word), status != Failed, "{word}");
        }
    }

    #[test]
    fn a_cursor_names_its_phase_and_a_bad_one_is_refused() {
        assert!(matches!(Phase::parse(None), Ok(Phase::Queue(None))));
        assert!(matches!(
            Phase::parse(Some("files:abc")),
            Ok(Phase::Files(Some("abc")))
        ));
        assert!(matches!(
            Phase::parse(Some("queue:")),
            Ok(Phase::Queue(None))
        ));
        assert!(Phase::parse(Some("abc")).is_err());
    }

    #[test]
    fn the_documented_answer_with_its_hose_nodes_typo_reads() {
        let answer = r#"{"data":{"id":"j1","name":null,"cid":"bafy","keyvalues":null,
            "group_id":null,"status":"prechecking","date_queued":"2026-01-01T00:00:00Z",
            "hose_nodes":null}}"#;
        let job: Data<Job> = serde_json::from_str(answer).unwrap();
        assert_eq!(job.data.id, "j1");
        assert_eq!(job.data.status, "prechecking");
    }
}
