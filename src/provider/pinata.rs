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
/// Files or requests one listing call asks for.
const PAGE: usize = 1000;
/// Pages one count of the queue reads, at most (a hostile answer cannot
/// keep pinsync reading).
const MAX_QUEUE_PAGES: usize = 10_000;

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
}

#[derive(Deserialize)]
struct Jobs {
    #[serde(default)]
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
}

#[derive(Deserialize)]
struct Files {
    #[serde(default)]
    files: Vec<File>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// The next page's token: none when the answer gives none or an empty one.
fn next_token(token: Option<String>) -> Option<String> {
    token.filter(|t| !t.is_empty())
}

/// Where a listing is: the files first, then the requests still queued.
/// `list`'s cursor is one of these, written `files:TOKEN` or `queue:TOKEN`.
enum Phase<'a> {
    Files(Option<&'a str>),
    Queue(Option<&'a str>),
}

impl<'a> Phase<'a> {
    fn parse(cursor: Option<&'a str>) -> Result<Self, ProviderError> {
        let Some(cursor) = cursor else {
            return Ok(Self::Files(None));
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

impl Pinata {
    fn authorized(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        builder.header(AUTHORIZATION, self.jwt.header_value())
    }

    /// One page of a listing at `url` (the files or the queue), of one CID
    /// or all.
    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        url: &reqwest::Url,
        cid: Option<&str>,
        token: Option<&str>,
        kind: CallKind,
        (call, shape): (&str, &str),
    ) -> Result<T, ProviderError> {
        let mut url = url.clone();
        {
            let mut query = url.query_pairs_mut();
            if let Some(cid) = cid {
                query.append_pair("cid", cid);
            }
            query.append_pair("limit", &PAGE.to_string());
            if let Some(token) = token {
                query.append_pair("pageToken", token);
            }
        }
        let answer = self
            .client
            .send(kind, self.authorized(self.client.get(url)))
            .await?;
        let page: Data<T> = http::read_json(&answer, call, shape)?;
        Ok(page.data)
    }

    /// One page of the files.
    async fn files(
        &self,
        cid: Option<&str>,
        token: Option<&str>,
        kind: CallKind,
    ) -> Result<Files, ProviderError> {
        let what = (
            "the files listing",
            r#"{"data": {"files", "next_page_token"}}"#,
        );
        self.page(&self.files_url, cid, token, kind, what).await
    }

    /// Every file of `cid` (one page in practice; a few at most).
    async fn files_of(&self, cid: &str) -> Result<Vec<File>, ProviderError> {
        let mut all = Vec::new();
        let mut token = None;
        for _ in 0..MAX_QUEUE_PAGES {
            let page = self
                .files(Some(cid), token.as_deref(), CallKind::Status)
                .await?;
            all.extend(page.files.into_iter().filter(|f| same_cid(&f.cid, cid)));
            match next_token(page.next_page_token) {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(all),
            }
        }
        Ok(all)
    }

    /// One page of the queue.
    async fn jobs(
        &self,
        cid: Option<&str>,
        token: Option<&str>,
        kind: CallKind,
    ) -> Result<Jobs, ProviderError> {
        let what = (
            "the pin_by_cid queue",
            r#"{"data": {"jobs", "next_page_token"}}"#,
        );
        self.page(&self.queue_url, cid, token, kind, what).await
    }

    /// Requests of the account waiting in the queue now, whoever made them.
    async fn count_waiting(&self) -> Result<usize, ProviderError> {
        let mut waiting = 0;
        let mut token: Option<String> = None;
        for _ in 0..MAX_QUEUE_PAGES {
            let page = self.jobs(None, token.as_deref(), CallKind::List).await?;
            waiting += page.jobs.iter().filter(|j| is_waiting(&j.status)).count();
            match next_token(page.next_page_token) {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(waiting),
            }
        }
        Err(ProviderError::BadResponse(format!(
            "the pin_by_cid queue did not end after {MAX_QUEUE_PAGES} pages"
        )))
    }

    /// Takes a place in the queue: waits, reading it again now and then,
    /// while all 250 are taken.
    async fn take_place(&self) -> Result<(), ProviderError> {
        let mut queue = self.queue.lock().await;
        if let Some(refused) = &queue.refused {
            return Err(refused.clone());
        }
        let mut delay = QUEUE_POLL.0;
        loop {
            let counted = match queue.waiting {
                Some(n) if n < QUEUE_SLOTS => Ok(n),
                Some(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(QUEUE_POLL.1);
                    self.count_waiting().await
                }
                None => self.count_waiting().await,
            };
            let waiting = match counted {
                Ok(n) => n,
                Err(e) => {
                    if e.refuses_every_call() {
                        queue.refused = Some(e.clone());
                    }
                    return Err(e);
                }
            };
            if waiting < QUEUE_SLOTS {
                queue.waiting = Some(waiting + 1);
                return Ok(());
            }
            queue.waiting = Some(waiting);
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
            Ok(job) => Ok(PinReceipt {
                pin_id: Some(http::pin_id(&job.data.id)?),
                already_pinned: false,
                foreign: false,
            }),
            Err(e) => {
                self.give_back_place().await;
                Err(e)
            }
        }
    }

    async fn unpin_once(&self, request: UnpinRequest<'_>) -> Result<UnpinReceipt, ProviderError> {
        let files = self.files_of(request.cid).await?;
        let (ours, others): (Vec<File>, Vec<File>) = files
            .into_iter()
            .partition(|f| is_ours(f.keyvalues.as_ref(), &self.identity));
        if ours.is_empty() && !others.is_empty() {
            return Err(ProviderError::Rejected {
                status: 0,
                message: format!(
                    "Pinata's files of this CID do not carry keyvalues.{OWNER_KEY} = {:?} (made by hand or by another manifest); left pinned",
                    self.identity
                ),
            });
        }
        if ours.is_empty() {
            // Not a file yet: a request still queued is cancelled.
            return self.cancel(request).await;
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

    /// Cancels this manifest's requests of the CID still in the queue
    /// (`DELETE /v3/files/public/pin_by_cid/{id}`).
    async fn cancel(&self, request: UnpinRequest<'_>) -> Result<UnpinReceipt, ProviderError> {
        let jobs = self.jobs(Some(request.cid), None, CallKind::Status).await?;
        let mut receipt = UnpinReceipt { already_gone: true };
        for job in jobs.jobs.iter().filter(|j| {
            j.cid.as_deref().is_some_and(|c| same_cid(c, request.cid))
                && is_waiting(&j.status)
                && is_ours(j.keyvalues.as_ref(), &self.identity)
        }) {
            let url = http::with_segment(&self.queue_url, &job.id);
            let answer = self
                .client
                .send(CallKind::Unpin, self.authorized(self.client.delete(url)))
                .await?;
            receipt.already_gone &= http::read_unpin_answer(&answer)?.already_gone;
            self.give_back_place().await;
        }
        Ok(receipt)
    }

    /// Pinned once it is a file; before, its request's status in the queue.
    async fn status_once(&self, request: UnpinRequest<'_>) -> Result<Checked, ProviderError> {
        let files = self
            .files(Some(request.cid), None, CallKind::Status)
            .await?;
        if files.files.iter().any(|f| same_cid(&f.cid, request.cid)) {
            return Ok(ProviderStatus::Pinned.into());
        }
        let jobs = self.jobs(Some(request.cid), None, CallKind::Status).await?;
        let of_cid = || {
            jobs.jobs
                .iter()
                .filter(|j| j.cid.as_deref().is_some_and(|c| same_cid(c, request.cid)))
        };
        // This pin's own request, else the latest word on the CID.
        let job = of_cid()
            .find(|j| Some(j.id.as_str()) == request.pin_id)
            .or_else(|| of_cid().next());
        Ok(match job {
            Some(job) => Checked {
                status: job_status(&job.status),
                detail: (job_status(&job.status) == ProviderStatus::Failed)
                    .then(|| format!("Pinata's queue says {}", http::clean_message(&job.status))),
            },
            None => ProviderStatus::Missing.into(),
        })
    }

    async fn list_once(&self, cursor: Option<&str>) -> Result<Listing, ProviderError> {
        match Phase::parse(cursor)? {
            Phase::Files(token) => {
                let page = self.files(None, token, CallKind::List).await?;
                let pins = page
                    .files
                    .into_iter()
                    .map(|f| {
                        Ok(ListedPin {
                            foreign: !is_ours(f.keyvalues.as_ref(), &self.identity),
                            cid: http::clean_message(&f.cid),
                            cluster: None,
                            pin_id: Some(http::pin_id(&f.id)?),
                            status: ProviderStatus::Pinned,
                            name: f.name.map(|n| http::clean_message(&n)),
                        })
                    })
                    .collect::<Result<_, ProviderError>>()?;
                let next = match next_token(page.next_page_token) {
                    Some(t) => format!("files:{t}"),
                    None => "queue:".to_owned(),
                };
                Ok(Listing {
                    pins,
                    next: Some(next),
                })
            }
            Phase::Queue(token) => {
                let page = self.jobs(None, token, CallKind::List).await?;
                let pins = page
                    .jobs
                    .into_iter()
                    .filter_map(|j| {
                        let cid = j.cid.as_deref()?;
                        Some(Ok(ListedPin {
                            foreign: !is_ours(j.keyvalues.as_ref(), &self.identity),
                            cid: http::clean_message(cid),
                            cluster: None,
                            pin_id: Some(match http::pin_id(&j.id) {
                                Ok(id) => id,
                                Err(e) => return Some(Err(e)),
                            }),
                            status: job_status(&j.status),
                            name: j.name.map(|n| http::clean_message(&n)),
                        }))
                    })
                    .collect::<Result<_, ProviderError>>()?;
                Ok(Listing {
                    pins,
                    next: next_token(page.next_page_token).map(|t| format!("queue:{t}")),
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
        assert!(matches!(Phase::parse(None), Ok(Phase::Files(None))));
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
