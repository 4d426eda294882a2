//! `pinsync init`: a starter manifest and the state's `.gitignore` lines.
//!
//! - For each provider type (and the default), the manifest written starts
//!   with the schema line, passes `pinsync validate` and the schema, and
//!   holds the blocks and published rate limits it promises.
//! - An existing manifest (a file, or a link even to nothing) is never
//!   touched: exit 1, naming it.
//! - Without a `.gitignore` the lines are printed and none is created; an
//!   existing one gets the missing lines once, and the run says so.
//! - With those lines, git sees none of the files an apply and a restore
//!   leave beside the state (checked with git itself, after a real apply
//!   against the emulator).

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::schema::{assert_valid_both_ways, schema_modeline, schema_validator};
use crate::support::{CID_A, CID_B, Emulator, Project, Run, RunExt as _, pin, pinsync_bin};

/// The lines the state's companion files need, as the README lists them.
/// Not the journal: it is part of the state.
const COMPANION_LINES: [&str; 2] = ["*.state.json.lock", "*.state.json.backup"];

fn init(dir: &Path, args: &[&str]) -> Run {
    Command::new(pinsync_bin())
        .arg("init")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .run()
}

#[test]
fn the_starter_of_each_type_validates_matches_the_schema_and_names_its_limits() {
    let validator = schema_validator();
    let modeline = schema_modeline();
    let cases: [(&[&str], &str, &[&str]); 4] = [
        (&[], "pinning-service", &[]),
        (
            &["--provider", "pinning-service"],
            "pinning-service",
            &[
                "https://api.pinata.cloud/psa",
                "Pinata: 60, 250 or 500 requests a minute by plan",
                "rate_limit: 500/min",
                "pinsync slows down to what yours enforces",
                "rate_limits: {list: 30/min}",
                "https://api.filebase.io/v1/ipfs",
                "100 requests a second",
                "https://api.4everland.dev",
                "https://pin.crustcode.com/psa",
                "https://api-ipfs.attoaioz.cyou/api/psa",
                "AIOZ W3IPFS: 180 requests a minute",
                "http://127.0.0.1:9097",
            ],
        ),
        (
            &["--provider", "aioz"],
            "aioz",
            &["api_key: ${AIOZ_PINNING_API_KEY}"],
        ),
        (
            &["--provider", "pinarkive"],
            "pinarkive",
            &["about 10 requests a second, 100 a minute"],
        ),
    ];
    for (args, kind, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let run = init(dir.path(), args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(
            run.stdout.starts_with("Wrote pins.yaml: provider `")
                && run.stdout.contains(&format!("(type {kind})")),
            "{args:?}: {run:?}"
        );
        let text = fs::read_to_string(dir.path().join("pins.yaml")).expect("pins.yaml written");
        assert_eq!(text.lines().next(), Some(modeline.as_str()), "{args:?}");
        assert!(text.contains(&format!("type: {kind}")), "{args:?}:\n{text}");
        for fragment in expected {
            assert!(
                text.contains(fragment),
                "{args:?}: no {fragment:?} in\n{text}"
            );
        }
        assert_valid_both_ways(&validator, &format!("init {args:?}"), &text);
    }
}

#[test]
fn an_existing_manifest_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pins.yaml");
    fs::write(&manifest, "mine\n").unwrap();
    let other = dir.path().join("other.yaml");
    fs::write(&other, "also mine\n").unwrap();
    // A link to nothing: following it would create the file it names.
    let link = dir.path().join("link.yaml");
    std::os::unix::fs::symlink(dir.path().join("target.yaml"), &link).unwrap();
    for (args, name) in [
        (&[][..], "pins.yaml"),
        (&["-f", "other.yaml"][..], "other.yaml"),
        (&["--provider", "aioz", "-f", "link.yaml"][..], "link.yaml"),
    ] {
        let run = init(dir.path(), args);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(
            run.stderr.contains(&format!("{name} already exists"))
                && run.stderr.contains("never overwrites"),
            "{args:?}: {run:?}"
        );
        assert_eq!(run.stdout, "", "{args:?}");
    }
    assert_eq!(fs::read_to_string(&manifest).unwrap(), "mine\n");
    assert_eq!(fs::read_to_string(&other).unwrap(), "also mine\n");
    assert!(!dir.path().join("target.yaml").exists());
    assert!(!dir.path().join(".gitignore").exists());
}

#[test]
fn bad_arguments_exit_1_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--provider", "nft"][..],
        &["-f", "missing-dir/pins.yaml"][..],
    ] {
        let run = init(dir.path(), args);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(!run.stderr.contains("panicked"), "{run:?}");
    }
    let run = init(dir.path(), &["-f", "missing-dir/pins.yaml"]);
    assert!(run.stderr.contains("missing-dir/pins.yaml"), "{run:?}");
    let run = init(dir.path(), &["--provider", "nft"]);
    assert!(
        run.stderr.contains("aioz, pinarkive, pinning-service"),
        "{run:?}"
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn without_a_gitignore_the_lines_are_printed_and_none_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let run = init(dir.path(), &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("There is no .gitignore"), "{run:?}");
    for line in COMPANION_LINES {
        assert!(
            run.stdout.lines().any(|l| l.trim() == line),
            "{line}: {run:?}"
        );
    }
    assert!(!dir.path().join(".gitignore").exists());
    assert!(
        !run.stdout
            .lines()
            .any(|l| l.trim() == "*.state.json.journal"),
        "the journal is part of the state: {run:?}"
    );
}

#[test]
fn an_existing_gitignore_gets_the_missing_lines_once() {
    let dir = tempfile::tempdir().unwrap();
    let gitignore = dir.path().join(".gitignore");
    // No final newline, and one of the lines already there.
    fs::write(&gitignore, "/target\n*.state.json.lock").unwrap();
    let run = init(dir.path(), &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("Appended to .gitignore"), "{run:?}");
    let text = fs::read_to_string(&gitignore).unwrap();
    assert!(text.starts_with("/target\n*.state.json.lock\n"), "{text}");
    for line in COMPANION_LINES {
        let count = text.lines().filter(|l| *l == line).count();
        assert_eq!(count, 1, "{line} in\n{text}");
    }

    let run = init(
        dir.path(),
        &["--provider", "pinarkive", "-f", "second.yaml"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains(".gitignore already ignores the state's companion files"),
        "{run:?}"
    );
    assert_eq!(fs::read_to_string(&gitignore).unwrap(), text, "unchanged");
}

#[test]
fn git_ignores_every_file_apply_and_restore_leave_beside_the_state() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    fs::write(p.path(".gitignore"), "").unwrap();
    let run = p.run(&["init", "-f", "starter.yaml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    // A second write keeps the first state as the backup; a restore moves
    // the current one aside.
    p.write_manifest(&emu, &[pin(CID_A, "a", &[]), pin(CID_B, "b", &[])].concat());
    for args in [&["apply", "--auto-approve"][..], &["state", "restore"]] {
        let run = p.run(args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
    }
    let names: Vec<String> = fs::read_dir(p.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for made in ["pins.state.json.lock", "pins.state.json.backup"] {
        assert!(names.iter().any(|n| n == made), "{made} in {names:?}");
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("pins.state.json.replaced-")),
        "{names:?}"
    );
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(p.dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", p.dir.path())
            .run()
    };
    assert_eq!(git(&["init", "-q"]).code, 0);
    let status = git(&["status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(status.code, 0, "{status:?}");
    let mut seen: Vec<&str> = status
        .stdout
        .lines()
        .map(|l| l.trim_start_matches("?? "))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [".gitignore", "pins.state.json", "pins.yaml", "starter.yaml"],
        "{names:?}"
    );
}
