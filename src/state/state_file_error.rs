//! Why a state could not be used: one error for the file, its journal and
//! the database, apart from both so that neither imports the other.

use std::io;
use std::path::{Path, PathBuf};

use super::STATE_FORMAT_VERSION;
use crate::file_io::FileError;

/// Why a state file could not be used. It is never overwritten in any case.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateFileError {
    #[error(
        "state file {path} cannot be read: {reason}; it was left untouched. \
         To go back to the previous version, run `pinsync state restore` \
         (it restores {path}.backup and keeps this file aside)"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "state journal {path} cannot be read: {reason}; it was left untouched. It holds the \
         changes made since {state} was last written whole. To keep {state} alone, run \
         `pinsync state restore --from {state}` (it keeps the journal aside; the pins only \
         the journal recorded are planned again, and providers answer \"already pinned\")"
    )]
    CorruptJournal {
        path: PathBuf,
        state: PathBuf,
        reason: String,
    },
    #[error(
        "state file {path} has format version {found}; this pinsync reads versions 1 to {STATE_FORMAT_VERSION}"
    )]
    UnsupportedVersion { path: PathBuf, found: u64 },
    /// Reading or writing one of the state's files failed.
    #[error(transparent)]
    Io(#[from] FileError),
    /// The database holding the state failed or refused (its URL is shown
    /// without the password).
    #[error("state {store}: {reason}")]
    Database { store: String, reason: String },
}

impl StateFileError {
    pub(crate) fn io<'p>(
        action: &'static str,
        path: &'p Path,
    ) -> impl FnOnce(io::Error) -> Self + 'p {
        move |source| Self::Io(FileError::at(action, path)(source))
    }
}
