//! Where the state is kept, chosen in one place for every command:
//! `--state` (or `PINSYNC_STATE`), else the manifest's `state:`, else the
//! file beside the manifest.

use std::path::{Path, PathBuf};

use anyhow::bail;

use super::{PgLocation, PgStore, StateFile, StateStore, is_postgres_url};
use crate::manifest;

/// The state's place: a file, or a PostgreSQL workspace.
pub(crate) enum StateLocation {
    File(StateFile),
    /// The URL, which may hold a password: never shown.
    Postgres(String),
}

impl StateLocation {
    /// The place `given` (`--state` or `PINSYNC_STATE`) names, else the
    /// manifest's `state:`, else the file beside `manifest`.
    pub(crate) fn choose(given: Option<&str>, manifest: &Path) -> anyhow::Result<Self> {
        let postgres = match given {
            Some(text) => Some(text.to_owned()).filter(|t| is_postgres_url(t)),
            None => manifest_state_url(manifest)?,
        };
        Ok(match (postgres, given) {
            (Some(url), _) => Self::Postgres(url),
            (None, Some(path)) => Self::File(StateFile::new(path)),
            (None, None) => Self::File(StateFile::beside_manifest(manifest)),
        })
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// The store at this place.
    pub(crate) fn open(self) -> anyhow::Result<Box<dyn StateStore>> {
        Ok(match self {
            Self::File(file) => Box::new(file),
            Self::Postgres(url) => Box::new(PgStore::new(pg_location(&url)?)),
        })
    }

    /// The PostgreSQL store at this place, or an error saying that
    /// `pinsync COMMAND` is for one.
    pub(crate) fn postgres(self, command: &str) -> anyhow::Result<PgStore> {
        match self {
            Self::Postgres(url) => Ok(PgStore::new(pg_location(&url)?)),
            Self::File(_) => bail!(
                "`pinsync {command}` is for a PostgreSQL state (--state postgres://..., or the \
                 manifest's state:); a state file's lock is released by the kernel when its \
                 holder exits, so it never sticks"
            ),
        }
    }
}

fn pg_location(url: &str) -> anyhow::Result<PgLocation> {
    PgLocation::parse(url, |v| std::env::var(v).ok(), pgpass_file().as_deref())
        .map_err(anyhow::Error::msg)
}

fn pgpass_file() -> Option<PathBuf> {
    std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))
}

/// The URL the manifest's `state:` names, if it has one. Only a manifest
/// with a top-level `state:` line is parsed here, so the others are not
/// read twice.
fn manifest_state_url(manifest: &Path) -> anyhow::Result<Option<String>> {
    let Ok(crate::file_io::Bounded::Read(text, _)) =
        crate::file_io::read_bounded(manifest, manifest::MAX_MANIFEST_BYTES as u64)
    else {
        // Missing or too large: the manifest's own load says so.
        return Ok(None);
    };
    if !text
        .split(|b| *b == b'\n')
        .any(|line| line.starts_with(b"state:"))
    {
        return Ok(None);
    }
    // The included files hold only pins: the main manifest says it all.
    let Some(state) = manifest::load_main(manifest)?.state else {
        return Ok(None);
    };
    let var = &state.url.var;
    let url = std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("the manifest's state.url names ${var}, which is not set")
        })?;
    // Not echoed: it may hold a password.
    if !is_postgres_url(&url) {
        bail!("${var} (the manifest's state.url) must hold a postgres:// URL");
    }
    let Some(workspace) = state.workspace else {
        return Ok(Some(url));
    };
    let mut parsed = url::Url::parse(&url)
        .map_err(|e| anyhow::anyhow!("${var} (the manifest's state.url) is not a URL ({e})"))?;
    let others: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "workspace")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(others)
        .append_pair("workspace", &workspace);
    Ok(Some(parsed.to_string()))
}
