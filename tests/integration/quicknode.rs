//! `type: quicknode` (the IPFS REST API) against the emulator: the
//! documented requests with the bare key in `x-api-key`, the statuses and
//! `--wait`, a rename as a PATCH, an unpin after reading the mark, paging
//! by page number, pins made by others left alone, and 429s.

use serde_json::{Value, json};

use crate::support::*;

const KEY: &str = "quicknodeKEY-9e8d7c6b-SECRET";

fn quicknode(args: &[&str]) -> Emulator {
    let mut all = vec!["--quicknode-api-key", KEY];
    all.extend_from_slice(args);
    Emulator::start_with(&all)
}

fn block(emu: &Emulator) -> String {
    format!(
        "  qn:\n    type: quicknode\n    api_key: ${{QUICKNODE_API_KEY}}\n    base_url: {}\n",
        emu.url
    )
}

fn project(emu: &Emulator, pins: &str) -> OneProvider {
    let p = OneProvider::new("qn", "QUICKNODE_API_KEY", KEY);
    p.write(&block(emu), pins);
    p
}

#[test]
fn a_pin_is_posted_as_documented_and_waited_for_by_its_request_id() {
    let emu = quicknode(&["--quicknode-pinning-ms", "1500"]);
    let pins =
        format!("  - cid: {CID_A}\n    name: home\n    meta: {{team: web}}\n  - cid: {CID_B}\n");
    let p = project(&emu, &pins);
    let applied = p.run(&["apply", "--auto-approve", "--wait", "--wait-timeout", "30s"]);
    assert_eq!(applied.code, 0, "{applied:?}");

    let all = requests_to(&emu, "quicknode");
    for r in &all {
        assert_eq!(r["headers"]["x-api-key"], KEY, "the bare key: {r}");
        assert!(r["headers"].get("authorization").is_none(), "{r}");
    }
    let posts: Vec<&Value> = all
        .iter()
        .filter(|r| call_line(r) == "POST /ipfs/rest/v1/pinning")
        .collect();
    assert_eq!(posts.len(), 2, "{all:#?}");
    let bodies: Vec<&Value> = posts.iter().map(|r| &r["body"]).collect();
    assert!(bodies.contains(&&json!({"cid": CID_A, "name": "home",
        "meta": {"team": "web", "pinsync": "site"}})));
    // `name` is required: a pin without one is named by its CID.
    assert!(bodies.contains(&&json!({"cid": CID_B, "name": CID_B,
        "meta": {"pinsync": "site"}})));

    let state = p.project.state();
    for record in state["pins"].as_array().unwrap() {
        let id = record["pin_id"].as_str().unwrap();
        assert_eq!(record["provider_status"], "pinned", "{state}");
        let reads = all
            .iter()
            .filter(|r| call_line(r) == format!("GET /ipfs/rest/v1/pinning/{id}"))
            .count();
        assert!(reads >= 2, "the wait read {id} until it was pinned");
    }
}

#[test]
fn a_rename_is_a_patch_and_an_unpin_reads_the_mark_then_deletes() {
    let emu = quicknode(&[]);
    let p = project(&emu, &pin(CID_A, "home", &[]));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    let id = p.project.state()["pins"][0]["pin_id"]
        .as_str()
        .unwrap()
        .to_owned();

    p.write(&block(&emu), &pin(CID_A, "front", &[]));
    let renamed = p.run(&["apply", "--auto-approve"]);
    assert_eq!(renamed.code, 0, "{renamed:?}");
    let calls: Vec<Value> = requests_to(&emu, "quicknode");
    let tail: Vec<String> = calls[calls.len() - 2..].iter().map(call_line).collect();
    assert_eq!(
        tail,
        [
            format!("GET /ipfs/rest/v1/pinning/{id}"),
            format!("PATCH /ipfs/rest/v1/pinning/{id}")
        ]
    );
    assert_eq!(
        calls.last().unwrap()["body"],
        json!({"cid": CID_A, "name": "front", "meta": {"pinsync": "site"}})
    );
    assert_eq!(emu.pins_of("quicknode")[0]["name"], "front");
    assert_eq!(p.project.state()["pins"][0]["pin_id"], id.as_str());

    p.write(&block(&emu), "");
    let pruned = p.run(&["apply", "--auto-approve", "--prune", "--force-unpins"]);
    assert_eq!(pruned.code, 0, "{pruned:?}");
    let calls = requests_to(&emu, "quicknode");
    let tail: Vec<String> = calls[calls.len() - 2..].iter().map(call_line).collect();
    assert_eq!(
        tail,
        [
            format!("GET /ipfs/rest/v1/pinning/{id}"),
            format!("DELETE /ipfs/rest/v1/pinning/{id}")
        ]
    );
    assert!(emu.pins_of("quicknode").is_empty());
}

#[test]
fn import_pages_by_number_and_leaves_others_pins_alone() {
    let emu = quicknode(&[]);
    let cids = many_cids(150);
    let p = project(&emu, &many_pins(150, &[]));
    assert_eq!(
        p.run(&["apply", "--auto-approve", "--concurrency", "16"])
            .code,
        0
    );
    // One pinned by hand, which the manifest comes to name.
    emu.change_pin(json!({"provider": "quicknode", "cid": CID_C, "status": "by_hand"}));
    std::fs::remove_file(p.project.state_path()).unwrap();
    p.write(
        &block(&emu),
        &format!("{}{}", many_pins(150, &[]), pin(CID_C, "c", &[])),
    );
    let imported = p.run(&["import"]);
    assert_eq!(imported.code, 0, "{imported:?}");
    let pages: Vec<String> = requests_to(&emu, "quicknode")
        .iter()
        .map(call_line)
        .filter(|c| c.starts_with("GET /ipfs/rest/v1/pinning?"))
        .collect();
    assert_eq!(
        pages,
        [
            "GET /ipfs/rest/v1/pinning?pageNumber=1&perPage=100",
            "GET /ipfs/rest/v1/pinning?pageNumber=2&perPage=100"
        ]
    );
    let state = p.project.state();
    let records = state["pins"].as_array().unwrap();
    assert_eq!(records.len(), 151);
    let foreign: Vec<&Value> = records.iter().filter(|r| r["foreign"] == true).collect();
    assert_eq!(foreign.len(), 1, "only the one made by hand");
    assert_eq!(foreign[0]["cid_as_pinned"], CID_C);

    // Pruning everything removes the manifest's, never the one by hand.
    p.write(&block(&emu), "");
    let pruned = p.run(&["apply", "--auto-approve", "--prune", "--force-unpins"]);
    assert_eq!(pruned.code, 0, "{pruned:?}");
    let left = emu.pins_of("quicknode");
    assert_eq!(left.len(), 1, "{pruned:?}");
    assert_eq!(left[0]["name"], "by hand");
    assert!(!cids.contains(&left[0]["cid"].as_str().unwrap().to_owned()));
}

#[test]
fn a_failed_pin_is_reported_by_the_wait() {
    // Pins stay queued long enough for the test to fail one.
    let emu = quicknode(&["--quicknode-pinning-ms", "60000"]);
    let p = project(&emu, &pin(CID_A, "a", &[]));
    let mut waiting = p
        .project
        .command(&["apply", "--auto-approve", "--wait", "--wait-timeout", "60s"])
        .env("QUICKNODE_API_KEY", KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(std::time::Duration::from_secs(30), "the pin", || {
        !emu.pins_of("quicknode").is_empty()
    });
    emu.change_pin(json!({"provider": "quicknode", "cid": CID_A, "status": "failed"}));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = waiting.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(45),
            "the wait saw the failure"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = waiting.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("failed"), "{said}");
    assert!(!said.contains(KEY));
    assert_eq!(p.project.state()["pins"][0]["provider_status"], "failed");
}

#[test]
fn answers_429_slow_the_pace_and_every_pin_lands() {
    let emu = quicknode(&["--limit", "quicknode=10/s"]);
    let p = project(&emu, &many_pins(40, &[]));
    let applied = p.run(&["apply", "--auto-approve", "--concurrency", "16"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    let refused = requests_to(&emu, "quicknode")
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert!(refused > 0, "the limit was met");
    assert_eq!(
        emu.pins_of("quicknode").len(),
        40,
        "one object a pin, none twice"
    );
}
