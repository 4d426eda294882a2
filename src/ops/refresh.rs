//! `pinsync refresh` (and `plan --refresh`, `apply --refresh`): ask each
//! provider what it holds of the state's pins and record its word.

use std::collections::BTreeSet;

use crate::manifest::Manifest;
use crate::provider::Connect;
use crate::refresh::RefreshReport;
use crate::retry::RetryPolicy;
use crate::state::State;

use super::Workspace;

/// How a refresh ended.
#[derive(Debug)]
pub(crate) enum Refreshed {
    /// The state records no pin: nothing was asked.
    NothingRecorded,
    /// What each provider said (or why it could not be listed); recorded
    /// in the state, and saved where [`refresh`] saves.
    Report(RefreshReport),
}

/// Refreshes `state`'s pins on every provider `manifest` declares,
/// recording what each said in `state`; saves it if `save`.
pub(crate) async fn refresh(
    ws: &Workspace,
    manifest: &Manifest,
    state: &mut State,
    connect: &dyn Connect,
    retry: RetryPolicy,
    save: bool,
) -> anyhow::Result<Refreshed> {
    if state.pins.is_empty() {
        return Ok(Refreshed::NothingRecorded);
    }
    let used: BTreeSet<String> = state
        .pins
        .keys()
        .map(|k| k.target.provider.to_string())
        .filter(|p| manifest.providers.contains_key(p))
        .collect();
    let providers = connect.connect(&manifest.providers, &used)?;
    let report = crate::refresh::refresh(state, &providers, retry, ws.stop()).await;
    if save {
        ws.save(state)?;
    }
    Ok(Refreshed::Report(report))
}
