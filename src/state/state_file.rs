//! Reading and writing the state file without ever losing it.
//!
//! A write goes to a temporary file in the same directory, is fsynced and
//! renamed over the old one, and the directory is fsynced, so a crash leaves
//! either the old or the new file. The old one is kept as `*.backup`.
//! Between full writes, confirmed pins go to an append-only journal
//! (see [`Journal`]) that loading replays.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::journal::Journal;
use super::{STATE_FORMAT_VERSION, State, StoredPin};

/// Why a state file could not be used. It is never overwritten in any case.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error(
        "state file {path} cannot be read: {reason}; it was left untouched. \
         To go back to the previous version, run `pinsync state restore` \
         (it restores {path}.backup and keeps this file aside)"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "state file {path} has format version {found}; this pinsync reads version {STATE_FORMAT_VERSION}"
    )]
    UnsupportedVersion { path: PathBuf, found: u64 },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StateFileError {
    pub(crate) fn io<'p>(
        action: &'static str,
        path: &'p Path,
    ) -> impl FnOnce(io::Error) -> Self + 'p {
        move |source| Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The on-disk shape of the state.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    format_version: u64,
    lineage: String,
    serial: u64,
    pins: Vec<StoredPin>,
}

/// A state file and its companions (`.backup`, `.journal`, `.lock`).
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The default state path for a manifest: `pins.yaml` -> `pins.state.json`.
    pub fn beside_manifest(manifest: &Path) -> Self {
        let stem = manifest
            .file_stem()
            .map_or_else(|| "pins".into(), |s| s.to_string_lossy().into_owned());
        Self::new(manifest.with_file_name(format!("{stem}.state.json")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn companion(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }

    pub fn journal_path(&self) -> PathBuf {
        self.companion(".journal")
    }

    pub fn backup_path(&self) -> PathBuf {
        self.companion(".backup")
    }

    /// Loads the state, replaying any journal left by an interrupted apply.
    /// A missing file is an empty state.
    pub fn load(&self) -> Result<State, StateFileError> {
        let mut state = match fs::read(&self.path) {
            Ok(bytes) => decode(&self.path, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::new(),
            Err(e) => return Err(StateFileError::io("read state file", &self.path)(e)),
        };
        Journal::replay(&self.journal_path(), &mut state, self.path.exists())?;
        Ok(state)
    }

    /// Whether a journal holds writes not yet folded into the file.
    pub fn has_journal(&self) -> bool {
        self.journal_path().exists()
    }

    /// Replaces the state file atomically with `state`, keeps the previous
    /// file as `.backup`, then drops the journal it supersedes.
    pub fn save(&self, state: &State) -> Result<(), StateFileError> {
        let doc = Document {
            format_version: u64::from(STATE_FORMAT_VERSION),
            lineage: state.lineage.clone(),
            serial: state.serial,
            pins: state
                .pins
                .iter()
                .map(|(key, record)| StoredPin {
                    key: key.clone(),
                    record: record.clone(),
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&doc).expect("state serialises");
        bytes.push(b'\n');
        replace_file(&self.path, &bytes, Some(&self.backup_path()))?;
        Journal::remove(&self.journal_path())?;
        Ok(())
    }
}

/// What [`StateFile::restore`] did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// Pins in the restored state.
    pub pins: usize,
    pub serial: u64,
    /// Where the replaced state file and journal were moved, if they existed.
    pub moved_aside: Vec<PathBuf>,
}

impl StateFile {
    /// Replaces the state with a copy that parses (by default the `.backup`).
    /// The current file and journal are moved aside, never deleted, so a
    /// restore loses nothing. The caller holds the lock.
    pub fn restore(&self, from: &Path) -> Result<Restored, StateFileError> {
        let bytes = fs::read(from).map_err(StateFileError::io("read", from))?;
        let mut state = decode(from, &bytes)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut moved_aside = Vec::new();
        for path in [self.path.clone(), self.journal_path()] {
            if path.exists() {
                let mut aside = path.as_os_str().to_owned();
                aside.push(format!(".replaced-{stamp}"));
                let aside = PathBuf::from(aside);
                fs::rename(&path, &aside).map_err(StateFileError::io("move aside", &path))?;
                moved_aside.push(aside);
            }
        }
        // A new serial above both, so plans made against either are refused.
        state.serial += 1;
        self.save(&state)?;
        Ok(Restored {
            pins: state.pins.len(),
            serial: state.serial,
            moved_aside,
        })
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<State, StateFileError> {
    let corrupt = |reason: String| StateFileError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(corrupt("the file is empty".into()));
    }
    // Read the version first so a future format gets a clear message rather
    // than a list of unknown fields.
    #[derive(Deserialize)]
    struct Versioned {
        format_version: u64,
    }
    let v: Versioned = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if v.format_version != u64::from(STATE_FORMAT_VERSION) {
        return Err(StateFileError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: v.format_version,
        });
    }
    let doc: Document = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut state = State {
        lineage: doc.lineage,
        serial: doc.serial,
        pins: Default::default(),
    };
    for pin in doc.pins {
        if state.pins.insert(pin.key.clone(), pin.record).is_some() {
            return Err(corrupt(format!("pin {} is listed twice", pin.key)));
        }
    }
    Ok(state)
}

/// Replaces `path` with `contents` so that a crash leaves the old or the new
/// file, never a mix: a temporary file in the same directory, fsynced, then
/// renamed over `path`, then the directory fsynced. With `backup`, the old
/// file is first linked (or copied) there.
pub(crate) fn replace_file(
    path: &Path,
    contents: &[u8],
    backup: Option<&Path>,
) -> Result<(), StateFileError> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".pinsync-")
        .tempfile_in(dir)
        .map_err(StateFileError::io("create a temporary file in", dir))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(StateFileError::io("write temporary file for", path))?;
    if let Some(backup) = backup.filter(|_| path.exists()) {
        let _ = fs::remove_file(backup);
        fs::hard_link(path, backup)
            .or_else(|_| fs::copy(path, backup).map(drop))
            .map_err(StateFileError::io("keep backup", backup))?;
    }
    tmp.persist(path)
        .map_err(|e| StateFileError::io("replace", path)(e.error))?;
    sync_dir(dir)
}

pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename or create in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StateFileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StateFileError::io("fsync directory", dir))
}
