//! `apply --wait`: poll new pins until pinned, failed or timed out.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[test]
fn wait_polls_until_the_new_pins_are_pinned() {
    let emu = Emulator::start_with(&["--aioz-pinning-ms", "3000"]);
    let p = Project::new(
        &emu,
        &(pin(CID_A, "a", &[]) + &pin(CID_C, "c", &["arkive"])),
    );
    let run = p.run(&["apply", "--auto-approve", "--wait"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("waiting: 1 pinned, 1 not yet"),
        "AIOZ was still retrieving: {run:?}"
    );
    assert!(
        run.stdout
            .contains("Waited: 2 pinned, 0 failed, 0 timed out"),
        "{run:?}"
    );
    let statuses: Vec<String> = p.state()["pins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["provider_status"].as_str().unwrap_or("-").to_owned())
        .collect();
    assert_eq!(
        statuses,
        ["pinned", "pinned"],
        "the last status seen is recorded"
    );
    let gets: Vec<String> = emu
        .requests()
        .iter()
        .filter(|r| r["method"] == "GET")
        .map(|r| r["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        gets.iter()
            .any(|g| g.starts_with("/api/pinning/") && !g.contains("pins")),
        "AIOZ by pin id: {gets:?}"
    );
    assert!(
        gets.iter()
            .any(|g| g.starts_with(&format!("/api/v3/status/{CID_C}"))),
        "{gets:?}"
    );
}

#[test]
fn wait_names_a_pin_that_failed_and_exits_1() {
    let emu = Emulator::start_with(&["--aioz-pinning-ms", "30000"]);
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let mut apply = Background::spawn(p.command(&["apply", "--auto-approve", "--wait"]));
    apply.wait_for_line("waiting: 0 pinned, 1 not yet");
    emu.change_pin(json!({"provider": "aioz", "cid": CID_A, "status": "FAILED"}));
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = apply.child.try_wait().unwrap() {
            break s.code().unwrap_or(-1);
        }
        assert!(std::time::Instant::now() < end, "{}", apply.output());
        std::thread::sleep(Duration::from_millis(25));
    };
    let out = apply.output();
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("failed: aioz") && out.contains("the provider reports it failed"),
        "{out}"
    );
    assert!(
        out.contains("Waited: 0 pinned, 1 failed, 0 timed out"),
        "{out}"
    );
}

#[test]
fn wait_gives_up_at_its_timeout_naming_what_is_not_pinned() {
    let emu = Emulator::start_with(&["--aioz-pinning-ms", "600000"]);
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let run = p.run(&["apply", "--auto-approve", "--wait", "--wait-timeout", "2s"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("timed out: aioz") && run.stdout.contains("still pinning after 2s"),
        "{run:?}"
    );
    assert_eq!(p.state()["pins"][0]["provider_status"], "pinning");
}
