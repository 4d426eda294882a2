//! `type: pinata` (the v3 Files API) against the emulator: the documented
//! requests, the queue's statuses and its 250 places, files found by CID
//! and removed by id, paging with `pageToken`, files not carrying the mark
//! left alone, a refused JWT, and 429s.

use serde_json::{Value, json};

use crate::support::*;

const JWT: &str = "pinataJWT-4d3c2b1a-SECRET";

fn pinata(args: &[&str]) -> Emulator {
    let mut all = vec!["--pinata-jwt", JWT];
    all.extend_from_slice(args);
    Emulator::start_with(&all)
}

fn block(emu: &Emulator, extra: &str) -> String {
    format!(
        "  pinata:\n    type: pinata\n    jwt: ${{PINATA_JWT}}\n    base_url: {}\n    rate_limit: none\n{extra}",
        emu.url
    )
}

fn project(emu: &Emulator, extra: &str, pins: &str) -> OneProvider {
    let p = OneProvider::new("pinata", "PINATA_JWT", JWT);
    p.write(&block(emu, extra), pins);
    p
}

fn queue(emu: &Emulator) -> Value {
    ureq::get(&format!("{}/_emulator/pinata/queue", emu.url))
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

#[test]
fn a_pin_is_queued_as_documented_and_waited_for_until_it_is_a_file() {
    let emu = pinata(&["--pinata-pinning-ms", "1500"]);
    let pins = format!("  - cid: {CID_A}\n    name: home\n    meta: {{team: web}}\n");
    let p = project(&emu, "    group_id: grp-1\n", &pins);
    let applied = p.run(&["apply", "--auto-approve", "--wait", "--wait-timeout", "30s"]);
    assert_eq!(applied.code, 0, "{applied:?}");

    let all = requests_to(&emu, "pinata");
    for r in &all {
        assert_eq!(
            r["headers"]["authorization"],
            format!("Bearer {JWT}"),
            "{r}"
        );
    }
    let calls: Vec<String> = all.iter().map(call_line).collect();
    assert_eq!(
        calls[0], "GET /v3/files/public/pin_by_cid?limit=250",
        "the queue is counted before the first pin"
    );
    assert_eq!(calls[1], "POST /v3/files/public/pin_by_cid");
    assert_eq!(
        all[1]["body"],
        json!({"cid": CID_A, "name": "home", "group_id": "grp-1",
               "keyvalues": {"team": "web", "pinsync": "site"}})
    );
    // Then its request in the queue, and once it has left, its file.
    let file_lookup = format!("GET /v3/files/public?cid={CID_A}&group=grp-1&limit=1000");
    let job_lookup = format!("GET /v3/files/public/pin_by_cid?cid={CID_A}&limit=250");
    assert!(
        calls[2..].iter().filter(|c| **c == job_lookup).count() >= 2,
        "the wait read the queue more than once: {calls:#?}"
    );
    assert_eq!(calls.last(), Some(&file_lookup), "{calls:#?}");
    let state = p.project.state();
    let pin = &state["pins"][0];
    assert_eq!(pin["provider_status"], "pinned", "{state}");
    assert!(
        pin.get("pin_id").is_none(),
        "a request's id is not recorded"
    );
    let held = emu.pins_of("pinata");
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        held[0]["keyvalues"],
        json!({"pinsync": "site", "team": "web"})
    );
    // refresh learns the file's id, which an unpin then removes alone.
    assert_eq!(p.run(&["refresh"]).code, 0);
    assert_eq!(p.project.state()["pins"][0]["pin_id"], held[0]["id"]);
}

#[test]
fn the_queues_statuses_are_read_and_a_failed_request_is_reported() {
    // Each request searches for a minute: it stays in the queue.
    let emu = pinata(&["--pinata-pinning-ms", "60000"]);
    let pins = format!("{}{}", pin(CID_A, "a", &[]), pin(CID_B, "b", &[]));
    let p = project(&emu, "", &pins);
    let applied = p.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    emu.change_pin(json!({"provider": "pinata", "cid": CID_A, "status": "over_free_limit"}));

    let refreshed = p.run(&["refresh"]);
    assert_eq!(refreshed.code, 0, "{refreshed:?}");
    let statuses: Vec<(String, String)> = p.project.state()["pins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["provider_status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("a".into(), "failed".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("b".into(), "queued".into()))
            || statuses.contains(&("b".into(), "pinning".into())),
        "{statuses:?}"
    );

    // The plan shows the failed one as drift, to pin again.
    let plan = p.run(&["plan"]);
    assert!(plan.stdout.contains("failed"), "{plan:?}");
    let calls: Vec<String> = requests_to(&emu, "pinata").iter().map(call_line).collect();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("GET /v3/files/public?limit=1000"))
            && calls
                .iter()
                .any(|c| c.starts_with("GET /v3/files/public/pin_by_cid?limit=250")),
        "refresh reads the files and the queue: {calls:#?}"
    );
}

#[test]
fn never_more_than_250_requests_wait_in_the_queue() {
    // Each request takes 1.5 s: 300 at once would leave 50 backfilled.
    let emu = pinata(&["--pinata-pinning-ms", "1500"]);
    let p = project(&emu, "", &many_pins(300, &[]));
    let applied = p.run(&["apply", "--auto-approve", "--concurrency", "32"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    let q = queue(&emu);
    assert!(q["peak"].as_u64().unwrap() <= 250, "{q}");
    assert!(
        q["peak"].as_u64().unwrap() >= 200,
        "the queue was used: {q}"
    );
    assert_eq!(q["backfilled"], 0, "{q}");
    assert_eq!(p.project.state()["pins"].as_array().unwrap().len(), 300);
    let recounts = requests_to(&emu, "pinata")
        .iter()
        .filter(|r| call_line(r) == "GET /v3/files/public/pin_by_cid?limit=250")
        .count();
    assert!(recounts >= 2, "the queue was read again when full");
}

#[test]
fn refresh_and_import_page_through_every_file() {
    let emu = pinata(&[]);
    let p = project(&emu, "", &many_pins(1100, &[]));
    let applied = p.run(&["apply", "--auto-approve", "--concurrency", "32"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    assert_eq!(emu.pins_of("pinata").len(), 1100);

    // A lost state: import finds every pin again, with its file id.
    std::fs::remove_file(p.project.state_path()).unwrap();
    let imported = p.run(&["import"]);
    assert_eq!(imported.code, 0, "{imported:?}");
    let state = p.project.state();
    let recorded = state["pins"].as_array().unwrap();
    assert_eq!(recorded.len(), 1100, "{imported:?}");
    let held: std::collections::BTreeSet<String> = emu
        .pins_of("pinata")
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        recorded
            .iter()
            .all(|r| held.contains(r["pin_id"].as_str().unwrap())),
        "each recorded id is a file's"
    );
    let pages: Vec<String> = requests_to(&emu, "pinata")
        .iter()
        .map(call_line)
        .filter(|c| c.starts_with("GET /v3/files/public?"))
        .collect();
    assert!(
        pages.iter().any(|c| c.contains("pageToken=")),
        "the second page by its token: {pages:#?}"
    );
    let plan = p.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "nothing left to do: {plan:?}");
}

#[test]
fn files_without_the_mark_are_never_removed() {
    let emu = pinata(&[]);
    // Someone else's file of B, there before the manifest names it.
    emu.change_pin(json!({"provider": "pinata", "cid": CID_B, "status": "by_hand"}));
    let pins = format!("{}{}", pin(CID_A, "a", &[]), pin(CID_B, "b", &[]));
    let p = project(&emu, "", &pins);
    let applied = p.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    // B was not looked up: this manifest's own file of it was made.
    assert_eq!(emu.pins_of("pinata").len(), 3);

    p.write(&block(&emu, ""), "");
    let pruned = p.run(&["apply", "--auto-approve", "--prune", "--force-unpins"]);
    assert_eq!(pruned.code, 0, "{pruned:?}");
    let left = emu.pins_of("pinata");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["name"], "by hand");
    let deletes: Vec<String> = requests_to(&emu, "pinata")
        .iter()
        .map(call_line)
        .filter(|c| c.starts_with("DELETE "))
        .collect();
    assert_eq!(deletes.len(), 2, "{deletes:#?}");
    assert!(
        deletes
            .iter()
            .all(|d| d.starts_with("DELETE /v3/files/public/") && !d.contains("pin_by_cid"))
    );

    // Imported, someone else's file is recorded foreign and kept.
    p.write(&block(&emu, ""), &pin(CID_B, "b", &[]));
    assert_eq!(p.run(&["import"]).code, 0);
    assert_eq!(p.project.state()["pins"][0]["foreign"], true);
    p.write(&block(&emu, ""), "");
    let kept = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(kept.code, 0, "{kept:?}");
    assert_eq!(emu.pins_of("pinata").len(), 1, "{kept:?}");
}

#[test]
fn a_refused_jwt_ends_the_apply_at_the_first_call() {
    let emu = pinata(&[]);
    let p = OneProvider::new("pinata", "PINATA_JWT", "not-the-jwt-SECRET");
    p.write(&block(&emu, ""), &many_pins(20, &[]));
    let applied = p.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 1, "{applied:?}");
    let all = requests_to(&emu, "pinata");
    assert_eq!(all.len(), 1, "one call, not one a pin: {all:#?}");
    assert_eq!(all[0]["status"], 401);
    assert!(emu.pins_of("pinata").is_empty());
}

#[test]
fn answers_429_slow_the_pace_and_every_pin_lands() {
    let emu = pinata(&["--limit", "pinata=10/s"]);
    let p = project(&emu, "", &many_pins(40, &[]));
    let applied = p.run(&["apply", "--auto-approve", "--concurrency", "16"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    let refused = requests_to(&emu, "pinata")
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert!(refused > 0, "the limit was met");
    assert_eq!(emu.pins_of("pinata").len(), 40);
    assert_eq!(p.project.state()["pins"].as_array().unwrap().len(), 40);
}

/// A third-party check of the emulator: Pinata's own SDK (npm `pinata`)
/// pins by CID, reads the queue, finds the file and deletes it, sending
/// what it sends to Pinata and reading the answers as it reads Pinata's.
#[test]
fn pinatas_own_sdk_takes_the_emulators_answers() {
    let modules = npm_package("pinata-sdk", "pinata@2.5.6");
    let emu = pinata(&[]);
    let run = run_node("pinata_sdk.cjs", &modules, &[&emu.url, JWT, CID_B]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(emu.pins_of("pinata").is_empty(), "the SDK deleted its file");
}

#[test]
fn at_the_default_pace_a_request_done_between_two_reads_is_pinned_not_lost() {
    // 60 calls a minute: the wait's two reads are a second apart, and each
    // request is done 1.5 s after it is queued.
    let emu = pinata(&["--pinata-pinning-ms", "1500"]);
    let p = OneProvider::new("pinata", "PINATA_JWT", JWT);
    p.write(
        &format!(
            "  pinata:\n    type: pinata\n    jwt: ${{PINATA_JWT}}\n    base_url: {}\n",
            emu.url
        ),
        &format!("{}{}", pin(CID_A, "a", &[]), pin(CID_B, "b", &[])),
    );
    let applied = p.run(&["apply", "--auto-approve", "--wait", "--wait-timeout", "60s"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    for r in p.project.state()["pins"].as_array().unwrap() {
        assert_eq!(r["provider_status"], "pinned", "{applied:?}");
    }
    assert_eq!(emu.pins_of("pinata").len(), 2, "no second file");
}

#[test]
fn two_providers_on_one_account_keep_to_their_own_groups() {
    let emu = pinata(&[]);
    let p = OneProvider::new("eu", "PINATA_JWT", JWT);
    let blocks = format!(
        "{}{}",
        block(&emu, "    group_id: g-eu\n").replace("  pinata:", "  eu:"),
        block(&emu, "    group_id: g-us\n").replace("  pinata:", "  us:")
    );
    p.write(&blocks, &pin(CID_A, "a", &["eu", "us"]));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    assert_eq!(emu.pins_of("pinata").len(), 2);

    p.write(&blocks, &pin(CID_A, "a", &["us"]));
    let pruned = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(pruned.code, 0, "{pruned:?}");
    let left = emu.pins_of("pinata");
    assert_eq!(left.len(), 1, "{left:?}");
    let deletes: Vec<Value> = requests_to(&emu, "pinata")
        .into_iter()
        .filter(|r| r["method"] == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    let group_read = format!("GET /v3/files/public?cid={CID_A}&group=g-eu&limit=1000");
    assert!(
        requests_to(&emu, "pinata")
            .iter()
            .any(|r| call_line(r) == group_read),
        "the files are read in the provider's group"
    );
    let refreshed = p.run(&["refresh"]);
    assert_eq!(refreshed.code, 0, "{refreshed:?}");
    let state = p.project.state();
    let us = &state["pins"][0];
    assert_eq!(us["provider"], "us");
    assert_eq!(us["provider_status"], "pinned", "{state}");
}
