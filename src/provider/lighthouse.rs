//! Lighthouse, as its documents (`how-to/pin-cid`, `list-files`,
//! `delete-file`) and its SDK (`getUploads`, `deleteFile`) call it:
//! `POST /api/lighthouse/pin` with `{cid, fileName}`, the uploads listed
//! 2,000 at a time from `GET /api/user/files_uploaded?lastKey=`, and an
//! upload removed by its id, `DELETE /api/user/delete_file?id=`.
//!
//! Lighthouse keeps no metadata on a pin, so pins carry no mark: pinsync
//! only ever removes what its state records it pinned or imported, and an
//! upload is found by its CID in the listing. A CID the account holds
//! already when pinsync would pin it is adopted as someone else's. Where the account holds
//! several uploads of one CID and the state records none of their ids,
//! which one is pinsync's cannot be told, and none is removed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};

use super::http;
use super::registry::{
    Capabilities, Connection, FieldValue, ProviderType, Starter, TypeField, UnpinBy, commented,
};
use super::{
    Checked, ListedPin, Listing, PinReceipt, PinRequest, Provider, ProviderError, Secret,
    UnpinReceipt, UnpinRequest,
};
use crate::manifest::CallKind;
use crate::state::ProviderStatus;

/// How old the uploads read for lookups may be before a CID they lack is
/// looked for in a new reading (a pin made since, during `--wait`).
const FRESH: Duration = Duration::from_secs(2);
/// Uploads one reading holds, at most (a hostile answer cannot fill the
/// memory).
const MAX_UPLOADS: usize = 5_000_000;

/// `type: lighthouse`.
pub(crate) static TYPE: ProviderType = ProviderType {
    name: "lighthouse",
    title: "Lighthouse",
    summary: "Lighthouse's API (pin by CID); an API key",
    fields: &[TypeField::new(
        "api_key",
        true,
        FieldValue::Secret,
        "the environment variable holding the API key, as ${VAR}",
    )],
    default_base_url: Some("https://api.lighthouse.storage"),
    // None is published: the adaptive pace follows its 429s.
    default_rate_limit: None,
    max_concurrency: None,
    capabilities: Capabilities {
        clusters: false,
        unpin_by: UnpinBy::Cid,
        replace: false,
        // Each pin is looked up in the uploads, read once a run, so that
        // an upload made by hand is adopted rather than taken over.
        lookup_batch: None,
        // The uploads are read once for every removal of a run, not per pin.
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
            commented("  lighthouse:", "Lighthouse's pinning API"),
            "    type: lighthouse\n".into(),
            "    api_key: ${LIGHTHOUSE_API_KEY}\n".into(),
        ]
        .concat(),
        target: "lighthouse",
        pin_extras: commented(
            "    # the name is sent as fileName",
            "Lighthouse keeps no meta",
        ),
        variables: vec!["LIGHTHOUSE_API_KEY"],
    }
}

fn connect(c: Connection<'_>) -> anyhow::Result<std::sync::Arc<dyn Provider>> {
    let key = c
        .required_secret("api_key")?
        .prefixed("Bearer ")
        .ok_or_else(|| anyhow::anyhow!("the API key cannot follow `Bearer `"))?;
    let base = &c.config.base_url;
    Ok(std::sync::Arc::new(Lighthouse {
        client: c.client.clone(),
        pin_url: http::endpoint(base, "/api/lighthouse/pin")?,
        uploads_url: http::endpoint(base, "/api/user/files_uploaded")?,
        delete_url: http::endpoint(base, "/api/user/delete_file")?,
        key,
        uploads: tokio::sync::Mutex::default(),
    }))
}

/// Lighthouse's API.
#[derive(Debug)]
pub(crate) struct Lighthouse {
    client: http::Client,
    pin_url: reqwest::Url,
    uploads_url: reqwest::Url,
    delete_url: reqwest::Url,
    /// `Bearer <key>`.
    key: Secret,
    uploads: tokio::sync::Mutex<Uploads>,
}

/// What pinsync knows of the account's uploads.
#[derive(Debug, Default)]
struct Uploads {
    /// When they were last read; `None`: never yet.
    read_at: Option<tokio::time::Instant>,
    /// Their ids by canonical CID, as last read.
    by_cid: HashMap<String, Vec<String>>,
    /// CIDs pinned since: Lighthouse took them, and they may not be listed
    /// yet.
    sent: HashSet<String>,
}

#[derive(Serialize)]
struct Pin<'a> {
    cid: &'a str,
    #[serde(rename = "fileName", skip_serializing_if = "Option::is_none")]
    file_name: Option<&'a str>,
}

/// One page of the uploads (the answer is not wrapped in `data`).
#[derive(Deserialize)]
struct UploadsPage {
    #[serde(rename = "fileList")]
    file_list: Vec<Upload>,
}

#[derive(Deserialize)]
struct Upload {
    id: String,
    cid: String,
    #[serde(rename = "fileName", default)]
    file_name: Option<String>,
}

impl Lighthouse {
    fn keyed(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        builder.header(AUTHORIZATION, self.key.header_value())
    }

    async fn pin_once(&self, request: PinRequest<'_>) -> Result<PinReceipt, ProviderError> {
        // An upload of the CID there before pinsync pinned it is someone
        // else's: adopted, never removed. The uploads are read once a run
        // for this, not once a pin.
        if let Some(id) = self.uploads_of(request.cid, false).await?.first() {
            return Ok(PinReceipt {
                pin_id: Some(http::pin_id(id)?),
                already_pinned: true,
                foreign: true,
            });
        }
        let body = Pin {
            cid: request.cid,
            file_name: request.labels.name.as_deref(),
        };
        let builder = self
            .keyed(self.client.post(self.pin_url.clone()))
            .json(&body);
        let answer = self.client.send(CallKind::Pin, builder).await?;
        // The answer's shape is not documented: any success took the pin.
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        self.uploads
            .lock()
            .await
            .sent
            .insert(super::canonical_cid(request.cid));
        Ok(PinReceipt {
            pin_id: None,
            already_pinned: false,
            foreign: false,
        })
    }

    /// One page of the uploads, after the upload `last_key`.
    async fn page(
        &self,
        last_key: Option<&str>,
        kind: CallKind,
    ) -> Result<UploadsPage, ProviderError> {
        let mut url = self.uploads_url.clone();
        // The documents start with `lastKey=null`.
        url.query_pairs_mut()
            .append_pair("lastKey", last_key.unwrap_or("null"));
        let answer = self
            .client
            .send(kind, self.keyed(self.client.get(url)))
            .await?;
        http::read_json(&answer, "the uploads", r#"{"fileList", "totalFiles"}"#)
    }

    /// Every upload, page after page.
    async fn read_uploads(&self, kind: CallKind) -> Result<Vec<Upload>, ProviderError> {
        let mut all: Vec<Upload> = Vec::new();
        let mut keys = HashSet::new();
        loop {
            let last = all.last().map(|u| u.id.clone());
            let page = self.page(last.as_deref(), kind).await?;
            if page.file_list.is_empty() {
                return Ok(all);
            }
            if all.len() + page.file_list.len() > MAX_UPLOADS {
                return Err(ProviderError::BadResponse(format!(
                    "the uploads listing holds more than {MAX_UPLOADS} uploads"
                )));
            }
            all.extend(page.file_list);
            // Each page ends on an upload not seen before, or the listing
            // would go round for ever.
            if let Some(tail) = all.last()
                && !keys.insert(tail.id.clone())
            {
                return Err(ProviderError::BadResponse(
                    "the uploads listing's lastKey does not move".into(),
                ));
            }
        }
    }

    /// The uploads' ids by canonical CID.
    fn index(uploads: &[Upload]) -> HashMap<String, Vec<String>> {
        let mut by_cid: HashMap<String, Vec<String>> = HashMap::new();
        for upload in uploads {
            by_cid
                .entry(super::canonical_cid(&upload.cid))
                .or_default()
                .push(upload.id.clone());
        }
        by_cid
    }

    /// The ids of the uploads of `cid`: from the last reading, or a new one
    /// when there is none yet, or when it lacks `cid`, is older than
    /// [`FRESH`] and `again` says to look again.
    async fn uploads_of(&self, cid: &str, again: bool) -> Result<Vec<String>, ProviderError> {
        let cid = &super::canonical_cid(cid);
        let mut uploads = self.uploads.lock().await;
        let stale = |u: &Uploads| match u.read_at {
            None => true,
            Some(at) => again && !u.by_cid.contains_key(cid) && at.elapsed() >= FRESH,
        };
        if stale(&uploads) {
            uploads.by_cid = Self::index(&self.read_uploads(CallKind::Status).await?);
            uploads.read_at = Some(tokio::time::Instant::now());
        }
        Ok(uploads.by_cid.get(cid).cloned().unwrap_or_default())
    }

    /// Forgets a removed upload.
    async fn forget(&self, cid: &str, id: &str) {
        let cid = &super::canonical_cid(cid);
        let mut uploads = self.uploads.lock().await;
        uploads.sent.remove(cid);
        if let Some(ids) = uploads.by_cid.get_mut(cid) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                uploads.by_cid.remove(cid);
            }
        }
    }

    async fn unpin_once(&self, request: UnpinRequest<'_>) -> Result<UnpinReceipt, ProviderError> {
        // A CID pinned before this run is in the first reading; only one
        // pinned since is worth reading the uploads again for.
        let again = self
            .uploads
            .lock()
            .await
            .sent
            .contains(&super::canonical_cid(request.cid));
        let ids = self.uploads_of(request.cid, again).await?;
        let id = match (request.pin_id, ids.as_slice()) {
            (_, []) => return Ok(UnpinReceipt { already_gone: true }),
            (Some(recorded), ids) if ids.iter().any(|i| i == recorded) => recorded.to_owned(),
            // The recorded upload is gone; another of the CID is not
            // pinsync's to remove.
            (Some(_), _) => return Ok(UnpinReceipt { already_gone: true }),
            (None, [only]) => only.clone(),
            (None, several) => {
                return Err(ProviderError::Rejected {
                    status: 0,
                    message: format!(
                        "Lighthouse holds {} uploads of this CID and the state records none of their ids, so which is pinsync's cannot be told; left pinned",
                        several.len()
                    ),
                });
            }
        };
        let mut url = self.delete_url.clone();
        url.query_pairs_mut().append_pair("id", &id);
        let answer = self
            .client
            .send(CallKind::Unpin, self.keyed(self.client.delete(url)))
            .await?;
        // A 403 here is an upload on the Permanent Plan, which cannot be
        // deleted: that pin's refusal, not the key's.
        if answer.status == StatusCode::FORBIDDEN {
            return Err(ProviderError::Rejected {
                status: 403,
                message: http::error_message(&answer.body),
            });
        }
        let receipt = http::read_unpin_answer(&answer)?;
        self.forget(request.cid, &id).await;
        Ok(receipt)
    }

    /// Pinned while an upload of the CID is listed; queued from its pin
    /// until it is.
    async fn status_once(&self, request: UnpinRequest<'_>) -> Result<Checked, ProviderError> {
        let ids = self.uploads_of(request.cid, true).await?;
        Ok(if !ids.is_empty() {
            ProviderStatus::Pinned
        } else if self
            .uploads
            .lock()
            .await
            .sent
            .contains(&super::canonical_cid(request.cid))
        {
            // Taken, not listed yet.
            ProviderStatus::Queued
        } else {
            ProviderStatus::Missing
        }
        .into())
    }

    /// Every upload in one listing (the whole of it is read to tell which
    /// CIDs have more than one upload), which also serves later lookups.
    async fn list_once(&self) -> Result<Listing, ProviderError> {
        let uploads = self.read_uploads(CallKind::List).await?;
        let by_cid = Self::index(&uploads);
        let pins = uploads
            .into_iter()
            .map(|u| {
                // Which of several uploads of a CID is pinsync's cannot
                // be told: none of their ids is given, so none is learned.
                let alone = by_cid
                    .get(&super::canonical_cid(&u.cid))
                    .is_some_and(|ids| ids.len() == 1);
                Ok(ListedPin {
                    cid: http::clean_message(&u.cid),
                    cluster: None,
                    pin_id: if alone {
                        Some(http::pin_id(&u.id)?)
                    } else {
                        None
                    },
                    // Lighthouse's own `status` is about its storage
                    // deals, not the pin: a listed upload is pinned.
                    status: ProviderStatus::Pinned,
                    name: u.file_name.map(|n| http::clean_message(&n)),
                    foreign: None,
                })
            })
            .collect::<Result<_, ProviderError>>()?;
        let mut cached = self.uploads.lock().await;
        cached.by_cid = by_cid;
        cached.read_at = Some(tokio::time::Instant::now());
        Ok(Listing { pins, next: None })
    }
}

impl Provider for Lighthouse {
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
        _cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Listing, ProviderError>> {
        Box::pin(self.list_once())
    }
}
