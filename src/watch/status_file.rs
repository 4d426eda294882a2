//! The health file a monitor reads: the last apply's time, result and counts,
//! always replaced atomically so a reader never sees half of it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

/// How the last reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// Everything in the plan landed (or there was nothing to do).
    Ok,
    /// Some pins failed; they are retried on the next reconcile.
    Failed,
    /// The manifest on disk does not validate; the last good one is in force.
    InvalidManifest,
    /// A safety guard refused the plan's unpins; nothing was changed.
    Blocked,
    /// Apply could not run (missing credentials, ...).
    Error,
}

impl Outcome {
    /// Its name, as the status file and the metrics write it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::InvalidManifest => "invalid_manifest",
            Self::Blocked => "blocked",
            Self::Error => "error",
        }
    }
}

/// Which part a watch server plays on its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    /// It holds the state's lock and applies.
    Active,
    /// Another server holds the lease; this one waits to take over.
    Standby,
}

/// What the status file says while a server waits for the lease.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StandbyStatus {
    pub(crate) pid: u32,
    pub(crate) manifest: PathBuf,
    pub(crate) role: Role,
    /// Who holds the lease, as its lock says.
    pub(crate) held_by: String,
    pub(crate) since: String,
}

/// What the status file says.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Status {
    pub(crate) pid: u32,
    pub(crate) manifest: PathBuf,
    pub(crate) role: Role,
    /// When the last reconcile finished.
    pub(crate) last_run_at: String,
    pub(crate) last_result: Outcome,
    /// When a reconcile last ended `ok`: a monitor alerts when this is old.
    pub(crate) last_success_at: Option<String>,
    pub(crate) pinned: usize,
    pub(crate) failed: usize,
    pub(crate) unchanged: usize,
    /// Pins the last good manifest asks for that are not pinned yet.
    pub(crate) pending: usize,
    /// Why the last run was not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// Replaces the status file at `path` with `status`.
pub(crate) fn write(path: &Path, status: &impl Serialize) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(status)?;
    bytes.push(b'\n');
    crate::file_io::replace(path, &bytes, None).context("write status file")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcomes_name_is_the_one_the_status_file_writes() {
        for o in [
            Outcome::Ok,
            Outcome::Failed,
            Outcome::InvalidManifest,
            Outcome::Blocked,
            Outcome::Error,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    }
}
