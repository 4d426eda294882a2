//! The append-only journal of pins confirmed since the last full write.
//!
//! Rewriting the whole state after every pin costs O(N) per pin, O(N²) per
//! apply, and rewriting it after every apply costs the size of the state
//! for a change of one pin. Instead each batch of confirmed pins is
//! appended as one JSON line and fsynced (group commit), apply after apply;
//! the state file is rewritten (the journal compacted into it) only once
//! the journal has grown past a fraction of it (see
//! [`super::StateFile::compaction_due`]).
//! The first line names the state's lineage; each later line carries the
//! serial it brings the state to, so lines already folded into the state
//! file (a crash between the rename and the journal's removal) are skipped.
//! A line counts once its newline is written: a crash mid-append leaves a
//! tail without one, which is never replayed and is cut before the next
//! append.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
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
    /// The serial of the state it was started on: a state file older than
    /// that (restored from elsewhere, or deleted) is not the one it
    /// continues. Absent from journals written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_serial: Option<u64>,
}

/// What the first line of a journal says.
enum FirstLine {
    Header(Header),
    /// It never landed whole (no newline, or garbage with nothing after
    /// it): nothing was journaled.
    Torn,
}

impl FirstLine {
    /// `line` with its newline if it has one; `more` whether anything
    /// follows it.
    fn read(line: &[u8], more: bool) -> Result<Self, String> {
        let Some(text) = line.strip_suffix(b"\n") else {
            return if more {
                Err(format!(
                    "its first line is longer than {MAX_HEADER_BYTES} bytes"
                ))
            } else {
                Ok(Self::Torn)
            };
        };
        match serde_json::from_slice(text) {
            Ok(header) => Ok(Self::Header(header)),
            Err(_) if !more => Ok(Self::Torn),
            Err(e) => Err(format!("bad header: {e}")),
        }
    }
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
            on_serial: Some(state.serial),
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

    /// Opens the journal of `state` for appending: the one there (which a
    /// load replayed into `state`), its torn tail cut, or a new one.
    pub(crate) fn open(path: &Path, state: &State) -> Result<Self, StateFileError> {
        let mut file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Self::create(path, state),
            Err(e) => return Err(StateFileError::io("open journal", path)(e)),
        };
        let io = |what| StateFileError::io(what, path);
        let mut first = Vec::new();
        BufReader::new((&mut file).take(MAX_HEADER_BYTES))
            .read_until(b'\n', &mut first)
            .map_err(io("read journal"))?;
        let more = file.metadata().map_err(io("read journal"))?.len() > first.len() as u64;
        let header = match FirstLine::read(&first, more).map_err(|r| corrupt_journal(path, r))? {
            FirstLine::Header(header) => header,
            FirstLine::Torn => {
                drop(file);
                fs::remove_file(path).map_err(io("remove journal"))?;
                return Self::create(path, state);
            }
        };
        if header.journal_for_lineage != state.lineage {
            return Err(corrupt_journal(
                path,
                format!(
                    "it belongs to state lineage {}, not {}",
                    header.journal_for_lineage, state.lineage
                ),
            ));
        }
        let whole = end_of_replayed(&mut file, first.len() as u64).map_err(io("read journal"))?;
        if file.metadata().map_err(io("read journal"))?.len() != whole {
            file.set_len(whole)
                .and_then(|()| file.sync_all())
                .map_err(io("cut the torn tail of journal"))?;
        }
        file.seek(SeekFrom::Start(whole))
            .map_err(io("append to journal"))?;
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
        let corrupt = |reason: String| corrupt_journal(path, reason);
        let mut lines = Lines(BufReader::new(file)).peekable();
        let read = |line: Option<io::Result<Vec<u8>>>| {
            line.transpose()
                .map_err(StateFileError::io("read journal", path))
        };
        let Some(mut first) = read(lines.next())? else {
            return Ok(()); // created but the header never landed
        };
        if first.len() as u64 >= MAX_HEADER_BYTES {
            return Err(corrupt(format!(
                "its first line is longer than {MAX_HEADER_BYTES} bytes"
            )));
        }
        first.push(b'\n');
        let more = lines.peek().is_some();
        let header = match FirstLine::read(&first, more).map_err(corrupt)? {
            FirstLine::Header(header) => header,
            FirstLine::Torn => return Ok(()),
        };
        match header.on_serial {
            Some(on) if !state_file_exists && on > 0 => {
                return Err(corrupt(format!(
                    "it continues the state at serial {on}, and there is no state file"
                )));
            }
            Some(on) if state_file_exists && state.serial < on => {
                return Err(corrupt(format!(
                    "it continues the state at serial {on}, and the state file is at serial {}: \
                     an older state file than the one it was started on",
                    state.serial
                )));
            }
            _ => {}
        }
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
        while let Some(line) = read(lines.next())? {
            line_no += 1;
            let batch: Batch = match serde_json::from_slice(&line) {
                Ok(b) => b,
                // Its newline landed but not all of it (a power loss may
                // write the pages of a file out of order): never confirmed.
                Err(_) if lines.peek().is_none() => break,
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

    /// How many bytes the journal at `path` holds (0 if there is none).
    pub(crate) fn len(path: &Path) -> u64 {
        fs::metadata(path).map_or(0, |m| m.len())
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

/// An unreadable journal, named with the state file it belongs to.
fn corrupt_journal(path: &Path, reason: String) -> StateFileError {
    let name = path.to_string_lossy();
    let state = name.strip_suffix(".journal").unwrap_or(&name);
    StateFileError::CorruptJournal {
        path: path.to_path_buf(),
        state: PathBuf::from(state),
        reason,
    }
}

/// Longest header line read: a lineage is a UUID.
const MAX_HEADER_BYTES: u64 = 4096;

/// The complete lines of a journal, without their newlines; a last line
/// without one (torn by a crash mid-append) is left out.
struct Lines<R>(R);

impl<R: io::BufRead> Iterator for Lines<R> {
    type Item = io::Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut line = Vec::new();
        match self.0.read_until(b'\n', &mut line) {
            Err(e) => Some(Err(e)),
            Ok(_) if line.pop() == Some(b'\n') => Some(Ok(line)),
            Ok(_) => None,
        }
    }
}

/// Where what a replay reads of `file` ends: past the last line that has
/// its newline and reads as a batch (a replay skips a last line that does
/// not), or past the header, `header` bytes long. What follows is cut
/// before an append, which would otherwise put it mid-journal.
fn end_of_replayed(file: &mut File, header: u64) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let end = newline_before(file, len)?.map_or(0, |i| i + 1);
    if end <= header {
        return Ok(header);
    }
    let start = newline_before(file, end - 1)?.map_or(0, |i| i + 1);
    let length = usize::try_from(end - 1 - start).map_err(io::Error::other)?;
    let mut line = vec![0; length];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut line)?;
    Ok(if serde_json::from_slice::<Batch>(&line).is_ok() {
        end
    } else {
        start
    })
}

/// The offset of the last newline of `file` before `before`, read
/// backwards in chunks.
fn newline_before(file: &mut File, before: u64) -> io::Result<Option<u64>> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = before;
    let mut buffer = vec![0; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buffer[..usize::try_from(end - start).expect("at most CHUNK")];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}
