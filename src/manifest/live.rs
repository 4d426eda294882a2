//! A manifest kept up to date file by file, for `watch`.
//!
//! At a million pins over a hundred included files a load takes seconds;
//! an edit of one file should cost that file. [`LiveManifest::update`]
//! looks at each file's size, times and inode (and, where those changed,
//! the hash of its bytes), parses again only the included files that
//! changed or appeared, drops the pins of those gone, and merges the
//! difference into the sorted model in place. A change to the main
//! manifest (its providers, defaults or include list) loads everything
//! again, and so does any problem, so that the whole load says where it
//! is, at file:line:col, as `validate` would.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::hash::BuildHasher as _;
use std::path::{Path, PathBuf};

use super::include::{self, IncludeEntry, LoadObserver};
use super::parse::{self, Context};
use super::{DesiredPin, Manifest, PinKey};

/// Lines of a file's pin changes logged at most; the counts cover them all.
const MAX_LINES: usize = 20;

/// A manifest, and what it takes to bring it up to date file by file.
pub(crate) struct LiveManifest {
    manifest: Manifest,
    /// For each pin of `manifest.pins`, in order, its file: an index into
    /// `files`.
    owners: Vec<u32>,
    /// The files read: the main manifest first. A file no longer included
    /// keeps its slot, empty, so that `owners` stay valid.
    files: Vec<Option<Seen>>,
    /// What the main manifest declares, to read an included file alone.
    context: Context,
    /// The main manifest's include entries.
    entries: Vec<IncludeEntry>,
}

/// A file as it was last read.
struct Seen {
    path: PathBuf,
    stamp: Stamp,
    hash: u64,
    /// Modified so shortly before it was read that a second write may
    /// carry the same times (file systems keep them at a clock tick): read
    /// again at the next look whatever its stamp, as git does with a
    /// "racily clean" index entry.
    racy: bool,
}

/// How recent a modification makes a read racy: far above any file
/// system's time granularity.
const RACY: std::time::Duration = std::time::Duration::from_secs(2);

impl Seen {
    /// `bytes` as read from `path`, `metadata` taken as it was opened.
    fn new(path: &Path, bytes: &[u8], metadata: &fs::Metadata) -> Self {
        let stamp = Stamp::of(metadata);
        let now = std::time::SystemTime::now();
        let racy = stamp
            .modified
            .is_none_or(|m| now.duration_since(m).map_or(true, |age| age < RACY));
        Self {
            path: path.to_path_buf(),
            stamp,
            hash: hash(bytes),
            racy,
        }
    }
}

/// What says a file may have changed without reading it: taken as the
/// file is opened, before its bytes are read, so that a write racing the
/// read shows as a change at the next look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    /// The inode change time: a rename over the file or a write that
    /// keeps its size and modification time still moves it.
    changed: (i64, i64),
    inode: (u64, u64),
}

impl Stamp {
    fn of(metadata: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
            inode: (metadata.dev(), metadata.ino()),
        }
    }
}

/// What a second look at a file found.
enum Reread {
    Same,
    /// Written, or its times changed, or racy, but its bytes are the same:
    /// what to remember of it now.
    Touched(Seen),
    Changed(Vec<u8>, fs::Metadata),
    /// Gone, unreadable or too large: the whole load says what.
    Failed,
}

/// Whether the file `seen` describes changed: its stamp, then its bytes.
fn reread(seen: &Seen) -> Reread {
    match fs::metadata(&seen.path) {
        Ok(m) if Stamp::of(&m) == seen.stamp && !seen.racy => return Reread::Same,
        Ok(_) => {}
        Err(_) => return Reread::Failed,
    }
    match read_file(&seen.path) {
        Some((bytes, metadata)) if hash(&bytes) == seen.hash => {
            Reread::Touched(Seen::new(&seen.path, &bytes, &metadata))
        }
        Some((bytes, metadata)) => Reread::Changed(bytes, metadata),
        None => Reread::Failed,
    }
}

/// A manifest file's bytes and its metadata as opened, under the size
/// limit; `None` if it cannot be read whole.
fn read_file(path: &Path) -> Option<(Vec<u8>, fs::Metadata)> {
    use crate::file_io::{Bounded, read_bounded};
    match read_bounded(path, parse::MAX_MANIFEST_BYTES as u64) {
        Ok(Bounded::Read(bytes, metadata)) => Some((bytes, metadata)),
        _ => None,
    }
}

/// The hash a file is known by between looks. Keyed at random for the
/// process: whoever writes an included file cannot make an edit hash as
/// the text it replaces, and so go unseen.
fn hash(bytes: &[u8]) -> u64 {
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEYS.get_or_init(std::hash::RandomState::new)
        .hash_one(bytes)
}

/// What an update changed.
#[derive(Debug, Default)]
pub(crate) struct Update {
    /// Everything was read again: the main manifest changed.
    pub(crate) reloaded: bool,
    /// Each file whose pins changed, in the order of the changes' keys.
    pub(crate) files: Vec<FileDiff>,
    /// Every pin added, removed or changed, sorted; left empty when
    /// everything was read again.
    pub(crate) touched: Vec<PinKey>,
}

/// The pins one file added, removed or changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FileDiff {
    pub(crate) path: PathBuf,
    pub(crate) added: usize,
    pub(crate) removed: usize,
    pub(crate) changed: usize,
    /// The first of them, `+ TARGET CID "NAME"` (`-`, `~`).
    pub(crate) lines: Vec<String>,
}

/// Records each file's stamp and hash as a load reads it.
struct Stamps<'o> {
    observer: &'o mut dyn LoadObserver,
    seen: HashMap<PathBuf, Seen>,
}

impl LoadObserver for Stamps<'_> {
    fn read(&mut self, path: &Path, bytes: &[u8], metadata: &fs::Metadata) {
        self.observer.read(path, bytes, metadata);
        self.seen
            .insert(path.to_path_buf(), Seen::new(path, bytes, metadata));
    }

    fn included(&mut self, entries: &[IncludeEntry], files: &[PathBuf]) {
        self.observer.included(entries, files);
    }
}

impl LiveManifest {
    /// Loads the manifest at `path` whole, telling `observer` as
    /// [`super::load_observed`] does.
    pub(crate) fn load(path: &Path, observer: &mut dyn LoadObserver) -> anyhow::Result<Self> {
        let mut stamps = Stamps {
            observer,
            seen: HashMap::new(),
        };
        let (mut manifest, kept) = super::load_kept(path, &mut stamps)?;
        // The parse built the pins in place of a list of larger entries
        // (each with where it was written), and all of that list was
        // touched: moved to a list of their own size, a million pins on
        // two targets hold 48 MB less for the life of watch.
        let mut pins = Vec::with_capacity(manifest.pins.len());
        pins.append(&mut manifest.pins);
        manifest.pins = pins;
        let mut seen = stamps.seen;
        let files = std::iter::once(path)
            .chain(manifest.included.iter().map(PathBuf::as_path))
            .map(|p| seen.remove(p))
            .collect();
        Ok(Self {
            manifest,
            owners: kept.owners,
            files,
            context: kept.context,
            entries: kept.entries,
        })
    }

    pub(crate) fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Brings the model up to date with the files on disk. On an error
    /// (the manifest as it is now does not load) the model is the last
    /// good one, unchanged.
    pub(crate) fn update(&mut self, observer: &mut dyn LoadObserver) -> anyhow::Result<Update> {
        let main = self.files[0].as_ref().expect("the main manifest is read");
        match reread(main) {
            Reread::Same => {}
            Reread::Touched(seen) => self.files[0] = Some(seen),
            Reread::Changed(..) | Reread::Failed => return self.reload(observer),
        }
        let resolved = include::resolve(&self.manifest.path, &self.entries);
        if !resolved.problems.is_empty() {
            return self.reload(observer);
        }
        let paths: Vec<PathBuf> = resolved.files.into_iter().map(|f| f.path).collect();
        observer.included(&self.entries, &paths);
        let ids: HashMap<PathBuf, u32> = self
            .files
            .iter()
            .enumerate()
            .skip(1)
            .filter_map(|(id, f)| Some((f.as_ref()?.path.clone(), id as u32)))
            .collect();
        // The slots change only once the whole update succeeds.
        let mut read: Vec<Reading> = Vec::new();
        let mut touched: Vec<(u32, Seen)> = Vec::new();
        let mut next_id = self.files.len() as u32;
        for path in &paths {
            let (id, bytes, metadata) = match ids.get(path) {
                Some(&id) => {
                    let seen = self.files[id as usize].as_ref().expect("listed");
                    match reread(seen) {
                        Reread::Same => continue,
                        Reread::Touched(seen) => {
                            touched.push((id, seen));
                            continue;
                        }
                        Reread::Changed(bytes, metadata) => (id, bytes, metadata),
                        Reread::Failed => return self.reload(observer),
                    }
                }
                None => match read_file(path) {
                    Some((bytes, metadata)) => {
                        next_id += 1;
                        (next_id - 1, bytes, metadata)
                    }
                    None => return self.reload(observer),
                },
            };
            observer.read(path, &bytes, &metadata);
            let pins =
                match parse::included_pins(path, &bytes, &self.context, &self.manifest.providers) {
                    Ok(pins) => pins,
                    Err(_) => return self.reload(observer),
                };
            read.push(Reading {
                id,
                seen: Some(Seen::new(path, &bytes, &metadata)),
                pins,
            });
        }
        let kept: BTreeSet<&Path> = paths.iter().map(PathBuf::as_path).collect();
        for (id, file) in self.files.iter().enumerate().skip(1) {
            if file
                .as_ref()
                .is_some_and(|f| !kept.contains(f.path.as_path()))
            {
                read.push(Reading {
                    id: id as u32,
                    seen: None,
                    pins: Vec::new(),
                });
            }
        }
        for (id, seen) in touched {
            self.files[id as usize] = Some(seen);
        }
        if read.is_empty() {
            return Ok(Update::default());
        }
        let Some(update) = self.merge(&mut read) else {
            // A CID on a target twice, across files: the whole load says where.
            return self.reload(observer);
        };
        for reading in read {
            let slot = reading.id as usize;
            if slot >= self.files.len() {
                self.files.resize_with(slot + 1, || None);
            }
            self.files[slot] = reading.seen;
        }
        self.manifest.included = paths;
        Ok(update)
    }

    /// Loads everything again, and says what changed file by file.
    fn reload(&mut self, observer: &mut dyn LoadObserver) -> anyhow::Result<Update> {
        let fresh = Self::load(&self.manifest.path.clone(), observer)?;
        let old = self.pins_with_paths((0..self.owners.len()).collect());
        let new = fresh.pins_with_paths((0..fresh.owners.len()).collect());
        let (files, _, _) = differences(&old, &new, false);
        drop((old, new));
        *self = fresh;
        Ok(Update {
            reloaded: true,
            files,
            touched: Vec::new(),
        })
    }

    /// The pins at `indices` (in key order), each with its file's path.
    fn pins_with_paths(&self, indices: Vec<usize>) -> Vec<PinAt<'_>> {
        indices
            .into_iter()
            .map(|i| {
                let (key, pin) = &self.manifest.pins[i];
                let path = self.files[self.owners[i] as usize]
                    .as_ref()
                    .map_or(Path::new(""), |f| f.path.as_path());
                PinAt {
                    index: i,
                    key,
                    pin,
                    path,
                }
            })
            .collect()
    }

    /// Replaces the pins of the files `read` names with their new ones;
    /// `None` if a new pin's key is already another file's.
    fn merge(&mut self, read: &mut [Reading]) -> Option<Update> {
        let ids: BTreeSet<u32> = read.iter().map(|r| r.id).collect();
        let old_indices: Vec<usize> = (0..self.owners.len())
            .filter(|&i| ids.contains(&self.owners[i]))
            .collect();
        let mut incoming: Vec<(PinKey, DesiredPin, u32)> = Vec::new();
        for r in read.iter_mut() {
            let id = r.id;
            incoming.extend(
                std::mem::take(&mut r.pins)
                    .into_iter()
                    .map(|(k, p)| (k, p, id)),
            );
        }
        incoming.sort_by(|a, b| a.0.cmp(&b.0));
        if incoming.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        let paths: HashMap<u32, &Path> = read
            .iter()
            .filter_map(|r| Some((r.id, r.seen.as_ref()?.path.as_path())))
            .chain(ids.iter().filter_map(|&id| {
                Some((id, self.files.get(id as usize)?.as_ref()?.path.as_path()))
            }))
            .collect();
        let old = self.pins_with_paths(old_indices);
        let new: Vec<PinAt<'_>> = incoming
            .iter()
            .enumerate()
            .map(|(i, (key, pin, id))| PinAt {
                index: i,
                key,
                pin,
                path: paths.get(id).copied().unwrap_or(Path::new("")),
            })
            .collect();
        let (files, touched, steps) = differences(&old, &new, true);
        let mut removed: Vec<usize> = Vec::new();
        let mut added: Vec<usize> = Vec::new();
        for step in steps {
            match step {
                Step::Removed(i) => removed.push(i),
                Step::Added(j) => added.push(j),
                Step::Changed(i, j) => {
                    removed.push(i);
                    added.push(j);
                }
            }
        }
        drop((old, new));
        removed.sort_unstable();
        // A new key held by a file not read again is a duplicate.
        for &j in &added {
            if let Ok(i) = self
                .manifest
                .pins
                .binary_search_by(|(k, _)| k.cmp(&incoming[j].0))
                && removed.binary_search(&i).is_err()
            {
                return None;
            }
        }
        let mut additions: Vec<Option<(PinKey, DesiredPin, u32)>> =
            incoming.into_iter().map(Some).collect();
        let additions: Vec<((PinKey, DesiredPin), u32)> = added
            .into_iter()
            .filter_map(|j| additions[j].take())
            .map(|(k, p, id)| ((k, p), id))
            .collect();
        remove_at(&mut self.manifest.pins, &mut self.owners, &removed);
        merge_in(&mut self.manifest.pins, &mut self.owners, additions);
        Some(Update {
            reloaded: false,
            files,
            touched,
        })
    }
}

/// An included file read anew: its slot, what was seen of it (nothing
/// when it is gone), and its pins.
struct Reading {
    id: u32,
    seen: Option<Seen>,
    pins: Vec<(PinKey, DesiredPin)>,
}

/// A pin of the model with where it is and which file wrote it.
struct PinAt<'a> {
    /// In the list it came from.
    index: usize,
    key: &'a PinKey,
    pin: &'a DesiredPin,
    path: &'a Path,
}

/// A difference between two lists of pins.
enum Step {
    Removed(usize),
    Added(usize),
    /// The same key in the same file, with other labels or origins.
    Changed(usize, usize),
}

/// Walks `old` and `new` (each sorted by key) together: each file's diff,
/// the keys touched (when `keys`, sorted) and the steps from one to the
/// other. A pin moved from one file to another is removed from the first
/// and added to the second.
fn differences(
    old: &[PinAt<'_>],
    new: &[PinAt<'_>],
    keys: bool,
) -> (Vec<FileDiff>, Vec<PinKey>, Vec<Step>) {
    let mut steps = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) => o.key.cmp(n.key),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                steps.push(Step::Removed(i));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                steps.push(Step::Added(j));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (o, n) = (&old[i], &new[j]);
                if o.path != n.path {
                    steps.push(Step::Removed(i));
                    steps.push(Step::Added(j));
                } else if o.pin != n.pin {
                    steps.push(Step::Changed(i, j));
                }
                i += 1;
                j += 1;
            }
        }
    }
    let mut files: Vec<FileDiff> = Vec::new();
    let mut touched = Vec::new();
    let mut note = |at: &PinAt<'_>, sign: char| {
        if keys {
            touched.push(at.key.clone());
        }
        let diff = match files.iter_mut().find(|f| f.path == at.path) {
            Some(diff) => diff,
            None => {
                files.push(FileDiff {
                    path: at.path.to_path_buf(),
                    ..FileDiff::default()
                });
                files.last_mut().expect("just pushed")
            }
        };
        match sign {
            '+' => diff.added += 1,
            '-' => diff.removed += 1,
            _ => diff.changed += 1,
        }
        if diff.lines.len() < MAX_LINES {
            let name = at
                .pin
                .labels
                .name
                .as_deref()
                .map(|n| format!(" {:?}", n.replace(char::is_control, " ")))
                .unwrap_or_default();
            diff.lines.push(format!(
                "{sign} {} {}{name}",
                at.key.target,
                at.pin.sent_cid(at.key)
            ));
        }
    };
    for step in &steps {
        match *step {
            Step::Removed(i) => note(&old[i], '-'),
            Step::Added(j) => note(&new[j], '+'),
            Step::Changed(_, j) => note(&new[j], '~'),
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    touched.dedup(); // a move between files is two steps of one key
    let steps = steps
        .into_iter()
        .map(|s| match s {
            Step::Removed(i) => Step::Removed(old[i].index),
            Step::Added(j) => Step::Added(new[j].index),
            Step::Changed(i, j) => Step::Changed(old[i].index, new[j].index),
        })
        .collect();
    (files, touched, steps)
}

/// Removes the entries at `sorted` (ascending indices) from both lists,
/// keeping the rest in order, in one pass.
fn remove_at<T>(items: &mut Vec<T>, owners: &mut Vec<u32>, sorted: &[usize]) {
    let Some(&first) = sorted.first() else {
        return;
    };
    let mut gone = sorted.iter().peekable();
    let mut kept = first;
    for i in first..items.len() {
        if gone.peek() == Some(&&i) {
            gone.next();
            continue;
        }
        items.swap(kept, i);
        owners.swap(kept, i);
        kept += 1;
    }
    items.truncate(kept);
    owners.truncate(kept);
}

/// Merges `additions` (sorted by key, none already there) into `items`
/// (sorted by key) in place, from the back: each entry moves at most once
/// and no second list of the model is made.
fn merge_in(
    items: &mut Vec<(PinKey, DesiredPin)>,
    owners: &mut Vec<u32>,
    additions: Vec<((PinKey, DesiredPin), u32)>,
) {
    if additions.is_empty() {
        return;
    }
    let mut additions = additions;
    let mut old = items.len();
    // Room at the end; what fills it is swapped out again below.
    items.extend(additions.iter().map(|(item, _)| item.clone()));
    owners.extend(additions.iter().map(|(_, owner)| *owner));
    let mut new = additions.len();
    let mut to = items.len();
    while new > 0 {
        to -= 1;
        if old > 0 && items[old - 1].0 > additions[new - 1].0.0 {
            items.swap(to, old - 1);
            owners.swap(to, old - 1);
            old -= 1;
        } else {
            let (item, owner) = &mut additions[new - 1];
            std::mem::swap(&mut items[to], item);
            owners[to] = *owner;
            new -= 1;
        }
    }
}

#[cfg(test)]
mod tests;
