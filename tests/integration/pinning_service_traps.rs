//! The `pinning-service` type against the emulator's `/psa`, for what the
//! npm mock cannot do: adds that are not idempotent, the traps real
//! services set (each switchable), 409, 429, 5xx, answers lost after the add
//! was made, pagination past shared timestamps, and SIGKILL.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// Provider requests to `/psa` whose method is `method` and whose path
/// (with its query) starts with `prefix`.
fn psa_calls(emu: &Emulator, method: &str, prefix: &str) -> Vec<Value> {
    emu.requests()
        .into_iter()
        .filter(|r| r["method"] == method && r["path"].as_str().unwrap().starts_with(prefix))
        .collect()
}

/// Requests held for each canonical CID.
fn requests_by_cid(emu: &Emulator) -> BTreeMap<String, Vec<Value>> {
    let mut by_cid: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in emu.psa_requests() {
        by_cid
            .entry(r["canonical_cid"].as_str().unwrap().to_owned())
            .or_default()
            .push(r);
    }
    by_cid
}

fn psa_pins(cids: &[String]) -> String {
    cids.iter()
        .enumerate()
        .map(|(i, c)| pin(c, &format!("p{i}"), &["psa"]))
        .collect()
}

/// The state's pin id for each canonical CID.
fn recorded_ids(p: &Project) -> BTreeMap<String, String> {
    let state = p.state();
    state["pins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["cid"].as_str().unwrap().to_owned(),
                r["pin_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn with_every_trap_set_apply_lookups_batch_prune_and_settle() {
    let emu = Emulator::start();
    emu.psa_traps(json!({
        "count_is_page_size": true,
        "truncate_created": true,
        "delete_answers_200": true,
        "code_message_errors": true,
    }));
    let cids = many_cids(25);
    let p = Project::new(&emu, &psa_pins(&cids));
    let r = p.run(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    let held = requests_by_cid(&emu);
    assert_eq!(held.len(), 25);
    assert!(held.values().all(|r| r.len() == 1), "{held:?}");
    assert!(
        held.values()
            .all(|r| r[0]["keyvalues"]["pinsync"] == "pinsync"),
        "each carries the owner mark: {held:?}"
    );
    // 25 CIDs are looked up ten a call, ahead of the adds, with every status.
    let lookups = psa_calls(&emu, "GET", "/psa/pins?cid=");
    assert_eq!(lookups.len(), 3, "{lookups:#?}");
    assert!(
        lookups.iter().all(|l| {
            let path = l["path"].as_str().unwrap();
            path.contains("status=queued%2Cpinning%2Cpinned%2Cfailed")
                && path.contains("limit=1000")
        }),
        "{lookups:#?}"
    );
    assert_eq!(psa_calls(&emu, "POST", "/psa/pins").len(), 25);
    assert_eq!(recorded_ids(&p).len(), 25);

    let r = p.run(&["refresh"]);
    assert!(
        r.stdout
            .contains("psa: 25 pins checked in 1 call (25 listed): 25 pinned"),
        "{r:?}"
    );
    // Prune 5: DELETE answers 200 here, which is done too.
    p.write_manifest(&emu, &psa_pins(&cids[..20]));
    let r = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("5 unpinned"), "{r:?}");
    assert_eq!(requests_by_cid(&emu).len(), 20);
    let r = p.run(&["plan", "--refresh", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "settled: {r:?}");
}

/// 2,500 requests, about seven to a second, reported to the second: every
/// page boundary falls inside a second that the next page must overlap.
#[test]
fn a_listing_pages_past_requests_that_share_a_second() {
    let emu = Emulator::start();
    emu.psa_traps(json!({
        "count_is_page_size": true,
        "truncate_created": true,
        "clock": "2026-05-01T00:00:00Z",
        "clock_step_ms": 150,
    }));
    emu.psa_add_by_hand(json!({"count": 2500}));
    let cids: Vec<String> = emu
        .psa_requests()
        .iter()
        .map(|r| r["cid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cids.len(), 2500);
    let p = Project::new(&emu, &psa_pins(&cids));
    let r = p.run(&["import"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        recorded_ids(&p).len(),
        2500,
        "every request is found, none lost at a page boundary: {r:?}"
    );
    let pages = psa_calls(&emu, "GET", "/psa/pins?status=");
    assert_eq!(pages.len(), 3, "{pages:#?}");
    assert!(
        pages
            .iter()
            .skip(1)
            .all(|p| p["path"].as_str().unwrap().contains("before=")),
        "{pages:#?}"
    );
    let r = p.run(&["refresh"]);
    assert!(
        r.stdout
            .contains("psa: 2500 pins checked in 3 calls (2500 listed): 2500 pinned"),
        "counted once each: {r:?}"
    );
    // Nothing to pin: the import adopted them all (as foreign, unmarked;
    // their names differ from the manifest's, which is only recorded).
    let r = p.run(&["plan"]);
    assert!(r.stdout.contains("Plan: 0 to pin, 2500 to update"), "{r:?}");
}

#[test]
fn a_page_of_one_seconds_requests_is_an_error_not_a_silent_end() {
    let emu = Emulator::start();
    emu.psa_traps(json!({
        "truncate_created": true,
        "clock": "2026-05-01T00:00:00Z",
        "clock_step_ms": 0,
    }));
    emu.psa_add_by_hand(json!({"count": 1001}));
    let p = Project::new(&emu, &pin(CID_A, "a", &["psa"]));
    let r = p.run(&["import"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("within one second") || r.stderr.contains("within one second"),
        "{r:?}"
    );
}

/// An add the service made whose answer was lost: the retry looks the CID
/// up again and adopts the request rather than making a second one. A 503
/// before the add and a 429 are retried; a 409 INSUFFICIENT_FUNDS is not.
#[test]
fn lost_answers_are_adopted_on_retry_and_a_409_is_not_retried() {
    let emu = Emulator::start();
    let cids = many_cids(4);
    emu.faults(json!({"fail_next": [
        {"on": "POST /psa/pins", "drop_after": true},
        {"on": "POST /psa/pins", "status": 503},
        {"on": "POST /psa/pins", "status": 429, "retry_after": 1},
    ]}));
    let p = Project::new(&emu, &psa_pins(&cids[..3]));
    let r = p.run(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    let held = requests_by_cid(&emu);
    assert_eq!(held.len(), 3, "{held:?}");
    assert!(
        held.values().all(|r| r.len() == 1),
        "no duplicate: {held:?}"
    );
    let dropped: Vec<Value> = psa_calls(&emu, "POST", "/psa/pins")
        .into_iter()
        .filter(|r| r["fault"] == "fail_next:drop_after")
        .collect();
    assert_eq!(dropped.len(), 1);
    assert!(r.stdout.contains("(1 already pinned)"), "{r:?}");
    let recorded = recorded_ids(&p);
    for (cid, requests) in &held {
        assert_eq!(recorded[cid], requests[0]["id"].as_str().unwrap(), "{cid}");
    }

    emu.faults(json!({"fail_next": [{
        "on": "POST /psa/pins",
        "status": 409,
        "body": {"error": {"reason": "INSUFFICIENT_FUNDS", "details": "top up your account"}},
    }]}));
    p.write_manifest(&emu, &psa_pins(&cids));
    let r = p.run(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("INSUFFICIENT_FUNDS"), "{r:?}");
    let adds: Vec<Value> = psa_calls(&emu, "POST", "/psa/pins")
        .into_iter()
        .filter(|r| r["body"]["cid"] == cids[3].as_str())
        .collect();
    assert_eq!(adds.len(), 1, "not retried: {adds:#?}");
}

#[test]
fn a_refused_token_stops_every_call_after_the_lookups_made_ahead() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &psa_pins(&many_cids(30)));
    let mut cmd = p.command(&["apply", "--auto-approve"]);
    cmd.env("PSA_TOKEN", "psa-wrong-token");
    let r = cmd.run();
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("PSA_TOKEN"), "names the variable: {r:?}");
    let calls = psa_calls(&emu, "GET", "/psa/").len() + psa_calls(&emu, "POST", "/psa/").len();
    // At most the look-ahead's three lookups (sent at once; the first
    // refusal may come back before the last is sent) are refused, and no
    // pin is tried after them.
    assert!((1..=3).contains(&calls), "{calls}: {:#?}", emu.requests());
    assert!(emu.psa_requests().is_empty());
}

/// SIGKILL at random moments of an apply to a service whose add is not
/// idempotent, then a rerun: every CID is held exactly once, and the state
/// holds each request id.
#[test]
fn apply_killed_at_random_moments_never_makes_a_second_request() {
    let seed = std::env::var("PINSYNC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0012_u64);
    let mut rng = fastrand::Rng::with_seed(seed);
    const PINS: usize = 60;
    let emu = Emulator::start_with(&["--delay-ms", "40"]);
    let cids = many_cids(PINS);
    let p = Project::new(&emu, &psa_pins(&cids));
    let apply = ["apply", "--auto-approve", "--concurrency", "8"];
    let mut log = Vec::new();
    for kill in 1..=8 {
        let adds_before = psa_calls(&emu, "POST", "/psa/pins").len();
        let mut child = spawn_quiet(p.command(&apply));
        let mut exited = false;
        wait_until(Duration::from_secs(30), "an add", || {
            exited = child.try_wait().unwrap().is_some();
            exited || psa_calls(&emu, "POST", "/psa/pins").len() > adds_before
        });
        let delay = rng.u64(0..=120);
        if !exited {
            std::thread::sleep(Duration::from_millis(delay));
            signal(&child, libc::SIGKILL);
        }
        child.wait().unwrap();
        let held = requests_by_cid(&emu);
        let doubled: Vec<&String> = held
            .iter()
            .filter(|(_, r)| r.len() > 1)
            .map(|(c, _)| c)
            .collect();
        let ctx = format!(
            "seed {seed} (PINSYNC_TEST_SEED), kill {kill} after {delay} ms; earlier: {log:?}"
        );
        assert!(doubled.is_empty(), "{ctx}: two requests for {doubled:?}");
        log.push(format!("{delay}ms->{}", held.len()));
    }
    let r = p.run(&apply);
    let ctx = format!("seed {seed}; kills: {log:?}");
    assert_eq!(r.code, 0, "{ctx}: {r:?}");
    let held = requests_by_cid(&emu);
    assert_eq!(held.len(), PINS, "{ctx}");
    assert!(held.values().all(|r| r.len() == 1), "{ctx}: {held:?}");
    let recorded = recorded_ids(&p);
    assert_eq!(recorded.len(), PINS, "{ctx}");
    for (cid, requests) in &held {
        assert_eq!(
            recorded[cid],
            requests[0]["id"].as_str().unwrap(),
            "{ctx}: the state holds the request id of {cid}"
        );
    }
    println!("kills (delay->requests held): {log:?}");
}

/// Queued requests are not missing: a list without `status` would show
/// only pinned ones (the spec's default).
#[test]
fn queued_requests_are_listed_as_queued_not_missing() {
    let emu = Emulator::start();
    emu.psa_traps(json!({"pinning_ms": 600_000}));
    let p = Project::new(&emu, &psa_pins(&many_cids(3)));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    let r = p.run(&["refresh"]);
    assert!(
        r.stdout
            .contains("psa: 3 pins checked in 1 call (3 listed): 3 queued"),
        "{r:?}"
    );
    let r = p.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "no drift: {r:?}");
}

/// ipfs-cluster's pinsvcapi: the CID is the request id, and a list answers
/// every match at once, whatever `limit` says.
#[test]
fn an_ipfs_cluster_style_service_is_listed_in_one_call_and_pruned_by_cid() {
    let emu = Emulator::start();
    emu.psa_traps(json!({"cluster_style": true}));
    let cids = many_cids(1200);
    let p = Project::new(&emu, &psa_pins(&cids));
    let r = p.run(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    let recorded = recorded_ids(&p);
    assert!(
        recorded.iter().all(|(cid, id)| cid == id),
        "the request id is the CID"
    );
    let r = p.run(&["refresh"]);
    assert!(
        r.stdout
            .contains("psa: 1200 pins checked in 1 call (1200 listed): 1200 pinned"),
        "{r:?}"
    );
    p.write_manifest(&emu, &psa_pins(&cids[..1199]));
    let r = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(emu.psa_requests().len(), 1199);
}

/// A rerun after a crash finds this manifest's own request for a CID even
/// where a hand-made one is further along: it adopts its own (as owned),
/// not the hand-made one (as foreign), so its billed request is never lost
/// track of.
#[test]
fn of_several_requests_for_a_cid_its_own_is_adopted_first() {
    let emu = Emulator::start();
    let hand_made = emu.psa_add_by_hand(json!([{"cid": CID_A, "name": "by hand"}]));
    emu.psa_traps(json!({"pinning_ms": 600_000}));
    let ours =
        emu.psa_add_by_hand(json!([{"cid": CID_A, "name": "a", "meta": {"pinsync": "pinsync"}}]));
    let p = Project::new(&emu, &pin(CID_A, "a", &["psa"]));
    let r = p.run(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("(1 already pinned)"), "{r:?}");
    let state = p.state();
    let record = &state["pins"][0];
    assert_eq!(
        record["pin_id"],
        ours[0].as_str(),
        "not {hand_made:?}: {state}"
    );
    assert!(record.get("foreign").is_none(), "{state}");
    assert_eq!(emu.psa_requests().len(), 2, "nothing added");
}

/// On this type a rename is one replace of the request (`POST
/// /pins/{requestid}`), never an add beside it.
#[test]
fn a_rename_is_one_replace_and_no_add() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_B, "docs", &["psa"]));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    let id = recorded_ids(&p).into_values().next().unwrap();
    let adds_before = psa_calls(&emu, "POST", "/psa/pins").len();
    p.write_manifest(&emu, &pin(CID_B, "docs-v2", &["psa"]));
    let r = p.run(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    let posts = psa_calls(&emu, "POST", "/psa/pins");
    let new: Vec<&Value> = posts[adds_before..].iter().collect();
    assert_eq!(new.len(), 1, "{new:#?}");
    assert_eq!(new[0]["path"], format!("/psa/pins/{id}"));
    let held = emu.psa_requests();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["name"], "docs-v2");
    assert_eq!(
        recorded_ids(&p).into_values().next().unwrap(),
        held[0]["id"].as_str().unwrap()
    );
}

/// A proxy in front of the service that echoes the request's headers in
/// its error puts the bearer token in the answer: it reaches no output and
/// no file.
#[test]
fn a_token_echoed_back_by_the_service_is_redacted_everywhere() {
    let emu = Emulator::start();
    emu.faults(json!({"fail_next": [
        {"on": "POST /psa/pins", "echo_headers": true, "status": 400},
        {"on": "GET /psa/pins", "echo_headers": true, "status": 400},
    ]}));
    let p = Project::new(&emu, &psa_pins(&many_cids(2)));
    let r = p.run(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 1, "{r:?}");
    let echoed = emu
        .requests()
        .iter()
        .filter(|r| r["fault"] == "fail_next:echo_headers")
        .count();
    assert_eq!(echoed, 2, "both faults answered");
    assert!(
        r.stdout.contains("[redacted]") || r.stdout.contains("authorization"),
        "{r:?}"
    );
    assert_no_secret("apply output", &format!("{r:?}"));
    for (path, text) in p.all_files() {
        assert_no_secret(&path.display().to_string(), &text);
    }
}
