//! Reading and writing the state file without ever losing it.
//!
//! A write goes to a temporary file in the same directory, is fsynced and
//! renamed over the old one, and the directory is fsynced, so a crash leaves
//! either the old or the new file. The old one is kept as `*.backup`.
//! Between full writes, confirmed pins go to an append-only journal
//! (see [`Journal`]) that loading replays.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::journal::Journal;
use super::pin_table::{PinTable, PinTableBuilder};
use super::state_file_error::StateFileError;
use super::{PinRef, READS_STATE_VERSIONS, STATE_FORMAT_VERSION, State, StoredPin};
use crate::file_io;

/// The on-disk shape of the state (written by [`encode`]).
struct Document {
    format_version: u64,
    lineage: String,
    serial: u64,
    pins: PinTable,
}

const DOCUMENT_FIELDS: &[&str] = &["format_version", "lineage", "serial", "pins"];

/// Reads a [`Document`], its pin list straight into the table (refusing a
/// pin listed twice) without an intermediate list of a million pins. By
/// hand rather than derived, to size the table from the file's length.
struct DocumentSeed {
    /// About how many pins the file holds; a guess, never trusted.
    pins_expected: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for DocumentSeed {
    type Value = Document;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Document, D::Error> {
        d.deserialize_struct("Document", DOCUMENT_FIELDS, self)
    }
}

impl<'de> serde::de::Visitor<'de> for DocumentSeed {
    type Value = Document;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a pinsync state")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        use serde::de::Error;
        let (mut format_version, mut lineage, mut serial, mut pins) = (None, None, None, None);
        while let Some(field) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let twice = |set: bool, name| {
                if set {
                    Err(A::Error::duplicate_field(name))
                } else {
                    Ok(())
                }
            };
            match &*field {
                "format_version" => {
                    twice(format_version.is_some(), "format_version")?;
                    format_version = Some(map.next_value()?);
                }
                "lineage" => {
                    twice(lineage.is_some(), "lineage")?;
                    lineage = Some(map.next_value()?);
                }
                "serial" => {
                    twice(serial.is_some(), "serial")?;
                    serial = Some(map.next_value()?);
                }
                "pins" => {
                    twice(pins.is_some(), "pins")?;
                    pins = Some(map.next_value_seed(Pins {
                        expected: self.pins_expected,
                    })?);
                }
                other => return Err(A::Error::unknown_field(other, DOCUMENT_FIELDS)),
            }
        }
        Ok(Document {
            format_version: format_version
                .ok_or_else(|| A::Error::missing_field("format_version"))?,
            lineage: lineage.ok_or_else(|| A::Error::missing_field("lineage"))?,
            serial: serial.ok_or_else(|| A::Error::missing_field("serial"))?,
            pins: pins.ok_or_else(|| A::Error::missing_field("pins"))?,
        })
    }
}

/// The pin list of a [`Document`].
struct Pins {
    expected: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for Pins {
    type Value = PinTable;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<PinTable, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Pins {
    type Value = PinTable;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of pins")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<PinTable, A::Error> {
        let mut pins = PinTableBuilder::default();
        pins.try_reserve(self.expected);
        while let Some(StoredPin { key, record }) = seq.next_element()? {
            pins.push(key, record);
        }
        pins.build()
            .map_err(|key| serde::de::Error::custom(format!("pin {key} is listed twice")))
    }
}

/// Fewer bytes than any pin pinsync writes takes (with its CID, provider
/// and time, some 120; most take 150 to 200): room for a state's pins from
/// its file's length, so that the list is not copied as it doubles (at two
/// million pins, 340 MB moved). Room not used is never touched, so costs
/// no memory.
const FEWEST_BYTES_A_PIN: u64 = 100;

/// The journal is folded into the state file once it passes 1/this of
/// the file's size. A load replays the journal, so plans read at most
/// that much more; an apply meanwhile writes only what it changed (at a
/// million pins, a rewrite is 370 MB).
const COMPACT_PAST: u64 = 8;

/// What a restore appends to the names of the files it moves aside,
/// before a timestamp.
const REPLACED_MARK: &str = ".replaced-";

/// A state file and its companions (`.backup`, `.journal`, `.lock`).
#[derive(Debug, Clone)]
pub(crate) struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The default state path for a manifest: `pins.yaml` -> `pins.state.json`.
    pub(crate) fn beside_manifest(manifest: &Path) -> Self {
        let stem = manifest
            .file_stem()
            .map_or_else(|| "pins".into(), |s| s.to_string_lossy().into_owned());
        Self::new(manifest.with_file_name(format!("{stem}.state.json")))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn companion(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }

    pub(crate) fn journal_path(&self) -> PathBuf {
        self.companion(".journal")
    }

    pub(crate) fn backup_path(&self) -> PathBuf {
        self.companion(".backup")
    }

    /// The lock file (see [`super::StateLock`]).
    pub(crate) fn lock_path(&self) -> PathBuf {
        super::lock::lock_path(&self.path)
    }

    /// Patterns (`*` for any text) matching every file pinsync keeps beside
    /// this state: its lock and backup, and the copies of the state and
    /// journal that a restore moves aside. Not the state itself, which some
    /// projects commit, nor its journal, which is part of it: the changes
    /// of the applies since the file was last written whole.
    pub(crate) fn companion_patterns(&self) -> Vec<String> {
        let aside = |p: PathBuf| format!("{}{REPLACED_MARK}*", p.display());
        vec![
            self.lock_path().display().to_string(),
            self.backup_path().display().to_string(),
            aside(self.path.clone()),
            aside(self.journal_path()),
        ]
    }

    /// Loads the state, replaying any journal left by an interrupted apply.
    /// A missing file is an empty state.
    pub(crate) fn load(&self) -> Result<State, StateFileError> {
        // Streamed rather than read whole: at 100,000 pins the file is 40 MB
        // that need not sit in memory beside the state it becomes.
        let mut state = match File::open(&self.path) {
            Ok(file) => {
                let length = file.metadata().map_or(0, |m| m.len());
                let reader = io::BufReader::with_capacity(1 << 16, file);
                decode(&self.path, reader, length)?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::new(),
            Err(e) => return Err(StateFileError::io("read state file", &self.path)(e)),
        };
        Journal::replay(&self.journal_path(), &mut state, self.path.exists())?;
        Ok(state)
    }

    /// Whether a journal holds writes not yet folded into the file.
    pub(crate) fn has_journal(&self) -> bool {
        self.journal_path().exists()
    }

    /// Whether the journal has grown past [`COMPACT_PAST`] of the state
    /// file (or there is no state file yet), so that an apply's end
    /// should fold it in.
    pub(crate) fn compaction_due(&self) -> bool {
        let journal = Journal::len(&self.journal_path());
        let file = fs::metadata(&self.path).map_or(0, |m| m.len());
        journal > 0 && journal.saturating_mul(COMPACT_PAST) > file
    }

    /// Replaces the state file atomically with `state`, keeps the previous
    /// file as `.backup`, then drops the journal it supersedes.
    pub(crate) fn save(&self, state: &State) -> Result<(), StateFileError> {
        file_io::replace(&self.path, &encode(state), Some(&self.backup_path()))?;
        Journal::remove(&self.journal_path())?;
        Ok(())
    }
}

/// What [`StateFile::restore`] did.
#[derive(Debug, Clone)]
pub(crate) struct Restored {
    /// Pins in the restored state.
    pub(crate) pins: usize,
    pub(crate) serial: u64,
    /// Where the replaced state file and journal were moved, if they existed.
    pub(crate) moved_aside: Vec<PathBuf>,
}

impl StateFile {
    /// Replaces the state with a copy that parses (by default the `.backup`).
    /// The current file and journal are moved aside, never deleted, so a
    /// restore loses nothing. The caller holds the lock.
    pub(crate) fn restore(&self, from: &Path) -> Result<Restored, StateFileError> {
        let bytes = fs::read(from).map_err(StateFileError::io("read", from))?;
        let mut state = decode(from, &bytes[..], bytes.len() as u64)?;
        // Above every serial the replaced files reached, so a plan saved
        // against any of them is refused; they may be damaged, so read them
        // leniently.
        state.serial = [self.path.clone(), self.journal_path()]
            .iter()
            .map(|p| highest_serial_in(p))
            .fold(state.serial, u64::max)
            .saturating_add(1);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut moved_aside = Vec::new();
        for path in [self.path.clone(), self.journal_path()] {
            if path.exists() {
                let mut aside = path.as_os_str().to_owned();
                aside.push(format!("{REPLACED_MARK}{stamp}"));
                let aside = PathBuf::from(aside);
                fs::rename(&path, &aside).map_err(StateFileError::io("move aside", &path))?;
                moved_aside.push(aside);
            }
        }
        self.save(&state)?;
        Ok(Restored {
            pins: state.pins.len(),
            serial: state.serial,
            moved_aside,
        })
    }
}

/// The highest `"serial": N` in a state file or journal, found without
/// parsing it (it may be the damaged file being replaced); 0 if none. Inside
/// a JSON string the quotes would be escaped, so only keys match.
fn highest_serial_in(path: &Path) -> u64 {
    const KEY: &[u8] = b"\"serial\"";
    let bytes = fs::read(path).unwrap_or_default();
    let mut highest = 0;
    let mut rest = &bytes[..];
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        rest = &rest[at + KEY.len()..];
        let after_colon = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .filter(|&i| rest[i] == b':')
            .map(|i| &rest[i + 1..]);
        if let Some(value) = after_colon {
            let value = value.trim_ascii_start();
            let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
            if let Some(n) = std::str::from_utf8(&value[..digits])
                .ok()
                .and_then(|d| d.parse::<u64>().ok())
            {
                highest = highest.max(n);
            }
        }
    }
    highest
}

/// The state as JSON with one pin per line: compact enough for 100,000 pins,
/// and a change to one pin is a one-line diff.
fn encode(state: &State) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(256 + state.pins.len() * 320);
    let lineage = serde_json::to_string(&state.lineage).expect("a string serialises");
    let _ = write!(
        out,
        "{{\n  \"format_version\": {STATE_FORMAT_VERSION},\n  \"lineage\": {lineage},\n  \"serial\": {},\n  \"pins\": [",
        state.serial
    );
    for (i, (key, record)) in state.pins.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n    " } else { b",\n    " });
        serde_json::to_writer(&mut out, &PinRef { key, record }).expect("a pin serialises");
    }
    out.extend_from_slice(if state.pins.is_empty() {
        b"]\n}\n"
    } else {
        b"\n  ]\n}\n"
    });
    out
}

/// `length`: the file's, to size the pin table (0 if unknown).
fn decode(path: &Path, reader: impl io::Read, length: u64) -> Result<State, StateFileError> {
    use serde::de::DeserializeSeed as _;
    let seed = DocumentSeed {
        // A guess from a length that may be anything (a sparse file of a
        // terabyte): capped, and only reserved where the memory is there.
        pins_expected: usize::try_from((length / FEWEST_BYTES_A_PIN).min(1 << 24)).unwrap_or(0),
    };
    let mut json = serde_json::Deserializer::from_reader(reader);
    let doc = seed
        .deserialize(&mut json)
        .and_then(|doc| json.end().map(|()| doc))
        .map_err(|e| unreadable(path, &e))?;
    if !READS_STATE_VERSIONS
        .map(u64::from)
        .contains(&doc.format_version)
    {
        return Err(StateFileError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: doc.format_version,
        });
    }
    Ok(State {
        lineage: doc.lineage,
        serial: doc.serial,
        pins: doc.pins,
    })
}

/// Why a state file did not decode, read again to say it well: an empty
/// file, or a future format (rather than a list of its unknown fields).
fn unreadable(path: &Path, error: &serde_json::Error) -> StateFileError {
    let corrupt = |reason: String| StateFileError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    // Streamed, as the file may be far larger than memory.
    let read = || File::open(path).map(io::BufReader::new);
    let blank =
        read().is_ok_and(|r| io::Read::bytes(r).all(|b| b.is_ok_and(|b| b.is_ascii_whitespace())));
    if blank {
        return corrupt("the file is empty".into());
    }
    #[derive(Deserialize)]
    struct Versioned {
        format_version: u64,
    }
    match read().map(serde_json::from_reader::<_, Versioned>) {
        Ok(Ok(v))
            if !READS_STATE_VERSIONS
                .map(u64::from)
                .contains(&v.format_version) =>
        {
            StateFileError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: v.format_version,
            }
        }
        _ => corrupt(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write as _;

    use super::*;
    use crate::manifest::{CanonicalCid, Labels, PinKey, Target};
    use crate::state::{PinRecord, PinStatus};

    fn pin(n: u32) -> StoredPin {
        StoredPin {
            key: PinKey {
                target: Target {
                    provider: "arkive".into(),
                    cluster: Some("cl1-eu".into()),
                },
                cid: CanonicalCid::for_test(&format!("bafy{n}")),
            },
            record: PinRecord {
                cid_as_pinned: Some(format!("Qm{n}").into()),
                labels: Labels {
                    name: Some(format!("p{n}").into()),
                    meta: [("team".to_string(), "web".to_string())].into(),
                    replication: None,
                },
                pin_id: Some(format!("id-{n}").into()),
                pinned_at: "2026-01-01T00:00:00Z".into(),
                status: PinStatus::Managed,
                observed: None,
                foreign: false,
            },
        }
    }

    fn state_with(pins: &[u32]) -> State {
        let mut s = State::new();
        s.ensure_lineage();
        s.serial = 3;
        for &n in pins {
            s.record(pin(n));
        }
        s
    }

    #[test]
    fn save_then_load_round_trips_in_the_flat_documented_shape() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let state = state_with(&[1, 2]);
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap(), state);
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(file.path()).unwrap()).unwrap();
        assert_eq!(
            json["pins"][0],
            serde_json::json!({"provider": "arkive", "cluster": "cl1-eu", "cid": pin(1).key.cid.to_string(), "cid_as_pinned": "Qm1",
                "name": "p1", "meta": {"team": "web"}, "pin_id": "id-1",
                "pinned_at": "2026-01-01T00:00:00Z"}),
            "a managed pin's status is left out"
        );
        // `state list --json` and the journal keep it.
        assert_eq!(serde_json::to_value(pin(1)).unwrap()["status"], "managed");
        assert_eq!(json["format_version"], 4);
        assert_eq!(json["serial"], 3);
    }

    #[test]
    fn what_the_provider_said_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let mut state = state_with(&[1]);
        state.pins.values_mut().for_each(|r| {
            r.observed = Some(Box::new(crate::state::Observed {
                status: crate::state::ProviderStatus::Failed,
                at: "2026-12-01T10:00:00Z".into(),
            }));
        });
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap(), state);
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(file.path()).unwrap()).unwrap();
        assert_eq!(json["pins"][0]["provider_status"], "failed");
        assert_eq!(json["pins"][0]["checked_at"], "2026-12-01T10:00:00Z");
    }

    #[test]
    fn a_pin_whose_cid_is_not_canonical_is_refused_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let text = br#"{"format_version": 3, "lineage": "l", "serial": 1, "pins": [
    {"provider": "aioz", "cid": "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "pinned_at": "2026-01-01T00:00:00Z", "status": "managed"}
  ]}"#;
        fs::write(file.path(), text).unwrap();
        let error = file.load().unwrap_err().to_string();
        assert!(
            error.contains("is not a CID in canonical form") && error.contains("line 2"),
            "{error}"
        );
        assert_eq!(fs::read(file.path()).unwrap(), text, "left untouched");
    }

    #[test]
    fn a_version_1_state_is_read_and_kept_as_the_backup_of_its_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let v1 = br#"{"format_version": 1, "lineage": "old", "serial": 4, "pins": [
    {"provider": "aioz", "cid": "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", "name": "a", "pin_id": "id-1", "pinned_at": "2026-01-01T00:00:00Z", "status": "managed"}
  ]}"#;
        fs::write(file.path(), v1).unwrap();
        let state = file.load().unwrap();
        assert_eq!(
            (state.lineage.as_str(), state.serial, state.pins.len()),
            ("old", 4, 1)
        );
        let record = state.pins.values().next().unwrap();
        assert_eq!(record.pin_id.as_deref(), Some("id-1"));
        assert_eq!(record.observed, None);
        file.save(&state).unwrap();
        assert_eq!(
            fs::read(file.backup_path()).unwrap(),
            v1,
            "the original, as it was"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(file.path()).unwrap()).unwrap();
        assert_eq!(json["format_version"], 4);
        assert_eq!(file.load().unwrap(), state);
    }

    #[test]
    fn save_keeps_the_previous_version_as_backup_and_drops_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let first = state_with(&[1]);
        file.save(&first).unwrap();
        let mut journal = Journal::create(&file.journal_path(), &first).unwrap();
        journal.append(4, &[pin(2)], &[]).unwrap();
        let second = file.load().unwrap();
        file.save(&second).unwrap();
        assert!(!file.has_journal());
        let backup = StateFile::new(file.backup_path()).load().unwrap();
        assert_eq!(backup, first);
        assert_eq!(file.load().unwrap().pins.len(), 2);
    }

    #[test]
    fn journal_replays_batches_skips_folded_ones_and_ignores_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let base = state_with(&[1]);
        file.save(&base).unwrap();
        let mut journal = Journal::create(&file.journal_path(), &base).unwrap();
        journal.append(3, &[pin(9)], &[]).unwrap(); // already folded into serial 3
        journal.append(4, &[pin(2), pin(3)], &[]).unwrap();
        journal.append(5, &[pin(4)], &[pin(2).key]).unwrap();
        drop(journal);
        let mut f = OpenOptions::new()
            .append(true)
            .open(file.journal_path())
            .unwrap();
        f.write_all(br#"{"serial":6,"pins":[{"provider":"#).unwrap();
        let loaded = file.load().unwrap();
        assert_eq!(loaded.serial, 5);
        let cids: Vec<CanonicalCid> = loaded.pins.keys().map(|k| k.cid.clone()).collect();
        assert_eq!(
            cids,
            [1, 3, 4].map(|n| pin(n).key.cid),
            "pin 2 was unpinned at serial 5"
        );
    }

    /// A state of `n` pins saved, and a journal of one batch on top.
    fn saved_with_a_journal(file: &StateFile, n: u32) -> State {
        let mut state = state_with(&(1..=n).collect::<Vec<_>>());
        file.save(&state).unwrap();
        let mut journal = Journal::open(&file.journal_path(), &state).unwrap();
        journal.append(4, &[pin(1000)], &[]).unwrap();
        state.serial = 4;
        state.record(pin(1000));
        state
    }

    #[test]
    fn an_apply_appends_to_the_journal_it_finds_cutting_a_torn_tail_first() {
        use crate::state::StateStore as _;
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let state = saved_with_a_journal(&file, 2);
        for torn in [
            &br#"{"serial":5,"pins":[{"provider":"#[..],
            // Its newline landed, the rest did not.
            b"\0\0\0\0\n",
        ] {
            let mut f = OpenOptions::new()
                .append(true)
                .open(file.journal_path())
                .unwrap();
            f.write_all(torn).unwrap();
            assert_eq!(file.load().unwrap(), state, "the torn tail is not read");
            let before = fs::metadata(file.path()).unwrap().modified().unwrap();
            let mut recorder = file.recorder(&state).unwrap();
            recorder.append(5, &[pin(2000)], &[pin(1).key]).unwrap();
            drop(recorder);
            let mut expected = state.clone();
            expected.serial = 5;
            expected.record(pin(2000));
            expected.pins.remove(&pin(1).key);
            assert_eq!(file.load().unwrap(), expected);
            assert_eq!(
                fs::metadata(file.path()).unwrap().modified().unwrap(),
                before,
                "the state file is not rewritten"
            );
            // Back to the one batch, for the next tail.
            file.save(&state).unwrap();
            Journal::open(&file.journal_path(), &state)
                .unwrap()
                .append(4, &[pin(1000)], &[])
                .unwrap();
        }
    }

    #[test]
    fn a_journal_whose_header_never_landed_is_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let state = state_with(&[1]);
        file.save(&state).unwrap();
        fs::write(file.journal_path(), b"{\"journal_for_lin").unwrap();
        assert_eq!(file.load().unwrap(), state);
        Journal::open(&file.journal_path(), &state)
            .unwrap()
            .append(4, &[pin(2)], &[])
            .unwrap();
        assert_eq!(file.load().unwrap().pins.len(), 2);
    }

    #[test]
    fn a_journal_of_another_lineage_is_not_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let state = saved_with_a_journal(&file, 1);
        let before = fs::read(file.journal_path()).unwrap();
        let mut other = state.clone();
        other.lineage = "another".into();
        let err = Journal::open(&file.journal_path(), &other)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lineage") && err.contains("s.json.journal"),
            "{err}"
        );
        assert_eq!(fs::read(file.journal_path()).unwrap(), before, "untouched");
    }

    #[test]
    fn an_apply_compacts_only_once_the_journal_passes_an_eighth_of_the_state() {
        use crate::state::StateStore as _;
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let mut state = saved_with_a_journal(&file, 100);
        assert!(!file.compaction_due(), "one pin on a hundred");
        file.finish(&state).unwrap();
        assert!(
            file.has_journal(),
            "kept: the change is all that is written"
        );
        let file_len = fs::metadata(file.path()).unwrap().len();
        let mut recorder = file.recorder(&state).unwrap();
        let mut serial = state.serial;
        while Journal::len(&file.journal_path()) * COMPACT_PAST <= file_len {
            serial += 1;
            let next = pin(u32::try_from(serial).unwrap() + 5000);
            recorder
                .append(serial, std::slice::from_ref(&next), &[])
                .unwrap();
            state.serial = serial;
            state.record(next);
        }
        drop(recorder);
        assert!(file.compaction_due());
        file.finish(&state).unwrap();
        assert!(!file.has_journal(), "folded in");
        assert_eq!(file.load().unwrap(), state);
        assert_eq!(
            StateFile::new(file.backup_path())
                .load()
                .unwrap()
                .pins
                .len(),
            100
        );

        // A clean stop folds in even a small journal.
        let state = saved_with_a_journal(&file, 100);
        file.compact(&state).unwrap();
        assert!(!file.has_journal());
        assert_eq!(file.load().unwrap(), state);
    }

    #[test]
    fn a_header_whose_newline_landed_alone_is_no_journal_and_is_started_again() {
        use crate::state::StateStore as _;
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let state = state_with(&[1]);
        file.save(&state).unwrap();
        fs::write(file.journal_path(), b"\0\0\0\0\0\0\0\0\n").unwrap();
        assert_eq!(file.load().unwrap(), state);
        file.recorder(&state)
            .unwrap()
            .append(4, &[pin(2)], &[])
            .unwrap();
        assert_eq!(file.load().unwrap().pins.len(), 2);
    }

    /// A first line longer than any header (a hostile lineage): refused by
    /// the load and by the next apply alike, the journal left as it is.
    #[test]
    fn a_journal_whose_first_line_is_too_long_is_refused_not_started_again() {
        use crate::state::StateStore as _;
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let mut state = state_with(&[1]);
        state.lineage = "L".repeat(5000);
        file.save(&state).unwrap();
        Journal::create(&file.journal_path(), &state)
            .unwrap()
            .append(4, &[pin(2)], &[])
            .unwrap();
        let before = fs::read(file.journal_path()).unwrap();
        let err = file.load().unwrap_err().to_string();
        assert!(
            err.contains("longer than 4096 bytes") && err.contains("s.json.journal"),
            "{err}"
        );
        assert!(err.contains("state restore --from"), "{err}");
        let err = file.recorder(&state).err().expect("refused").to_string();
        assert!(err.contains("longer than 4096 bytes"), "{err}");
        assert_eq!(fs::read(file.journal_path()).unwrap(), before, "untouched");
    }

    /// A journal replays only onto the state it was started on, or a later
    /// one: not alone, not onto an older file.
    #[test]
    fn a_journal_without_the_state_it_continues_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let state = saved_with_a_journal(&file, 5);
        let journal = fs::read(file.journal_path()).unwrap();
        fs::remove_file(file.path()).unwrap();
        let err = file.load().unwrap_err().to_string();
        assert!(err.contains("no state file"), "{err}");
        let mut older = state.clone();
        older.serial = 2;
        file.save(&older).unwrap();
        fs::write(file.journal_path(), &journal).unwrap();
        let err = file.load().unwrap_err().to_string();
        assert!(err.contains("at serial 2"), "{err}");
        // On the state it was started on, it replays.
        let mut base = state.clone();
        base.serial = 3;
        base.pins.remove(&pin(1000).key);
        file.save(&base).unwrap();
        fs::write(file.journal_path(), &journal).unwrap();
        assert_eq!(file.load().unwrap(), state);
    }

    #[test]
    fn garbage_inside_the_journal_is_an_error_not_a_silent_skip() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let base = state_with(&[]);
        file.save(&base).unwrap();
        let mut journal = Journal::create(&file.journal_path(), &base).unwrap();
        journal.append(4, &[pin(1)], &[]).unwrap();
        drop(journal);
        let mut f = OpenOptions::new()
            .append(true)
            .open(file.journal_path())
            .unwrap();
        f.write_all(b"not json\n").unwrap();
        let mut journal = OpenOptions::new()
            .append(true)
            .open(file.journal_path())
            .unwrap();
        journal.write_all(br#"{"serial":5,"pins":[]}"#).unwrap();
        journal.write_all(b"\n").unwrap();
        let err = file.load().unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn restore_gives_a_serial_above_the_replaced_state_and_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let mut backup = state_with(&[1]);
        backup.serial = 1;
        file.save(&backup).unwrap();
        let mut current = backup.clone();
        current.serial = 2;
        current.record(pin(2));
        file.save(&current).unwrap();
        let restored = file.restore(&file.backup_path()).unwrap();
        assert_eq!(restored.serial, 3, "above both 1 and 2");
        assert_eq!(file.load().unwrap().serial, 3);

        // A damaged current file and a journal still count.
        fs::write(
            file.path(),
            br#"{"format_version": 1, "lineage": "x", "serial": 40, "pins": [{"prov"#,
        )
        .unwrap();
        fs::write(
            file.journal_path(),
            b"{\"journal_for_lineage\":\"x\"}\n{\"serial\": 41,\"pins\":[]}\n{\"serial\":4",
        )
        .unwrap();
        let restored = file.restore(&file.backup_path()).unwrap();
        assert_eq!(restored.serial, 42);
        assert_eq!(highest_serial_in(Path::new("/nonexistent")), 0);
    }

    /// Every file left beside a state by saves, a journal, the lock and a
    /// restore matches one of the patterns, and every pattern matches one.
    #[test]
    fn the_companion_patterns_match_every_file_beside_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let state = state_with(&[1]);
        file.save(&state).unwrap();
        file.save(&state).unwrap();
        let _lock =
            super::super::StateLock::acquire(file.path(), std::time::Duration::ZERO, "test")
                .unwrap();
        Journal::create(&file.journal_path(), &state)
            .unwrap()
            .append(4, &[pin(2)], &[])
            .unwrap();
        file.restore(&file.backup_path()).unwrap();
        Journal::create(&file.journal_path(), &state).unwrap();

        let patterns = file.companion_patterns();
        let matches = |pattern: &str, name: &str| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        };
        let mut unmatched_patterns: Vec<&String> = patterns.iter().collect();
        for entry in fs::read_dir(dir.path()).unwrap() {
            let name = entry.unwrap().path().display().to_string();
            if [file.path(), &file.journal_path()]
                .map(|p| p.display().to_string())
                .contains(&name)
            {
                continue;
            }
            assert!(
                patterns.iter().any(|p| matches(p, &name)),
                "{name} matches none of {patterns:?}"
            );
            unmatched_patterns.retain(|p| !matches(p, &name));
        }
        assert!(
            unmatched_patterns.is_empty(),
            "no file for {unmatched_patterns:?}"
        );
    }

    #[test]
    fn a_state_file_with_its_pins_out_of_order_loads_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("s.json"));
        let text = serde_json::json!({
            "format_version": 4, "lineage": "l", "serial": 3, "pins": [pin(3), pin(1), pin(2)]
        });
        fs::write(file.path(), text.to_string()).unwrap();
        let loaded = file.load().unwrap();
        let mut expected = state_with(&[1, 2, 3]);
        expected.lineage = "l".into();
        assert_eq!(loaded, expected);
        assert!(loaded.pins.keys().is_sorted());
    }

    #[test]
    fn unreadable_states_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let file = StateFile::new(&path);
        let good = serde_json::to_string(&serde_json::json!({
            "format_version": 1, "lineage": "l", "serial": 1, "pins": [pin(1), pin(1)]
        }))
        .unwrap();
        for (bytes, why) in [
            (&b""[..], "empty"),
            (b"{\"format_version\": 1, \"lin", "EOF"),
            (b"{\"format_version\": 99}", "format version 99"),
            (good.as_bytes(), "listed twice"),
            (
                b"{\"format_version\": 4, \"lineage\": \"l\", \"serial\": 1, \"pins\": [], \"x\": 1}",
                "unknown field `x`",
            ),
            (
                b"{\"format_version\": 4, \"lineage\": \"l\", \"pins\": []}",
                "missing field `serial`",
            ),
            (
                b"{\"format_version\": 4, \"lineage\": \"l\", \"lineage\": \"m\"}",
                "duplicate field `lineage`",
            ),
            (
                b"{\"format_version\": 4, \"lineage\": \"l\", \"serial\": 1, \"pins\": []} {}",
                "trailing characters",
            ),
            (b"[4, \"l\", 1, []]", "expected a pinsync state"),
        ] {
            fs::write(&path, bytes).unwrap();
            let err = file.load().unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
            assert!(err.contains("s.json"), "{err}");
        }
    }

    #[test]
    fn a_huge_sparse_state_file_is_refused_and_explained_without_reading_it_whole() {
        // Read whole, it would not fit in memory; its length also asks
        // room for billions of pins.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let f = fs::File::create(&path).unwrap();
        f.set_len(1 << 40).unwrap();
        let err = StateFile::new(&path).load().unwrap_err().to_string();
        assert!(err.contains("s.json"), "{err}");
        assert!(!err.contains("empty"), "{err}");
    }
}
