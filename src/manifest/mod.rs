//! The manifest: which CIDs must be pinned where.
//!
//! `parse` turns YAML into a validated [`Manifest`]; everything after that
//! relies on its invariants (known targets, canonical CIDs, no duplicates)
//! and never checks them again.

mod content_id;
mod diagnostic;
mod parse;
mod pin_order;
mod provider_config;
mod target;
mod yaml_tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use content_id::ContentId;
pub use diagnostic::{Diagnostic, Diagnostics, Position};
pub use parse::parse;
pub use provider_config::{AuthStyle, ProviderConfig, ProviderKind, SecretRef};
pub use target::{PinKey, Target};

/// The only manifest format version this build understands.
pub const MANIFEST_VERSION: u64 = 1;

/// A validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where it was read from, for messages.
    pub path: PathBuf,
    /// Providers by the name the manifest gives them.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// One entry per (provider, cluster, canonical CID), sorted by key.
    /// A sorted list rather than a map: built in place from the parsed pins
    /// and only ever walked in order (by `plan`), it costs a third of the
    /// memory of a map at 100,000 pins.
    pub pins: Vec<(PinKey, DesiredPin)>,
}

/// What the manifest asks for on one target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Labels {
    /// Human name sent to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// String metadata, sent where the provider takes it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

/// One pin the manifest wants on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPin {
    /// The CID as the manifest writes it; this is what providers receive.
    pub cid: String,
    pub labels: Labels,
}

/// Reads and validates a manifest file.
///
/// I/O errors come back as `anyhow` errors naming the file; problems in the
/// content come back as [`Diagnostics`] inside the error, so callers can
/// downcast to print them all.
pub fn load(path: &Path) -> anyhow::Result<Manifest> {
    let bytes = std::fs::read(path).with_context(|| format!("read manifest {}", path.display()))?;
    let tree = parse::tree(path, &bytes)?;
    drop(bytes); // the tree owns its text; at 100,000 pins this is 13 MB
    Ok(parse::walk(path, tree)?)
}

#[cfg(test)]
mod mutation_tests;
#[cfg(test)]
mod parse_tests;
