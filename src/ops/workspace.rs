//! What every use case works in: the state's store, the lock held on it,
//! and the one token that stops the work, whether a signal or a lost lease
//! says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::manifest::{self, Manifest};
use crate::state::{HeldLock, LockError, State, StateStore};

/// How long a standby asks for the lease at a time.
const STANDBY_TRY: Duration = Duration::from_secs(2);
/// How long a standby waits for a database out of reach.
const UNREACHABLE_PAUSE: Duration = Duration::from_secs(5);

/// Hears how a standby waits for the lease.
pub(crate) trait Standby {
    /// `holder` holds it: this server waits (said once).
    fn waiting(&self, holder: &str) -> anyhow::Result<()>;
    /// The database is out of reach: asked again after `pause`.
    fn unreachable(&self, error: &LockError, pause: Duration);
    /// This server took the lease over after waiting.
    fn took_over(&self);
}

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
    pub(crate) fn lock(self, wait: Duration, command: &str) -> Result<Self, LockError> {
        let lock = self.store.lock(wait, command)?;
        Ok(self.holding(lock))
    }

    /// Takes the store's lease as a standby server does: waits while
    /// another holds it (or the database is out of reach), telling
    /// `standby` once, and takes over when the holder releases it or its
    /// lease expires.
    pub(crate) fn lock_as_standby(
        self,
        command: &str,
        standby: &dyn Standby,
    ) -> anyhow::Result<Self> {
        let mut said = false;
        loop {
            match self.store.lock(STANDBY_TRY, command) {
                Ok(lock) => {
                    if said {
                        standby.took_over();
                    }
                    return Ok(self.holding(lock));
                }
                Err(LockError::Held { holder, .. }) => {
                    if !said {
                        said = true;
                        standby.waiting(&holder)?;
                    }
                }
                Err(e @ LockError::Database { .. }) => {
                    standby.unreachable(&e, UNREACHABLE_PAUSE);
                    std::thread::sleep(UNREACHABLE_PAUSE);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn holding(mut self, lock: Box<dyn HeldLock>) -> Self {
        if let Some(lost) = lock.lost() {
            self.stop = lost.child_token();
        }
        self.lock = Some(lock);
        self
    }

    pub(crate) fn store(&self) -> &dyn StateStore {
        self.store.as_ref()
    }

    /// Cancelled when the work must stop: on a signal (once
    /// [`cli`](crate::cli) listens for them) or when the lease is lost.
    pub(crate) fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Stops the work on SIGINT or SIGTERM, after telling `on_signal`
    /// which: calls in flight finish, no new call starts, and the state is
    /// saved. A second signal exits at once (exit 1): the journal holds
    /// every pin recorded so far, and the next run replays it. Within a
    /// tokio runtime.
    pub(crate) fn stop_on_signals(
        &self,
        on_signal: impl FnOnce(&str) + Send + 'static,
    ) -> anyhow::Result<()> {
        use anyhow::Context as _;
        use std::io::Write as _;
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("listen for SIGINT")?;
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            stop.cancel();
            on_signal(name);
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            // stderr may be a closed pipe: writing must not panic here.
            let _ = writeln!(
                std::io::stderr(),
                "\nInterrupted again: exiting now. Pins recorded so far are kept; run the command again to finish."
            );
            std::process::exit(1);
        });
        Ok(())
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
