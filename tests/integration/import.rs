//! `pinsync import`: adopt what the providers already hold, with no write
//! call, so the next apply makes none either.

use serde_json::json;

use crate::support::*;

/// Pins by hand, straight at the emulated provider, as a team did before
/// pinsync.
fn pin_by_hand(emu: &Emulator, cid: &str, name: &str, cluster: Option<&str>) {
    match cluster {
        None => {
            ureq::post(&format!("{}/api/pinning/pinByHash", emu.url))
                .set("pinning_api_key", AIOZ_KEY)
                .set("pinning_secret_key", AIOZ_SECRET)
                .send_json(json!({"hash_to_pin": cid, "metadata": {"name": name}}))
                .unwrap();
        }
        Some(cl) => {
            ureq::post(&format!("{}/api/v3/files/pin/{cid}", emu.url))
                .set("X-API-Key", ARKIVE_KEY)
                .send_json(json!({"customName": name, "cl": cl}))
                .unwrap();
        }
    }
}

fn writes(emu: &Emulator) -> usize {
    emu.requests()
        .iter()
        .filter(|r| r["method"] != "GET")
        .count()
}

#[test]
fn import_adopts_what_the_manifest_wants_and_the_next_apply_makes_no_call() {
    let emu = Emulator::start();
    pin_by_hand(&emu, CID_A, "a", None);
    pin_by_hand(&emu, CID_B, "b", None);
    pin_by_hand(&emu, CID_C, "c", Some("cl1-eu"));
    let p = Project::new(
        &emu,
        &(pin(CID_A, "a", &["aioz"]) + &pin(CID_C, "c", &["arkive/cl1-eu"])),
    );
    let by_hand = writes(&emu);

    let run = p.run(&["import"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("aioz: 2 listed in 1 call: 1 adopted, 0 failed there (apply pins them), 1 not in the manifest"), "{run:?}");
    assert!(
        run.stdout.contains("arkive: 1 listed in 1 call: 1 adopted"),
        "{run:?}"
    );
    assert_eq!(writes(&emu), by_hand, "import makes no write call");
    let state = p.state();
    let aioz = state["pins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["provider"] == "aioz")
        .unwrap();
    assert!(aioz["pin_id"].is_string(), "the id AIOZ unpins by: {aioz}");

    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("No changes"), "{run:?}");
    assert_eq!(
        writes(&emu),
        by_hand,
        "the apply after adopting makes no call"
    );
}

#[test]
fn print_manifest_lists_what_the_manifest_lacks_ready_to_paste() {
    let emu = Emulator::start();
    pin_by_hand(&emu, CID_A, "a", None);
    pin_by_hand(&emu, CID_B, "held by hand", None);
    pin_by_hand(&emu, CID_B, "held by hand", Some("cl2-de"));
    let p = Project::new(&emu, &pin(CID_A, "a", &["aioz"]));
    let run = p.run(&["import", "--print-manifest"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "pins:\n  - cid: \"{CID_B}\"\n    name: \"held by hand\"\n    to: [\"aioz\", \"arkive/cl2-de\"]\n"
        ),
        "{run:?}"
    );
    assert!(!p.state_path().exists(), "printing records nothing");
    // Pasted into the manifest, the entries validate and adopt cleanly.
    let entries = run.stdout.strip_prefix("pins:\n").unwrap();
    p.write_manifest(&emu, &(pin(CID_A, "a", &["aioz"]) + entries));
    assert_eq!(p.run(&["validate"]).code, 0);
    let run = p.run(&["import"]);
    assert!(
        run.stdout.contains("2 adopted") && run.stdout.contains("1 adopted"),
        "{run:?}"
    );
    assert!(p.run(&["plan"]).stdout.contains("No changes"));
}
