//! Pinning services behind one trait.
//!
//! Each service speaks its own documented API in its own module; [`connect`]
//! turns manifest configs into ready providers once credentials resolve.

mod aioz;
mod http;
mod ipfs_cluster;
mod kubo;
mod lighthouse;
mod pacing;
mod pinarkive;
mod pinata;
mod pinning_service;
mod provider_error;
mod quicknode;
mod redacted;
pub(crate) mod registry;
pub(crate) mod secret;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;

use crate::manifest::{Labels, ProviderConfig};
use crate::state::ProviderStatus;

pub(crate) use kubo::human_bytes;
pub(crate) use pacing::Pacers;
pub(crate) use provider_error::ProviderError;
pub(crate) use registry::{Capabilities, FieldValue, ProviderType, Starter, TypeField, commented};
pub(crate) use secret::Secret;

/// A CID a service reports, in the form pins are compared in (its
/// canonical CIDv1 text); text that is no CID, as it is.
pub(crate) fn canonical_cid(cid: &str) -> String {
    crate::manifest::ContentId::parse(cid)
        .map_or_else(|_| cid.to_owned(), |c| c.canonical().to_string())
}

/// One pin call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PinRequest<'a> {
    /// The CID as the manifest writes it.
    pub(crate) cid: &'a str,
    pub(crate) cluster: Option<&'a str>,
    pub(crate) labels: &'a Labels,
    /// Multiaddrs known to provide the data, where the API takes them.
    pub(crate) origins: &'a [String],
    /// Told what a call that fetches the DAG itself (Kubo's `pin/add`)
    /// has fetched so far.
    pub(crate) progress: Option<&'a dyn FetchProgress>,
}

/// Hears how far a long pin call has fetched its DAG.
pub(crate) trait FetchProgress: Sync {
    fn fetched(&self, blocks: u64, bytes: u64);
}

impl std::fmt::Debug for dyn FetchProgress + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FetchProgress")
    }
}

/// What a provider said when it accepted a pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PinReceipt {
    /// The provider's own id for the pin, where it gives one.
    pub(crate) pin_id: Option<String>,
    /// The provider said the CID was pinned already.
    pub(crate) already_pinned: bool,
    /// The pin already there was made by someone else (a Pinning Service
    /// request without this manifest's mark): pinsync adopts it but never
    /// removes or replaces it.
    pub(crate) foreign: bool,
}

/// One unpin call: the pin as pinsync recorded it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnpinRequest<'a> {
    /// The CID as it was pinned.
    pub(crate) cid: &'a str,
    pub(crate) cluster: Option<&'a str>,
    /// The provider's id for the pin, where it gave one.
    pub(crate) pin_id: Option<&'a str>,
    /// The peers that must hold it to count as pinned, on a type that pins
    /// on several (its recorded `replication.min`).
    pub(crate) replication_min: Option<u32>,
}

/// What a provider said when it removed a pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnpinReceipt {
    /// The provider did not hold it (404): the pin is gone either way.
    pub(crate) already_gone: bool,
}

/// One pin as a provider's listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedPin {
    /// The CID as the provider reports it.
    pub(crate) cid: String,
    pub(crate) cluster: Option<String>,
    pub(crate) pin_id: Option<String>,
    pub(crate) status: ProviderStatus,
    pub(crate) name: Option<String>,
    /// Whose it is, where the service keeps a mark on each pin:
    /// `Some(true)` made by someone else (see [`PinReceipt::foreign`]).
    /// `None` where it keeps none: the listing cannot tell, and what the
    /// state recorded stands.
    pub(crate) foreign: Option<bool>,
}

/// What a provider said of one pin's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    pub(crate) status: ProviderStatus,
    /// Why, where the service says more (the ipfs-cluster peers that
    /// report `pin_error`, and their errors).
    pub(crate) detail: Option<String>,
}

impl From<ProviderStatus> for Checked {
    fn from(status: ProviderStatus) -> Self {
        Self {
            status,
            detail: None,
        }
    }
}

/// One page of a provider's pins, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listing {
    pub(crate) pins: Vec<ListedPin>,
    /// The cursor for the next page; `None` after the last.
    pub(crate) next: Option<String>,
}

/// A pinning service.
pub(crate) trait Provider: Send + Sync {
    /// Pins one CID. One attempt: retrying is the caller's policy.
    fn pin<'a>(
        &'a self,
        request: PinRequest<'a>,
    ) -> BoxFuture<'a, Result<PinReceipt, ProviderError>>;

    /// Called before the pins of an apply with the CIDs (as written) about
    /// to be pinned, so a provider that looks each CID up before adding it
    /// can do so in batches. Best effort: a lookup that fails here is made
    /// again by the pin itself, except for an error that every call would
    /// meet (refused credentials, a redirect), which ends it (no pin
    /// should follow).
    fn look_ahead<'a>(
        &'a self,
        _cids: Vec<&'a str>,
        _concurrency: usize,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    /// Removes one pin. One attempt. A pin the provider does not hold
    /// counts as removed.
    fn unpin<'a>(
        &'a self,
        request: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<UnpinReceipt, ProviderError>>;

    /// Changes a pin's name and meta, where the API can: the Pinning
    /// Service API replaces the request (a new id). The others have no such
    /// call, and their labels are only recorded.
    fn relabel<'a>(
        &'a self,
        _request: PinRequest<'a>,
        _pin_id: &'a str,
    ) -> BoxFuture<'a, Result<PinReceipt, ProviderError>> {
        Box::pin(async {
            Err(ProviderError::Rejected {
                status: 0,
                message: "this provider has no call to change a pin's labels".into(),
            })
        })
    }

    /// The provider's status for one pin (a pin it does not hold is
    /// `missing`). One attempt.
    fn status<'a>(
        &'a self,
        request: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<Checked, ProviderError>>;

    /// One page of every pin the account holds, in pages as large as the
    /// API allows, from `cursor` (`None`: the first page). One attempt.
    fn list<'a>(&'a self, cursor: Option<&'a str>)
    -> BoxFuture<'a, Result<Listing, ProviderError>>;
}

/// Connected providers, by the name the manifest gives them.
pub(crate) type Providers = BTreeMap<String, Arc<dyn Provider>>;

/// Turns the manifest's provider configs into ready providers: over HTTP
/// with the credentials from the environment ([`HttpSettings`]), or, in
/// the use cases' tests, scripted ones.
pub(crate) trait Connect {
    /// The providers named in `used`; every missing or unusable credential
    /// is named before any call.
    fn connect(
        &self,
        configs: &BTreeMap<String, ProviderConfig>,
        used: &BTreeSet<String>,
    ) -> anyhow::Result<Providers>;
}

impl Connect for HttpSettings {
    fn connect(
        &self,
        configs: &BTreeMap<String, ProviderConfig>,
        used: &BTreeSet<String>,
    ) -> anyhow::Result<Providers> {
        connect(configs, used, |var| std::env::var(var).ok(), self.clone()).context(
            "the provider credentials are needed from the environment; nothing was changed",
        )
    }
}

/// Settings shared by every provider's HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    /// Bound on one request, from connect to the last byte of the answer.
    pub(crate) timeout: Duration,
    /// Each provider's pacer, shared by everything connected with these
    /// settings (a `watch` keeps one for its whole life).
    pub(crate) pacers: Pacers,
    /// Where every call is counted (`watch --listen`).
    pub(crate) metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            pacers: Pacers::default(),
            metrics: None,
        }
    }
}

/// Environment variables that `apply` needs and that are not set, or hold
/// what an HTTP header cannot carry: `(variable, provider)` pairs.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe_credentials(.missing, .unusable))]
pub(crate) struct MissingCredentials {
    pub(crate) missing: Vec<(String, String)>,
    pub(crate) unusable: Vec<(String, String)>,
}

fn describe_credentials(missing: &[(String, String)], unusable: &[(String, String)]) -> String {
    let list = |vars: &[(String, String)]| {
        vars.iter()
            .map(|(var, provider)| format!("{var} (provider `{provider}`)"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing credentials: {}", list(missing)));
    }
    if !unusable.is_empty() {
        parts.push(format!(
            "credentials holding a control or non-ASCII character, which an HTTP header cannot carry: {}",
            list(unusable)
        ));
    }
    parts.join("; ")
}

/// Builds the providers named in `used`, reading their credentials through
/// `lookup` (the environment, in the CLI). Every missing variable is
/// reported at once, before any call is made.
pub(crate) fn connect(
    configs: &BTreeMap<String, ProviderConfig>,
    used: &BTreeSet<String>,
    lookup: impl Fn(&str) -> Option<String>,
    settings: HttpSettings,
) -> anyhow::Result<BTreeMap<String, Arc<dyn Provider>>> {
    let mut problems = MissingCredentials {
        missing: Vec::new(),
        unusable: Vec::new(),
    };
    let mut resolved = Vec::new();
    for name in used {
        let config = configs.get(name).ok_or_else(|| {
            anyhow::anyhow!("the plan uses provider `{name}`, which it does not declare")
        })?;
        let mut values = BTreeMap::new();
        for reference in config.secret_refs() {
            let Some(value) = lookup(&reference.var).filter(|v| !v.is_empty()) else {
                problems.missing.push((reference.var.clone(), name.clone()));
                continue;
            };
            match Secret::new(&value) {
                Some(secret) => {
                    values.insert(reference.var.clone(), secret);
                }
                None => problems
                    .unusable
                    .push((reference.var.clone(), name.clone())),
            }
        }
        resolved.push((name, config, values));
    }
    if !problems.missing.is_empty() || !problems.unusable.is_empty() {
        return Err(problems.into());
    }
    let shared = http::client(&settings)?;
    let mut providers = BTreeMap::new();
    for (name, config, values) in resolved {
        let client = http::Client::new(
            shared.clone(),
            settings
                .pacers
                .get(name, config.rate_limit, &config.rate_limits),
            settings
                .metrics
                .clone()
                .map(|metrics| http::CallMeter::new(metrics, name)),
        );
        // Every value was resolved above; a config naming one it did not
        // list did not come through validation, and is refused.
        let value = |reference: &crate::manifest::SecretRef| {
            values
                .get(&reference.var)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("${{{}}} was not resolved", reference.var))
        };
        // Kept apart from the header values (`Bearer <token>`): the bare
        // keys are what an echo would show.
        let secrets = secret::Secrets::new(values.values().cloned());
        let provider = (config.kind.provider_type().connect)(registry::Connection {
            config,
            client,
            secrets: &value,
            redacted: secrets.clone(),
        })
        .with_context(|| format!("provider `{name}`"))?;
        let provider: Arc<dyn Provider> = Arc::new(redacted::Redacted::new(provider, secrets));
        providers.insert(name.clone(), provider);
    }
    Ok(providers)
}
