//! Files written so that a crash leaves the old version or the new one,
//! never a mix: the state, saved plans and watch's status file.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// A write that failed, naming the file and what was being done to it.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct WriteError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl WriteError {
    /// A `map_err` adapter: `.map_err(WriteError::at("append to", path))`.
    pub(crate) fn at<'p>(
        action: &'static str,
        path: &'p Path,
    ) -> impl FnOnce(io::Error) -> Self + 'p {
        move |source| Self {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Replaces `path` with `contents`: a temporary file in the same directory,
/// fsynced, then renamed over `path`, then the directory fsynced. With
/// `backup`, the old file is first linked (or copied) there.
pub(crate) fn replace(
    path: &Path,
    contents: &[u8],
    backup: Option<&Path>,
) -> Result<(), WriteError> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".pinsync-")
        .tempfile_in(dir)
        .map_err(WriteError::at("create a temporary file in", dir))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(WriteError::at("write temporary file for", path))?;
    if let Some(backup) = backup.filter(|_| path.exists()) {
        let _ = fs::remove_file(backup);
        fs::hard_link(path, backup)
            .or_else(|_| fs::copy(path, backup).map(drop))
            .map_err(WriteError::at("keep backup", backup))?;
    }
    tmp.persist(path)
        .map_err(|e| WriteError::at("replace", path)(e.error))?;
    sync_dir(dir)
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename or create in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(WriteError::at("fsync directory", dir))
}
