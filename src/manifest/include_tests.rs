//! Manifests split with `include:`: the pins of every file in one model,
//! each file's problems at its own places, duplicates across files, and
//! defaults that fall back to the main manifest's.

use std::path::{Path, PathBuf};

use super::{Diagnostics, IncludeEntry, LoadObserver, Manifest, load, load_main, load_observed};

const A: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
const B: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
const C: &str = "Qmc1135ziMvmFG534i75E8HpJoLqzLzgKBxfjBV9cBsMAs";

/// A manifest directory: `pins.yaml` with two providers and `head`
/// (its `include`, `defaults`, `pins`), and the other files given.
struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new(head: &str, files: &[(&str, &str)]) -> Self {
        let dir = Self {
            tmp: tempfile::tempdir().unwrap(),
        };
        dir.write(
            "pins.yaml",
            &format!(
                "version: 1\nproviders:\n  aioz:\n    type: aioz\n    api_key: ${{K}}\n    \
                 secret_key: ${{S}}\n  arkive:\n    type: pinarkive\n    api_key: ${{K}}\n{head}"
            ),
        );
        for (name, text) in files {
            dir.write(name, text);
        }
        dir
    }

    /// [`Dir::new`] with files made by the test.
    fn with_files(head: &str, files: &[(String, String)]) -> Self {
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        Self::new(head, &files)
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn load(&self) -> anyhow::Result<Manifest> {
        load(&self.path("pins.yaml"))
    }

    fn ok(&self) -> Manifest {
        self.load().unwrap_or_else(|e| panic!("refused: {e:#}"))
    }

    /// The problems, each `NAME:LINE:COL: message` with NAME relative to
    /// the directory.
    fn problems(&self) -> Vec<String> {
        let e = self.load().expect_err("refused");
        let d = e.downcast_ref::<Diagnostics>().expect("diagnostics");
        let root = format!("{}/", self.tmp.path().display());
        d.0.iter()
            .map(|d| d.to_string().replace(&root, ""))
            .collect()
    }
}

/// `(target, CID as written, name)` of every pin, sorted.
fn pins(m: &Manifest) -> Vec<(String, String, Option<String>)> {
    let mut pins: Vec<_> = m
        .pins
        .iter()
        .map(|(k, p)| {
            (
                k.target.to_string(),
                p.sent_cid(k).into_owned(),
                p.labels.name.as_deref().map(str::to_owned),
            )
        })
        .collect();
    pins.sort();
    pins
}

fn pin(cid: &str, name: &str) -> String {
    format!("  - cid: {cid}\n    name: {name}\n")
}

#[test]
fn the_pins_of_every_included_file_join_the_manifests() {
    let dir = Dir::new(
        &format!(
            "include: [\"pins.d/*.yaml\", {{path: extra.yaml}}]\ndefaults:\n  to: [aioz]\npins:\n{}",
            pin(A, "main")
        ),
        &[
            ("pins.d/b.yaml", &format!("pins:\n{}", pin(B, "b"))),
            (
                "pins.d/a.yaml",
                &format!("defaults:\n  to: [arkive/cl0]\npins:\n{}", pin(C, "c")),
            ),
            (
                "extra.yaml",
                &format!("pins:\n{}    to: [arkive]\n", pin(A, "x")),
            ),
        ],
    );
    let m = dir.ok();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        pins(&m),
        [
            ("aioz".into(), A.into(), some("main")),
            ("aioz".into(), B.into(), some("b")),
            ("arkive".into(), A.into(), some("x")),
            ("arkive/cl0".into(), C.into(), some("c")),
        ]
    );
    assert_eq!(
        m.included,
        [
            dir.path("pins.d/a.yaml"),
            dir.path("pins.d/b.yaml"),
            dir.path("extra.yaml")
        ]
    );
}

#[test]
fn the_main_manifest_may_leave_every_pin_to_its_included_files() {
    let dir = Dir::new(
        "include: [more.yaml]\n",
        &[(
            "more.yaml",
            &format!("pins:\n{}    to: [aioz]\n", pin(A, "a")),
        )],
    );
    assert_eq!(dir.ok().pins.len(), 1);
    let dir = Dir::new("defaults:\n  to: [aioz]\n", &[]);
    assert_eq!(dir.problems().len(), 1);
    assert!(
        dir.problems()[0].ends_with("missing field `pins` in the manifest"),
        "{:?}",
        dir.problems()
    );
}

#[test]
fn an_included_files_problems_are_reported_at_its_own_places_after_the_manifests() {
    let dir = Dir::new(
        "include: [pins.d/*.yaml]\npins:\n  - cid: Qm1\n    to: [aioz]\n",
        &[
            (
                "pins.d/a.yaml",
                &format!(
                    "providers: {{}}\ninclude: [x.yaml]\ncolour: red\npins:\n  - cid: {A}\n    to: [ghost]\n  - cid: Qm2\n    to: [aioz]\n  - cid: {B}\n"
                ),
            ),
            ("pins.d/b.yaml", "pins:\n  - cid: [1]\n    to: [aioz]\n"),
            ("pins.d/c.yaml", "pins: [\n"),
        ],
    );
    let problems = dir.problems();
    let expected = [
        "pins.yaml:12:10: invalid CID \"Qm1\"",
        "pins.d/a.yaml:1:1: `providers` belongs in the main manifest; an included file holds only: defaults, pins",
        "pins.d/a.yaml:2:1: an included file cannot include other files",
        "pins.d/a.yaml:3:1: unknown field `colour` in an included file; expected one of: defaults, pins",
        "pins.d/a.yaml:6:10: unknown provider `ghost`",
        "pins.d/a.yaml:7:10: invalid CID \"Qm2\"",
        "pins.d/a.yaml:9:5: this pin names no targets: give it `to:`, or set `defaults.to` in this file or the main manifest",
        "pins.d/b.yaml:2:10: `cid` must be a string, found a list",
        "pins.d/c.yaml:2:1: YAML syntax error",
    ];
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    for (got, want) in problems.iter().zip(expected) {
        assert!(
            got.starts_with(want),
            "{got:?} is not {want:?}: {problems:#?}"
        );
    }
}

#[test]
fn a_cid_twice_on_one_target_names_both_places_across_files() {
    let dir = Dir::new(
        &format!(
            "include: [pins.d/*.yaml]\ndefaults:\n  to: [aioz]\npins:\n{}",
            pin(A, "main")
        ),
        &[
            (
                "pins.d/a.yaml",
                &format!("pins:\n{}{}", pin(B, "b"), pin(C, "c")),
            ),
            (
                "pins.d/b.yaml",
                &format!("pins:\n{}{}", pin(A, "again"), pin(B, "again")),
            ),
            // On another target: not a duplicate.
            (
                "pins.d/c.yaml",
                &format!("pins:\n{}    to: [arkive]\n", pin(B, "b")),
            ),
        ],
    );
    assert_eq!(
        dir.problems(),
        [
            format!("pins.d/b.yaml:2:10: CID {A} is already pinned to aioz at pins.yaml:14:10"),
            format!("pins.d/b.yaml:4:10: CID {B} is already pinned to aioz at pins.d/a.yaml:2:10"),
        ]
    );
}

#[test]
fn a_glob_matching_nothing_is_refused_at_its_entry_unless_optional() {
    let dir = Dir::new(
        "include:\n  - pins.d/*.yaml\n  - {path: gone.yaml}\npins: []\n",
        &[],
    );
    let problems = dir.problems();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with("pins.yaml:11:5: `pins.d/*.yaml` matches no file"),
        "{problems:#?}"
    );
    assert!(
        problems[1].starts_with("pins.yaml:12:12: included file ")
            && problems[1].contains("gone.yaml does not exist"),
        "{problems:#?}"
    );
    let dir = Dir::new(
        "include:\n  - {path: pins.d/*.yaml, optional: true}\n  - {path: gone.yaml, optional: true}\npins: []\n",
        &[],
    );
    assert_eq!(dir.ok().included, Vec::<PathBuf>::new());
}

#[test]
fn malformed_include_entries_are_refused_where_they_are_written() {
    let dir = Dir::new(
        "include:\n  - \"\"\n  - {path: a.yaml, optional: maybe, deep: true}\n  - {optional: true}\n  - [x]\npins: []\n",
        &[("a.yaml", "pins: []\n")],
    );
    let problems = dir.problems();
    let expected = [
        "pins.yaml:11:5: an `include` path is empty",
        "pins.yaml:12:37: unknown field `deep` in an `include` entry",
        "pins.yaml:12:30: `optional` must be true or false",
        "pins.yaml:13:5: missing field `path` in an `include` entry",
        "pins.yaml:14:5: an `include` path must be a string, found a list",
    ];
    let mut sorted = expected.to_vec();
    sorted.sort_by_key(|e| {
        let mut parts = e.split(':').skip(1);
        let line: usize = parts.next().unwrap().parse().unwrap();
        let column: usize = parts.next().unwrap().parse().unwrap();
        (line, column)
    });
    assert_eq!(problems.len(), sorted.len(), "{problems:#?}");
    for (got, want) in problems.iter().zip(sorted) {
        assert!(
            got.starts_with(want),
            "{got:?} is not {want:?}: {problems:#?}"
        );
    }
}

#[test]
fn an_included_file_over_the_size_limit_is_refused_at_its_start() {
    let dir = Dir::new(
        "include: [big.yaml, small.yaml]\npins: []\n",
        &[(
            "small.yaml",
            &format!("pins:\n{}    to: [aioz]\n", pin(A, "a")),
        )],
    );
    // Sparse: the size on disk is refused before any byte is read.
    let big = std::fs::File::create(dir.path("big.yaml")).unwrap();
    big.set_len(super::MAX_MANIFEST_BYTES as u64 + 1).unwrap();
    let problems = dir.problems();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with(
            "big.yaml:1:1: included file is 33554433 bytes or more; the limit is 32 MiB"
        ),
        "{problems:#?}"
    );
}

#[test]
fn a_path_that_is_a_directory_is_refused_at_its_entry() {
    let dir = Dir::new(
        "include: [pins.d]\npins: []\n",
        &[("pins.d/a.yaml", "pins: []\n")],
    );
    let problems = dir.problems();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("pins.yaml:10:11: included path ")
            && problems[0].ends_with("pins.d is a directory"),
        "{problems:#?}"
    );
}

#[derive(Default)]
struct Seen {
    read: Vec<PathBuf>,
    entries: Vec<String>,
    files: Vec<PathBuf>,
}

impl LoadObserver for Seen {
    fn read(&mut self, path: &Path, _bytes: &[u8], _: &std::fs::Metadata) {
        self.read.push(path.to_path_buf());
    }
    fn included(&mut self, entries: &[IncludeEntry], files: &[PathBuf]) {
        self.entries = entries.iter().map(|e| e.written.clone()).collect();
        self.files = files.to_vec();
    }
}

#[test]
fn the_observer_is_told_of_each_file_read_and_the_main_load_reads_only_the_manifest() {
    let dir = Dir::new(
        "include: [\"*.d/*.yaml\", {path: opt/*.yaml, optional: true}]\npins: []\n",
        &[
            ("pins.d/a.yaml", "pins: []\n"),
            // A problem here still leaves the files known to the observer.
            ("pins.d/b.yaml", "pins: 3\n"),
        ],
    );
    let mut seen = Seen::default();
    assert!(load_observed(&dir.path("pins.yaml"), &mut seen).is_err());
    let files = [dir.path("pins.d/a.yaml"), dir.path("pins.d/b.yaml")];
    assert_eq!(seen.entries, ["*.d/*.yaml", "opt/*.yaml"]);
    assert_eq!(seen.files, files);
    assert_eq!(
        seen.read,
        [dir.path("pins.yaml"), files[0].clone(), files[1].clone()]
    );
    let m = load_main(&dir.path("pins.yaml")).unwrap();
    assert_eq!((m.pins.len(), m.included.len()), (0, 0));
}

#[test]
fn many_files_walked_at_once_report_in_file_order_and_read_in_order() {
    // Earlier files are longer, so that later ones tend to finish first.
    let files: Vec<(String, String)> = (0..40)
        .map(|i| {
            let mut text = format!("pins:\n{}", pin("not-a-cid", "bad"));
            for j in 0..(40 - i) * 30 {
                let cid = super::CanonicalCid::for_test(&format!("{i}-{j}")).to_string();
                text += &pin(&cid, "p");
            }
            if i % 2 == 1 {
                text += &pin(A, "again");
            }
            (format!("pins.d/{i:02}.yaml"), text)
        })
        .collect();
    let dir = Dir::with_files(
        &format!(
            "include: [pins.d/*.yaml]\ndefaults:\n  to: [aioz]\npins:\n{}",
            pin(A, "main")
        ),
        &files,
    );
    // Each file's bad CID, then (odd files) its copy of the manifest's pin.
    let mut expected = Vec::new();
    for (i, (name, _)) in files.iter().enumerate() {
        expected.push((
            format!("{name}:2:10"),
            "invalid CID \"not-a-cid\"".to_owned(),
        ));
        if i % 2 == 1 {
            let line = 2 + 2 * (1 + (40 - i) * 30);
            expected.push((
                format!("{name}:{line}:10"),
                format!("CID {A} is already pinned to aioz at pins.yaml:14:10"),
            ));
        }
    }
    let problems = dir.problems();
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    for (got, (place, message)) in problems.iter().zip(&expected) {
        assert!(
            got.starts_with(&format!("{place}: {message}")),
            "{got}, where {place}: {message} was expected"
        );
    }
    let mut seen = Seen::default();
    assert!(load_observed(&dir.path("pins.yaml"), &mut seen).is_err());
    let read: Vec<PathBuf> = std::iter::once(dir.path("pins.yaml"))
        .chain(files.iter().map(|(n, _)| dir.path(n)))
        .collect();
    assert_eq!(seen.read, read);
}

#[test]
fn files_that_cannot_be_read_are_reported_in_file_order() {
    // Each shares the glob's place; long files between them keep the
    // workers busy, so an order left to the threads would show.
    let files: Vec<(String, String)> = (0..6)
        .map(|i| {
            let pins: String = (0..3_000)
                .map(|j| {
                    pin(
                        &super::CanonicalCid::for_test(&format!("{i}-{j}")).to_string(),
                        "p",
                    )
                })
                .collect();
            (format!("pins.d/{i}-long.yaml"), format!("pins:\n{pins}"))
        })
        .collect();
    let dir = Dir::with_files(
        "include: [pins.d/*.yaml]\ndefaults:\n  to: [aioz]\npins: []\n",
        &files,
    );
    for i in 0..6 {
        // A link to nothing: listed by the glob, unreadable.
        std::os::unix::fs::symlink(dir.path("gone"), dir.path(&format!("pins.d/{i}-gone.yaml")))
            .unwrap();
    }
    let problems = dir.problems();
    let unreadable: Vec<&String> = problems
        .iter()
        .filter(|p| p.contains("cannot read"))
        .collect();
    assert_eq!(unreadable.len(), 6, "{problems:#?}");
    for (i, problem) in unreadable.iter().enumerate() {
        assert!(
            problem.starts_with(&format!(
                "pins.yaml:10:11: cannot read included file pins.d/{i}-gone.yaml:"
            )),
            "{problems:#?}"
        );
    }
}
