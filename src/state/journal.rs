//! The append-only journal of pins confirmed since the last full write.
//!
//! Rewriting the whole state after every pin costs O(N) per pin, O(N²) per
//! apply. Instead each batch of confirmed pins is appended as one JSON line
//! and fsynced (group commit); the state file is rewritten once, at the end.
//! The first line names the state's lineage; each later line carries the
//! serial it brings the state to, so lines already folded into the state
//! file (a crash between the rename and the journal's removal) are skipped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::state_file_error::StateFileError;
use super::{State, StoredPin};
use crate::file_io::{parent_dir, sync_dir};
use crate::manifest::PinKey;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    journal_for_lineage: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    serial: u64,
    pins: Vec<StoredPin>,
    /// Pins the provider removed. Absent from journals written before
    /// unpinning existed, which still replay.
    #[serde(default)]
    unpinned: Vec<PinKey>,
}

/// An open journal that batches of confirmed pins are appended to.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Starts a journal for `state`. Any journal already there must have been
    /// folded into the state file first (see [`super::StateFile::save`]).
    pub(crate) fn create(path: &Path, state: &State) -> Result<Self, StateFileError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(StateFileError::io("create journal", path))?;
        let mut line = serde_json::to_vec(&Header {
            journal_for_lineage: state.lineage.clone(),
        })
        .expect("header serialises");
        line.push(b'\n');
        file.write_all(&line)
            .and_then(|()| file.sync_all())
            .map_err(StateFileError::io("write journal", path))?;
        sync_dir(parent_dir(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one batch (pins recorded, pins removed) and makes it durable;
    /// `serial` is the one the batch brings the state to.
    pub(crate) fn append(
        &mut self,
        serial: u64,
        pins: &[StoredPin],
        unpinned: &[PinKey],
    ) -> Result<(), StateFileError> {
        #[derive(Serialize)]
        struct BatchRef<'a> {
            serial: u64,
            pins: &'a [StoredPin],
            #[serde(skip_serializing_if = "<[PinKey]>::is_empty")]
            unpinned: &'a [PinKey],
        }
        let mut line = serde_json::to_vec(&BatchRef {
            serial,
            pins,
            unpinned,
        })
        .expect("batch serialises");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(StateFileError::io("append to journal", &self.path))?;
        Ok(())
    }

    /// Folds a journal into `state`. A torn last line (a crash mid-append)
    /// is ignored: it was never acknowledged. Anything else unreadable is an
    /// error, and nothing is written.
    pub(crate) fn replay(
        path: &Path,
        state: &mut State,
        state_file_exists: bool,
    ) -> Result<(), StateFileError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StateFileError::io("read journal", path)(e)),
        };
        let corrupt = |reason: String| StateFileError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let mut lines = BufReader::new(file).split(b'\n').peekable();
        let Some(first) = lines.next() else {
            return Ok(()); // created but the header never landed
        };
        let first = first.map_err(StateFileError::io("read journal", path))?;
        let header: Header = match serde_json::from_slice(&first) {
            Ok(h) => h,
            Err(_) if lines.peek().is_none() => return Ok(()),
            Err(e) => return Err(corrupt(format!("bad header: {e}"))),
        };
        if !state_file_exists {
            // The first apply on a new state crashed before its first full
            // write: the journal carries the lineage.
            state.lineage = header.journal_for_lineage;
        } else if header.journal_for_lineage != state.lineage {
            return Err(corrupt(format!(
                "it belongs to state lineage {}, not {}",
                header.journal_for_lineage, state.lineage
            )));
        }
        let mut line_no = 1;
        while let Some(line) = lines.next() {
            line_no += 1;
            let line = line.map_err(StateFileError::io("read journal", path))?;
            let last = lines.peek().is_none();
            let batch: Batch = match serde_json::from_slice(&line) {
                Ok(b) => b,
                Err(_) if last => break,
                Err(e) => return Err(corrupt(format!("line {line_no}: {e}"))),
            };
            if batch.serial <= state.serial {
                continue;
            }
            state.serial = batch.serial;
            for pin in batch.pins {
                state.record(pin);
            }
            for key in batch.unpinned {
                state.pins.remove(&key);
            }
        }
        Ok(())
    }

    /// Deletes a journal whose contents the state file now holds.
    pub(crate) fn remove(path: &Path) -> Result<(), StateFileError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(sync_dir(parent_dir(path))?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateFileError::io("remove journal", path)(e)),
        }
    }
}
