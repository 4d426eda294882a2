//! `pinsync import`: adopt the pins the providers already hold.

use std::collections::BTreeSet;

use anyhow::bail;

use crate::manifest::Target;
use crate::provider::{Connect, ListedPin, ProviderError};
use crate::retry::RetryPolicy;

use super::Workspace;

/// What an import found on one provider.
#[derive(Debug)]
pub(crate) struct ProviderImport {
    pub(crate) listed: usize,
    /// List calls made, retries included.
    pub(crate) calls: usize,
    pub(crate) found: crate::import::Imported,
}

/// What an import did, by provider.
#[derive(Debug, Default)]
pub(crate) struct ImportOutcome {
    pub(crate) providers: Vec<(String, Result<ProviderImport, ProviderError>)>,
    /// Pins adopted, on every provider.
    pub(crate) adopted: usize,
    /// Whether the state was saved (with `record` and something adopted).
    pub(crate) saved: bool,
}

impl ImportOutcome {
    /// Whether every provider could be listed.
    pub(crate) fn succeeded(&self) -> bool {
        self.providers.iter().all(|(_, r)| r.is_ok())
    }

    /// The pins held but not in the manifest, by target.
    pub(crate) fn unmanaged(&self) -> Vec<(Target, ListedPin)> {
        self.providers
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .flat_map(|p| p.found.unmanaged.iter().cloned())
            .collect()
    }
}

/// Lists every provider the manifest declares (or the one `target`
/// names, in text as given) and records in the state, if `record`, the
/// pins the manifest wants that they hold.
pub(crate) async fn import(
    ws: &Workspace,
    connect: &dyn Connect,
    retry: RetryPolicy,
    target: Option<&str>,
    record: bool,
) -> anyhow::Result<ImportOutcome> {
    let (m, mut state) = ws.load()?;
    let only = match target {
        None => None,
        Some(text) => {
            let target = Target::parse(text).map_err(anyhow::Error::msg)?;
            if !m.providers.contains_key(target.provider.as_str()) {
                bail!(
                    "--target {text}: the manifest declares no provider `{}`",
                    target.provider
                );
            }
            Some(target)
        }
    };
    let used: BTreeSet<String> = m
        .providers
        .keys()
        .filter(|p| only.as_ref().is_none_or(|t| &t.provider == *p))
        .cloned()
        .collect();
    let providers = connect.connect(&m.providers, &used)?;
    let listings = futures::future::join_all(providers.iter().map(|(name, provider)| async {
        let listed = crate::refresh::list_all(provider.as_ref(), retry, ws.stop()).await;
        (name.clone(), listed)
    }))
    .await;
    let at = crate::state::now_rfc3339();
    let mut outcome = ImportOutcome::default();
    for (name, listed) in listings {
        let imported = listed.map(|(pins, calls)| {
            let found = crate::import::adopt(&m, &mut state, &name, &pins, only.as_ref(), &at);
            ProviderImport {
                listed: pins.len(),
                calls,
                found,
            }
        });
        if let Ok(imported) = &imported {
            outcome.adopted += imported.found.adopted;
        }
        outcome.providers.push((name, imported));
    }
    if record && outcome.adopted > 0 {
        ws.save(&mut state)?;
        outcome.saved = true;
    }
    Ok(outcome)
}
