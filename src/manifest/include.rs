//! `include:`: a manifest split over several files.
//!
//! The main manifest lists paths and globs, relative to its own directory;
//! each entry is expanded here (matches sorted bytewise, the entries in
//! their order) into the files the parser then reads one after another.
//! Globs are matched by the `glob` crate (`*`, `?`, `[...]`, `**`), with
//! the shell's rules: `*` never crosses a `/` and never matches a leading
//! `.`, so editors' hidden swap and lock files are not included.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Position;

/// One entry of `include:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IncludeEntry {
    /// The path or glob as the manifest writes it.
    pub(crate) written: String,
    /// `optional: true`: matching nothing (or a missing file) is fine.
    pub(crate) optional: bool,
    /// Where the entry is written in the main manifest.
    pub(crate) at: Position,
}

impl IncludeEntry {
    /// Whether the entry is a glob rather than a plain path.
    pub(crate) fn is_glob(&self) -> bool {
        has_wildcards(&self.written)
    }
}

/// Whether `text` holds a character a glob gives meaning to.
pub(crate) fn has_wildcards(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// How globs match, here and in watch's matching of file events.
pub(crate) const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// The directory relative paths of `manifest` are read from: its parent,
/// as written (empty for a bare file name, so that `pins.d/a.yaml` stays
/// `pins.d/a.yaml` in messages rather than `./pins.d/a.yaml`).
pub(crate) fn base_dir(manifest: &Path) -> &Path {
    manifest.parent().unwrap_or(Path::new(""))
}

/// An included file, with the entry that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IncludedFile {
    pub(crate) path: PathBuf,
    /// Index into the entries.
    pub(crate) entry: usize,
}

/// What the entries of a manifest expand to.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    /// Each file once, in include order.
    pub(crate) files: Vec<IncludedFile>,
    /// Problems with the entries, at their places in the main manifest.
    pub(crate) problems: Vec<(Position, String)>,
}

/// Expands `entries` of the manifest at `manifest`: plain paths must exist
/// and globs must match a file, unless optional. A file named by several
/// entries is included once, at its first; a glob never includes the main
/// manifest itself (a plain path naming it is an error); a glob skips
/// directories.
pub(crate) fn resolve(manifest: &Path, entries: &[IncludeEntry]) -> Resolved {
    let mut resolved = Resolved::default();
    if entries.is_empty() {
        return resolved;
    }
    let dir = base_dir(manifest);
    let main = fs::canonicalize(manifest).ok();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for (index, entry) in entries.iter().enumerate() {
        let mut problem = |message: String| resolved.problems.push((entry.at, message));
        let matched = if entry.is_glob() {
            match expand_glob(dir, &entry.written) {
                Ok((paths, errors)) => {
                    errors.into_iter().for_each(&mut problem);
                    if paths.is_empty() && !entry.optional {
                        problem(format!(
                            "`{}` matches no file; write {{path: {:?}, optional: true}} if it may match none",
                            entry.written, entry.written
                        ));
                    }
                    paths
                }
                Err(message) => {
                    problem(message);
                    continue;
                }
            }
        } else {
            let path = dir.join(&entry.written);
            match fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    problem(format!("included path {} is a directory", path.display()));
                    continue;
                }
                Ok(_) => vec![path],
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !entry.optional {
                        problem(format!(
                            "included file {} does not exist; write {{path: {:?}, optional: true}} if it may be missing",
                            path.display(),
                            entry.written
                        ));
                    }
                    continue;
                }
                Err(e) => {
                    problem(format!("cannot read included file {}: {e}", path.display()));
                    continue;
                }
            }
        };
        for path in matched {
            let canonical = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if main.as_ref() == Some(&canonical) {
                if !entry.is_glob() {
                    problem("`include` names the manifest itself".to_owned());
                }
                continue;
            }
            if seen.insert(canonical) {
                resolved.files.push(IncludedFile { path, entry: index });
            }
        }
    }
    resolved
}

/// The files `pattern` (relative to `dir` unless absolute) matches, sorted
/// bytewise, with a message for each path that could not be read; or why
/// the pattern is not one.
fn expand_glob(dir: &Path, pattern: &str) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    let full = if Path::new(pattern).is_absolute() || dir.as_os_str().is_empty() {
        pattern.to_owned()
    } else {
        let Some(dir) = dir.to_str() else {
            return Err(format!(
                "the manifest's directory {} is not valid UTF-8, which a glob needs",
                dir.display()
            ));
        };
        // The directory is literal, whatever characters it holds.
        let mut full = glob::Pattern::escape(dir);
        if !full.ends_with('/') {
            full.push('/');
        }
        full.push_str(pattern);
        full
    };
    let paths = glob::glob_with(&full, MATCH)
        .map_err(|e| format!("`{pattern}` is not a valid glob: {}", e.msg))?;
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match path {
            Ok(path) if path.is_dir() => {}
            Ok(path) => files.push(path),
            Err(e) => errors.push(format!(
                "cannot read {} while matching `{pattern}`: {}",
                e.path().display(),
                e.error()
            )),
        }
    }
    files.sort_unstable_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    Ok((files, errors))
}

/// Why an included file could not be read.
pub(crate) enum ReadFailure {
    /// It holds more than the limit: at least this many bytes.
    TooLarge(u64),
    Io(io::Error),
}

/// Told of each file a load reads, as it reads it, and of what the include
/// entries expanded to: watch logs what changed from this and watches the
/// files and directories.
pub(crate) trait LoadObserver {
    /// A manifest file read whole (the main one, or an included one),
    /// with its metadata as it was opened, before the read.
    fn read(&mut self, _path: &Path, _bytes: &[u8], _metadata: &fs::Metadata) {}
    /// The main manifest's include entries (none without `include:`) and
    /// the files they expanded to, once known: not called when the main
    /// manifest could not be read as YAML.
    fn included(&mut self, _entries: &[IncludeEntry], _files: &[PathBuf]) {}
}

impl LoadObserver for () {}

/// Where the parser gets included files from.
pub(crate) trait Source {
    /// Whether to read included files at all.
    fn follows_includes(&self) -> bool {
        true
    }
    fn read(&mut self, path: &Path) -> Result<Vec<u8>, ReadFailure>;
    fn included(&mut self, entries: &[IncludeEntry], files: &[PathBuf]);
}

/// Included files read from disk, each bounded by the size limit.
pub(crate) struct Disk<'o> {
    pub(crate) observer: &'o mut dyn LoadObserver,
}

impl Source for Disk<'_> {
    fn read(&mut self, path: &Path) -> Result<Vec<u8>, ReadFailure> {
        use crate::file_io::{Bounded, read_bounded};
        match read_bounded(path, super::MAX_MANIFEST_BYTES as u64).map_err(ReadFailure::Io)? {
            Bounded::Read(bytes, metadata) => {
                self.observer.read(path, &bytes, &metadata);
                Ok(bytes)
            }
            Bounded::TooLarge(size) => Err(ReadFailure::TooLarge(size)),
        }
    }

    fn included(&mut self, entries: &[IncludeEntry], files: &[PathBuf]) {
        self.observer.included(entries, files);
    }
}

/// The main manifest alone: its include entries are checked, not followed.
pub(crate) struct MainOnly;

impl Source for MainOnly {
    fn follows_includes(&self) -> bool {
        false
    }
    fn read(&mut self, _path: &Path) -> Result<Vec<u8>, ReadFailure> {
        unreachable!("includes are not followed")
    }
    fn included(&mut self, _entries: &[IncludeEntry], _files: &[PathBuf]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(written: &str, optional: bool) -> IncludeEntry {
        IncludeEntry {
            written: written.into(),
            optional,
            at: Position { line: 3, column: 5 },
        }
    }

    fn touch(dir: &Path, name: &str) {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "pins: []\n").unwrap();
    }

    fn names(dir: &Path, r: &Resolved) -> Vec<String> {
        r.files
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    #[test]
    fn globs_expand_sorted_bytewise_and_entries_keep_their_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for name in [
            "pins.d/b.yaml",
            "pins.d/B.yaml",
            "pins.d/a.yaml",
            "pins.d/a-1.yaml",
        ] {
            touch(dir, name);
        }
        touch(dir, "extra.yaml");
        touch(dir, "pins.d/.hidden.yaml");
        touch(dir, "pins.d/notes.txt");
        fs::create_dir_all(dir.join("pins.d/dir.yaml")).unwrap();
        let manifest = dir.join("pins.yaml");
        touch(dir, "pins.yaml");
        let r = resolve(
            &manifest,
            &[entry("extra.yaml", false), entry("pins.d/*.yaml", false)],
        );
        assert_eq!(r.problems, []);
        assert_eq!(
            names(dir, &r),
            [
                "extra.yaml",
                "pins.d/B.yaml",
                "pins.d/a-1.yaml",
                "pins.d/a.yaml",
                "pins.d/b.yaml"
            ]
        );
        assert_eq!(r.files[0].entry, 0);
        assert_eq!(r.files[1].entry, 1);
    }

    #[test]
    fn a_file_named_twice_is_read_once_and_a_glob_skips_the_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        touch(dir, "pins.yaml");
        touch(dir, "a.yaml");
        let r = resolve(
            &dir.join("pins.yaml"),
            &[entry("a.yaml", false), entry("*.yaml", false)],
        );
        assert_eq!(r.problems, []);
        assert_eq!(names(dir, &r), ["a.yaml"]);
        let r = resolve(&dir.join("pins.yaml"), &[entry("pins.yaml", false)]);
        assert_eq!(r.files, []);
        assert_eq!(
            r.problems,
            [(
                Position { line: 3, column: 5 },
                "`include` names the manifest itself".to_owned()
            )]
        );
    }

    #[test]
    fn nothing_matched_is_an_error_unless_optional() {
        let tmp = tempfile::tempdir().unwrap();
        let manifest = tmp.path().join("pins.yaml");
        let r = resolve(&manifest, &[entry("pins.d/*.yaml", false)]);
        assert_eq!(r.problems.len(), 1);
        assert!(
            r.problems[0].1.contains("`pins.d/*.yaml` matches no file"),
            "{:?}",
            r.problems
        );
        let r = resolve(&manifest, &[entry("missing.yaml", false)]);
        assert!(
            r.problems[0].1.contains("does not exist"),
            "{:?}",
            r.problems
        );
        let r = resolve(
            &manifest,
            &[entry("pins.d/*.yaml", true), entry("missing.yaml", true)],
        );
        assert_eq!((r.files.len(), r.problems.len()), (0, 0));
    }

    #[test]
    fn a_bad_glob_is_reported_and_the_directory_is_taken_literally() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("odd[dir]");
        touch(&dir, "pins.d/a.yaml");
        let r = resolve(&dir.join("pins.yaml"), &[entry("pins.d/*.yaml", false)]);
        assert_eq!(r.problems, []);
        assert_eq!(r.files.len(), 1);
        let r = resolve(&dir.join("pins.yaml"), &[entry("pins.d/[a.yaml", false)]);
        assert!(
            r.problems[0].1.contains("is not a valid glob"),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn a_bare_manifest_name_keeps_paths_relative() {
        assert_eq!(base_dir(Path::new("pins.yaml")), Path::new(""));
        assert_eq!(base_dir(Path::new("cfg/pins.yaml")), Path::new("cfg"));
        assert_eq!(
            Path::new("").join("pins.d/a.yaml"),
            Path::new("pins.d/a.yaml")
        );
    }
}
