//! What every use case works in: the state's store, the lock held on it,
//! and the one token that stops the work, whether a signal or a lost lease
//! says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::manifest::{self, Manifest};
use crate::state::{HeldLock, LockError, State, StateStore};

/// A manifest, the store of its state, and the lock held on it.
pub(crate) struct Workspace {
    manifest: PathBuf,
    store: Box<dyn StateStore>,
    lock: Option<Box<dyn HeldLock>>,
    stop: CancellationToken,
}

impl Workspace {
    /// The workspace of `manifest` whose state is in `store`, unlocked
    /// (for the use cases that write nothing).
    pub(crate) fn new(manifest: &Path, store: Box<dyn StateStore>) -> Self {
        Self {
            manifest: manifest.to_owned(),
            store,
            lock: None,
            stop: CancellationToken::new(),
        }
    }

    /// Takes the store's lock for `command`, waiting up to `wait` for a
    /// holder to finish. From then on a lost lease stops the work.
    pub(crate) fn lock(mut self, wait: Duration, command: &str) -> Result<Self, LockError> {
        let lock = self.store.lock(wait, command)?;
        if let Some(lost) = lock.lost() {
            self.stop = lost.child_token();
        }
        self.lock = Some(lock);
        Ok(self)
    }

    pub(crate) fn store(&self) -> &dyn StateStore {
        self.store.as_ref()
    }

    /// Cancelled when the work must stop: on a signal (once
    /// [`cli`](crate::cli) listens for them) or when the lease is lost.
    pub(crate) fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Cancelled if the lock is lost while held (a lease taken over).
    pub(crate) fn lease_lost(&self) -> Option<CancellationToken> {
        self.lock.as_ref().and_then(|l| l.lost())
    }

    /// The manifest and the state, read side by side: on large manifests
    /// each takes a noticeable time, and they do not depend on each other.
    pub(crate) fn load(&self) -> anyhow::Result<(Manifest, State)> {
        std::thread::scope(|scope| {
            let state = scope.spawn(|| self.store.load());
            let manifest = manifest::load(&self.manifest);
            let state = state.join().expect("loading the state does not panic");
            Ok((manifest?, state?))
        })
    }

    /// Writes `state` whole after a refresh, an import or a wait: a new
    /// serial, the old state kept as backup.
    pub(crate) fn save(&self, state: &mut State) -> anyhow::Result<()> {
        state.ensure_lineage();
        state.serial += 1;
        self.store.save(state)?;
        Ok(())
    }
}
