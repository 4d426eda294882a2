//! `pinsync state push` and `pull`: a whole state from one store to
//! another, its lineage and serial kept, under both stores' locks.

use std::time::Duration;

use anyhow::bail;

use crate::state::StateStore;

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
