//! What watch follows on disk: the manifest, the files it includes, and the
//! directories its globs read, so that an edit, a new file matching a glob,
//! or a removal is a change.
//!
//! Directories are watched, not files: editors and `git pull` replace files
//! by rename, which a watch on the file itself loses. Paths are compared in
//! canonical form (the directory resolved, the file name as is), since the
//! same directory may be spelled several ways and some platforms report
//! events under the resolved path.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};

use notify::RecursiveMode;

use crate::manifest::{GLOB_MATCH, IncludeEntry, base_dir, has_wildcards};

/// The directories to watch and which of their events count.
#[derive(Debug, Default)]
pub(super) struct WatchSet {
    /// Canonical directories, each watched recursively (for a glob with a
    /// wildcard before its last `/`) or not.
    pub(crate) dirs: BTreeMap<PathBuf, RecursiveMode>,
    pub(crate) filter: Filter,
}

/// Which paths an event must touch to count as a change.
#[derive(Debug, Default)]
pub(super) struct Filter {
    /// The manifest and the plain paths it includes.
    files: HashSet<PathBuf>,
    /// The globs, and for one that reaches into subdirectories the
    /// directories on the way (a new one may hold matches).
    patterns: Vec<glob::Pattern>,
    /// Directories a glob or path reads that do not exist yet: their
    /// nearest existing ancestor is watched, and the creation of any
    /// directory on the way counts.
    missing: Vec<PathBuf>,
}

impl WatchSet {
    /// What to watch for the manifest at `manifest` and its include entries.
    pub(super) fn new(manifest: &Path, entries: &[IncludeEntry]) -> Self {
        let mut set = Self::default();
        set.file(manifest);
        let base = base_dir(manifest);
        for entry in entries {
            if !entry.is_glob() {
                set.file(&base.join(&entry.written));
                continue;
            }
            // The literal directories before the first wildcard, then the rest.
            let parts: Vec<&str> = entry.written.split('/').collect();
            let first_wild = parts
                .iter()
                .position(|p| has_wildcards(p))
                .expect("a glob has a wildcard");
            let literal = parts[..first_wild].join("/");
            let dir = if literal.is_empty() && entry.written.starts_with('/') {
                PathBuf::from("/")
            } else {
                base.join(literal)
            };
            let dir = canonical_dir(&dir);
            let rest = &parts[first_wild..];
            let Some(escaped) = dir.to_str().map(glob::Pattern::escape) else {
                continue; // the load says a glob needs a UTF-8 directory
            };
            let escaped = escaped.trim_end_matches('/');
            for depth in 1..=rest.len() {
                let text = format!("{escaped}/{}", rest[..depth].join("/"));
                if let Ok(pattern) = glob::Pattern::new(&text) {
                    set.filter.patterns.push(pattern);
                }
            }
            let mode = if rest.len() > 1 {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            set.dir(dir, mode);
        }
        set
    }

    /// A file: its directory is watched, and events on its name count.
    fn file(&mut self, path: &Path) {
        let dir = canonical_dir(dir_of(path));
        if let Some(name) = path.file_name() {
            self.filter.files.insert(dir.join(name));
        }
        self.dir(dir, RecursiveMode::NonRecursive);
    }

    fn dir(&mut self, dir: PathBuf, mode: RecursiveMode) {
        let (watched, mode) = if dir.is_dir() {
            (dir, mode)
        } else {
            let existing = dir
                .ancestors()
                .find(|a| a.is_dir())
                .unwrap_or(Path::new("/"))
                .to_path_buf();
            self.filter.missing.push(dir);
            (existing, RecursiveMode::NonRecursive)
        };
        let slot = self.dirs.entry(watched).or_insert(mode);
        if mode == RecursiveMode::Recursive {
            *slot = mode;
        }
    }
}

impl Filter {
    /// Whether an event on `path` is a change to the manifest's files.
    pub(super) fn matches(&self, path: &Path) -> bool {
        let path = match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => canonical_dir(dir).join(name),
            _ => path.to_path_buf(),
        };
        self.files.contains(&path)
            || self
                .patterns
                .iter()
                .any(|p| p.matches_path_with(&path, GLOB_MATCH))
            || self.missing.iter().any(|m| m.starts_with(&path))
    }
}

/// The directory of `path`, `.` for a bare name.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `dir` resolved (symbolic links, `.`, `..`); for a directory that does
/// not exist, its nearest existing ancestor resolved and the rest joined.
fn canonical_dir(dir: &Path) -> PathBuf {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(c) = std::fs::canonicalize(dir) {
        return c;
    }
    let mut rest: Vec<Component> = Vec::new();
    let mut at = dir;
    while let Some(parent) = at.parent() {
        rest.extend(at.components().next_back());
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(c) = std::fs::canonicalize(parent) {
            let mut out = c;
            for part in rest.iter().rev() {
                match part {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other),
                }
            }
            return out;
        }
        at = parent;
    }
    dir.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Position;

    fn entry(written: &str) -> IncludeEntry {
        IncludeEntry {
            written: written.into(),
            optional: true,
            at: Position::default(),
        }
    }

    #[test]
    fn the_manifest_included_files_and_glob_matches_count_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(root.join("pins.d")).unwrap();
        std::fs::create_dir_all(root.join("teams/web")).unwrap();
        let manifest = root.join("pins.yaml");
        let set = WatchSet::new(
            &manifest,
            &[
                entry("extra.yaml"),
                entry("pins.d/*.yaml"),
                entry("teams/*/pins.yaml"),
                entry("later/*.yaml"),
            ],
        );
        let f = &set.filter;
        for yes in [
            "pins.yaml",
            "extra.yaml",
            "pins.d/new.yaml",
            "teams/web/pins.yaml",
            // A new team's directory may hold a match.
            "teams/api",
            // On the way to a directory a glob reads.
            "later",
        ] {
            assert!(f.matches(&root.join(yes)), "{yes}");
        }
        for no in [
            "other.yaml",
            "pins.d/notes.txt",
            "pins.d/.new.yaml.swp",
            "pins.d/.hidden.yaml",
            "pins.d/sub/a.yaml",
            "teams/web/other.yaml",
            "pins.state.json",
        ] {
            assert!(!f.matches(&root.join(no)), "{no}");
        }
        // Spelled another way, the same file.
        assert!(f.matches(&root.join("pins.d/../extra.yaml")));
        assert_eq!(
            set.dirs,
            BTreeMap::from([
                (root.clone(), RecursiveMode::NonRecursive),
                (root.join("pins.d"), RecursiveMode::NonRecursive),
                (root.join("teams"), RecursiveMode::Recursive),
            ])
        );
    }

    #[test]
    fn a_relative_manifest_watches_the_same_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(root.join("cfg/pins.d")).unwrap();
        // As written on the command line, relative to a directory of the path.
        let relative = root.join("cfg/../cfg/pins.yaml");
        let set = WatchSet::new(&relative, &[entry("pins.d/*.yaml")]);
        assert!(set.filter.matches(&root.join("cfg/pins.yaml")));
        assert!(set.filter.matches(&root.join("cfg/pins.d/a.yaml")));
        assert_eq!(
            set.dirs.keys().collect::<Vec<_>>(),
            [&root.join("cfg"), &root.join("cfg/pins.d")]
        );
    }

    #[test]
    fn a_missing_directory_is_watched_from_its_nearest_ancestor() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let set = WatchSet::new(&root.join("pins.yaml"), &[entry("a/b/*.yaml")]);
        assert_eq!(set.dirs.keys().collect::<Vec<_>>(), [&root]);
        assert!(set.filter.matches(&root.join("a")));
        assert!(set.filter.matches(&root.join("a/b")));
        assert!(set.filter.matches(&root.join("a/b/x.yaml")));
        assert!(!set.filter.matches(&root.join("c")));
        assert_eq!(canonical_dir(&root.join("a/../x")), root.join("x"));
    }
}
