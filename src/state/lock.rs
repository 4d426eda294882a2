//! One writer per state: an exclusive OS lock on `STATE.lock`.
//!
//! The lock is `flock`-style (`File::try_lock`), so the kernel releases it
//! when the holder dies, however it dies: a lock left by a killed process is
//! never stale. The file's content says who holds it, for the message the
//! second writer gets.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Who holds a lock, as written into the lock file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Holder {
    pub(crate) pid: u32,
    pub(crate) host: String,
    pub(crate) since: String,
    pub(crate) command: String,
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error("the state {state} is locked by {holder}{waited}; try again when it finishes")]
    Held {
        state: PathBuf,
        holder: String,
        waited: String,
    },
    #[error("lock timeout {} is too long", humantime::format_duration(*.0))]
    WaitTooLong(Duration),
    /// The database holding the state could not be asked.
    #[error("lock the state {store}: {reason}")]
    Database { store: String, reason: String },
    #[error("lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The lock file of a state: `STATE.lock`.
pub(crate) fn lock_path(state_path: &Path) -> PathBuf {
    let mut name = state_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// An exclusive lock on a state file, released on drop.
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the lock for `state_path`, waiting up to `wait` for a holder to
    /// finish (zero: fail at once). `command` is recorded for others to see.
    pub(crate) fn acquire(
        state_path: &Path,
        wait: Duration,
        command: &str,
    ) -> Result<Self, LockError> {
        let path = lock_path(state_path);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        let deadline = Instant::now()
            .checked_add(wait)
            .ok_or(LockError::WaitTooLong(wait))?;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100).min(wait));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(LockError::Held {
                        state: state_path.to_path_buf(),
                        holder: describe_holder(&mut file),
                        waited: if wait.is_zero() {
                            String::new()
                        } else {
                            format!(" (waited {})", humantime::format_duration(wait))
                        },
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
            }
        }
        let holder = Holder {
            pid: std::process::id(),
            host: hostname(),
            since: super::now_rfc3339(),
            command: command.to_owned(),
        };
        let body = serde_json::to_vec(&holder).expect("holder serialises");
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
            .and_then(|()| file.write_all(&body))
            .and_then(|()| file.flush())
            .map_err(io_err)?;
        Ok(Self { _file: file })
    }
}

fn describe_holder(file: &mut File) -> String {
    // Another process wrote it: read a bounded amount, print it escaped.
    let mut text = String::new();
    let _ = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.take(4096).read_to_string(&mut text));
    match serde_json::from_str::<Holder>(&text) {
        Ok(h) => format!(
            "`{}` (pid {} on {}, since {})",
            h.command.escape_debug(),
            h.pid,
            h.host.escape_debug(),
            h.since.escape_debug()
        ),
        Err(_) => "another process".into(),
    }
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_naming_the_holder_and_first_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("pins.state.json");
        let first = StateLock::acquire(&state, Duration::ZERO, "pinsync apply").unwrap();
        let err = StateLock::acquire(&state, Duration::ZERO, "pinsync apply").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("pinsync apply"), "{msg}");
        drop(first);
        StateLock::acquire(&state, Duration::ZERO, "pinsync apply").unwrap();
    }
}
