//! `type: lighthouse` against the emulator: the documented pin, the uploads
//! read with `lastKey` paging, an upload removed by its id, uploads made by
//! hand adopted and never removed (Lighthouse keeps no mark), an upload
//! on the Permanent Plan, and 429s.

use serde_json::{Value, json};

use crate::support::*;

const KEY: &str = "lighthouseKEY-2b3c4d5e-SECRET";

fn lighthouse(args: &[&str]) -> Emulator {
    let mut all = vec!["--lighthouse-api-key", KEY];
    all.extend_from_slice(args);
    Emulator::start_with(&all)
}

fn block(emu: &Emulator) -> String {
    format!(
        "  lh:\n    type: lighthouse\n    api_key: ${{LIGHTHOUSE_API_KEY}}\n    base_url: {}\n",
        emu.url
    )
}

fn project(emu: &Emulator, pins: &str) -> OneProvider {
    let p = OneProvider::new("lh", "LIGHTHOUSE_API_KEY", KEY);
    p.write(&block(emu), pins);
    p
}

#[test]
fn a_pin_is_posted_as_documented_and_its_upload_found_by_the_wait() {
    let emu = lighthouse(&[]);
    let pins = format!("{}  - cid: {CID_B}\n", pin(CID_A, "home", &[]));
    let p = project(&emu, &pins);
    let applied = p.run(&["apply", "--auto-approve", "--wait", "--wait-timeout", "30s"]);
    assert_eq!(applied.code, 0, "{applied:?}");

    let all = requests_to(&emu, "lighthouse");
    for r in &all {
        assert_eq!(
            r["headers"]["authorization"],
            format!("Bearer {KEY}"),
            "{r}"
        );
    }
    let calls: Vec<String> = all.iter().map(call_line).collect();
    assert_eq!(
        calls[0], "GET /api/user/files_uploaded?lastKey=null",
        "the uploads are read once, before the pins: {calls:#?}"
    );
    let bodies: Vec<&Value> = all
        .iter()
        .filter(|r| call_line(r) == "POST /api/lighthouse/pin")
        .map(|r| &r["body"])
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(bodies.contains(&&json!({"cid": CID_A, "fileName": "home"})));
    assert!(bodies.contains(&&json!({"cid": CID_B})));
    let state = p.project.state();
    for record in state["pins"].as_array().unwrap() {
        assert_eq!(record["provider_status"], "pinned", "{state}");
    }
    assert_eq!(emu.pins_of("lighthouse").len(), 2);
}

#[test]
fn refresh_pages_with_last_key_and_learns_the_upload_ids() {
    let emu = lighthouse(&["--lighthouse-page-size", "2"]);
    let p = project(&emu, &many_pins(5, &[]));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    let refreshed = p.run(&["refresh"]);
    assert_eq!(refreshed.code, 0, "{refreshed:?}");

    let uploads = emu.pins_of("lighthouse");
    let ids: Vec<&str> = uploads.iter().map(|u| u["id"].as_str().unwrap()).collect();
    let state = p.project.state();
    for record in state["pins"].as_array().unwrap() {
        assert_eq!(record["provider_status"], "pinned");
        assert!(ids.contains(&record["pin_id"].as_str().unwrap()), "{state}");
    }
    // The refresh's own pages: three of two, then an empty one.
    let pages: Vec<String> = requests_to(&emu, "lighthouse")
        .iter()
        .map(call_line)
        .filter(|c| c.starts_with("GET /api/user/files_uploaded"))
        .collect();
    let refresh_pages = &pages[pages.len() - 4..];
    assert_eq!(
        refresh_pages[0],
        "GET /api/user/files_uploaded?lastKey=null"
    );
    for page in &refresh_pages[1..] {
        let key = page.split("lastKey=").nth(1).unwrap();
        assert!(ids.contains(&key), "{page} names an upload's id");
    }
}

#[test]
fn uploads_made_by_hand_are_adopted_and_never_removed() {
    let emu = lighthouse(&[]);
    emu.change_pin(json!({"provider": "lighthouse", "cid": CID_B, "status": "by_hand"}));
    let pins = format!("{}{}", pin(CID_A, "a", &[]), pin(CID_B, "b", &[]));
    let p = project(&emu, &pins);
    let applied = p.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    let posts: Vec<Value> = requests_to(&emu, "lighthouse")
        .into_iter()
        .filter(|r| call_line(r) == "POST /api/lighthouse/pin")
        .collect();
    assert_eq!(posts.len(), 1, "B was there: adopted, not pinned again");
    assert_eq!(posts[0]["body"]["cid"], CID_A);
    let state = p.project.state();
    let b = state["pins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "b")
        .unwrap()
        .clone();
    assert_eq!(b["foreign"], true, "{state}");
    // A listing without marks cannot say whose it is: still someone else's.
    assert_eq!(p.run(&["refresh"]).code, 0);
    let state = p.project.state();
    let b = state["pins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "b")
        .unwrap()
        .clone();
    assert_eq!(b["foreign"], true, "after refresh: {state}");

    p.write(&block(&emu), "");
    let pruned = p.run(&["apply", "--auto-approve", "--prune", "--force-unpins"]);
    assert_eq!(pruned.code, 0, "{pruned:?}");
    assert!(
        pruned.stdout.contains("there before pinsync pinned it"),
        "{pruned:?}"
    );
    let left = emu.pins_of("lighthouse");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["name"], "by hand");
    let deletes: Vec<String> = requests_to(&emu, "lighthouse")
        .iter()
        .map(call_line)
        .filter(|c| c.starts_with("DELETE"))
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert!(deletes[0].starts_with("DELETE /api/user/delete_file?id="));
}

#[test]
fn an_upload_on_the_permanent_plan_is_kept_with_the_reason_and_the_rest_go() {
    let emu = lighthouse(&[]);
    let pins = format!("{}{}", pin(CID_A, "a", &[]), pin(CID_B, "b", &[]));
    let p = project(&emu, &pins);
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    emu.change_pin(json!({"provider": "lighthouse", "cid": CID_A, "status": "permanent"}));
    p.write(&block(&emu), "");
    let pruned = p.run(&["apply", "--auto-approve", "--prune", "--force-unpins"]);
    assert_eq!(pruned.code, 1, "{pruned:?}");
    let said = format!("{}{}", pruned.stdout, pruned.stderr);
    assert!(said.contains("Permanent Plan"), "{said}");
    let left = emu.pins_of("lighthouse");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["cid"], CID_A);
    // B went, the refusal was not taken for the key's.
    let state = p.project.state();
    let names: Vec<&str> = state["pins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"], "{state}");
}

#[test]
fn answers_429_slow_the_pace_and_every_pin_lands() {
    let emu = lighthouse(&["--limit", "lighthouse=10/s"]);
    let p = project(&emu, &many_pins(40, &[]));
    let applied = p.run(&["apply", "--auto-approve", "--concurrency", "16"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    let refused = requests_to(&emu, "lighthouse")
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert!(refused > 0, "the limit was met");
    assert_eq!(emu.pins_of("lighthouse").len(), 40);
}

/// A third-party check of the emulator: Lighthouse's own SDK (npm
/// `@lighthouse-web3/sdk`) pages through the uploads pinsync made and
/// deletes one, sending what it sends to Lighthouse.
#[test]
fn lighthouses_own_sdk_takes_the_emulators_answers() {
    let modules = npm_package("lighthouse-sdk", "@lighthouse-web3/sdk@0.4.7");
    let emu = lighthouse(&["--lighthouse-page-size", "2"]);
    let p = project(&emu, &many_pins(5, &[]));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    let run = run_node("lighthouse_sdk.cjs", &modules, &[&emu.url, KEY, "5"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(emu.pins_of("lighthouse").len(), 4);
}

#[test]
fn when_the_recorded_upload_is_gone_another_of_its_cid_is_left_alone() {
    let emu = lighthouse(&[]);
    let p = project(&emu, &pin(CID_A, "a", &[]));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    assert_eq!(p.run(&["refresh"]).code, 0);
    let recorded = p.project.state()["pins"][0]["pin_id"].clone();
    assert!(recorded.is_string(), "refresh learned the upload's id");
    // Removed by hand, then uploaded again by someone else.
    emu.change_pin(json!({"provider": "lighthouse", "cid": CID_A, "lost": true}));
    emu.change_pin(json!({"provider": "lighthouse", "cid": CID_A, "status": "by_hand"}));

    p.write(&block(&emu), "");
    let pruned = p.run(&["apply", "--auto-approve", "--prune", "--force-unpins"]);
    assert_eq!(pruned.code, 0, "{pruned:?}");
    let left = emu.pins_of("lighthouse");
    assert_eq!(left.len(), 1, "{pruned:?}");
    assert_eq!(left[0]["name"], "by hand");
    assert!(
        requests_to(&emu, "lighthouse")
            .iter()
            .all(|r| r["method"] != "DELETE"),
        "nothing deleted"
    );
}
