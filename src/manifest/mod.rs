//! The manifest: which CIDs must be pinned where.
//!
//! `parse` turns YAML into a validated [`Manifest`]; everything after that
//! relies on its invariants (known targets, canonical CIDs, no duplicates)
//! and never checks them again.

mod content_id;
mod diagnostic;
mod include;
mod live;
mod notify;
mod parse;
mod pin_order;
mod provider_config;
mod schema;
mod target;
mod yaml_tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub(crate) use content_id::{CanonicalCid, ContentId};
pub use diagnostic::{Diagnostic, Diagnostics, Position};
pub(crate) use include::{IncludeEntry, LoadObserver};
pub(crate) use include::{MATCH as GLOB_MATCH, base_dir, has_wildcards};
pub(crate) use live::{LiveManifest, Update as ManifestUpdate};
pub(crate) use notify::{NotifyEvent, NotifyFormat, NotifyHook, Template};
#[cfg(test)]
pub(crate) use parse::COMMON_PROVIDER_FIELDS;
pub use parse::parse;
pub(crate) use parse::{MAX_MANIFEST_BYTES, MAX_SECONDS};
#[cfg(test)]
pub(crate) use provider_config::check_base_url;
pub(crate) use provider_config::{
    CallKind, Per, ProviderConfig, ProviderKind, RateLimit, SecretRef, Setting, Settings,
    UnpinGuard,
};
pub(crate) use schema::{SCHEMA_URL, schema};
pub(crate) use target::is_valid_name;
pub(crate) use target::{Name, PinKey, Target};

/// The only manifest format version this build understands.
pub(crate) const MANIFEST_VERSION: u64 = 1;

/// A validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where it was read from, for messages.
    pub(crate) path: PathBuf,
    /// Providers by the name the manifest gives them.
    pub(crate) providers: BTreeMap<String, ProviderConfig>,
    /// `prune: true`: pins gone from the manifest are unpinned, not only
    /// marked orphaned.
    pub(crate) prune: bool,
    /// `state:`: where the state is kept when the command line says nothing.
    pub(crate) state: Option<StateConfig>,
    /// `notify:`: the webhooks called on events a person must act on.
    pub(crate) notify: Vec<NotifyHook>,
    /// The files `include:` named, in the order they were read.
    pub(crate) included: Vec<PathBuf>,
    /// One entry per (provider, cluster, canonical CID), sorted by key.
    /// A sorted list rather than a map: built in place from the parsed pins
    /// and only ever walked in order (by `plan`), it costs a third of the
    /// memory of a map at 100,000 pins.
    pub(crate) pins: Vec<(PinKey, DesiredPin)>,
}

impl Manifest {
    /// How many (target, CID) pins it asks for.
    pub fn pin_count(&self) -> usize {
        self.pins.len()
    }

    /// What it asks for the pin `key`, if anything.
    pub(crate) fn pin(&self, key: &PinKey) -> Option<&DesiredPin> {
        let at = self.pins.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        Some(&self.pins[at].1)
    }
}

/// `state: {url: ${PINSYNC_STATE_URL}, workspace: NAME}`: a PostgreSQL
/// state, its URL read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateConfig {
    pub(crate) url: SecretRef,
    /// Sets the URL's `workspace=`.
    pub(crate) workspace: Option<String>,
}

/// What the manifest asks for on one target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Labels {
    /// Human name sent to the provider. Shared, not a `String`: a word
    /// less in each of millions of labels, and one copy for a pin's
    /// targets and its records in the state (see
    /// [`crate::state::State::share_names`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<std::sync::Arc<str>>,
    /// String metadata, sent where the provider takes it.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub(crate) meta: Meta,
    /// How many peers pin it, on a type that pins on several (ipfs-cluster):
    /// the pin's own `replication`, else its provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) replication: Option<Replication>,
}

/// A pin's string metadata. Most pins have none, and at four million
/// labels (a million pins on two targets, in the manifest and the state)
/// a map inline would cost 64 MB more than one word each.
#[derive(Clone, Default)]
// Boxed so that no map is one word, not three.
#[allow(clippy::box_collection)]
pub(crate) struct Meta(Option<Box<BTreeMap<String, String>>>);

impl Meta {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl std::ops::Deref for Meta {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.0.as_deref().unwrap_or(&EMPTY)
    }
}

impl From<BTreeMap<String, String>> for Meta {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self((!map.is_empty()).then(|| Box::new(map)))
    }
}

impl<const N: usize> From<[(String, String); N]> for Meta {
    fn from(items: [(String, String); N]) -> Self {
        BTreeMap::from(items).into()
    }
}

impl FromIterator<(String, String)> for Meta {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(items: I) -> Self {
        BTreeMap::from_iter(items).into()
    }
}

impl<'a> IntoIterator for &'a Meta {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for Meta {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Meta {}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl serde::Serialize for Meta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Meta {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(d).map(Self::from)
    }
}

/// How many peers pin a CID: at least `min`, at most `max` (`None`: the
/// cluster's own setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Replication {
    // Never zero, which also keeps a pin's record small: the option of a
    // replication takes no more room than one.
    pub(crate) min: std::num::NonZeroU32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max: Option<std::num::NonZeroU32>,
}

impl Replication {
    /// What is wrong with one read from elsewhere (a saved plan, a state).
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.max.is_some_and(|max| max < self.min) {
            return Err(format!(
                "replication max {:?} is below min {}",
                self.max, self.min
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.max {
            Some(max) => write!(f, "{}..{max} peers", self.min),
            None => write!(f, "{}+ peers", self.min),
        }
    }
}

/// `identity` when the manifest gives none: the value of `meta.pinsync` on
/// the Pinning Service requests pinsync makes.
pub(crate) const DEFAULT_IDENTITY: &str = "pinsync";

/// Longest pin name accepted.
pub(crate) const MAX_NAME_CHARS: usize = 255;
/// Longest meta key or value accepted.
pub(crate) const MAX_META_CHARS: usize = 1024;

/// A label sent to a provider (and printed in plans): bounded, no control
/// characters.
pub(crate) fn check_label(text: &str, what: &str, max: usize) -> Result<(), String> {
    if text.chars().any(char::is_control) {
        return Err(format!("{what} contains a control character"));
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(format!(
            "{what} is {chars} characters long; the limit is {max}"
        ));
    }
    Ok(())
}

impl Labels {
    /// What the manifest would have refused in these labels (for labels
    /// read from elsewhere: a saved plan).
    pub(crate) fn problems(&self) -> Vec<String> {
        let name = self
            .name
            .iter()
            .map(|n| check_label(n, "name", MAX_NAME_CHARS));
        let meta = self.meta.iter().flat_map(|(k, v)| {
            [
                check_label(k, "meta key", MAX_META_CHARS),
                check_label(v, "meta value", MAX_META_CHARS),
            ]
        });
        let replication = self.replication.map(|r| r.check());
        name.chain(meta)
            .chain(replication)
            .filter_map(Result::err)
            .collect()
    }
}

/// One pin the manifest wants on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DesiredPin {
    pub(crate) labels: Labels,
    /// What few pins give, boxed: at two million pins (a million on two
    /// targets) its fields inline would cost 64 MB.
    rare: Option<Box<Rare>>,
}

/// The fields of a [`DesiredPin`] that most pins leave out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rare {
    /// The CID as the manifest writes it, where that is not its canonical
    /// text (see [`DesiredPin::sent_cid`]).
    cid_as_written: Option<Box<str>>,
    /// Multiaddrs known to provide the data, sent where the API takes them
    /// (the Pinning Service API's `origins`). A hint for fetching, not a
    /// label: a change to them alone changes nothing already pinned.
    origins: Vec<String>,
}

impl DesiredPin {
    pub(crate) fn new(
        labels: Labels,
        cid_as_written: Option<Box<str>>,
        origins: Vec<String>,
    ) -> Self {
        let rare = (cid_as_written.is_some() || !origins.is_empty()).then(|| {
            Box::new(Rare {
                cid_as_written,
                origins,
            })
        });
        Self { labels, rare }
    }

    /// The CID as the manifest writes it, where that is not its canonical text.
    pub(crate) fn cid_as_written(&self) -> Option<&str> {
        self.rare.as_ref()?.cid_as_written.as_deref()
    }

    /// The multiaddrs the manifest gives as providing the data.
    pub(crate) fn origins(&self) -> &[String] {
        self.rare.as_ref().map_or(&[], |r| &r.origins)
    }

    /// The CID providers receive for the pin `key`: as the manifest wrote it.
    pub(crate) fn sent_cid(&self, key: &PinKey) -> std::borrow::Cow<'_, str> {
        match self.cid_as_written() {
            Some(written) => std::borrow::Cow::Borrowed(written),
            None => std::borrow::Cow::Owned(key.cid.to_string()),
        }
    }
}

/// Most origins one pin may give (the Pinning Service API's limit).
const MAX_ORIGINS: usize = 20;
/// Longest origin accepted.
const MAX_ORIGIN_CHARS: usize = 1024;

/// One origin: a multiaddr such as `/dnsaddr/node.example/p2p/12D3…`.
pub(crate) fn check_origin(text: &str) -> Result<(), String> {
    check_label(text, "an origin", MAX_ORIGIN_CHARS)?;
    if !text.starts_with('/') || text.contains(char::is_whitespace) {
        return Err(format!(
            "origin {text:?} is not a multiaddr (like /dnsaddr/node.example/p2p/12D3KooW...)"
        ));
    }
    Ok(())
}

/// Every problem with a pin's origins (a saved plan's, or the manifest's).
pub(crate) fn origin_problems(origins: &[String]) -> Vec<String> {
    let mut problems: Vec<String> = origins
        .iter()
        .filter_map(|o| check_origin(o).err())
        .collect();
    problems.extend(check_origin_count(origins.len()).err());
    problems
}

pub(crate) fn check_origin_count(n: usize) -> Result<(), String> {
    if n > MAX_ORIGINS {
        return Err(format!("{n} origins given; the limit is {MAX_ORIGINS}"));
    }
    Ok(())
}

/// Reads and validates a manifest file.
///
/// I/O errors come back as `anyhow` errors naming the file; problems in the
/// content come back as [`Diagnostics`] inside the error, so callers can
/// downcast to print them all.
///
/// The files it includes are read one after another, each under the same
/// size limit, and their problems are reported at their own places.
pub(crate) fn load(path: &Path) -> anyhow::Result<Manifest> {
    load_observed(path, &mut ())
}

/// [`load`], telling `observer` of each file as it is read and of what
/// `include:` expanded to (watch's diff log and file watches).
pub(crate) fn load_observed(
    path: &Path,
    observer: &mut dyn LoadObserver,
) -> anyhow::Result<Manifest> {
    load_keeping(path, observer, false).map(|(manifest, _)| manifest)
}

/// [`load_observed`], keeping what [`LiveManifest`] needs to read an
/// included file again alone.
fn load_kept(
    path: &Path,
    observer: &mut dyn LoadObserver,
) -> anyhow::Result<(Manifest, parse::Kept)> {
    let (manifest, kept) = load_keeping(path, observer, true)?;
    Ok((manifest, kept.expect("kept when asked")))
}

fn load_keeping(
    path: &Path,
    observer: &mut dyn LoadObserver,
    keep: bool,
) -> anyhow::Result<(Manifest, Option<parse::Kept>)> {
    let (bytes, metadata) = read_bounded(path)?;
    observer.read(path, &bytes, &metadata);
    let tree = parse::tree(path, &bytes, parse::Kind::Main)?;
    drop(bytes); // the tree owns its text; at 100,000 pins this is 13 MB
    let mut source = include::Disk { observer };
    Ok(parse::walk_keeping(path, tree, &mut source, keep)?)
}

/// The files `entries` of the manifest at `manifest` name now, as a load
/// would read them (without reading them).
pub(crate) fn included_files(manifest: &Path, entries: &[IncludeEntry]) -> Vec<PathBuf> {
    include::resolve(manifest, entries)
        .files
        .into_iter()
        .map(|f| f.path)
        .collect()
}

/// Reads and validates the manifest alone: its include entries are
/// checked but not followed (for what only the main manifest says, such
/// as `state:`).
pub(crate) fn load_main(path: &Path) -> anyhow::Result<Manifest> {
    let (bytes, _) = read_bounded(path)?;
    let tree = parse::tree(path, &bytes, parse::Kind::Main)?;
    drop(bytes);
    Ok(parse::walk(path, tree, &mut include::MainOnly)?)
}

/// Reads the file, refusing one over [`parse::MAX_MANIFEST_BYTES`] before
/// reading it.
fn read_bounded(path: &Path) -> anyhow::Result<(Vec<u8>, std::fs::Metadata)> {
    use crate::file_io::{self, Bounded};
    let limit = parse::MAX_MANIFEST_BYTES as u64;
    match file_io::read_bounded(path, limit)
        .with_context(|| format!("read manifest {}", path.display()))?
    {
        Bounded::Read(bytes, metadata) => Ok((bytes, metadata)),
        Bounded::TooLarge(size) => Err(Diagnostics::single(
            path,
            Position { line: 1, column: 1 },
            parse::too_large(parse::Kind::Main, size, true),
        )
        .into()),
    }
}

#[cfg(test)]
mod include_tests;
#[cfg(test)]
mod mutation_tests;
#[cfg(test)]
mod parse_tests;
