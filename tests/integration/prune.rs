//! Unpinning: prune only when asked, safety guards (exit 3, no call),
//! make-before-break moves, and a 404 on unpin counting as done.

use serde_json::{Value, json};

use crate::support::*;

/// Pins the emulator still holds pinned, as `provider cid`.
fn held(emu: &Emulator) -> Vec<String> {
    let mut held: Vec<String> = emu
        .pins()
        .iter()
        .filter(|p| p["unpinned"] != true)
        .map(|p| {
            format!(
                "{} {}",
                p["provider"].as_str().unwrap(),
                p["cid"].as_str().unwrap()
            )
        })
        .collect();
    held.sort();
    held
}

fn deletes(emu: &Emulator) -> Vec<Value> {
    emu.requests()
        .into_iter()
        .filter(|r| r["method"] == "DELETE")
        .collect()
}

fn recorded(p: &Project) -> usize {
    p.listed_pins().len()
}

#[test]
fn pins_gone_from_the_manifest_are_unpinned_only_with_prune_file() {
    pins_gone_from_the_manifest_are_unpinned_only_with_prune(None);
}

#[test]
fn pins_gone_from_the_manifest_are_unpinned_only_with_prune_postgres() {
    let pg = Postgres::start();
    pins_gone_from_the_manifest_are_unpinned_only_with_prune(Some(pg.url("prune")));
}

fn pins_gone_from_the_manifest_are_unpinned_only_with_prune(state_url: Option<String>) {
    let emu = Emulator::start();
    let all = pin(CID_A, "a", &["aioz"])
        + &pin(CID_B, "b", &["aioz"])
        + &pin(CID_C, "c", &["arkive/cl1-eu"]);
    let p = Project::with_state(&emu, &all, state_url);
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    p.write_manifest(&emu, &pin(CID_A, "a", &["aioz"]));

    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("(no longer in the manifest; not unpinned)"),
        "{run:?}"
    );
    assert!(deletes(&emu).is_empty(), "no unpin without --prune");
    assert_eq!(held(&emu).len(), 3);

    let run = p.run(&["plan", "--prune"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("- aioz           {CID_B}  \"b\"  (unpin)")),
        "{run:?}"
    );
    assert!(run.stdout.contains("to unpin, "), "{run:?}");
    assert!(deletes(&emu).is_empty(), "plan makes no call");

    let run = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("2 unpinned"), "{run:?}");
    assert_eq!(held(&emu), [format!("aioz {CID_A}")]);
    let deletes = deletes(&emu);
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    let aioz = deletes.iter().find(|r| r["provider"] == "aioz").unwrap();
    assert!(
        aioz["path"]
            .as_str()
            .unwrap()
            .starts_with("/api/pinning/unpin/"),
        "by pin id: {aioz}"
    );
    assert_eq!(aioz["headers"]["pinning_api_key"], AIOZ_KEY);
    let arkive = deletes
        .iter()
        .find(|r| r["provider"] == "pinarkive")
        .unwrap();
    assert_eq!(arkive["path"], format!("/api/v3/files/remove/{CID_C}"));
    assert_eq!(arkive["headers"]["x-cluster"], "cl1-eu");
    assert_eq!(recorded(&p), 1, "unpinned pins leave the state");
    assert!(p.run(&["plan", "--prune", "--detailed-exitcode"]).code == 0);
}

#[test]
fn prune_true_in_the_manifest_is_the_same_as_the_flag() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    p.write_manifest(&emu, &pin(CID_A, "a", &[]));
    let manifest = std::fs::read_to_string(p.manifest()).unwrap();
    std::fs::write(
        p.manifest(),
        manifest.replace("version: 1\n", "version: 1\nprune: true\n"),
    )
    .unwrap();
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(held(&emu), [format!("aioz {CID_A}")]);
}

#[test]
fn an_empty_manifest_is_refused_with_exit_3_and_no_call_until_allowed_file() {
    an_empty_manifest_is_refused_with_exit_3_and_no_call_until_allowed(None);
}

#[test]
fn an_empty_manifest_is_refused_with_exit_3_and_no_call_until_allowed_postgres() {
    let pg = Postgres::start();
    an_empty_manifest_is_refused_with_exit_3_and_no_call_until_allowed(Some(
        pg.url("empty-manifest"),
    ));
}

fn an_empty_manifest_is_refused_with_exit_3_and_no_call_until_allowed(state_url: Option<String>) {
    let emu = Emulator::start();
    let p = Project::with_state(&emu, &many_pins(12, &["aioz"]), state_url);
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    p.write_manifest(&emu, "  []\n");
    let before = p.listed_state().unwrap();
    assert_eq!(before["pins"].as_array().unwrap().len(), 12);

    let run = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout
            .contains("Refused by a safety guard: the manifest asks for no pins"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("--max-unpins 12") && run.stdout.contains("--force-unpins"),
        "{run:?}"
    );
    assert!(deletes(&emu).is_empty());
    assert_eq!(p.listed_state().unwrap(), before, "the state is untouched");

    let run = p.run(&["plan", "--prune", "--detailed-exitcode"]);
    assert_eq!(run.code, 3, "{run:?}");
    let run = p.run(&["plan", "--prune", "--json"]);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["guards"].as_array().unwrap().len(), 1, "{doc}");

    // Too small an allowance still refuses; one that covers it passes.
    assert_eq!(
        p.run(&["apply", "--auto-approve", "--prune", "--max-unpins", "11"])
            .code,
        3
    );
    let run = p.run(&["apply", "--auto-approve", "--prune", "--max-unpins", "12"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(deletes(&emu).len(), 12);
    assert!(held(&emu).is_empty());
    assert_eq!(recorded(&p), 0);
}

#[test]
fn unpinning_too_much_of_a_target_is_refused_until_forced_file() {
    unpinning_too_much_of_a_target_is_refused_until_forced(None);
}

#[test]
fn unpinning_too_much_of_a_target_is_refused_until_forced_postgres() {
    let pg = Postgres::start();
    unpinning_too_much_of_a_target_is_refused_until_forced(Some(pg.url("too-much")));
}

fn unpinning_too_much_of_a_target_is_refused_until_forced(state_url: Option<String>) {
    let emu = Emulator::start();
    let cids = many_cids(40);
    let pins = |n: usize| -> String { cids[..n].iter().map(|c| pin(c, "x", &["aioz"])).collect() };
    let p = Project::with_state(&emu, &pins(40), state_url);
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    // 11 of 40 (27%): more than 10 and more than 25%.
    p.write_manifest(&emu, &pins(29));
    let run = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout.contains("unpin 11 of the 40 pins on aioz"),
        "{run:?}"
    );
    assert!(deletes(&emu).is_empty());
    // A saved plan is held to the same guard when it is applied.
    assert_eq!(p.run(&["plan", "--prune", "--out", "prune.plan"]).code, 0);
    assert_eq!(p.run(&["apply", "prune.plan"]).code, 3);
    assert!(deletes(&emu).is_empty());
    assert_eq!(recorded(&p), 40, "nothing left the state");
    let run = p.run(&["apply", "prune.plan", "--force-unpins"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(deletes(&emu).len(), 11);
    assert_eq!(recorded(&p), 29);
}

#[test]
fn a_move_pins_the_new_target_before_it_unpins_the_old_file() {
    a_move_pins_the_new_target_before_it_unpins_the_old(None);
}

#[test]
fn a_move_pins_the_new_target_before_it_unpins_the_old_postgres() {
    let pg = Postgres::start();
    a_move_pins_the_new_target_before_it_unpins_the_old(Some(pg.url("move")));
}

fn a_move_pins_the_new_target_before_it_unpins_the_old(state_url: Option<String>) {
    let emu = Emulator::start();
    let p = Project::with_state(&emu, &pin(CID_A, "a", &["arkive/cl1-eu"]), state_url);
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    p.write_manifest(&emu, &pin(CID_A, "a", &["aioz"]));
    let run = p.run(&["plan", "--prune"]);
    assert!(
        run.stdout.contains("(unpin once pinned on aioz: moved)"),
        "{run:?}"
    );
    let run = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(run.code, 0, "{run:?}");
    let calls: Vec<String> = emu
        .requests()
        .iter()
        .skip(1) // the first apply's pin
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    let recorded = p.listed_pins();
    assert_eq!(recorded.len(), 1, "only the new pin: {recorded:?}");
    assert_eq!(recorded[0]["provider"], "aioz", "{recorded:?}");
    let new_id = recorded[0]["pin_id"].as_str().unwrap().to_owned();
    assert_eq!(
        calls,
        [
            "POST /api/pinning/pinByHash".to_string(),
            // Accepted is not pinned: its status is read before the unpin.
            format!("GET /api/pinning/{new_id}"),
            format!("DELETE /api/v3/files/remove/{CID_A}")
        ],
        "make before break"
    );
    assert_eq!(held(&emu), [format!("aioz {CID_A}")]);
}

#[test]
fn a_move_keeps_the_old_pin_while_the_new_one_is_still_retrieving() {
    let emu = Emulator::start_with(&["--aioz-pinning-ms", "600000"]);
    let p = Project::new(&emu, &pin(CID_A, "a", &["arkive/cl1-eu"]));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    p.write_manifest(&emu, &pin(CID_A, "a", &["aioz"]));
    let run = p.run(&["apply", "--auto-approve", "--prune", "--wait-timeout", "2s"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(&format!("kept: arkive/cl1-eu {CID_A}: its new pin on aioz is not pinned yet (pinning); the old pin stays")),
        "{run:?}"
    );
    assert!(deletes(&emu).is_empty());
    assert_eq!(
        held(&emu).len(),
        2,
        "both copies, until the new one is pinned"
    );
}

#[test]
fn a_move_whose_new_pin_fails_keeps_the_old_pin_file() {
    a_move_whose_new_pin_fails_keeps_the_old_pin(None);
}

#[test]
fn a_move_whose_new_pin_fails_keeps_the_old_pin_postgres() {
    let pg = Postgres::start();
    a_move_whose_new_pin_fails_keeps_the_old_pin(Some(pg.url("failed-move")));
}

fn a_move_whose_new_pin_fails_keeps_the_old_pin(state_url: Option<String>) {
    let emu = Emulator::start();
    let p = Project::with_state(&emu, &pin(CID_A, "a", &["arkive/cl1-eu"]), state_url);
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    p.write_manifest(&emu, &pin(CID_A, "a", &["aioz"]));
    emu.faults(json!({"fail_next": [{"status": 400}]}));
    let run = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "kept: arkive/cl1-eu {CID_A}: its new pin on aioz did not land; the old pin stays"
        )),
        "{run:?}"
    );
    assert!(deletes(&emu).is_empty(), "the old pin was not unpinned");
    assert_eq!(held(&emu), [format!("pinarkive {CID_A}")]);
    let recorded = p.listed_pins();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(
        recorded[0]["cluster"], "cl1-eu",
        "the old pin is still recorded"
    );
    // The next apply finishes the move.
    let run = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(held(&emu), [format!("aioz {CID_A}")]);
    let recorded = p.listed_pins();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["provider"], "aioz", "{recorded:?}");
}

#[test]
fn an_unpin_the_provider_answers_404_counts_as_done() {
    let emu = Emulator::start();
    let p = Project::new(
        &emu,
        &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &["arkive"])),
    );
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    p.write_manifest(&emu, &pin(CID_A, "a", &[]));
    // Someone removed it by hand meanwhile.
    ureq::delete(&format!("{}/api/v3/files/remove/{CID_B}", emu.url))
        .set("X-API-Key", ARKIVE_KEY)
        .call()
        .unwrap();
    let run = p.run(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("unpinned arkive {CID_B} (was gone already)")),
        "{run:?}"
    );
    assert_eq!(recorded(&p), 1);
    let last = deletes(&emu).pop().unwrap();
    assert_eq!(last["status"], 404);
}
