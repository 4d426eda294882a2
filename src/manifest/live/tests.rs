//! A manifest brought up to date file by file is the manifest a whole load
//! reads, whatever the edits; an edit costs the files it touched.

use std::path::PathBuf;

use super::*;
use crate::manifest::{Diagnostics, Target, load};

/// A manifest directory: `pins.yaml` with two providers, including
/// `pins.d/*.yaml` and `extra.yaml` (optional).
struct Dir {
    tmp: tempfile::TempDir,
}

const MAIN: &str = "version: 1
providers:
  aioz:
    type: aioz
    api_key: ${K}
    secret_key: ${S}
  arkive:
    type: pinarkive
    api_key: ${K}
defaults:
  to: [aioz]
include:
  - pins.d/*.yaml
  - {path: extra.yaml, optional: true}
";

impl Dir {
    fn new() -> Self {
        let dir = Self {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(dir.path("pins.d")).unwrap();
        dir.write("pins.yaml", MAIN);
        dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    fn main(&self) -> PathBuf {
        self.path("pins.yaml")
    }
}

/// `n` distinct CIDs.
fn cid(n: u64) -> String {
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&n.to_be_bytes());
    let mh = cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
    cid::Cid::new_v1(0x55, mh).to_string()
}

/// An included file: its `defaults.to` (if any) and pins (CID number,
/// name, `to` if any).
#[derive(Clone, Debug, Default)]
struct File {
    defaults: Option<&'static str>,
    pins: Vec<(u64, String, Option<&'static str>)>,
}

impl File {
    fn text(&self) -> String {
        let mut text = String::new();
        if let Some(to) = self.defaults {
            text += &format!("defaults:\n  to: {to}\n");
        }
        text += "pins:\n";
        if self.pins.is_empty() {
            text = text.replace("pins:\n", "pins: []\n");
        }
        for (n, name, to) in &self.pins {
            text += &format!("  - cid: {}\n    name: {name}\n", cid(*n));
            if let Some(to) = to {
                text += &format!("    to: {to}\n");
            }
        }
        text
    }
}

/// The files a load or an update parsed.
#[derive(Default)]
struct Reads(Vec<PathBuf>);

impl LoadObserver for Reads {
    fn read(&mut self, path: &std::path::Path, _: &[u8], _: &fs::Metadata) {
        self.0.push(path.to_path_buf());
    }
}

/// Each pin of `live` with the file that wrote it.
fn owned(live: &LiveManifest) -> Vec<(PinKey, PathBuf)> {
    (0..live.owners.len())
        .map(|i| {
            let path = live.files[live.owners[i] as usize].as_ref().unwrap();
            (live.manifest.pins[i].0.clone(), path.path.clone())
        })
        .collect()
}

/// `live` is what a whole load reads now, pin for pin and file for file.
fn assert_whole(live: &LiveManifest, dir: &Dir, context: &str) {
    let whole = LiveManifest::load(&dir.main(), &mut ()).unwrap();
    assert_eq!(live.manifest(), whole.manifest(), "{context}");
    assert_eq!(owned(live), owned(&whole), "{context}");
    assert_eq!(live.manifest(), &load(&dir.main()).unwrap(), "{context}");
}

const TARGETS: [Option<&str>; 4] = [
    None,
    Some("[aioz]"),
    Some("[arkive]"),
    Some("[aioz, arkive]"),
];

#[test]
fn random_edits_read_file_by_file_give_what_a_whole_load_reads() {
    let seed = std::env::var("PINSYNC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x11fe);
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = Dir::new();
    // Each file's pins use CIDs of its own range, so no edit makes a
    // duplicate; moves between files take a CID out of one first.
    let mut files: Vec<Option<File>> = (0..6)
        .map(|f| {
            let pins = (0..rng.u64(0..8))
                .map(|i| (f * 1000 + i, format!("p{f}-{i}"), None))
                .collect();
            Some(File {
                defaults: None,
                pins,
            })
        })
        .collect();
    let name = |f: usize| {
        if f == 5 {
            "extra.yaml".to_owned()
        } else {
            format!("pins.d/{f}.yaml")
        }
    };
    for (f, file) in files.iter().enumerate() {
        dir.write(&name(f), &file.as_ref().unwrap().text());
    }
    let mut live = LiveManifest::load(&dir.main(), &mut ()).unwrap();
    let mut next = 100_000;
    for step in 0..120 {
        let context = format!("seed {seed} (PINSYNC_TEST_SEED), step {step}");
        // One to three files edited in one burst.
        let mut edited = Vec::new();
        for _ in 0..rng.usize(1..=3) {
            let f = rng.usize(0..files.len());
            let what = rng.u8(0..8);
            let Some(file) = files[f].as_mut() else {
                // Gone: back, with what it held, or empty.
                files[f] = Some(File::default());
                edited.push(f);
                continue;
            };
            match what {
                0 => {
                    next += 1;
                    let to = TARGETS[rng.usize(0..TARGETS.len())];
                    file.pins.push((next, format!("n{next}"), to));
                }
                1 if !file.pins.is_empty() => {
                    file.pins.remove(rng.usize(0..file.pins.len()));
                }
                2 if !file.pins.is_empty() => {
                    let i = rng.usize(0..file.pins.len());
                    // Same length as before half the time: the stamp alone
                    // cannot tell.
                    file.pins[i].1 =
                        format!("r{:0>width$}", step, width = file.pins[i].1.len() - 1);
                }
                3 => file.defaults = TARGETS[rng.usize(0..TARGETS.len())],
                4 if !file.pins.is_empty() => {
                    // Moved to another file that is there.
                    let pin = file.pins.remove(rng.usize(0..file.pins.len()));
                    let to = rng.usize(0..files.len());
                    if let Some(other) = files[to].as_mut() {
                        other.pins.push(pin);
                        edited.push(to);
                    } else {
                        files[f].as_mut().unwrap().pins.push(pin);
                    }
                }
                5 => files[f] = None,
                6 => {} // written again as it was
                _ => {
                    let i = rng.usize(0..=file.pins.len());
                    file.pins.insert(i, (next + 1, format!("i{next}"), None));
                    next += 1;
                }
            }
            edited.push(f);
        }
        for &f in &edited {
            match &files[f] {
                Some(file) => dir.write(&name(f), &file.text()),
                None => {
                    let _ = std::fs::remove_file(dir.path(&name(f)));
                }
            }
        }
        let before = with_files(&live);
        let mut reads = Reads::default();
        let update = live
            .update(&mut reads)
            .unwrap_or_else(|e| panic!("{context}: {e:#}"));
        assert!(!update.reloaded, "{context}: only included files changed");
        let edited: Vec<PathBuf> = edited.iter().map(|&f| dir.path(&name(f))).collect();
        for diff in &update.files {
            assert!(
                edited.contains(&diff.path),
                "{context}: {diff:?} was not edited"
            );
        }
        for path in &reads.0 {
            assert!(
                edited.contains(path),
                "{context}: {path:?} parsed again, not edited"
            );
        }
        assert_whole(&live, &dir, &context);
        // The pins whose labels, targets or file changed, exactly.
        let after = with_files(&live);
        let mut changed: Vec<PinKey> = before
            .symmetric_difference(&after)
            .map(|(k, _, _)| k.clone())
            .collect();
        changed.sort();
        changed.dedup();
        assert_eq!(update.touched, changed, "{context}");
    }
}

/// Each pin of `live` (what it asks, as debug text), with its file.
fn with_files(live: &LiveManifest) -> BTreeSet<(PinKey, String, PathBuf)> {
    owned(live)
        .into_iter()
        .zip(&live.manifest.pins)
        .map(|((key, path), (_, pin))| (key, format!("{pin:?}"), path))
        .collect()
}

#[test]
fn a_change_to_the_main_manifest_reads_everything_again() {
    let dir = Dir::new();
    let one = File {
        defaults: None,
        pins: vec![(1, "a".into(), None), (2, "b".into(), Some("[arkive]"))],
    };
    dir.write("pins.d/a.yaml", &one.text());
    let mut live = LiveManifest::load(&dir.main(), &mut ()).unwrap();
    dir.write("pins.yaml", &MAIN.replace("to: [aioz]", "to: [arkive]"));
    let update = live.update(&mut ()).unwrap();
    assert!(update.reloaded);
    // Pin 1 moved from aioz to arkive by the main manifest's defaults; its
    // file's diff says so.
    assert_eq!(update.files.len(), 1, "{update:?}");
    assert_eq!(
        (update.files[0].added, update.files[0].removed),
        (1, 1),
        "{update:?}"
    );
    assert!(
        update.touched.is_empty(),
        "a whole plan follows: {update:?}"
    );
    assert_whole(&live, &dir, "after the main manifest changed");
}

#[test]
fn a_duplicate_across_files_is_the_whole_load_s_error_and_the_model_stays() {
    let dir = Dir::new();
    let a = File {
        defaults: None,
        pins: vec![(1, "a".into(), None)],
    };
    dir.write("pins.d/a.yaml", &a.text());
    dir.write("pins.d/b.yaml", "pins: []\n");
    let mut live = LiveManifest::load(&dir.main(), &mut ()).unwrap();
    let before = live.manifest().clone();
    dir.write("pins.d/b.yaml", &a.text().replace("name: a", "name: again"));
    let e = live.update(&mut ()).unwrap_err();
    let d = e
        .downcast_ref::<Diagnostics>()
        .expect("diagnostics")
        .to_string();
    assert!(
        d.contains("b.yaml:2:") && d.contains("already pinned") && d.contains("a.yaml:2:"),
        "{d}"
    );
    assert_eq!(live.manifest(), &before, "the last good manifest stays");
    dir.write("pins.d/b.yaml", "pins: []\n");
    let update = live.update(&mut ()).unwrap();
    assert!(update.files.is_empty(), "{update:?}");
    assert_whole(&live, &dir, "fixed");
}

#[test]
fn a_file_written_again_as_it_was_changes_nothing_and_a_bad_one_is_reported_where_it_is() {
    let dir = Dir::new();
    let a = File {
        defaults: None,
        pins: vec![(1, "a".into(), None)],
    };
    dir.write("pins.d/a.yaml", &a.text());
    let mut live = LiveManifest::load(&dir.main(), &mut ()).unwrap();
    dir.write("pins.d/a.yaml", &a.text());
    let update = live.update(&mut ()).unwrap();
    assert!(update.files.is_empty() && update.touched.is_empty() && !update.reloaded);

    dir.write("pins.d/a.yaml", "pins:\n  - cid: nope\n");
    let e = live.update(&mut ()).unwrap_err();
    let d = e
        .downcast_ref::<Diagnostics>()
        .expect("diagnostics")
        .to_string();
    assert!(d.contains("a.yaml:2:"), "{d}");
    assert_whole_of(&live, &a, "the last good manifest stays");
}

/// `live` holds the pins of `file` alone (as `pins.d/a.yaml`).
fn assert_whole_of(live: &LiveManifest, file: &File, context: &str) {
    let dir = Dir::new();
    dir.write("pins.d/a.yaml", &file.text());
    let whole = load(&dir.main()).unwrap();
    assert_eq!(live.manifest().pins, whole.pins, "{context}");
}

#[test]
fn merging_in_place_keeps_the_order_and_each_pin_s_file() {
    let key = |n: u64| PinKey {
        target: Target {
            provider: "aioz".into(),
            cluster: None,
        },
        cid: crate::manifest::CanonicalCid::for_test(&cid(n)),
    };
    let pin = DesiredPin::new(
        crate::manifest::Labels {
            name: None,
            meta: Default::default(),
            replication: None,
        },
        None,
        Vec::new(),
    );
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..200 {
        let mut all: Vec<u64> = (0..rng.u64(0..40)).map(|_| rng.u64(0..1000)).collect();
        all.sort_by_key(|&n| key(n));
        all.dedup();
        let (mut items, mut owners) = (Vec::new(), Vec::new());
        let mut additions = Vec::new();
        for &n in &all {
            if rng.bool() {
                items.push((key(n), pin.clone()));
                owners.push(n as u32);
            } else {
                additions.push(((key(n), pin.clone()), n as u32));
            }
        }
        let removed: Vec<usize> = (0..items.len()).filter(|_| rng.u8(0..4) == 0).collect();
        let gone: Vec<u32> = removed.iter().map(|&i| owners[i]).collect();
        remove_at(&mut items, &mut owners, &removed);
        merge_in(&mut items, &mut owners, additions);
        let expected: Vec<u64> = all
            .into_iter()
            .filter(|n| !gone.contains(&(*n as u32)))
            .collect();
        assert_eq!(
            owners,
            expected.iter().map(|&n| n as u32).collect::<Vec<_>>()
        );
        let keys: Vec<PinKey> = items.into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, expected.into_iter().map(key).collect::<Vec<_>>());
    }
}

/// What a pin of the model costs inline: at two million pins each word is
/// 16 MB.
#[test]
#[cfg(target_pointer_width = "64")]
fn a_pin_of_the_model_is_twelve_words() {
    assert_eq!(size_of::<crate::manifest::Labels>(), 32);
    assert_eq!(size_of::<DesiredPin>(), 40);
    assert_eq!(size_of::<(PinKey, DesiredPin)>(), 96);
}
