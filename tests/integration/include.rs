//! Manifests split with `include:`: validate, plan, apply and watch work on
//! the manifest and every file it includes; problems are reported at each
//! file's own places.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// A project whose manifest (holding `main_pins`) includes `include` (the
/// YAML of the list), with `files` written beside it.
fn split(emu: &Emulator, main_pins: &str, include: &str, files: &[(&str, String)]) -> Project {
    let p = Project::new(emu, main_pins);
    include_in(&p, include);
    for (name, text) in files {
        write(&p, name, text);
    }
    p
}

fn include_in(p: &Project, include: &str) {
    let text = std::fs::read_to_string(p.manifest()).unwrap();
    let text = text.replace("\npins:\n", &format!("\ninclude: {include}\npins:\n"));
    std::fs::write(p.manifest(), text).unwrap();
}

fn write(p: &Project, name: &str, text: &str) {
    let path = p.path(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// An included file holding these pins (YAML list items).
fn pins_file(pins: &str) -> String {
    format!("pins:\n{pins}")
}

#[test]
fn a_glob_include_is_validated_planned_and_applied_as_one_manifest() {
    let emu = Emulator::start();
    let d = many_cids(1).remove(0);
    let p = split(
        &emu,
        &pin(CID_A, "main", &[]),
        "[\"pins.d/*.yaml\"]",
        &[
            ("pins.d/web.yaml", pins_file(&pin(CID_B, "web", &[]))),
            (
                "pins.d/docs.yaml",
                format!(
                    "defaults:\n  to: [arkive/cl0-global]\n{}",
                    pins_file(&(pin(CID_C, "docs", &[]) + &pin(&d, "both", &["aioz", "psa"])))
                ),
            ),
            // Not matched by the glob.
            ("pins.d/notes.txt", "not yaml: [".into()),
        ],
    );
    let run = p.run(&["validate"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout, "pins.yaml: valid (3 providers, 5 pin targets, 2 included files)\n",
        "{run:?}"
    );

    let run = p.run(&["plan"]);
    assert_eq!(run.code, 0, "{run:?}");
    let added: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('+'))
        .collect();
    assert_eq!(added.len(), 5, "{run:?}");
    for (target, cid, name) in [
        ("aioz", CID_A, "main"),
        ("aioz", CID_B, "web"),
        // The file's defaults, not the manifest's.
        ("arkive/cl0-global", CID_C, "docs"),
        ("aioz", d.as_str(), "both"),
        ("psa", d.as_str(), "both"),
    ] {
        assert!(
            added
                .iter()
                .any(|l| l.contains(target) && l.contains(cid) && l.contains(name)),
            "{target} {cid} {name}: {run:?}"
        );
    }
    assert!(
        run.stdout
            .contains("Plan: 5 to pin, 0 to update, 0 no longer managed, 0 unchanged."),
        "{run:?}"
    );

    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(emu.pins().len(), 5, "{run:?}");
    assert_eq!(p.state()["pins"].as_array().unwrap().len(), 5);
    let run = p.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(run.code, 0, "in sync after apply: {run:?}");
}

#[test]
fn an_included_files_problems_are_reported_at_its_own_file_line_and_column() {
    let emu = Emulator::start();
    let p = split(
        &emu,
        &pin(CID_A, "main", &[]),
        "[\"pins.d/*.yaml\"]",
        &[
            ("pins.d/a.yaml", pins_file(&pin(CID_B, "fine", &[]))),
            (
                "pins.d/b.yaml",
                "providers: {}\npins:\n  - cid: Qm123\n  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi\n    to: [ghost]\n    colour: red\n".into(),
            ),
        ],
    );
    let run = p.run(&["validate"]);
    assert_eq!(run.code, 1, "{run:?}");
    let problems: Vec<&str> = run.stderr.lines().collect();
    let expected = [
        "pins.d/b.yaml:1:1: `providers` belongs in the main manifest",
        "pins.d/b.yaml:3:10: invalid CID \"Qm123\"",
        "pins.d/b.yaml:5:10: unknown provider `ghost`",
        "pins.d/b.yaml:6:5: unknown field `colour` in a pin",
        "4 problems found.",
    ];
    assert_eq!(problems.len(), expected.len(), "{run:?}");
    for (got, want) in problems.iter().zip(expected) {
        assert!(got.starts_with(want), "{got:?} is not {want:?}: {run:?}");
    }
    // plan and apply refuse it the same way, before any call.
    for args in [&["plan"][..], &["apply", "--auto-approve"]] {
        let run = p.run(args);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(
            run.stderr.contains("pins.d/b.yaml:3:10: invalid CID"),
            "{args:?}: {run:?}"
        );
    }
    assert!(emu.requests().is_empty());
}

#[test]
fn a_cid_on_one_target_in_two_files_names_both_places() {
    let emu = Emulator::start();
    let p = split(
        &emu,
        &pin(CID_A, "main", &[]),
        "[\"pins.d/*.yaml\"]",
        &[
            ("pins.d/a.yaml", pins_file(&pin(CID_B, "first", &[]))),
            (
                "pins.d/b.yaml",
                pins_file(
                    &(pin(CID_C, "c", &[]) + &pin(CID_B, "again", &[]) + &pin(CID_A, "again", &[])),
                ),
            ),
            // The same CID on another target is fine.
            ("pins.d/c.yaml", pins_file(&pin(CID_B, "b", &["arkive"]))),
        ],
    );
    let run = p.run(&["validate"]);
    assert_eq!(run.code, 1, "{run:?}");
    // The manifest's only pin is at line 22 (see support::Project).
    assert_eq!(
        run.stderr,
        format!(
            "pins.d/b.yaml:4:10: CID {CID_B} is already pinned to aioz at pins.d/a.yaml:2:10\n\
             pins.d/b.yaml:6:10: CID {CID_A} is already pinned to aioz at pins.yaml:22:10\n\
             2 problems found.\n"
        ),
        "{run:?}"
    );
}

#[test]
fn a_glob_matching_nothing_is_refused_at_its_entry_and_fine_when_optional() {
    let emu = Emulator::start();
    let p = split(&emu, &pin(CID_A, "main", &[]), "[\"pins.d/*.yaml\"]", &[]);
    let run = p.run(&["validate"]);
    assert_eq!(run.code, 1, "{run:?}");
    // `include:` is the line before `pins:`, at 20.
    assert!(
        run.stderr
            .starts_with("pins.yaml:20:11: `pins.d/*.yaml` matches no file"),
        "{run:?}"
    );
    let run = p.run(&["plan"]);
    assert_eq!(run.code, 1, "{run:?}");

    let p = split(
        &emu,
        &pin(CID_A, "main", &[]),
        "[{path: \"pins.d/*.yaml\", optional: true}, {path: local.yaml, optional: true}]",
        &[],
    );
    let run = p.run(&["validate"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout, "pins.yaml: valid (3 providers, 1 pin target)\n",
        "{run:?}"
    );
    let run = p.run(&["plan"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("Plan: 1 to pin"), "{run:?}");
}

fn emulator_cids(emu: &Emulator) -> Vec<String> {
    let mut cids: Vec<String> = emu
        .pins()
        .iter()
        .map(|x| x["cid"].as_str().unwrap().to_owned())
        .collect();
    cids.sort();
    cids
}

fn sorted(cids: &[&str]) -> Vec<String> {
    let mut cids: Vec<String> = cids.iter().map(|c| (*c).to_owned()).collect();
    cids.sort();
    cids
}

fn json_events(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn watch_applies_an_edit_of_an_included_file_a_new_file_and_a_removal() {
    let emu = Emulator::start();
    let [d, e, f] = <[String; 3]>::try_from(many_cids(3)).unwrap();
    let p = split(
        &emu,
        &pin(CID_A, "main", &[]),
        "[\"pins.d/*.yaml\"]",
        &[("pins.d/a.yaml", pins_file(&pin(CID_B, "b", &[])))],
    );
    // Pins of a removed file are unpinned, not only orphaned.
    let text = std::fs::read_to_string(p.manifest()).unwrap();
    std::fs::write(
        p.manifest(),
        text.replace("version: 1\n", "version: 1\nprune: true\n"),
    )
    .unwrap();
    let w = Background::spawn(p.command(&["watch", "--interval", "1h", "--log-format", "json"]));
    wait_until(Duration::from_secs(30), "the first apply", || {
        emulator_cids(&emu) == sorted(&[CID_A, CID_B])
    });

    // An edit of the included file.
    write(
        &p,
        "pins.d/a.yaml",
        &pins_file(&(pin(CID_B, "b", &[]) + &pin(CID_C, "c", &[]))),
    );
    wait_until(Duration::from_secs(30), "the edit applied", || {
        emulator_cids(&emu) == sorted(&[CID_A, CID_B, CID_C])
    });

    // A new file that the glob matches, written and renamed into place as
    // `git pull` does.
    write(&p, "pins.d/.b.yaml.tmp", &pins_file(&pin(&d, "d", &[])));
    std::fs::rename(p.path("pins.d/.b.yaml.tmp"), p.path("pins.d/b.yaml")).unwrap();
    wait_until(Duration::from_secs(30), "the new file applied", || {
        emulator_cids(&emu) == sorted(&[CID_A, CID_B, CID_C, &d])
    });

    // The file removed: its pin is unpinned (prune: true).
    std::fs::remove_file(p.path("pins.d/b.yaml")).unwrap();
    wait_until(Duration::from_secs(30), "the removal applied", || {
        emulator_cids(&emu) == sorted(&[CID_A, CID_B, CID_C])
    });

    // A file that the glob does not match changes nothing.
    write(&p, "pins.d/e.txt", &pins_file(&pin(&e, "e", &[])));
    // A later edit of the manifest itself: once it is applied, every
    // earlier event has been handled.
    let text = std::fs::read_to_string(p.manifest()).unwrap();
    std::fs::write(p.manifest(), text + &pin(&f, "f", &[])).unwrap();
    wait_until(Duration::from_secs(30), "the manifest edit applied", || {
        emulator_cids(&emu) == sorted(&[CID_A, CID_B, CID_C, &f])
    });
    assert!(!emulator_cids(&emu).contains(&e), "e.txt is not included");

    let (code, out) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{out}");
    let events = json_events(&out);
    let diffs: Vec<(&str, Vec<&str>)> = events
        .iter()
        .filter(|e| e["event"] == "manifest_diff")
        .map(|e| {
            let lines = e["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            (e["file"].as_str().unwrap(), lines)
        })
        .collect();
    // The main manifest's lines; an included file's pins (its text is
    // not kept).
    let cid_c = format!("+ aioz {CID_C} \"c\"");
    let cid_d = format!("+ aioz {d} \"d\"");
    let gone_d = format!("- aioz {d} \"d\"");
    let cid_f = format!("+   - cid: {f}");
    assert_eq!(
        diffs,
        [
            ("pins.d/a.yaml", vec![cid_c.as_str()]),
            ("pins.d/b.yaml", vec![cid_d.as_str()]),
            ("pins.d/b.yaml", vec![gone_d.as_str()]),
            ("pins.yaml", vec![cid_f.as_str(), "+     name: f"]),
        ],
        "{out}"
    );
    let changes = events.iter().filter(|e| e["event"] == "change").count();
    assert_eq!(
        changes, 4,
        "one reconcile per change, none for e.txt: {out}"
    );
}

#[test]
fn watch_sees_a_directory_made_later_for_an_optional_glob() {
    let emu = Emulator::start();
    let p = split(
        &emu,
        &pin(CID_A, "main", &[]),
        "[{path: \"teams/*/pins.yaml\", optional: true}]",
        &[],
    );
    let w = Background::spawn(p.command(&["watch", "--interval", "1h"]));
    wait_until(Duration::from_secs(30), "the first apply", || {
        emulator_cids(&emu) == sorted(&[CID_A])
    });
    // `teams/` does not exist yet: its creation, then a team's directory,
    // then the team's file are each seen.
    write(
        &p,
        "teams/web/pins.yaml",
        &pins_file(&pin(CID_B, "web", &[])),
    );
    wait_until(Duration::from_secs(30), "the web team's pins", || {
        emulator_cids(&emu) == sorted(&[CID_A, CID_B])
    });
    write(
        &p,
        "teams/api/pins.yaml",
        &pins_file(&pin(CID_C, "api", &[])),
    );
    wait_until(Duration::from_secs(30), "the api team's pins", || {
        emulator_cids(&emu) == sorted(&[CID_A, CID_B, CID_C])
    });
    let (code, out) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn watch_keeps_the_last_good_manifest_when_an_included_file_breaks() {
    let emu = Emulator::start();
    let p = split(
        &emu,
        &pin(CID_A, "main", &[]),
        "[\"pins.d/*.yaml\"]",
        &[("pins.d/a.yaml", pins_file(&pin(CID_B, "b", &[])))],
    );
    let w = Background::spawn(p.command(&["watch", "--interval", "1h"]));
    wait_until(Duration::from_secs(30), "the first apply", || {
        emulator_cids(&emu) == sorted(&[CID_A, CID_B])
    });
    write(&p, "pins.d/a.yaml", "pins:\n  - cid: Qm1\n");
    w.wait_for_line("pins.d/a.yaml:2:10: invalid CID");
    w.wait_for_line("keeping the last good manifest in force");
    // Fixing the broken file is seen too.
    write(
        &p,
        "pins.d/a.yaml",
        &pins_file(&(pin(CID_B, "b", &[]) + &pin(CID_C, "c", &[]))),
    );
    wait_until(Duration::from_secs(30), "the fix applied", || {
        emulator_cids(&emu) == sorted(&[CID_A, CID_B, CID_C])
    });
    let (code, out) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{out}");
}

/// Where each pin is: `provider cid`, sorted.
fn held_where(emu: &Emulator) -> Vec<String> {
    let mut held: Vec<String> = emu
        .pins()
        .iter()
        .map(|x| {
            format!(
                "{} {}",
                x["provider"].as_str().unwrap(),
                x["cid"].as_str().unwrap()
            )
        })
        .collect();
    held.sort();
    held
}

fn on(provider: &str, cids: &[&str]) -> Vec<String> {
    cids.iter().map(|c| format!("{provider} {c}")).collect()
}

/// What an incremental watch must keep doing: edits to several files in
/// one burst, a file removed then added back, and a `defaults` change in
/// an included file that moves its pins to another target.
#[test]
fn watch_follows_a_burst_across_files_a_file_back_again_and_a_defaults_move() {
    let emu = Emulator::start();
    let [d, e] = <[String; 2]>::try_from(many_cids(2)).unwrap();
    let p = split(
        &emu,
        &pin(CID_A, "main", &[]),
        "[\"pins.d/*.yaml\"]",
        &[
            ("pins.d/a.yaml", pins_file(&pin(CID_B, "b", &[]))),
            ("pins.d/b.yaml", pins_file(&pin(CID_C, "c", &[]))),
        ],
    );
    let text = std::fs::read_to_string(p.manifest()).unwrap();
    std::fs::write(
        p.manifest(),
        text.replace("version: 1\n", "version: 1\nprune: true\n"),
    )
    .unwrap();
    let w = Background::spawn(p.command(&["watch", "--interval", "1h"]));
    let expect = |what: &str, want: Vec<String>| {
        let mut want = want;
        want.sort();
        wait_until(Duration::from_secs(60), what, || held_where(&emu) == want);
    };
    expect("the first apply", on("aioz", &[CID_A, CID_B, CID_C]));

    // Both files at once.
    let a = pins_file(&(pin(CID_B, "b", &[]) + &pin(&d, "d", &[])));
    let b = pins_file(&(pin(CID_C, "c", &[]) + &pin(&e, "e", &[])));
    write(&p, "pins.d/a.yaml", &a);
    write(&p, "pins.d/b.yaml", &b);
    expect(
        "the burst applied",
        on("aioz", &[CID_A, CID_B, CID_C, &d, &e]),
    );

    // A file removed, then added back.
    std::fs::remove_file(p.path("pins.d/b.yaml")).unwrap();
    expect("the removal applied", on("aioz", &[CID_A, CID_B, &d]));
    write(&p, "pins.d/b.yaml", &b);
    expect("the file back", on("aioz", &[CID_A, CID_B, CID_C, &d, &e]));

    // Its defaults send a.yaml's pins elsewhere: moved, make-before-break.
    write(
        &p,
        "pins.d/a.yaml",
        &format!("defaults:\n  to: [arkive/cl0-global]\n{a}"),
    );
    let mut moved = on("aioz", &[CID_A, CID_C, &e]);
    moved.extend(on("pinarkive", &[CID_B, &d]));
    expect("the move applied", moved);

    let (code, out) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{out}");
}

/// An edit of an included file plans only the pins it touched while all
/// was in sync; after a reconcile that failed, it plans everything, so
/// what failed is pinned at the edit, not an interval later.
#[test]
fn after_a_failed_reconcile_an_edit_of_an_included_file_plans_everything() {
    let emu = Emulator::start();
    let d = many_cids(4)[3].clone();
    let p = split(
        &emu,
        "  []\n",
        "[\"pins.d/*.yaml\"]",
        &[("pins.d/a.yaml", pins_file(&pin(CID_A, "a", &[])))],
    );
    emu.faults(serde_json::json!({"error_rate": 1.0, "error_status": 400}));
    let w = Background::spawn(p.command(&["watch", "--interval", "1h"]));
    wait_until(Duration::from_secs(30), "the failed reconcile", || {
        w.output().contains("finished with failures")
    });
    emu.faults(serde_json::json!({}));
    // In sync but for a.yaml's pin, which only a whole plan retries.
    write(&p, "pins.d/b.yaml", &pins_file(&pin(CID_B, "b", &[])));
    wait_until(Duration::from_secs(30), "both pinned", || {
        emulator_cids(&emu) == sorted(&[CID_A, CID_B])
    });
    // Then in sync: the next edit plans its own pin, and pins it.
    write(
        &p,
        "pins.d/b.yaml",
        &pins_file(&(pin(CID_B, "b", &[]) + &pin(&d, "d", &[]))),
    );
    wait_until(Duration::from_secs(30), "the next edit", || {
        emulator_cids(&emu) == sorted(&[CID_A, CID_B, &d])
    });
    let (code, out) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{out}");
}
