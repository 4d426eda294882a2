//! `pinsync watch`: a long-running reconciler driven by file changes,
//! a timer and signals.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn watch(p: &Project, extra: &[&str]) -> Background {
    let mut args = vec!["watch", "--status-file", "status.json"];
    args.extend_from_slice(extra);
    Background::spawn(p.command(&args))
}

fn emulator_cids(emu: &Emulator) -> Vec<String> {
    emu.pins()
        .iter()
        .map(|x| x["cid"].as_str().unwrap().to_owned())
        .collect()
}

fn status(p: &Project) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(p.path("status.json")).ok()?).ok()
}

#[test]
fn applies_at_start_then_on_in_place_edits_and_rename_over() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let w = watch(&p, &["--interval", "1h"]);
    wait_until(Duration::from_secs(30), "the first pin", || {
        emulator_cids(&emu) == [CID_A]
    });

    // An editor writing in place.
    p.write_manifest(&emu, &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    wait_until(Duration::from_secs(30), "the in-place edit", || {
        emulator_cids(&emu).contains(&CID_B.to_owned())
    });

    // `git pull` and many editors write a new file and rename it over.
    let staging = Project {
        dir: tempfile::tempdir_in(p.dir.path()).unwrap(),
        state_url: None,
    };
    staging.write_manifest(
        &emu,
        &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[]) + &pin(CID_C, "c", &["arkive/cl1-eu"])),
    );
    std::fs::rename(staging.manifest(), p.manifest()).unwrap();
    wait_until(Duration::from_secs(30), "the renamed-over edit", || {
        emu.pins().len() == 3
    });

    let (code, out) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{out}");
    assert_eq!(p.state()["pins"].as_array().unwrap().len(), 3, "{out}");
    assert_eq!(emu.pin_calls(), 3, "each pin called once: {out}");
    assert!(out.contains("change: reconciling"), "{out}");
    assert_no_secret("watch log", &out);
}

#[test]
fn an_invalid_save_is_reported_and_the_next_good_save_is_applied() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let mut w = watch(&p, &["--interval", "1h"]);
    wait_until(Duration::from_secs(30), "the first pin", || {
        emu.pins().len() == 1
    });

    let good = std::fs::read_to_string(p.manifest()).unwrap();
    std::fs::write(
        p.manifest(),
        good.replace("name: a", "name: a\n    colour: red"),
    )
    .unwrap();
    w.wait_for_line("pins.yaml:23:5: unknown field `colour`");
    w.wait_for_line("keeping the last good manifest in force");
    wait_until(Duration::from_secs(30), "the status file", || {
        status(&p).is_some_and(|s| s["last_result"] == "invalid_manifest")
    });
    assert!(w.child.try_wait().unwrap().is_none(), "watch lives on");

    p.write_manifest(&emu, &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    wait_until(Duration::from_secs(30), "the good save", || {
        emu.pins().len() == 2
    });
    wait_until(Duration::from_secs(30), "an ok status", || {
        status(&p).is_some_and(|s| s["last_result"] == "ok")
    });
    let (code, out) = w.stop(libc::SIGINT);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn an_outage_is_recovered_by_the_periodic_reconcile_without_edits() {
    let emu = Emulator::start();
    emu.faults(json!({"error_rate": 1.0, "error_status": 503}));
    let p = Project::new(
        &emu,
        &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &["arkive/cl0-global"])),
    );
    let w = watch(&p, &["--interval", "1s", "--retry-attempts", "1"]);
    wait_until(Duration::from_secs(30), "a failed status", || {
        status(&p).is_some_and(|s| s["last_result"] == "failed" && s["pending"] == 2)
    });
    w.wait_for_line("pin_failed: HTTP 503");
    assert!(emu.pins().is_empty());

    emu.faults(json!({}));
    wait_until(Duration::from_secs(30), "the periodic retry", || {
        emu.pins().len() == 2
    });
    wait_until(Duration::from_secs(30), "an ok status", || {
        status(&p).is_some_and(|s| s["last_result"] == "ok")
    });
    let s = status(&p).unwrap();
    assert!(s["last_success_at"].is_string());
    let (code, out) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("interval: reconciling"), "{out}");
}

#[test]
fn sigterm_mid_apply_exits_0_with_every_confirmed_pin_recorded() {
    let emu = Emulator::start_with(&["--delay-ms", "300"]);
    let manifest = many_pins(30, &[]);
    let p = Project::new(&emu, &manifest);
    let w = watch(&p, &["--interval", "1h", "--concurrency", "2"]);
    wait_until(Duration::from_secs(30), "some pins", || {
        emu.pins().len() >= 4
    });
    let (code, out) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{out}");
    let held = emu.pins().len();
    assert!(held < 30, "stopped before the end");
    assert_eq!(p.state()["pins"].as_array().unwrap().len(), held, "{out}");
}

#[test]
fn watch_holds_the_lock_so_apply_fails_clearly() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let w = watch(&p, &["--interval", "1h"]);
    wait_until(Duration::from_secs(30), "the first pin", || {
        emu.pins().len() == 1
    });
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("locked by `pinsync watch`"), "{run:?}");
    assert!(
        run.stderr.contains(&format!("pid {}", w.child.id())),
        "{run:?}"
    );
    let (code, _) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0);
}

#[test]
fn json_logs_are_one_object_per_line_and_a_burst_of_saves_is_one_apply() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let w = watch(&p, &["--interval", "1h", "--log-format", "json"]);
    wait_until(Duration::from_secs(30), "the first pin", || {
        emu.pins().len() == 1
    });
    for i in 0..5 {
        p.write_manifest(
            &emu,
            &(pin(CID_A, "a", &[]) + &pin(CID_B, &format!("b{i}"), &[])),
        );
    }
    wait_until(Duration::from_secs(30), "the burst applied", || {
        emu.pins().len() == 2
    });
    // A later, separate save: once it is applied, every event of the burst
    // has been handled, so the count below is final.
    p.write_manifest(
        &emu,
        &(pin(CID_A, "a", &[]) + &pin(CID_B, "b4", &[]) + &pin(CID_C, "c", &[])),
    );
    wait_until(Duration::from_secs(30), "the later save applied", || {
        emu.pins().len() == 3
    });
    let (code, out) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{out}");
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for e in &events {
        assert!(
            e["ts"].is_string() && e["level"].is_string() && e["event"].is_string(),
            "{e}"
        );
    }
    // What each save changed is logged, as a person reads a diff.
    let diffs: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "manifest_diff")
        .collect();
    assert_eq!(diffs.len(), 2, "{out}");
    let lines: Vec<&str> = diffs[0]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(
        lines,
        [format!("+   - cid: {CID_B}"), "+     name: b4".to_string()],
        "{out}"
    );
    assert_eq!(diffs[1]["added"], 2);
    let changes = events.iter().filter(|e| e["event"] == "change").count();
    assert_eq!(
        changes, 2,
        "one apply for the burst, one for the later save: {out}"
    );
    assert_eq!(emu.pin_calls(), 3);
    assert_eq!(
        emu.pins().iter().find(|x| x["cid"] == CID_B).unwrap()["name"],
        "b4",
        "the last save won"
    );
    assert_no_secret("json log", &out);
}

/// Watch prunes only when the manifest says `prune: true`, and the guards
/// hold there too: an emptied manifest is blocked, not applied.
#[test]
fn watch_prunes_only_with_prune_true_and_a_refused_plan_is_blocked() {
    let emu = Emulator::start();
    let cids = many_cids(12);
    let pins = |n: usize| -> String { cids[..n].iter().map(|c| pin(c, "x", &["aioz"])).collect() };
    let p = Project::new(&emu, &pins(12));
    let w = watch(&p, &["--interval", "1h"]);
    wait_until(Duration::from_secs(30), "12 pins", || {
        emu.pins().len() == 12
    });
    let with_prune = |pins: &str| {
        p.write_manifest(&emu, pins);
        let text = std::fs::read_to_string(p.manifest()).unwrap();
        std::fs::write(
            p.manifest(),
            text.replace("version: 1\n", "version: 1\nprune: true\n"),
        )
        .unwrap();
    };
    // Without prune: true, a dropped pin stays pinned.
    let eleven = pins(11);
    p.write_manifest(&emu, &eleven);
    wait_until(Duration::from_secs(30), "the orphan recorded", || {
        status(&p).is_some_and(|s| s["last_result"] == "ok")
            && p.listed_pins().iter().any(|x| x["status"] == "orphaned")
    });
    assert_eq!(emu.pins().len(), 12);
    // With it, the dropped pin is unpinned.
    with_prune(&eleven);
    wait_until(Duration::from_secs(30), "the unpin", || {
        emu.pins().len() == 11
    });
    // An emptied manifest is refused by the guard: blocked, nothing unpinned.
    with_prune("  []\n");
    wait_until(Duration::from_secs(30), "blocked", || {
        status(&p).is_some_and(|s| s["last_result"] == "blocked")
    });
    let (code, out) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("refused: the manifest asks for no pins"),
        "{out}"
    );
    assert_eq!(emu.pins().len(), 11, "nothing unpinned past the guard");
    let s = status(&p).unwrap();
    assert!(s["error"].as_str().unwrap().contains("--max-unpins"), "{s}");
}

#[test]
fn runs_without_transparent_huge_pages() {
    // Each huge page is zeroed whole on first touch: at a million pins that
    // was a third of a plan's time (see main.rs).
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let w = watch(&p, &["--interval", "1h"]);
    wait_until(Duration::from_secs(30), "the first pin", || {
        emulator_cids(&emu) == [CID_A]
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", w.child.id())).unwrap();
    let (code, out) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{out}");
    // Linux 5.0 and later say; a kernel that does not cannot be asked.
    let Some(thp) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        eprintln!("skipped: this kernel's /proc/PID/status has no THP_enabled");
        return;
    };
    assert_eq!(thp, "THP_enabled:\t0", "huge pages are still allowed");
}

/// On a large state each reconcile appends what it pinned to the journal
/// and leaves the state file as it is; a clean stop folds the journal in.
#[test]
fn edits_append_to_the_journal_and_a_clean_stop_compacts_it() {
    let emu = Emulator::start();
    let base = InSyncBase::new(5_000, 0);
    let p = Project::new(&emu, &base.pins);
    base.write(&p);
    let w = watch(&p, &["--interval", "1h"]);
    wait_until(Duration::from_secs(60), "the first reconcile", || {
        status(&p).is_some()
    });
    let journal = p.path("pins.state.json.journal");
    for (n, cid) in [CID_A, CID_B].into_iter().enumerate() {
        let pins = [CID_A, CID_B][..=n]
            .iter()
            .map(|c| pin(c, c, &[]))
            .collect::<String>();
        p.write_manifest(&emu, &(base.pins.clone() + &pins));
        wait_until(Duration::from_secs(60), "the edit's pin", || {
            emulator_cids(&emu).contains(&cid.to_owned())
                && std::fs::read_to_string(&journal).is_ok_and(|j| j.lines().count() == n + 2)
        });
    }
    assert_eq!(
        std::fs::read(p.state_path()).unwrap(),
        base.state,
        "the state file is not rewritten: {}",
        w.output()
    );
    let (code, out) = w.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{out}");
    assert!(!journal.exists(), "folded in at the stop: {out}");
    let pins = p.state()["pins"].as_array().unwrap().len();
    assert_eq!(pins, base.len + 2, "{out}");
    assert_eq!(emu.pin_calls(), 2, "{out}");
}
