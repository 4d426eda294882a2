//! Reading and writing the files pinsync keeps: reads bounded before they
//! start (a manifest or plan may be `/dev/zero`), and writes that a crash
//! leaves as the old version or the new one, never a mix (the state, saved
//! plans, watch's status file).

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// A read or write that failed, naming the file and what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub(crate) struct FileError {
    pub(crate) action: &'static str,
    pub(crate) path: PathBuf,
    #[source]
    pub(crate) source: io::Error,
}

impl FileError {
    /// A `map_err` adapter: `.map_err(FileError::at("append to", path))`.
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

/// What [`read_bounded`] found.
pub(crate) enum Bounded {
    /// Its bytes, and its metadata as it was opened, before the read.
    Read(Vec<u8>, fs::Metadata),
    /// The file holds more than the limit: at least this many bytes.
    TooLarge(u64),
}

/// Reads `path` whole unless it holds more than `limit` bytes: refused from
/// its size on disk before reading, and, for what has no size (a pipe,
/// `/dev/zero`), after reading one byte past the limit at most.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> io::Result<Bounded> {
    use std::io::Read as _;
    let file = File::open(path)?;
    let metadata = file.metadata()?;
    let size = metadata.len();
    if size > limit {
        return Ok(Bounded::TooLarge(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(Bounded::TooLarge(limit + 1));
    }
    Ok(Bounded::Read(bytes, metadata))
}

/// Replaces `path` with `contents`: a temporary file in the same directory,
/// fsynced, then renamed over `path`, then the directory fsynced. With
/// `backup`, the old file is first linked (or copied) there.
pub(crate) fn replace(
    path: &Path,
    contents: &[u8],
    backup: Option<&Path>,
) -> Result<(), FileError> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".pinsync-")
        .tempfile_in(dir)
        .map_err(FileError::at("create a temporary file in", dir))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(FileError::at("write temporary file for", path))?;
    if let Some(backup) = backup.filter(|_| path.exists()) {
        let _ = fs::remove_file(backup);
        fs::hard_link(path, backup)
            .or_else(|_| fs::copy(path, backup).map(drop))
            .map_err(FileError::at("keep backup", backup))?;
    }
    tmp.persist(path)
        .map_err(|e| FileError::at("replace", path)(e.error))?;
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
pub(crate) fn sync_dir(dir: &Path) -> Result<(), FileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FileError::at("fsync directory", dir))
}
