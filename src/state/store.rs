//! Where a state is kept, behind one trait, so that everything above it
//! (plan, apply, watch, the state commands) is the same code whatever the
//! store: the file beside the manifest (the default), or a shared database.

use std::time::Duration;

use super::{Journal, LockError, State, StateFile, StateFileError, StateLock, StoredPin};
use crate::manifest::PinKey;

/// A place a state is kept.
pub(crate) trait StateStore: Send + Sync {
    /// The store as messages name it: a path, or a URL without its password.
    fn describe(&self) -> String;

    /// The state, with the confirmed changes an interrupted apply left.
    fn load(&self) -> Result<State, StateFileError>;

    /// Makes `state` the stored state, whole (after a refresh, an import,
    /// and at the end of an apply).
    fn save(&self, state: &State) -> Result<(), StateFileError>;

    /// Ends an apply whose every change a [`Recorder`] of this store made
    /// durable: `state` is the recorder's start with its batches. The file
    /// keeps its journal unless it has grown past a fraction of the state
    /// (then it compacts); a store that commits each batch in place has
    /// only the head left to write. Either way the cost is the change's,
    /// not the whole state's.
    fn finish(&self, state: &State) -> Result<(), StateFileError> {
        self.save(state)
    }

    /// Writes `state`, as loaded or as an apply left it, back whole if
    /// part of it is kept as changes on top (the file's journal): at a
    /// clean stop of `watch`. The caller holds the lock.
    fn compact(&self, _state: &State) -> Result<(), StateFileError> {
        Ok(())
    }

    /// Starts recording an apply's confirmed changes on top of `state`
    /// (which has its lineage, and is the store's state, as loaded or as
    /// the last apply left it): each batch is durable before it returns.
    fn recorder(&self, state: &State) -> Result<Box<dyn Recorder>, StateFileError>;

    /// Takes the store's lock for `command`, waiting up to `wait` for a
    /// holder to finish; released when the returned value is dropped.
    fn lock(&self, wait: Duration, command: &str) -> Result<Box<dyn HeldLock>, LockError>;
}

/// Durable appends of an apply's confirmed changes.
pub(crate) trait Recorder: Send {
    /// Records one batch (pins confirmed, pins removed), bringing the state
    /// to `serial`.
    fn append(
        &mut self,
        serial: u64,
        pins: &[StoredPin],
        unpinned: &[PinKey],
    ) -> Result<(), StateFileError>;
}

/// A lock held on a store, released on drop.
pub(crate) trait HeldLock: Send {
    /// Cancelled if the lock is lost while held (a lease taken over after
    /// a partition): the holder must stop making calls at once.
    fn lost(&self) -> Option<tokio_util::sync::CancellationToken> {
        None
    }
}

impl StateStore for StateFile {
    fn describe(&self) -> String {
        self.path().display().to_string()
    }

    fn load(&self) -> Result<State, StateFileError> {
        StateFile::load(self)
    }

    fn save(&self, state: &State) -> Result<(), StateFileError> {
        StateFile::save(self, state)
    }

    fn finish(&self, state: &State) -> Result<(), StateFileError> {
        if self.compaction_due() {
            StateFile::save(self, state)?;
        }
        Ok(())
    }

    fn compact(&self, state: &State) -> Result<(), StateFileError> {
        if self.has_journal() {
            StateFile::save(self, state)?;
        }
        Ok(())
    }

    fn recorder(&self, state: &State) -> Result<Box<dyn Recorder>, StateFileError> {
        // Appended to: the journal an earlier apply left is part of `state`.
        Ok(Box::new(Journal::open(&self.journal_path(), state)?))
    }

    fn lock(&self, wait: Duration, command: &str) -> Result<Box<dyn HeldLock>, LockError> {
        Ok(Box::new(StateLock::acquire(self.path(), wait, command)?))
    }
}

impl Recorder for Journal {
    fn append(
        &mut self,
        serial: u64,
        pins: &[StoredPin],
        unpinned: &[PinKey],
    ) -> Result<(), StateFileError> {
        Journal::append(self, serial, pins, unpinned)
    }
}

impl HeldLock for StateLock {}
