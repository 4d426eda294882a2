//! The `pinning-service` provider type against a third-party implementation
//! of the IPFS Pinning Service API (`mock-ipfs-pinning-service`, npm).

use serde_json::Value;

use crate::support::*;

fn project(mock: &PsaMock, pins: &str) -> Project {
    let p = Project {
        dir: tempfile::tempdir().unwrap(),
        state_url: None,
    };
    write_manifest(&p, mock, pins);
    p
}

fn write_manifest(p: &Project, mock: &PsaMock, pins: &str) {
    let text = format!(
        "version: 1
identity: site
providers:
  psa:
    type: pinning-service
    base_url: {url}
    token: ${{PSA_TOKEN}}
defaults:
  to: [psa]
pins:
{pins}",
        url = mock.url
    );
    std::fs::write(p.manifest(), text).unwrap();
}

fn run(p: &Project, args: &[&str]) -> Run {
    let mut cmd = p.command(args);
    cmd.env("PSA_TOKEN", PSA_TOKEN);
    cmd.run()
}

fn by_cid<'a>(requests: &'a [Value], cid: &str) -> Vec<&'a Value> {
    requests.iter().filter(|r| r["pin"]["cid"] == cid).collect()
}

#[test]
fn apply_adds_each_pin_once_marked_as_this_manifests_and_a_rerun_adds_nothing() {
    let mock = PsaMock::start();
    let p = project(
        &mock,
        &(pin(CID_B, "docs", &[])
            + "    meta: {team: web}\n    origins: [/dnsaddr/node.example/p2p/12D3KooWorigin]\n"),
    );
    let run1 = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(run1.code, 0, "{run1:?}");
    let requests = mock.requests();
    let docs = by_cid(&requests, CID_B);
    assert_eq!(docs.len(), 1, "{requests:?}");
    assert_eq!(docs[0]["pin"]["name"], "docs");
    assert_eq!(
        docs[0]["pin"]["meta"]["pinsync"], "site",
        "owned by this manifest"
    );
    assert_eq!(docs[0]["pin"]["meta"]["team"], "web");
    assert_eq!(
        docs[0]["pin"]["origins"],
        serde_json::json!(["/dnsaddr/node.example/p2p/12D3KooWorigin"])
    );
    let state = p.state();
    assert_eq!(
        state["pins"][0]["pin_id"], docs[0]["requestid"],
        "the request id is recorded"
    );

    // A lost state (or a crash before it was written): the rerun looks the
    // CID up and adopts the request instead of adding a second one. This
    // mock answers a second add with the same request, so "already pinned"
    // (the lookup's adoption, not an add's answer) is what proves it.
    std::fs::remove_file(p.state_path()).unwrap();
    let run2 = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(run2.code, 0, "{run2:?}");
    assert!(run2.stdout.contains("(1 already pinned)"), "{run2:?}");
    assert_eq!(
        by_cid(&mock.requests(), CID_B).len(),
        1,
        "no duplicate request"
    );
    for text in [format!("{run1:?}"), format!("{run2:?}")] {
        assert!(!text.contains(PSA_TOKEN), "the token leaked: {text}");
    }
}

#[test]
fn a_failed_request_is_drift_after_refresh() {
    let mock = PsaMock::start();
    // The mock sets a request's status from its name's prefix.
    let p = project(
        &mock,
        &(pin(CID_A, "failed-home", &[]) + &pin(CID_B, "pinned-docs", &[])),
    );
    assert_eq!(run(&p, &["apply", "--auto-approve"]).code, 0);
    let r = run(&p, &["refresh"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("psa: 2 pins checked in 1 call (2 listed): 1 pinned, 1 failed"),
        "{r:?}"
    );
    let r = run(&p, &["plan"]);
    assert!(
        r.stdout.contains("1 to re-pin") && r.stdout.contains("the provider reports it failed"),
        "{r:?}"
    );
}

#[test]
fn prune_removes_an_owned_request_and_never_a_hand_made_one() {
    let mock = PsaMock::start();
    let by_hand = mock.add_by_hand(CID_C, "made by hand");
    let p = project(
        &mock,
        &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[]) + &pin(CID_C, "made by hand", &[])),
    );
    // The hand-made request is adopted, not added again, and recorded as
    // foreign.
    let r = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(by_cid(&mock.requests(), CID_C).len(), 1);
    assert_eq!(foreign_ids(&p), [by_hand["requestid"].clone()]);
    // Dropping B and the hand-made C: the plan unpins B and keeps C, with
    // the reason, and the apply succeeds.
    write_manifest(&p, &mock, &pin(CID_A, "a", &[]));
    let r = run(&p, &["plan", "--prune"]);
    assert!(
        r.stdout.contains("1 to unpin")
            && r.stdout
                .contains("cannot unpin: adopted, not made by this manifest"),
        "{r:?}"
    );
    let r = run(&p, &["apply", "--auto-approve", "--prune"]);
    assert_eq!(r.code, 0, "{r:?}");
    let requests = mock.requests();
    assert!(
        by_cid(&requests, CID_B).is_empty(),
        "the owned request is removed: {requests:?}"
    );
    let c = by_cid(&requests, CID_C);
    assert_eq!(c.len(), 1, "the hand-made request survives");
    assert_eq!(c[0]["requestid"], by_hand["requestid"]);
    assert!(c[0]["pin"]["meta"].get("pinsync").is_none(), "{c:?}");
    let r = run(&p, &["plan", "--prune", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "the kept request settles as an orphan: {r:?}");
}

/// `take_over_unmarked: true`: an unmarked request for a wanted CID is
/// re-made with the mark, so pinsync manages it from then on; another
/// manifest's request is still left alone.
#[test]
fn take_over_unmarked_marks_a_hand_made_request_but_not_another_manifests() {
    let mock = PsaMock::start();
    mock.add_by_hand(CID_A, "by hand");
    let theirs = mock.add(
        CID_B,
        "theirs",
        serde_json::json!({"pinsync": "other-site"}),
    );
    let p = project(&mock, &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    let text = std::fs::read_to_string(p.manifest()).unwrap().replace(
        "    token: ${PSA_TOKEN}\n",
        "    token: ${PSA_TOKEN}\n    take_over_unmarked: true\n",
    );
    std::fs::write(p.manifest(), text).unwrap();
    let r = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    let requests = mock.requests();
    let a = by_cid(&requests, CID_A);
    assert_eq!(a.len(), 1, "replaced, not doubled: {requests:?}");
    assert_eq!(a[0]["pin"]["meta"]["pinsync"], "site", "{a:?}");
    let b = by_cid(&requests, CID_B);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["requestid"], theirs["requestid"]);
    assert_eq!(b[0]["pin"]["meta"]["pinsync"], "other-site");
    assert_eq!(foreign_ids(&p), [theirs["requestid"].clone()]);
}

/// The request ids the state records as foreign.
fn foreign_ids(p: &Project) -> Vec<Value> {
    let state = p.state();
    state["pins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["foreign"] == true)
        .map(|r| r["pin_id"].clone())
        .collect()
}

/// On a Pinning Service a name or meta change is a call: the request is
/// replaced, and the new request id recorded.
#[test]
fn a_rename_replaces_the_request_and_records_the_new_id() {
    let mock = PsaMock::start();
    let p = project(&mock, &pin(CID_B, "docs", &[]));
    assert_eq!(run(&p, &["apply", "--auto-approve"]).code, 0);
    let old_id = p.state()["pins"][0]["pin_id"].as_str().unwrap().to_owned();
    write_manifest(&p, &mock, &pin(CID_B, "docs-v2", &[]));
    let r = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("1 updated"), "{r:?}");
    let requests = mock.requests();
    let docs = by_cid(&requests, CID_B);
    assert_eq!(docs.len(), 1, "{requests:?}");
    assert_eq!(docs[0]["pin"]["name"], "docs-v2", "{requests:?}");
    assert_eq!(docs[0]["pin"]["meta"]["pinsync"], "site");
    let new_id = p.state()["pins"][0]["pin_id"].as_str().unwrap().to_owned();
    assert_eq!(
        new_id,
        docs[0]["requestid"].as_str().unwrap(),
        "the new request id is recorded (was {old_id})"
    );
    assert!(run(&p, &["plan"]).stdout.contains("No changes"));
}
