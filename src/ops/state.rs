//! `pinsync state push` and `pull`: a whole state from one store to
//! another, its lineage and serial kept, under both stores' locks; and
//! `state restore`: a state file's backup put back, under its lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::state::{StateLocation, StateStore};

/// What a copy did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Copied {
    pub(crate) pins: usize,
    pub(crate) serial: u64,
}

/// Copies the state in `from` to `to`, waiting up to `wait` for each lock.
/// Refused, with nothing written, if `to` holds a state of another lineage
/// or a newer one of the same.
pub(crate) fn copy(
    from: &dyn StateStore,
    to: &dyn StateStore,
    wait: Duration,
) -> anyhow::Result<Copied> {
    let _from_lock = from.lock(wait, "pinsync state copy")?;
    let _to_lock = to.lock(wait, "pinsync state copy")?;
    let state = from.load()?;
    let existing = to.load()?;
    if !existing.lineage.is_empty() && existing.lineage != state.lineage {
        bail!(
            "{} already holds a state of another lineage ({} pins, serial {}); nothing was copied",
            to.describe(),
            existing.pins.len(),
            existing.serial
        );
    }
    if existing.serial > state.serial {
        bail!(
            "{} holds a newer state of this lineage (serial {} against {}); nothing was copied",
            to.describe(),
            existing.serial,
            state.serial
        );
    }
    to.save(&state)?;
    Ok(Copied {
        pins: state.pins.len(),
        serial: state.serial,
    })
}

/// What a restore did.
#[derive(Debug)]
pub(crate) struct Restored {
    /// The state file restored.
    pub(crate) file: PathBuf,
    /// The copy it was restored from.
    pub(crate) from: PathBuf,
    pub(crate) state: crate::state::Restored,
}

/// Puts back the copy at `from` (by default the state file's `.backup`)
/// as the state file at `location`, waiting up to `wait` for its lock.
/// The replaced file and journal are moved aside, never deleted. A
/// PostgreSQL state keeps no backup file, and is refused.
pub(crate) fn restore(
    location: StateLocation,
    from: Option<&Path>,
    wait: Duration,
) -> anyhow::Result<Restored> {
    let StateLocation::File(file) = location else {
        bail!(
            "`pinsync state restore` puts back a state file's backup; a PostgreSQL state keeps no backup file"
        );
    };
    let _lock = file.lock(wait, "pinsync state restore")?;
    let from = from.map_or_else(|| file.backup_path(), Path::to_path_buf);
    let state = file
        .restore(&from)
        .with_context(|| format!("restore {} from {}", file.path().display(), from.display()))?;
    Ok(Restored {
        file: file.path().to_path_buf(),
        from,
        state,
    })
}
