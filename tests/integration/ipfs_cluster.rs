//! `type: ipfs-cluster` against the emulator's cluster (`/cluster`): the
//! documented requests, replication and `--wait` until `replication.min`
//! peers hold a pin, peers that fail, pins made by others left alone,
//! JWT auth, and the streamed allocations for refresh and import.

use serde_json::{Value, json};

use crate::support::*;

const CLUSTER_PASSWORD: &str = "clusterPASS-6a5b4c3d-SECRET";
const CLUSTER_USER: &str = "pinsync";

fn cluster(args: &[&str]) -> Emulator {
    let auth = format!("basic:{CLUSTER_USER}:{CLUSTER_PASSWORD}");
    let mut all = vec!["--cluster-auth", auth.as_str()];
    all.extend_from_slice(args);
    Emulator::start_with(&all)
}

fn project(emu: &Emulator, extra: &str, pins: &str) -> Project {
    let p = Project::new(emu, "");
    write(&p, emu, extra, pins);
    p
}

fn write(p: &Project, emu: &Emulator, extra: &str, pins: &str) {
    let text = format!(
        "version: 1
identity: site
providers:
  cluster:
    type: ipfs-cluster
    base_url: {url}/cluster
    username: {CLUSTER_USER}
    password: ${{CLUSTER_PASSWORD}}
{extra}defaults:
  to: [cluster]
pins:
{pins}",
        url = emu.url
    );
    std::fs::write(p.manifest(), text).unwrap();
}

fn run(p: &Project, args: &[&str]) -> Run {
    let run = p
        .command(args)
        .env("CLUSTER_PASSWORD", CLUSTER_PASSWORD)
        .run();
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains(CLUSTER_PASSWORD),
            "password in output: {run:?}"
        );
    }
    run
}

fn requests(emu: &Emulator) -> Vec<Value> {
    emu.requests()
        .into_iter()
        .filter(|r| r["provider"] == "cluster")
        .collect()
}

fn said(run: &Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

#[test]
fn a_pin_is_posted_with_its_options_marked_and_waited_for_until_min_peers_hold_it() {
    let emu = cluster(&["--cluster-peers", "3", "--cluster-pinning-ms", "1500"]);
    let pins = format!("  - cid: {CID_A}\n    name: home\n    meta: {{team: web}}\n");
    let p = project(&emu, "    replication: {min: 2, max: 3}\n", &pins);
    let applied = run(
        &p,
        &["apply", "--auto-approve", "--wait", "--wait-timeout", "30s"],
    );
    assert_eq!(applied.code, 0, "{applied:?}");

    let all = requests(&emu);
    let expected_auth = basic_auth(CLUSTER_USER, CLUSTER_PASSWORD);
    for r in &all {
        assert_eq!(r["headers"]["authorization"], expected_auth.as_str(), "{r}");
    }
    let calls: Vec<String> = all
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        calls[0],
        format!("GET /cluster/pins/{CID_A}"),
        "looked up first"
    );
    assert_eq!(all[0]["status"], 404);
    assert_eq!(
        calls[1],
        format!(
            "POST /cluster/pins/{CID_A}?mode=recursive&name=home&replication-min=2&replication-max=3&meta-team=web&meta-pinsync=site"
        )
    );
    // Then its status, until two peers report it pinned.
    assert!(
        calls.len() > 3,
        "the wait read the status more than once: {calls:#?}"
    );
    assert!(
        calls[2..]
            .iter()
            .all(|c| *c == format!("GET /cluster/pins/{CID_A}"))
    );
    let state = p.state();
    let pin = &state["pins"][0];
    assert_eq!(pin["pin_id"], CID_A);
    let held = emu.pins();
    assert_eq!(
        held[0]["keyvalues"],
        json!({"pinsync": "site", "team": "web"})
    );
}

#[test]
fn a_pin_too_few_peers_can_hold_is_reported_failed_by_the_wait() {
    // Two of three peers fail: one pinned peer is short of min 2.
    let emu = cluster(&["--cluster-peers", "3", "--cluster-failing-peers", "2"]);
    let p = project(
        &emu,
        "    replication: {min: 2}\n",
        &pin(CID_A, "home", &[]),
    );
    let applied = run(
        &p,
        &["apply", "--auto-approve", "--wait", "--wait-timeout", "20s"],
    );
    assert_eq!(applied.code, 1, "{applied:?}");
    assert!(
        said(&applied).contains("Waited: 0 pinned, 1 failed, 0 timed out"),
        "{}",
        said(&applied)
    );
    // The peers that failed are named, with their errors.
    assert!(
        said(&applied).contains(
            "(failing peers: peer0 pin_error (emulated failure: not enough space), peer1 pin_error (emulated failure: not enough space))"
        ),
        "{}",
        said(&applied)
    );
}

#[test]
fn a_pin_made_by_someone_else_is_adopted_and_never_removed_or_changed() {
    let emu = cluster(&[]);
    emu.change_pin(json!({"provider": "cluster", "cid": CID_A, "status": "by_hand"}));
    let p = project(
        &emu,
        "",
        &(pin(CID_A, "home", &[]) + &pin(CID_B, "docs", &[])),
    );
    let applied = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    let posts: Vec<Value> = requests(&emu)
        .into_iter()
        .filter(|r| r["method"] == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "only B is posted: {posts:#?}");
    assert!(posts[0]["path"].as_str().unwrap().contains(CID_B));

    write(&p, &emu, "", "  []\n");
    let pruned = run(
        &p,
        &["apply", "--auto-approve", "--prune", "--force-unpins"],
    );
    assert_eq!(pruned.code, 0, "{pruned:?}");
    let held: Vec<String> = emu
        .pins()
        .iter()
        .filter(|p| p["provider"] == "cluster")
        .map(|p| p["cid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(held, [CID_A], "the pin made by hand stays");
    assert!(
        !requests(&emu)
            .iter()
            .any(|r| r["method"] == "DELETE" && r["path"].as_str().unwrap().contains(CID_A))
    );
}

#[test]
fn with_auth_jwt_the_password_goes_once_for_a_token_and_the_token_after() {
    let emu = cluster(&[]);
    let p = project(&emu, "    auth: jwt\n", &many_pins(3, &[]));
    let applied = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    let all = requests(&emu);
    assert_eq!(all[0]["path"], "/cluster/token");
    assert_eq!(
        all[0]["headers"]["authorization"],
        basic_auth(CLUSTER_USER, CLUSTER_PASSWORD).as_str()
    );
    let tokens = all.iter().filter(|r| r["path"] == "/cluster/token").count();
    assert_eq!(tokens, 1, "one token for the run");
    for r in &all[1..] {
        let auth = r["headers"]["authorization"].as_str().unwrap();
        assert!(auth.starts_with("Bearer eyJ"), "{r}");
    }

    // The token the cluster issued is redacted like the password when an
    // answer echoes it.
    emu.faults(json!({"fail_next": [
        {"on": "GET /cluster/pins/*", "echo_headers": true, "status": 400},
    ]}));
    write(&p, &emu, "    auth: jwt\n", &many_pins(4, &[]));
    let echoed = run(&p, &["apply", "--auto-approve", "--concurrency", "1"]);
    let issued: Vec<String> = requests(&emu)
        .iter()
        .filter_map(|r| r["headers"]["authorization"].as_str())
        .filter_map(|a| a.strip_prefix("Bearer "))
        .map(str::to_owned)
        .collect();
    assert!(!issued.is_empty());
    for token in &issued {
        assert!(!said(&echoed).contains(token.as_str()), "{}", said(&echoed));
    }
    assert!(
        said(&echoed).contains("authorization: Bearer <redacted>"),
        "{}",
        said(&echoed)
    );
}

#[test]
fn refresh_and_import_read_ten_thousand_pins_from_the_streamed_allocations() {
    let emu = cluster(&[]);
    let p = project(&emu, "", &many_pins(10_000, &[]));
    assert_eq!(run(&p, &["apply", "--auto-approve"]).code, 0);
    let refreshed = run(&p, &["refresh"]);
    assert_eq!(refreshed.code, 0, "{refreshed:?}");
    assert!(
        refreshed.stdout.contains("10000 pins checked in 1 call"),
        "{}",
        refreshed.stdout
    );
    std::fs::remove_file(p.state_path()).unwrap();
    let imported = run(&p, &["import"]);
    assert_eq!(imported.code, 0, "{imported:?}");
    assert_eq!(p.listed_pins().len(), 10_000);
    let plan = run(&p, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let lists = requests(&emu)
        .iter()
        .filter(|r| r["path"] == "/cluster/allocations?filter=pin")
        .count();
    assert_eq!(lists, 2);
}

#[test]
fn a_pins_replication_overrides_its_providers_and_a_change_is_an_update() {
    let emu = cluster(&["--cluster-peers", "4"]);
    let pins = format!(
        "  - cid: {CID_A}\n    name: home\n    replication: {{min: 3}}\n  - cid: {CID_B}\n    name: docs\n"
    );
    let p = project(&emu, "    replication: {min: 1, max: 2}\n", &pins);
    assert_eq!(run(&p, &["apply", "--auto-approve"]).code, 0);
    let posts = |emu: &Emulator| -> Vec<String> {
        requests(emu)
            .into_iter()
            .filter(|r| r["method"] == "POST")
            .map(|r| r["path"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = posts(&emu);
    assert!(
        first
            .iter()
            .any(|p| p.contains(CID_A) && p.contains("replication-min=3&meta")),
        "{first:#?}"
    );
    assert!(
        first
            .iter()
            .any(|p| p.contains(CID_B) && p.contains("replication-min=1&replication-max=2")),
        "{first:#?}"
    );

    // The provider's replication changes: B, which follows it, is updated.
    write(&p, &emu, "    replication: {min: 2, max: 4}\n", &pins);
    let plan = run(&p, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout.contains("replication 1..2 peers -> 2..4 peers"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("1 to update"), "{}", plan.stdout);
    let applied = run(
        &p,
        &["apply", "--auto-approve", "--wait", "--wait-timeout", "20s"],
    );
    assert_eq!(applied.code, 0, "{applied:?}");
    let second: Vec<String> = posts(&emu).into_iter().skip(first.len()).collect();
    assert_eq!(second.len(), 1, "{second:#?}");
    assert!(
        second[0].contains(CID_B) && second[0].contains("replication-min=2&replication-max=4"),
        "{second:#?}"
    );
    let again = run(&p, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");
}

#[test]
fn a_replication_on_a_target_that_pins_on_one_node_is_refused_where_it_is_written() {
    let emu = cluster(&[]);
    let p = Project::new(
        &emu,
        &format!("  - cid: {CID_A}\n    to: [aioz]\n    replication: {{min: 2}}\n"),
    );
    let run = p.run(&["validate"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("pins.yaml:23:18: `replication` is for types that pin on several peers"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_refused_password_echoed_back_is_redacted_and_a_redirect_is_not_followed() {
    let emu = cluster(&[]);
    emu.faults(json!({"fail_next": [
        {"on": "GET /cluster/pins/*", "echo_headers": true, "status": 401},
    ]}));
    let p = project(&emu, "", &pin(CID_A, "home", &[]));
    let refused = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    let pair = basic_auth(CLUSTER_USER, CLUSTER_PASSWORD);
    let encoded = pair.trim_start_matches("Basic ");
    assert!(!said(&refused).contains(encoded), "{}", said(&refused));
    assert!(
        said(&refused).contains("authorization: Basic <redacted>"),
        "{}",
        said(&refused)
    );

    emu.faults(json!({"fail_next": [
        {"on": "POST /cluster/pins/*", "redirect": "http://127.0.0.2:9"},
    ]}));
    let redirected = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(redirected.code, 1, "{redirected:?}");
    assert!(
        said(&redirected).contains("redirected to http://127.0.0.2:9"),
        "{}",
        said(&redirected)
    );
    assert!(emu.pins().iter().all(|p| p["provider"] != "cluster"));
}
