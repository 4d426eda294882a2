//! QuickNode's IPFS REST API, as its pages document it
//! (`/ipfs/rest/v1/pinning`): `POST` a pin with `{cid, name, origins,
//! meta}`, read it, `PATCH` its labels and `DELETE` it by the `requestId`
//! it was given, list them a page at a time. The key goes bare in
//! `x-api-key`.
//!
//! Each pin carries `meta.pinsync=IDENTITY`; a pin is read before it is
//! removed or relabelled, and one without the mark is left as it is.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::HeaderName;
use serde::{Deserialize, Serialize};

use super::http::{self, Answer};
use super::pinning_service::OWNER_KEY;
use super::registry::{
    Capabilities, Connection, FieldValue, ProviderType, Starter, TypeField, UnpinBy, commented,
};
use super::{
    Checked, ListedPin, Listing, PinReceipt, PinRequest, Provider, ProviderError, Secret,
    UnpinReceipt, UnpinRequest,
};
use crate::manifest::CallKind;
use crate::state::ProviderStatus;

/// Pins one listing call asks for.
const PAGE: usize = 100;

/// The documented key header.
const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// `type: quicknode`.
pub(crate) static TYPE: ProviderType = ProviderType {
    name: "quicknode",
    title: "QuickNode",
    summary: "QuickNode's IPFS REST API (pinning by CID); an API key",
    fields: &[TypeField::new(
        "api_key",
        true,
        FieldValue::Secret,
        "the environment variable holding the API key (with the IPFS_REST \
         application), as ${VAR}",
    )],
    default_base_url: Some("https://api.quicknode.com"),
    // QuickNode publishes no limit for IPFS: the adaptive pace follows its
    // 429s.
    default_rate_limit: None,
    max_concurrency: None,
    capabilities: Capabilities {
        clusters: false,
        unpin_by: UnpinBy::PinId,
        // PATCH changes a pin's name and meta, keeping its id.
        replace: true,
        // There is no lookup by CID, only the whole listing.
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
            commented("  quicknode:", "QuickNode's IPFS REST API"),
            "    type: quicknode\n".into(),
            "    api_key: ${QUICKNODE_API_KEY}\n".into(),
            commented(
                "    # rate_limit: 10/s",
                "none is published; pinsync slows on 429s",
            ),
        ]
        .concat(),
        target: "quicknode",
        pin_extras: commented("    # meta: {team: web}", "sent as meta"),
        variables: vec!["QUICKNODE_API_KEY"],
    }
}

fn connect(c: Connection<'_>) -> anyhow::Result<std::sync::Arc<dyn Provider>> {
    Ok(std::sync::Arc::new(QuickNode {
        client: c.client.clone(),
        pinning_url: http::endpoint(&c.config.base_url, "/ipfs/rest/v1/pinning")?,
        api_key: c.required_secret("api_key")?,
        identity: c.identity(),
    }))
}

/// QuickNode's IPFS REST API.
#[derive(Debug)]
pub(crate) struct QuickNode {
    client: http::Client,
    /// `/ipfs/rest/v1/pinning`; a pin's `requestId` is added per call.
    pinning_url: reqwest::Url,
    api_key: Secret,
    /// The mark on this manifest's pins.
    identity: String,
}

/// The body of a pin and of a change of one.
#[derive(Serialize)]
struct PinBody<'a> {
    cid: &'a str,
    /// Required: the pin's name, else its CID.
    name: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    origins: &'a [String],
    meta: BTreeMap<&'a str, &'a str>,
}

/// A pinned object, as the API answers and lists it.
#[derive(Deserialize)]
struct PinnedObject {
    /// `requestId` in the documents; `requestid` in some clients' reading.
    #[serde(alias = "requestid")]
    #[serde(rename = "requestId")]
    request_id: String,
    #[serde(default)]
    cid: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    /// Values may themselves be objects.
    #[serde(default)]
    meta: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Page {
    data: Vec<PinnedObject>,
    #[serde(rename = "totalPages")]
    total_pages: u64,
}

/// A pinned object's status: `queued`, `pinning`, `pinned` or `failed`.
fn status_of(status: Option<&str>) -> ProviderStatus {
    match status.map(str::to_ascii_lowercase).as_deref() {
        Some("pinned") => ProviderStatus::Pinned,
        Some("pinning") => ProviderStatus::Pinning,
        Some("failed") => ProviderStatus::Failed,
        _ => ProviderStatus::Queued,
    }
}

impl PinnedObject {
    fn is_ours(&self, identity: &str) -> bool {
        self.meta
            .as_ref()
            .and_then(|m| m.get(OWNER_KEY))
            .and_then(serde_json::Value::as_str)
            == Some(identity)
    }
}

impl QuickNode {
    fn keyed(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        builder.header(API_KEY_HEADER, self.api_key.header_value())
    }

    fn body<'a>(&'a self, request: &PinRequest<'a>) -> PinBody<'a> {
        let mut meta: BTreeMap<&str, &str> = request
            .labels
            .meta
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // The mark is pinsync's own.
        meta.insert(OWNER_KEY, &self.identity);
        PinBody {
            cid: request.cid,
            name: request.labels.name.as_deref().unwrap_or(request.cid),
            origins: request.origins,
            meta,
        }
    }

    fn receipt(answer: &Answer, call: &str) -> Result<PinReceipt, ProviderError> {
        let pinned: PinnedObject = http::read_json(answer, call, r#"{"requestId", "cid", ...}"#)?;
        Ok(PinReceipt {
            pin_id: Some(http::pin_id(&pinned.request_id)?),
            already_pinned: false,
            foreign: false,
        })
    }

    async fn pin_once(&self, request: PinRequest<'_>) -> Result<PinReceipt, ProviderError> {
        let builder = self
            .keyed(self.client.post(self.pinning_url.clone()))
            .json(&self.body(&request));
        let answer = self.client.send(CallKind::Pin, builder).await?;
        Self::receipt(&answer, "the pin")
    }

    /// `GET /pinning/{requestId}`: `None` when QuickNode does not hold it.
    async fn get(&self, pin_id: &str) -> Result<Option<PinnedObject>, ProviderError> {
        let builder = self.keyed(
            self.client
                .get(http::with_segment(&self.pinning_url, pin_id)),
        );
        let answer = self.client.send(CallKind::Status, builder).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        http::read_json(
            &answer,
            "the pinned object",
            r#"{"requestId", "status", ...}"#,
        )
        .map(Some)
    }

    /// The id an unpin, a status or a relabel names the pin by.
    fn recorded_id(pin_id: Option<&str>) -> Result<&str, ProviderError> {
        pin_id.ok_or_else(|| ProviderError::Rejected {
            status: 0,
            message: "QuickNode names a pin by its requestId, and none is recorded for it".into(),
        })
    }

    fn not_ours(&self, what: &str) -> ProviderError {
        ProviderError::Rejected {
            status: 0,
            message: format!(
                "the pinned object does not carry meta.{OWNER_KEY} = {:?} (made by hand or by another manifest); {what}",
                self.identity
            ),
        }
    }

    async fn unpin_once(&self, request: UnpinRequest<'_>) -> Result<UnpinReceipt, ProviderError> {
        let pin_id = Self::recorded_id(request.pin_id)?;
        let Some(pinned) = self.get(pin_id).await? else {
            return Ok(UnpinReceipt { already_gone: true });
        };
        if !pinned.is_ours(&self.identity) {
            return Err(self.not_ours("left pinned"));
        }
        let builder = self.keyed(
            self.client
                .delete(http::with_segment(&self.pinning_url, pin_id)),
        );
        let answer = self.client.send(CallKind::Unpin, builder).await?;
        let receipt = http::read_unpin_answer(&answer)?;
        // The documents: `true` once deleted, else `false`.
        if answer.status.is_success()
            && serde_json::from_slice::<bool>(&answer.body).ok() != Some(true)
        {
            return Err(ProviderError::BadResponse(format!(
                "the delete answered {:?}, not true",
                http::shorten(&String::from_utf8_lossy(&answer.body))
            )));
        }
        Ok(receipt)
    }

    async fn relabel_once(
        &self,
        request: PinRequest<'_>,
        pin_id: &str,
    ) -> Result<PinReceipt, ProviderError> {
        match self.get(pin_id).await? {
            Some(pinned) if !pinned.is_ours(&self.identity) => {
                Err(self.not_ours("its labels are left as they are"))
            }
            None => Err(ProviderError::Rejected {
                status: 404,
                message: "QuickNode no longer holds the pin".into(),
            }),
            Some(_) => {
                let builder = self
                    .keyed(
                        self.client
                            .patch(http::with_segment(&self.pinning_url, pin_id)),
                    )
                    .json(&self.body(&request));
                let answer = self.client.send(CallKind::Pin, builder).await?;
                Self::receipt(&answer, "the change")
            }
        }
    }

    async fn status_once(&self, request: UnpinRequest<'_>) -> Result<Checked, ProviderError> {
        let pin_id = Self::recorded_id(request.pin_id)?;
        Ok(match self.get(pin_id).await? {
            Some(pinned) => status_of(pinned.status.as_deref()).into(),
            None => ProviderStatus::Missing.into(),
        })
    }

    async fn list_once(&self, cursor: Option<&str>) -> Result<Listing, ProviderError> {
        let page_number: u64 = match cursor {
            None => 1,
            Some(c) => c
                .parse()
                .map_err(|_| ProviderError::BadResponse(format!("bad list cursor {c:?}")))?,
        };
        let mut url = self.pinning_url.clone();
        url.query_pairs_mut()
            .append_pair("pageNumber", &page_number.to_string())
            .append_pair("perPage", &PAGE.to_string());
        let answer = self
            .client
            .send(CallKind::List, self.keyed(self.client.get(url)))
            .await?;
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        let page: Page = http::read_json(
            &answer,
            "the pinned objects",
            r#"{"data", "totalItems", "totalPages", "pageNumber"}"#,
        )?;
        // An empty page ends the listing whatever the totals say.
        let next = (!page.data.is_empty() && page_number < page.total_pages)
            .then(|| (page_number + 1).to_string());
        let pins = page
            .data
            .into_iter()
            .filter_map(|p| {
                let cid = p.cid.as_deref()?;
                Some(Ok(ListedPin {
                    foreign: Some(!p.is_ours(&self.identity)),
                    cid: http::clean_message(cid),
                    cluster: None,
                    pin_id: Some(match http::pin_id(&p.request_id) {
                        Ok(id) => id,
                        Err(e) => return Some(Err(e)),
                    }),
                    status: status_of(p.status.as_deref()),
                    name: p.name.map(|n| http::clean_message(&n)),
                }))
            })
            .collect::<Result<_, ProviderError>>()?;
        Ok(Listing { pins, next })
    }
}

impl Provider for QuickNode {
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
        Box::pin(self.relabel_once(request, pin_id))
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
    fn statuses_map_and_either_spelling_of_the_id_reads() {
        use ProviderStatus::*;
        for (word, status) in [
            (Some("queued"), Queued),
            (Some("pinning"), Pinning),
            (Some("PINNED"), Pinned),
            (Some("failed"), Failed),
            (None, Queued),
        ] {
            assert_eq!(status_of(word), status, "{word:?}");
        }
        for answer in [
            r#"{"requestId": "r1", "status": "queued", "origins": "a,b", "meta": {"x": {"y": 1}}}"#,
            r#"{"requestid": "r1", "status": "queued"}"#,
        ] {
            let p: PinnedObject = serde_json::from_str(answer).unwrap();
            assert_eq!(p.request_id, "r1");
        }
    }
}
