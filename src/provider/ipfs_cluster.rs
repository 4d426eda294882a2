//! ipfs-cluster's REST API (port 9094), as its `api/rest/restapi.go` and
//! `api/types.go` define it: `POST /pins/{cid}` with the pin's options in
//! the query, `DELETE /pins/{cid}`, `GET /pins/{cid}` for the status on
//! each peer, and `GET /allocations?filter=pin`, streamed.
//!
//! Pinning is asynchronous: the cluster allocates peers and each pins in
//! the background. A pin counts as pinned once `replication.min` peers
//! report it pinned. Every pin pinsync makes carries
//! `meta-pinsync=IDENTITY`, and pinsync reads a pin before it removes or
//! replaces it: a pin without the mark (made by hand, or by another
//! manifest) is never touched.

use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;

use super::http;
use super::registry::{
    Capabilities, Connection, Credential, FieldValue, ProviderType, Starter, TypeField, UnpinBy,
    commented,
};
use super::{
    Checked, ListedPin, Listing, PinReceipt, PinRequest, Provider, ProviderError, Secret,
    UnpinReceipt, UnpinRequest,
};
use crate::manifest::{CallKind, Replication};
use crate::state::ProviderStatus;

use super::pinning_service::OWNER_KEY;

/// Bound on a whole streamed listing (a large cluster's takes a while).
const LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// Pins one listing may hold: a hostile answer cannot fill the memory.
const MAX_LISTED: usize = 5_000_000;

/// `type: ipfs-cluster`.
pub(crate) static TYPE: ProviderType = ProviderType {
    name: "ipfs-cluster",
    title: "ipfs-cluster",
    summary: "ipfs-cluster's REST API (port 9094), pinning on several peers; Basic auth \
              or a JWT",
    fields: &[
        TypeField {
            name: "username",
            required: false,
            value: FieldValue::Text,
            description: "the user name of the cluster's basic_auth_credentials",
            requires: &["password"],
            conflicts: &["token"],
        },
        TypeField {
            name: "password",
            required: false,
            value: FieldValue::Secret,
            description: "the environment variable holding the password, as ${VAR}",
            requires: &["username"],
            conflicts: &[],
        },
        TypeField {
            name: "auth",
            required: false,
            value: FieldValue::Choice(&["basic", "jwt"]),
            description: "`basic` sends the user name and password with every call (the \
                          default); `jwt` trades them once for a token (POST /token) and \
                          sends that",
            requires: &["username"],
            conflicts: &[],
        },
        TypeField {
            name: "token",
            required: false,
            value: FieldValue::Secret,
            description: "the environment variable holding a JWT the cluster issued, as ${VAR}",
            requires: &[],
            conflicts: &["username"],
        },
        TypeField::new(
            "replication",
            false,
            FieldValue::Replication,
            "how many peers pin each CID: `{min: 2, max: 3}`; a pin counts as pinned once \
             `min` peers report it (default: the cluster's own replication factors)",
        ),
    ],
    default_base_url: Some("http://127.0.0.1:9094"),
    default_rate_limit: None,
    max_concurrency: None,
    capabilities: Capabilities {
        clusters: false,
        unpin_by: UnpinBy::Cid,
        // Pinning a CID again updates its pin (name, meta, replication).
        replace: true,
        // Each pin is looked up first, so another's is not overwritten.
        lookup_batch: Some(1),
        reads_before_removing: true,
        ownership_marks: true,
        replication: true,
    },
    starter,
    connect,
};

fn starter() -> Starter {
    Starter {
        providers: [
            commented("  cluster:", "ipfs-cluster's REST API"),
            "    type: ipfs-cluster\n".into(),
            "    # base_url: http://127.0.0.1:9094   (the default)\n".into(),
            commented(
                "    replication: {min: 2, max: 3}",
                "pinned once two peers have it",
            ),
            commented(
                "    # username: pinsync",
                "the cluster's basic_auth_credentials",
            ),
            "    # password: ${CLUSTER_PASSWORD}\n".into(),
            commented(
                "    # auth: jwt",
                "trade them once for a token (POST /token)",
            ),
        ]
        .concat(),
        target: "cluster",
        pin_extras: commented("    # meta: {team: web}", "sent as meta-KEY=VALUE"),
        variables: Vec::new(),
    }
}

fn connect(c: Connection<'_>) -> anyhow::Result<std::sync::Arc<dyn Provider>> {
    let settings = &c.config.settings;
    let auth = match c.credential()? {
        Some(Credential::Basic(basic)) if settings.text("auth") == Some("jwt") => Auth::Jwt {
            basic,
            token: tokio::sync::OnceCell::new(),
            redacted: c.redacted.clone(),
        },
        Some(Credential::Basic(header)) => Auth::Basic(header),
        Some(Credential::Bearer(header)) => Auth::Bearer(header),
        None => Auth::None,
    };
    let identity = c.identity();
    Ok(std::sync::Arc::new(IpfsCluster {
        client: c.client,
        pins_url: http::endpoint(&c.config.base_url, "/pins")?,
        allocations_url: http::endpoint(&c.config.base_url, "/allocations")?,
        token_url: http::endpoint(&c.config.base_url, "/token")?,
        auth,
        identity,
        replication: settings.replication("replication"),
    }))
}

/// How calls authenticate.
#[derive(Debug)]
enum Auth {
    None,
    Basic(Secret),
    Bearer(Secret),
    /// Basic once, for a JWT (`POST /token`), then the JWT, which joins
    /// what is redacted from the answers as it arrives.
    Jwt {
        basic: Secret,
        token: tokio::sync::OnceCell<Secret>,
        redacted: super::secret::Secrets,
    },
}

/// An ipfs-cluster's REST API.
#[derive(Debug)]
pub(crate) struct IpfsCluster {
    client: http::Client,
    pins_url: reqwest::Url,
    allocations_url: reqwest::Url,
    token_url: reqwest::Url,
    auth: Auth,
    /// The mark on this manifest's pins.
    identity: String,
    /// The provider's replication, for a pin that carries none (one from
    /// a saved plan of an older manifest).
    replication: Option<Replication>,
}

/// A pin as `GET /pins/{cid}` shows it: its metadata and its status on
/// each peer.
#[derive(Deserialize)]
struct GlobalPinInfo {
    #[serde(default)]
    metadata: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    peer_map: std::collections::BTreeMap<String, PeerStatus>,
}

#[derive(Deserialize)]
struct PeerStatus {
    status: String,
    #[serde(default)]
    peername: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// A pin as `/allocations` lists it.
#[derive(Deserialize)]
struct Pin {
    cid: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// `POST /token`'s answer.
#[derive(Deserialize)]
struct Token {
    token: String,
}

/// Whose a pin is, by its mark.
#[derive(Debug, PartialEq, Eq)]
enum Mark {
    Ours,
    Other,
}

fn mark(metadata: Option<&std::collections::BTreeMap<String, String>>, identity: &str) -> Mark {
    match metadata.and_then(|m| m.get(OWNER_KEY)) {
        Some(v) if v == identity => Mark::Ours,
        _ => Mark::Other,
    }
}

impl IpfsCluster {
    async fn authorized(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(match &self.auth {
            Auth::None => builder,
            Auth::Basic(secret) | Auth::Bearer(secret) => {
                builder.header(AUTHORIZATION, secret.header_value())
            }
            Auth::Jwt {
                basic,
                token,
                redacted,
            } => {
                let token = token
                    .get_or_try_init(|| self.token(basic, redacted))
                    .await?;
                builder.header(AUTHORIZATION, token.header_value())
            }
        })
    }

    /// Trades the Basic credentials for a JWT, once.
    async fn token(
        &self,
        basic: &Secret,
        redacted: &super::secret::Secrets,
    ) -> Result<Secret, ProviderError> {
        let builder = self
            .client
            .post(self.token_url.clone())
            .header(AUTHORIZATION, basic.header_value());
        let answer = self.client.send(CallKind::List, builder).await?;
        let token: Token = http::read_json(&answer, "token", r#"{"token"}"#)?;
        let bare = Secret::new(&token.token).ok_or_else(|| {
            ProviderError::BadResponse("the cluster's token cannot go in a header".into())
        })?;
        redacted.add(bare.clone());
        bare.prefixed("Bearer ").ok_or_else(|| {
            ProviderError::BadResponse("the cluster's token cannot go in a header".into())
        })
    }

    /// `GET /pins/{cid}`: `None` when the cluster does not track it.
    async fn get(&self, cid: &str, kind: CallKind) -> Result<Option<GlobalPinInfo>, ProviderError> {
        let builder = self
            .authorized(self.client.get(http::with_segment(&self.pins_url, cid)))
            .await?;
        let answer = self.client.send(kind, builder).await?;
        // The cluster's own 404 (`{"code", "message"}`) says it does not
        // track the CID; any other 404 (a proxy's page) is an error, not
        // a reason to pin over a pin that may be there.
        if answer.status == StatusCode::NOT_FOUND {
            let own = serde_json::from_slice::<serde_json::Value>(&answer.body)
                .is_ok_and(|v| v.get("code").is_some() && v.get("message").is_some());
            return if own { Ok(None) } else { Err(answer.error()) };
        }
        let info: GlobalPinInfo = http::read_json(&answer, "pin status", r#"{"cid", "peer_map"}"#)?;
        // A pin that no peer tracks any more is as good as gone.
        if info.peer_map.values().all(|p| p.status == "unpinned") && info.metadata.is_none() {
            return Ok(None);
        }
        Ok(Some(info))
    }

    async fn pin_once(&self, request: PinRequest<'_>) -> Result<PinReceipt, ProviderError> {
        // Pinning again would overwrite another's metadata: a pin that is
        // tracked without this manifest's mark is adopted, left as it is.
        if let Some(existing) = self.get(request.cid, CallKind::List).await?
            && mark(existing.metadata.as_ref(), &self.identity) == Mark::Other
        {
            return Ok(PinReceipt {
                pin_id: Some(http::pin_id(request.cid)?),
                already_pinned: true,
                foreign: true,
            });
        }
        self.post(request).await
    }

    /// `POST /pins/{cid}` with the pin's options in the query.
    async fn post(&self, request: PinRequest<'_>) -> Result<PinReceipt, ProviderError> {
        let mut url = http::with_segment(&self.pins_url, request.cid);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("mode", "recursive");
            if let Some(name) = &request.labels.name {
                query.append_pair("name", name);
            }
            if let Some(r) = request.labels.replication.or(self.replication) {
                query.append_pair("replication-min", &r.min.to_string());
                if let Some(max) = r.max {
                    query.append_pair("replication-max", &max.to_string());
                }
            }
            for (key, value) in &request.labels.meta {
                // The mark is pinsync's own.
                if key != OWNER_KEY {
                    query.append_pair(&format!("meta-{key}"), value);
                }
            }
            query.append_pair(&format!("meta-{OWNER_KEY}"), &self.identity);
        }
        let builder = self.authorized(self.client.post(url)).await?;
        let answer = self.client.send(CallKind::Pin, builder).await?;
        let pin: Pin = http::read_json(&answer, "pin", r#"{"cid", ...}"#)?;
        Ok(PinReceipt {
            pin_id: Some(http::pin_id(&pin.cid)?),
            already_pinned: false,
            foreign: false,
        })
    }

    async fn unpin_once(&self, request: UnpinRequest<'_>) -> Result<UnpinReceipt, ProviderError> {
        let Some(existing) = self.get(request.cid, CallKind::Status).await? else {
            return Ok(UnpinReceipt { already_gone: true });
        };
        if mark(existing.metadata.as_ref(), &self.identity) != Mark::Ours {
            return Err(ProviderError::Rejected {
                status: 0,
                message: format!(
                    "the cluster's pin does not carry meta {OWNER_KEY}={:?} (made by hand or by another manifest); left pinned",
                    self.identity
                ),
            });
        }
        let builder = self
            .authorized(
                self.client
                    .delete(http::with_segment(&self.pins_url, request.cid)),
            )
            .await?;
        http::read_unpin_answer(&self.client.send(CallKind::Unpin, builder).await?)
    }

    async fn relabel_once(&self, request: PinRequest<'_>) -> Result<PinReceipt, ProviderError> {
        match self.get(request.cid, CallKind::Status).await? {
            Some(existing) if mark(existing.metadata.as_ref(), &self.identity) == Mark::Other => {
                Err(ProviderError::Rejected {
                    status: 0,
                    message:
                        "the cluster's pin is not this manifest's; its labels are left as they are"
                            .into(),
                })
            }
            _ => self.post(request).await,
        }
    }

    async fn status_once(&self, request: UnpinRequest<'_>) -> Result<Checked, ProviderError> {
        let Some(info) = self.get(request.cid, CallKind::Status).await? else {
            return Ok(ProviderStatus::Missing.into());
        };
        let min = request
            .replication_min
            .or(self.replication.map(|r| r.min.get()))
            .unwrap_or(1);
        let failing = failing_peers(&info);
        Ok(Checked {
            status: status_of(&info, min),
            detail: (!failing.is_empty()).then(|| format!("failing peers: {}", failing.join(", "))),
        })
    }

    async fn list_once(&self) -> Result<Listing, ProviderError> {
        let mut url = self.allocations_url.clone();
        url.query_pairs_mut().append_pair("filter", "pin");
        let builder = self
            .authorized(self.client.get(url).timeout(LIST_TIMEOUT))
            .await?;
        let mut pins = Vec::new();
        let answered = self
            .client
            .send_streamed(CallKind::List, builder, |line| {
                let pin: Pin = serde_json::from_slice(line).map_err(|e| {
                    ProviderError::BadResponse(format!(
                        "allocations answered a line that is not a pin: {e}"
                    ))
                })?;
                if pins.len() >= MAX_LISTED {
                    return Err(ProviderError::BadResponse(format!(
                        "the allocations hold more than {MAX_LISTED} pins"
                    )));
                }
                let foreign = Some(mark(pin.metadata.as_ref(), &self.identity) != Mark::Ours);
                pins.push(ListedPin {
                    cid: http::clean_message(&pin.cid),
                    cluster: None,
                    pin_id: Some(http::clean_message(&pin.cid)),
                    // The allocations say where, not how far: refresh
                    // counts a listed pin as pinned; --wait reads each.
                    status: ProviderStatus::Pinned,
                    name: pin
                        .name
                        .filter(|n| !n.is_empty())
                        .map(|n| http::clean_message(&n)),
                    foreign,
                });
                Ok(())
            })
            .await?;
        if let Err(answer) = answered {
            return Err(answer.error());
        }
        Ok(Listing { pins, next: None })
    }
}

/// Statuses of a peer that has given up on the pin, or lost it.
fn is_failing(status: &str) -> bool {
    status.ends_with("error") || status == "unexpectedly_unpinned"
}

/// A pin's status from its peers': pinned once `min` report it pinned;
/// failed when too few peers are left that could still pin it.
fn status_of(info: &GlobalPinInfo, min: u32) -> ProviderStatus {
    let count = |status: &str| {
        info.peer_map
            .values()
            .filter(|p| p.status == status)
            .count()
    };
    let pinned = count("pinned");
    if pinned >= min as usize {
        return ProviderStatus::Pinned;
    }
    let busy = count("pinning") + count("pin_queued");
    if pinned + busy >= min as usize {
        return if busy > 0 && pinned + count("pinning") > 0 {
            ProviderStatus::Pinning
        } else {
            ProviderStatus::Queued
        };
    }
    if info.peer_map.values().any(|p| is_failing(&p.status)) {
        ProviderStatus::Failed
    } else {
        ProviderStatus::Queued
    }
}

/// The peers that report `pin_error`, each with its error.
fn failing_peers(info: &GlobalPinInfo) -> Vec<String> {
    info.peer_map
        .iter()
        .filter(|(_, p)| is_failing(&p.status))
        .map(|(id, p)| {
            let name = http::clean_message(p.peername.as_deref().unwrap_or(id));
            let status = http::clean_message(&p.status);
            match p.error.as_deref().filter(|e| !e.is_empty()) {
                Some(e) => format!("{name} {status} ({})", http::clean_message(e)),
                None => format!("{name} {status}"),
            }
        })
        .collect()
}

impl Provider for IpfsCluster {
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
        _pin_id: &'a str,
    ) -> BoxFuture<'a, Result<PinReceipt, ProviderError>> {
        Box::pin(self.relabel_once(request))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn info(statuses: &[&str]) -> GlobalPinInfo {
        GlobalPinInfo {
            metadata: None,
            peer_map: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    (
                        format!("peer{i}"),
                        PeerStatus {
                            status: (*s).to_owned(),
                            peername: Some(format!("p{i}")),
                            error: (*s == "pin_error").then(|| "no space".to_owned()),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_pin_is_pinned_once_min_peers_report_it() {
        use ProviderStatus::*;
        assert_eq!(
            status_of(&info(&["pinned", "pinning", "pinning"]), 2),
            Pinning
        );
        assert_eq!(
            status_of(&info(&["pinned", "pinned", "pinning"]), 2),
            Pinned
        );
        assert_eq!(status_of(&info(&["pin_queued", "pin_queued"]), 2), Queued);
        assert_eq!(
            status_of(&info(&["pinned", "pin_error", "remote"]), 2),
            Failed
        );
        assert_eq!(
            status_of(&info(&["pinned", "pin_error", "pinning"]), 2),
            Pinning
        );
        for gone in ["cluster_error", "unpin_error", "unexpectedly_unpinned"] {
            assert_eq!(
                status_of(&info(&["pinned", gone, "remote"]), 2),
                Failed,
                "{gone}"
            );
        }
        assert_eq!(
            failing_peers(&info(&["pinned", "pin_error"])),
            ["p1 pin_error (no space)"]
        );
    }
}
