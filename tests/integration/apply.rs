//! `pinsync apply` end to end against the emulator.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

#[test]
fn apply_pins_with_the_documented_requests_and_records_them_file() {
    apply_pins_with_the_documented_requests_and_records_them(None);
}

#[test]
fn apply_pins_with_the_documented_requests_and_records_them_postgres() {
    let pg = Postgres::start();
    apply_pins_with_the_documented_requests_and_records_them(Some(pg.url("apply")));
}

fn apply_pins_with_the_documented_requests_and_records_them(state_url: Option<String>) {
    let emu = Emulator::start();
    let mut manifest = pin(CID_A, "homepage", &["aioz", "arkive/cl0-global"]);
    manifest += &format!("  - cid: {CID_B}\n    name: docs\n    meta: {{team: web}}\n");
    let p = Project::with_state(&emu, &manifest, state_url);
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("Apply complete: 3 pinned"), "{run:?}");

    let requests = emu.requests();
    assert_eq!(
        requests.len(),
        3,
        "exactly the pin calls needed: {requests:#?}"
    );
    let aioz: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/api/pinning/pinByHash")
        .collect();
    assert_eq!(aioz.len(), 2);
    for r in &aioz {
        assert_eq!(r["method"], "POST");
        assert_eq!(r["headers"]["pinning_api_key"], AIOZ_KEY);
        assert_eq!(r["headers"]["pinning_secret_key"], AIOZ_SECRET);
        assert_eq!(r["status"], 200);
    }
    let docs = aioz
        .iter()
        .find(|r| r["body"]["hash_to_pin"] == CID_B)
        .unwrap();
    assert_eq!(
        docs["body"],
        json!({"hash_to_pin": CID_B, "metadata": {"name": "docs", "keyvalues": {"team": "web"}}})
    );
    let home = aioz
        .iter()
        .find(|r| r["body"]["hash_to_pin"] == CID_A)
        .unwrap();
    assert_eq!(
        home["body"],
        json!({"hash_to_pin": CID_A, "metadata": {"name": "homepage"}})
    );

    let ark = requests
        .iter()
        .find(|r| r["path"] == format!("/api/v3/files/pin/{CID_A}"))
        .unwrap();
    assert_eq!(ark["method"], "POST");
    assert_eq!(ark["headers"]["x-api-key"], ARKIVE_KEY);
    assert_eq!(
        ark["body"],
        json!({"customName": "homepage", "cl": "cl0-global"})
    );

    // The state holds each pin, with AIOZ's pin id from `data.id`.
    if p.state_url.is_none() {
        assert_eq!(p.state()["format_version"], 4);
    }
    let state = p.listed_state().unwrap();
    assert!(!state["lineage"].as_str().unwrap().is_empty(), "{state}");
    let pins = state["pins"].as_array().unwrap();
    assert_eq!(pins.len(), 3);
    assert!(
        pins.iter().any(|x| x["provider"] == "aioz"
            && x["cid"] == CID_B
            && x["name"] == "docs"
            && x["meta"] == json!({"team": "web"})),
        "the labels are recorded: {state}"
    );
    let emu_ids: Vec<Value> = emu
        .pins()
        .iter()
        .map(|x| x["id"].clone())
        .filter(|v| !v.is_null())
        .collect();
    for x in pins.iter().filter(|x| x["provider"] == "aioz") {
        assert!(emu_ids.contains(&x["pin_id"]), "{x}");
    }
    let list = p.run(&["state", "list"]);
    assert_eq!(list.code, 0);
    assert_eq!(
        list.stdout.lines().count(),
        4,
        "header + one line per pin: {list:?}"
    );
    assert!(
        list.stdout.lines().any(|l| l.contains("arkive/cl0-global")
            && l.contains(CID_A)
            && l.contains("homepage"))
    );

    // In sync now: nothing to do, no call made, nothing written.
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("No changes."), "{run:?}");
    assert_eq!(emu.requests().len(), 3);
    assert_eq!(p.listed_state().unwrap(), state);
}

#[test]
fn bearer_auth_sends_authorization_header() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &["arkive/cl2-de"]));
    let text = std::fs::read_to_string(p.manifest()).unwrap().replace(
        "    api_key: ${PINARKIVE_API_KEY}\n",
        "    api_key: ${PINARKIVE_API_KEY}\n    auth: bearer\n",
    );
    std::fs::write(p.manifest(), text).unwrap();
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    let r = &emu.requests()[0];
    assert_eq!(
        r["headers"]["authorization"],
        format!("Bearer {ARKIVE_KEY}")
    );
    assert!(r["headers"].get("x-api-key").is_none());
}

#[test]
fn apply_without_terminal_or_approval_refuses_and_calls_nothing() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let run = p.run(&["apply"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("--auto-approve"), "{run:?}");
    assert!(emu.requests().is_empty());
}

#[test]
fn missing_credentials_are_all_named_before_any_call() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &["aioz", "arkive/cl0-global"]));
    let mut cmd = p.command(&["apply", "--auto-approve"]);
    cmd.env_remove("AIOZ_PINNING_SECRET_KEY")
        .env_remove("PINARKIVE_API_KEY");
    let run = cmd.run();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("AIOZ_PINNING_SECRET_KEY"), "{run:?}");
    assert!(run.stderr.contains("PINARKIVE_API_KEY"), "{run:?}");
    assert!(
        !run.stderr.contains("AIOZ_PINNING_API_KEY"),
        "a set variable is not reported: {run:?}"
    );
    assert!(emu.requests().is_empty());
}

#[test]
fn a_credential_no_header_can_carry_is_named_not_echoed_before_any_call() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &["aioz", "arkive/cl0-global"]));
    let mut cmd = p.command(&["apply", "--auto-approve"]);
    // A pasted key with a newline would otherwise fail every call, or
    // smuggle a header into every request.
    cmd.env("PINARKIVE_API_KEY", "pk-secret-half\nX-Injected: yes")
        .env_remove("AIOZ_PINNING_SECRET_KEY");
    let run = cmd.run();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("missing credentials: AIOZ_PINNING_SECRET_KEY"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("an HTTP header cannot carry: PINARKIVE_API_KEY (provider `arkive`)"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("pk-secret-half"), "{run:?}");
    assert!(!run.stdout.contains("pk-secret-half"), "{run:?}");
    assert!(emu.requests().is_empty());
}

#[test]
fn already_pinned_counts_as_success() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &["aioz", "arkive/cl0-global"]));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    // Lose the state: the provider still has the pins.
    std::fs::remove_file(p.state_path()).unwrap();
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("2 pinned (2 already pinned)"),
        "{run:?}"
    );
    assert_eq!(p.state()["pins"].as_array().unwrap().len(), 2);
}

#[test]
fn a_rejected_pin_fails_at_once_with_the_providers_message_and_others_land_file() {
    a_rejected_pin_fails_at_once_with_the_providers_message_and_others_land(None);
}

#[test]
fn a_rejected_pin_fails_at_once_with_the_providers_message_and_others_land_postgres() {
    let pg = Postgres::start();
    a_rejected_pin_fails_at_once_with_the_providers_message_and_others_land(Some(
        pg.url("rejected"),
    ));
}

fn a_rejected_pin_fails_at_once_with_the_providers_message_and_others_land(
    state_url: Option<String>,
) {
    let emu = Emulator::start();
    let p = Project::with_state(
        &emu,
        &(pin(CID_A, "a", &["arkive/cl0-global"]) + &pin(CID_B, "b", &["arkive/cl9-nowhere"])),
        state_url,
    );
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("Unknown cluster"),
        "provider's message shown: {run:?}"
    );
    assert!(run.stdout.contains("1 pinned"), "{run:?}");
    assert!(run.stdout.contains("1 failed"), "{run:?}");
    let to_bad: Vec<Value> = emu
        .requests()
        .into_iter()
        .filter(|r| r["body"]["cl"] == "cl9-nowhere")
        .collect();
    assert_eq!(to_bad.len(), 1, "a 4xx is not retried");
    let pins = p.listed_pins();
    assert_eq!(pins.len(), 1);
    assert_eq!(pins[0]["cluster"], "cl0-global");
}

#[test]
fn server_errors_and_rate_limits_are_retried_honouring_retry_after() {
    let emu = Emulator::start();
    emu.faults(
        json!({"fail_next": [{"status": 503}, {"status": 429, "retry_after": 1}, {"drop": true}]}),
    );
    let p = Project::new(&emu, &pin(CID_A, "a", &["arkive/cl0-global"]));
    let started = Instant::now();
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(emu.pin_calls(), 4, "three failures, then success");
    assert!(run.stdout.matches("retrying").count() >= 3, "{run:?}");
    assert_eq!(emu.pins().len(), 1);
}

#[test]
fn retries_are_bounded_and_the_failure_is_reported() {
    let emu = Emulator::start();
    emu.faults(json!({"error_rate": 1.0, "error_status": 502}));
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let run = p.run(&["apply", "--auto-approve", "--retry-attempts", "3"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(emu.pin_calls(), 3);
    assert!(run.stdout.contains("HTTP 502"), "{run:?}");
    assert!(run.stdout.contains("after 3 attempts"), "{run:?}");
    assert!(emu.pins().is_empty());
    let state = p.state();
    assert!(
        state["pins"].as_array().unwrap().is_empty(),
        "nothing recorded that was not confirmed"
    );
}

#[test]
fn saved_plan_applies_exactly_and_refuses_once_the_state_moved_file() {
    saved_plan_applies_exactly_and_refuses_once_the_state_moved(None);
}

#[test]
fn saved_plan_applies_exactly_and_refuses_once_the_state_moved_postgres() {
    let pg = Postgres::start();
    saved_plan_applies_exactly_and_refuses_once_the_state_moved(Some(pg.url("saved-plan")));
}

fn saved_plan_applies_exactly_and_refuses_once_the_state_moved(state_url: Option<String>) {
    let emu = Emulator::start();
    let p = Project::with_state(&emu, &pin(CID_A, "a", &[]), state_url);
    let run = p.run(&["plan", "--out", "first.plan"]);
    assert_eq!(run.code, 0, "{run:?}");
    let stale = p.path("stale.plan");
    std::fs::copy(p.path("first.plan"), &stale).unwrap();

    // The manifest changes after planning: the saved plan still applies what it said.
    p.write_manifest(&emu, &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    let run = p.run(&["apply", "first.plan"]);
    assert_eq!(run.code, 0, "a saved plan is the approval: {run:?}");
    assert_eq!(emu.pin_calls(), 1);
    assert_eq!(emu.pins()[0]["cid"], CID_A);

    let run = p.run(&["apply", "stale.plan"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("state has changed"), "{run:?}");
    assert_eq!(emu.pin_calls(), 1);
}

#[test]
fn second_apply_on_a_locked_state_fails_at_once_naming_the_holder() {
    let emu = Emulator::start_with(&["--delay-ms", "3000"]);
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let mut first = p.command(&["apply", "--auto-approve"]).spawn().unwrap();
    wait_until(Duration::from_secs(20), "the first apply's call", || {
        !emu.requests().is_empty() || emu.pin_calls() > 0
    });
    let started = Instant::now();
    let run = p.run(&["apply", "--auto-approve"]);
    assert!(started.elapsed() < Duration::from_secs(2), "fails at once");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("locked by `pinsync apply`"), "{run:?}");
    assert!(
        run.stderr.contains(&format!("pid {}", first.id())),
        "{run:?}"
    );
    assert!(first.wait().unwrap().success());
}

#[test]
fn interrupted_apply_keeps_confirmed_pins_and_the_next_apply_does_the_rest_file() {
    interrupted_apply_keeps_confirmed_pins_and_the_next_apply_does_the_rest(None);
}

/// Also: an interrupted run releases its lease, so the next one needs no
/// `--lock-timeout`.
#[test]
fn interrupted_apply_keeps_confirmed_pins_and_the_next_apply_does_the_rest_postgres() {
    let pg = Postgres::start();
    interrupted_apply_keeps_confirmed_pins_and_the_next_apply_does_the_rest(Some(
        pg.url("interrupted"),
    ));
}

fn interrupted_apply_keeps_confirmed_pins_and_the_next_apply_does_the_rest(
    state_url: Option<String>,
) {
    let emu = Emulator::start_with(&["--delay-ms", "150"]);
    let manifest = many_pins(40, &[]);
    let p = Project::with_state(&emu, &manifest, state_url);
    let mut child = p
        .command(&["apply", "--auto-approve", "--concurrency", "2"])
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "a few pins", || {
        emu.pins().len() >= 6
    });
    signal(&child, libc::SIGINT);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "an interrupted apply exits 1");

    let held = emu.pins().len();
    assert!(held < 40, "interrupted before the end");
    let recorded = p.listed_pins().len();
    assert_eq!(
        recorded, held,
        "every confirmed pin, including those in flight at the interrupt, is recorded"
    );

    let calls_before = emu.pin_calls();
    let run = p.run(&["apply", "--auto-approve", "--concurrency", "8"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        emu.pin_calls() - calls_before,
        (40 - held) as u64,
        "only what was left is pinned"
    );
    assert!(!run.stdout.contains("already pinned"), "{run:?}");
    assert_eq!(p.listed_pins().len(), 40);
}

#[test]
fn no_secret_reaches_output_state_or_plan_files() {
    let emu = Emulator::start();
    emu.faults(json!({"fail_next": [{"status": 500}, {"status": 401}]}));
    let p = Project::new(
        &emu,
        &(pin(CID_A, "a", &["aioz", "arkive/cl0-global"]) + &pin(CID_B, "b", &[])),
    );
    let mut outputs = Vec::new();
    for args in [
        &["validate"][..],
        &["plan"],
        &["plan", "--json", "--out", "saved.plan"],
        &["apply", "--auto-approve"],
        &["apply", "--auto-approve"],
        &["state", "list"],
        &["state", "list", "--json"],
    ] {
        let run = p.run(args);
        outputs.push(format!("{args:?}\n{}{}", run.stdout, run.stderr));
    }
    let mut cmd = p.command(&["apply", "--auto-approve"]);
    cmd.env("AIOZ_PINNING_API_KEY", "wrong-key");
    p.write_manifest(&emu, &pin(CID_C, "c", &[]));
    let run = cmd.run();
    assert_eq!(run.code, 1, "a wrong key fails: {run:?}");
    outputs.push(format!("{}{}", run.stdout, run.stderr));
    for text in &outputs {
        assert_no_secret("command output", text);
    }
    for (path, text) in p.all_files() {
        assert_no_secret(&path.display().to_string(), &text);
    }
    // The keys were real: the provider received them.
    assert!(
        emu.requests()
            .iter()
            .any(|r| r["headers"]["pinning_secret_key"] == AIOZ_SECRET)
    );
}

#[test]
fn a_provider_that_is_down_does_not_stop_the_others() {
    let emu = Emulator::start();
    emu.faults(json!({"error_rate": 1.0, "error_status": 503, "only": "pinarkive"}));
    let manifest = many_pins(12, &["aioz", "arkive/cl0-global"]);
    let p = Project::new(&emu, &manifest);
    let run = p.run(&[
        "apply",
        "--auto-approve",
        "--concurrency",
        "2",
        "--retry-attempts",
        "2",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("12 pinned"),
        "every aioz pin landed: {run:?}"
    );
    // Three failed in a row (two calls in flight, so up to four), and the
    // rest are reported once, as not attempted.
    let failed = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("failed: "))
        .count();
    assert!((3..=4).contains(&failed), "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "not attempted: {} pins on `arkive`: it looks down (last error: HTTP 503",
            12 - failed
        )),
        "{run:?}"
    );
    assert!(run.stdout.contains(&format!("{failed} failed")), "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("{} not attempted.", 12 - failed)),
        "{run:?}"
    );
    let arkive_calls = emu
        .requests()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/api/v3/"))
        .count();
    // Three pins failing in a row open the breaker; only calls already in
    // flight (two per provider) finish after that.
    assert!(
        arkive_calls <= 5 * 2,
        "the breaker stopped calls to a provider that is down: {arkive_calls}"
    );
    let state = p.state();
    assert!(
        state["pins"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["provider"] == "aioz")
    );
}

#[test]
fn state_restore_brings_back_the_backup_and_keeps_the_damaged_file() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    p.write_manifest(&emu, &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    let backup: Value =
        serde_json::from_slice(&std::fs::read(p.path("pins.state.json.backup")).unwrap()).unwrap();
    assert_eq!(
        backup["pins"].as_array().unwrap().len(),
        1,
        "the backup is the previous version"
    );

    let garbage = b"{\"format_version\": 1, \"lin";
    std::fs::write(p.state_path(), garbage).unwrap();
    let run = p.run(&["plan"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("pinsync state restore"),
        "the error says how to recover: {run:?}"
    );

    let run = p.run(&["state", "restore"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("1 pins"), "{run:?}");
    let aside: Vec<_> = std::fs::read_dir(p.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|x| x.to_string_lossy().contains("pins.state.json.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        garbage,
        "the damaged file is kept as it was"
    );

    // The pin made after the backup is planned again; the provider already has it.
    let run = p.run(&["plan"]);
    assert!(run.stdout.contains("1 to pin"), "{run:?}");
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("(1 already pinned)"), "{run:?}");
    assert_eq!(p.state()["pins"].as_array().unwrap().len(), 2);
}

/// Backup at serial 1, current at serial 2: the restored state must not
/// take serial 2, or a plan saved against the replaced state would apply to
/// the restored one.
#[test]
fn a_plan_saved_before_a_restore_is_refused_after_it() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    let state_at = |serial: u64, pins: &str| {
        format!(
            "{{\"format_version\": 1, \"lineage\": \"restore-test\", \"serial\": {serial}, \"pins\": [{pins}]}}"
        )
    };
    let pin_b = format!(
        "{{\"provider\": \"aioz\", \"cid\": \"{CID_B}\", \"name\": \"b\", \"pinned_at\": \"2026-01-01T00:00:00Z\", \"status\": \"managed\"}}"
    );
    std::fs::write(p.path("pins.state.json.backup"), state_at(1, "")).unwrap();
    std::fs::write(p.state_path(), state_at(2, &pin_b)).unwrap();
    let run = p.run(&["plan", "--out", "before.plan"]);
    assert_eq!(run.code, 0, "{run:?}");

    let run = p.run(&["state", "restore"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        p.state()["serial"],
        3,
        "above the backup's 1 and the current 2"
    );

    let run = p.run(&["apply", "before.plan"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("the state has changed since"),
        "{run:?}"
    );
    assert!(emu.requests().is_empty(), "no call for a refused plan");
}

/// A state written by a version of pinsync before provider statuses
/// (format 1) is read, written as format 2, and kept as the backup.
#[test]
fn a_version_1_state_is_migrated_and_kept_as_the_backup() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    let v1 = format!(
        "{{\n  \"format_version\": 1,\n  \"lineage\": \"v1-lineage\",\n  \"serial\": 3,\n  \"pins\": [\n    {{\"provider\":\"aioz\",\"cid\":\"{CID_B}\",\"name\":\"b\",\"pin_id\":\"id-b\",\"pinned_at\":\"2026-01-01T00:00:00Z\",\"status\":\"managed\"}}\n  ]\n}}\n"
    );
    std::fs::write(p.state_path(), &v1).unwrap();
    let run = p.run(&["plan"]);
    assert!(
        run.stdout.contains("Plan: 1 to pin") && run.stdout.contains("1 unchanged"),
        "{run:?}"
    );
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(emu.pin_calls(), 1, "only the pin the v1 state lacked");
    let state = p.state();
    assert_eq!(state["format_version"], 4);
    assert_eq!(state["lineage"], "v1-lineage");
    assert!(state["serial"].as_u64().unwrap() > 3);
    assert_eq!(
        std::fs::read_to_string(p.path("pins.state.json.backup")).unwrap(),
        v1,
        "the original is the backup, byte for byte"
    );
}
