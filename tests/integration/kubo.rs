//! `type: kubo` against the emulator's Kubo RPC API (`/kubo/api/v0`): the
//! documented requests exactly, a pin/add that outlasts the request
//! timeout, one cut short and resumed, streamed listings and their
//! trailer errors, and unpinning only what pinsync recorded.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

/// The Basic auth password of the emulator's node; scanned for in output.
const KUBO_PASSWORD: &str = "kuboPASS-2f3e4d5c-SECRET";
const KUBO_USER: &str = "pinsync";

fn node(args: &[&str]) -> Emulator {
    let auth = format!("basic:{KUBO_USER}:{KUBO_PASSWORD}");
    let mut all = vec!["--kubo-auth", auth.as_str()];
    all.extend_from_slice(args);
    Emulator::start_with(&all)
}

/// A project whose only provider is the emulator's node, named `node`.
fn project(emu: &Emulator, extra: &str, pins: &str) -> Project {
    let p = Project::new(emu, "");
    write(&p, emu, extra, pins);
    p
}

fn write(p: &Project, emu: &Emulator, extra: &str, pins: &str) {
    let text = format!(
        "version: 1
providers:
  node:
    type: kubo
    base_url: {url}/kubo
    username: {KUBO_USER}
    password: ${{KUBO_PASSWORD}}
{extra}defaults:
  to: [node]
pins:
{pins}",
        url = emu.url
    );
    std::fs::write(p.manifest(), text).unwrap();
}

fn run(p: &Project, args: &[&str]) -> Run {
    let run = cmd(p, args).run();
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(KUBO_PASSWORD), "password in output: {run:?}");
    }
    run
}

fn cmd(p: &Project, args: &[&str]) -> Command {
    let mut cmd = p.command(args);
    cmd.env("KUBO_PASSWORD", KUBO_PASSWORD);
    cmd
}

fn kubo_requests(emu: &Emulator) -> Vec<Value> {
    emu.requests()
        .into_iter()
        .filter(|r| r["provider"] == "kubo")
        .collect()
}

/// The requests to `call` (`pin/add`, `version`, ...).
fn calls_to(emu: &Emulator, call: &str) -> Vec<Value> {
    let path = format!("/kubo/api/v0/{call}");
    kubo_requests(emu)
        .into_iter()
        .filter(|r| {
            let p = r["path"].as_str().unwrap();
            p == path || p.starts_with(&format!("{path}?"))
        })
        .collect()
}

fn node_pins(emu: &Emulator) -> Vec<(String, Option<String>)> {
    emu.pins()
        .into_iter()
        .filter(|p| p["provider"] == "kubo")
        .map(|p| {
            (
                p["cid"].as_str().unwrap().to_owned(),
                p["name"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn every_call_is_the_documented_post_with_its_arguments_in_the_query() {
    let emu = node(&[]);
    let p = project(
        &emu,
        "",
        &(pin(CID_A, "home", &[]) + &pin(CID_B, "docs", &[])),
    );
    let applied = run(&p, &["apply", "--auto-approve", "--wait"]);
    assert_eq!(applied.code, 0, "{applied:?}");

    // A rename, then the pin leaves the manifest, with prune.
    write(
        &p,
        &emu,
        "",
        &(pin(CID_A, "home-v2", &[]) + &pin(CID_B, "docs", &[])),
    );
    let renamed = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(renamed.code, 0, "{renamed:?}");
    write(&p, &emu, "", &pin(CID_A, "home-v2", &[]));
    let pruned = run(&p, &["apply", "--auto-approve", "--prune"]);
    assert_eq!(pruned.code, 0, "{pruned:?}");
    let refreshed = run(&p, &["refresh"]);
    assert_eq!(refreshed.code, 0, "{refreshed:?}");

    let expected_basic = basic_auth(KUBO_USER, KUBO_PASSWORD);
    let mut requests = kubo_requests(&emu);
    // Each run that pins a named pin, or lists, asks the node its version
    // once, before: the first apply and the refresh (the rename makes no
    // call, the prune no pin).
    let at = |path: &str| {
        requests
            .iter()
            .position(|r| r["path"].as_str().unwrap().starts_with(path))
    };
    assert!(
        at("/kubo/api/v0/version") < at("/kubo/api/v0/pin/add"),
        "{requests:#?}"
    );
    assert_eq!(calls_to(&emu, "version").len(), 2);
    for r in &requests {
        assert_eq!(r["method"], "POST", "{r}");
        assert_eq!(
            r["headers"]["authorization"],
            expected_basic.as_str(),
            "{r}"
        );
        assert_eq!(r["raw_body"], "", "arguments go in the query: {r}");
    }
    requests.retain(|r| r["path"] != "/kubo/api/v0/version");
    let paths: Vec<&str> = requests
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    let add = |cid: &str, name: &str| {
        format!("/kubo/api/v0/pin/add?arg={cid}&recursive=true&progress=true&name={name}")
    };
    let ls = |cid: &str| format!("/kubo/api/v0/pin/ls?arg={cid}&type=recursive");
    // The first apply: each CID looked up (not pinned: a 500 "is not
    // pinned"), then added; then --wait reads each. The two pins run at
    // once, so only each pin's own order is fixed.
    let mut first: Vec<&str> = paths[..6].to_vec();
    first.sort();
    let mut expected = vec![
        ls(CID_A),
        ls(CID_A),
        ls(CID_B),
        ls(CID_B),
        add(CID_A, "home"),
        add(CID_B, "docs"),
    ];
    expected.sort();
    assert_eq!(first, expected, "{paths:#?}");
    for (cid, name) in [(CID_A, "home"), (CID_B, "docs")] {
        let looked = paths.iter().position(|p| *p == ls(cid)).unwrap();
        let added = paths.iter().position(|p| *p == add(cid, name)).unwrap();
        assert!(
            looked < added,
            "{cid} is looked up before it is added: {paths:#?}"
        );
        assert_eq!(requests[looked]["status"], 500, "not pinned yet");
    }
    // The rename is recorded without a call; the prune removes B; the
    // refresh lists.
    assert_eq!(
        paths[6..],
        [
            format!("/kubo/api/v0/pin/rm?arg={CID_B}&recursive=true"),
            "/kubo/api/v0/pin/ls?type=recursive&names=true&stream=true".to_owned(),
        ],
        "{paths:#?}"
    );
    assert_eq!(
        node_pins(&emu),
        [(CID_A.to_owned(), Some("home".to_owned()))]
    );
    assert_eq!(
        p.state()["pins"][0]["name"],
        "home-v2",
        "the rename is recorded"
    );
    let plan = run(&p, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "in sync: {plan:?}");
}

#[test]
fn a_pin_add_longer_than_the_request_timeout_completes() {
    // Two seconds to fetch the DAG, against a one-second request timeout.
    let emu = node(&["--kubo-fetch-ms", "2000", "--kubo-progress-ms", "100"]);
    let p = project(&emu, "", &pin(CID_A, "big", &[]));
    let applied = run(&p, &["apply", "--auto-approve", "--timeout", "1s"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    assert_eq!(
        node_pins(&emu),
        [(CID_A.to_owned(), Some("big".to_owned()))]
    );
    let adds = calls_to(&emu, "pin/add");
    assert_eq!(adds.len(), 1, "one call, not retried: {adds:#?}");
}

#[test]
fn a_pin_add_cut_short_reports_what_it_fetched_and_the_next_apply_resumes_it() {
    // Three seconds to fetch; pinsync gives each pin/add one.
    let emu = node(&["--kubo-fetch-ms", "3000", "--kubo-progress-ms", "100"]);
    let p = project(&emu, "    pin_timeout: 1s\n", &pin(CID_A, "big", &[]));
    let first = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(first.code, 1, "{first:?}");
    let said = format!("{}{}", first.stdout, first.stderr);
    assert!(
        said.contains("did not finish within 1s (pin_timeout)") && said.contains("resumes it"),
        "{said}"
    );
    let blocks: u64 = said
        .split("the node had fetched ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no block count in: {said}"));
    assert!(blocks > 0, "{said}");
    assert_eq!(
        calls_to(&emu, "pin/add").len(),
        1,
        "not retried within the run"
    );
    assert!(node_pins(&emu).is_empty());

    // Each run fetches a second more; the third finishes what is left.
    let mut runs = 1;
    while node_pins(&emu).is_empty() {
        runs += 1;
        assert!(runs <= 4, "the fetch did not resume");
        let again = run(&p, &["apply", "--auto-approve"]);
        assert!(again.code == 0 || again.code == 1, "{again:?}");
    }
    assert!(
        runs <= 4,
        "resumed: done in {runs} runs of 1s for 3s of fetching"
    );
    let plan = run(&p, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan:?}");
}

#[test]
fn a_streamed_listing_of_ten_thousand_pins_is_read_in_one_call() {
    let emu = node(&[]);
    let p = project(&emu, "", &many_pins(10_000, &[]));
    let applied = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let before = calls_to(&emu, "pin/ls").len();
    let refreshed = run(&p, &["refresh"]);
    assert_eq!(refreshed.code, 0, "{refreshed:?}");
    assert!(
        refreshed.stdout.contains("10000 pins checked in 1 call"),
        "{}",
        refreshed.stdout
    );
    assert_eq!(calls_to(&emu, "pin/ls").len(), before + 1);
    let pins = p.listed_pins();
    assert_eq!(pins.len(), 10_000);
    assert!(pins.iter().all(|p| p["status"] == "managed"));
}

#[test]
fn a_listing_cut_short_by_the_stream_error_trailer_is_an_error_not_a_loss() {
    let emu = node(&["--kubo-stream-error-after", "2"]);
    let p = project(&emu, "", &many_pins(5, &[]));
    assert_eq!(run(&p, &["apply", "--auto-approve"]).code, 0);
    let pins_before = p.state()["pins"].clone();
    let refreshed = run(&p, &["refresh"]);
    assert_eq!(refreshed.code, 1, "{refreshed:?}");
    let said = format!("{}{}", refreshed.stdout, refreshed.stderr);
    assert!(
        said.contains("the streamed answer broke off: context canceled"),
        "{said}"
    );
    assert_eq!(
        p.state()["pins"],
        pins_before,
        "no pin is taken as lost from a partial listing"
    );
}

#[test]
fn only_the_pins_pinsync_recorded_are_unpinned_and_a_gone_one_is_not_a_failure() {
    let emu = node(&[]);
    // A pin made by hand on the node, which the manifest never names.
    let by_hand = many_cids(3).pop().unwrap();
    pin_by_hand(&emu, &by_hand, "by-hand");

    let p = project(&emu, "", &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    assert_eq!(run(&p, &["apply", "--auto-approve"]).code, 0);
    // B is unpinned behind pinsync's back; then both leave the manifest.
    emu_lose(&emu, CID_B);
    write(&p, &emu, "", "  []\n");
    let pruned = run(
        &p,
        &["apply", "--auto-approve", "--prune", "--force-unpins"],
    );
    assert_eq!(pruned.code, 0, "{pruned:?}");
    assert_eq!(
        node_pins(&emu),
        [(by_hand.clone(), Some("by-hand".to_owned()))],
        "the hand-made pin stays"
    );
    let rms: Vec<String> = kubo_requests(&emu)
        .iter()
        .filter_map(|r| r["path"].as_str())
        .filter(|p| p.contains("/pin/rm"))
        .map(str::to_owned)
        .collect();
    assert_eq!(rms.len(), 2, "{rms:?}");
    assert!(rms.iter().all(|r| !r.contains(&by_hand)), "{rms:?}");
    assert!(p.listed_pins().is_empty());
}

/// Pins `cid` on the node as someone else would, by hand.
fn pin_by_hand(emu: &Emulator, cid: &str, name: &str) {
    let answer = ureq::post(&format!(
        "{}/kubo/api/v0/pin/add?arg={cid}&name={name}",
        emu.url
    ))
    .set("authorization", &basic_auth(KUBO_USER, KUBO_PASSWORD))
    .call()
    .expect("pin by hand");
    assert_eq!(answer.status(), 200);
}

fn emu_lose(emu: &Emulator, cid: &str) {
    emu.change_pin(json!({"provider": "kubo", "cid": cid, "lost": true}));
}

#[test]
fn import_adopts_the_nodes_recursive_pins_that_the_manifest_wants() {
    let emu = node(&[]);
    let p = project(&emu, "", &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    assert_eq!(run(&p, &["apply", "--auto-approve"]).code, 0);
    std::fs::remove_file(p.state_path()).unwrap();
    let imported = run(&p, &["import"]);
    assert_eq!(imported.code, 0, "{imported:?}");
    let pins = p.listed_pins();
    assert_eq!(pins.len(), 2, "{pins:#?}");
    let plan = run(&p, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan:?}");
}

#[test]
fn a_wrong_password_is_refused_once_and_neither_it_nor_its_encoding_is_shown() {
    let emu = node(&[]);
    // The proxy echoes the request's headers in its refusal.
    emu.faults(json!({"fail_next": [{"on": "POST /kubo/api/v0/pin/add", "echo_headers": true, "status": 401}]}));
    let p = project(&emu, "", &many_pins(5, &[]));
    let refused = run(&p, &["apply", "--auto-approve", "--concurrency", "1"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    let header = basic_auth(KUBO_USER, KUBO_PASSWORD);
    let encoded = header.trim_start_matches("Basic ");
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert!(!said.contains(encoded), "the encoded pair leaked: {said}");
    assert!(said.contains("authorization: Basic <redacted>"), "{said}");
    assert_eq!(
        calls_to(&emu, "pin/add").len(),
        1,
        "a refused credential is not tried once per pin"
    );
}

#[test]
fn a_redirect_is_not_followed_and_nothing_is_recorded() {
    let emu = node(&[]);
    emu.faults(json!({"fail_next": [{"on": "POST /kubo/api/v0/pin/add", "redirect": "http://127.0.0.2:9"}]}));
    let p = project(&emu, "", &pin(CID_A, "a", &[]));
    let run = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{run:?}");
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(said.contains("redirected to http://127.0.0.2:9"), "{said}");
    assert!(node_pins(&emu).is_empty());
    assert!(!p.state_path().exists() || p.state()["pins"].as_array().unwrap().is_empty());
}

#[test]
fn no_more_than_four_pin_adds_run_at_once_on_one_node() {
    let emu = node(&["--kubo-fetch-ms", "600", "--kubo-progress-ms", "100"]);
    let p = project(&emu, "", &many_pins(8, &[]));
    let applied = run(&p, &["apply", "--auto-approve", "--concurrency", "16"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    let mut arrived: Vec<u64> = calls_to(&emu, "pin/add")
        .iter()
        .map(|r| r["received_ms"].as_u64().unwrap())
        .collect();
    arrived.sort_unstable();
    assert_eq!(arrived.len(), 8);
    // The fifth waits for one of the first four, which fetch for 600 ms.
    assert!(
        arrived[4] - arrived[0] >= 500,
        "the fifth pin/add started with the first four: {arrived:?}"
    );
}

#[test]
fn a_kubo_older_than_0_26_gets_no_names_and_still_pins() {
    let emu = node(&["--kubo-version", "0.25.0"]);
    let p = project(
        &emu,
        "",
        &(pin(CID_A, "home", &[]) + &pin(CID_B, "docs", &[])),
    );
    let applied = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    let refreshed = run(&p, &["refresh"]);
    assert_eq!(refreshed.code, 0, "{refreshed:?}");
    assert_eq!(calls_to(&emu, "version").len(), 2, "asked once a run");
    for r in calls_to(&emu, "pin/add")
        .iter()
        .chain(&calls_to(&emu, "pin/ls"))
    {
        let path = r["path"].as_str().unwrap();
        assert!(!path.contains("name"), "{path}");
    }
    for r in calls_to(&emu, "pin/add") {
        assert_eq!(r["status"], 200, "{r}");
    }
    assert_eq!(node_pins(&emu).len(), 2);
}

#[test]
fn a_cid_the_node_pinned_already_is_adopted_as_foreign_and_never_unpinned() {
    let emu = node(&[]);
    pin_by_hand(&emu, CID_A, "theirs");
    let p = project(&emu, "", &pin(CID_A, "ours", &[]));
    assert_eq!(run(&p, &["apply", "--auto-approve"]).code, 0);
    assert!(calls_to(&emu, "pin/add").len() == 1, "only the pin by hand");
    assert_eq!(p.state()["pins"][0]["foreign"], true);
    write(&p, &emu, "", "  []\n");
    let pruned = run(
        &p,
        &["apply", "--auto-approve", "--prune", "--force-unpins"],
    );
    assert_eq!(pruned.code, 0, "{pruned:?}");
    assert!(calls_to(&emu, "pin/rm").is_empty());
    assert_eq!(
        node_pins(&emu),
        [(CID_A.to_owned(), Some("theirs".to_owned()))]
    );
}

#[test]
fn a_pin_add_killed_midway_keeps_what_was_fetched_and_the_next_apply_resumes_it() {
    let emu = node(&["--kubo-fetch-ms", "4000", "--kubo-progress-ms", "100"]);
    let p = project(&emu, "", &pin(CID_A, "big", &[]));
    let fetched = || -> u64 {
        let all: Value = ureq::get(&format!("{}/_emulator/kubo/fetched", emu.url))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        all.as_object()
            .and_then(|m| m.values().next())
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let child = spawn_quiet(cmd(&p, &["apply", "--auto-approve"]));
    wait_until(
        std::time::Duration::from_secs(60),
        "a second of fetching",
        || fetched() >= 1000,
    );
    signal(&child, libc::SIGKILL);
    let mut child = child;
    child.wait().unwrap();
    let kept = fetched();
    assert!(kept >= 1000, "the node keeps what it fetched: {kept} ms");
    assert!(node_pins(&emu).is_empty(), "not pinned yet");

    let resumed = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert_eq!(
        node_pins(&emu),
        [(CID_A.to_owned(), Some("big".to_owned()))]
    );
    let adds = calls_to(&emu, "pin/add");
    assert_eq!(adds.len(), 2, "{adds:#?}");
    let plan = run(&p, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan:?}");
}
