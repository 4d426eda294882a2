//! `notify:`: webhooks told of the events a person must act on, against a
//! local receiver: each event once, the versioned JSON body or Slack's,
//! `${VAR}`s filled from the environment and never shown, a failing
//! webhook tried again and reported, and a slow one not holding up the
//! work.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const TOKEN: &str = "hookTOKEN-5a4b3c2d-SECRET";
const KEY: &str = "hookKEY-9f8e7d6c-SECRET";

/// The manifest's `notify:` block for `receiver`.
fn notify_block(receiver: &Recorder, extra: &str) -> String {
    format!(
        "notify:\n  - url: {}/hook?token=${{HOOK_TOKEN}}\n    headers: {{X-Hook-Key: \"${{HOOK_KEY}}\"}}\n{extra}",
        receiver.origin
    )
}

fn project(emu: &Emulator, receiver: &Recorder, extra: &str, pins: &str) -> Project {
    let p = Project::new(emu, pins);
    write(&p, emu, receiver, extra, pins);
    p
}

fn write(p: &Project, emu: &Emulator, receiver: &Recorder, extra: &str, pins: &str) {
    p.write_manifest(emu, pins);
    let text = std::fs::read_to_string(p.manifest()).unwrap();
    let text = text.replacen(
        "defaults:",
        &format!("{}defaults:", notify_block(receiver, extra)),
        1,
    );
    std::fs::write(p.manifest(), text).unwrap();
}

fn command(p: &Project, args: &[&str]) -> std::process::Command {
    let mut cmd = p.command(args);
    cmd.env("HOOK_TOKEN", TOKEN).env("HOOK_KEY", KEY);
    cmd
}

/// Each request the receiver got: its request line, its headers (lower
/// case) and its body.
fn calls(receiver: &Recorder) -> Vec<(String, String, Value)> {
    receiver
        .received()
        .into_iter()
        .map(|raw| {
            let (head, body) = raw.split_once("\r\n\r\n").unwrap();
            let line = head.lines().next().unwrap().to_owned();
            (
                line,
                head.to_ascii_lowercase(),
                serde_json::from_str(body).unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn assert_no_secret_in(text: &str) {
    assert!(!text.contains(TOKEN) && !text.contains(KEY), "{text}");
}

#[test]
fn apply_tells_of_a_refused_guard_once_with_the_keys_only_where_they_go() {
    let receiver = Recorder::start_on("127.0.0.1");
    let emu = Emulator::start();
    let p = project(&emu, &receiver, "", &many_pins(12, &[]));
    let applied = command(&p, &["apply", "--auto-approve"]).run();
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(receiver.received().is_empty(), "nothing to tell");

    write(&p, &emu, &receiver, "", &pin(CID_A, "a", &[]));
    let refused = command(&p, &["apply", "--auto-approve", "--prune"]).run();
    assert_eq!(refused.code, 3, "{refused:?}");
    let got = calls(&receiver);
    assert_eq!(got.len(), 1, "{got:?}");
    let (line, head, body) = &got[0];
    assert_eq!(*line, format!("POST /hook?token={TOKEN} HTTP/1.1"));
    assert!(head.contains(&format!("x-hook-key: {}", KEY.to_ascii_lowercase())));
    assert_eq!(body["version"], 1);
    assert_eq!(body["event"], "blocked");
    assert!(
        body["summary"].as_str().unwrap().contains("safety guard"),
        "{body}"
    );
    assert_no_secret_in(&body.to_string());
    assert_no_secret_in(&format!("{}{}", refused.stdout, refused.stderr));
}

#[test]
fn watch_tells_of_a_failure_once_and_of_the_recovery_and_a_slow_webhook_holds_nothing_up() {
    let receiver = Recorder::start_on("127.0.0.1");
    // The webhook does not answer until released.
    receiver.hold();
    let emu = Emulator::start_with(&["--error-rate", "1", "--error-status", "500"]);
    let p = project(&emu, &receiver, "    format: slack\n", &many_pins(3, &[]));
    let mut cmd = command(&p, &["watch", "--interval", "1h", "--retry-attempts", "1"]);
    cmd.env("NO_COLOR", "1");
    let watch = Background::spawn(cmd);
    watch.wait_for_line("finished with failures");
    wait_until(Duration::from_secs(30), "the failure told", || {
        receiver.received().len() == 1
    });

    // The service is back: a save reconciles, though the webhook still
    // holds the first call unanswered.
    emu.faults(json!({}));
    write(
        &p,
        &emu,
        &receiver,
        "    format: slack\n",
        &many_pins(3, &[]),
    );
    watch.wait_for_line("apply: complete");
    wait_until(Duration::from_secs(30), "the recovery told", || {
        receiver.received().len() == 2
    });
    receiver.release();
    let got = calls(&receiver);
    let texts: Vec<&str> = got
        .iter()
        .map(|(_, _, b)| b["text"].as_str().unwrap())
        .collect();
    assert!(
        texts[0].contains("the apply left 3 pins failed"),
        "{texts:?}"
    );
    assert!(
        texts[1].contains("succeeded after one that did not"),
        "{texts:?}"
    );
    assert!(
        got.iter()
            .all(|(_, _, b)| b.as_object().unwrap().len() == 1),
        "Slack's {{text}} only"
    );
    let (code, output) = watch.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{output}");
    assert_no_secret_in(&output);
    assert_eq!(calls(&receiver).len(), 2, "each event once");
}

#[test]
fn a_failing_webhook_is_tried_again_and_reported_without_its_token() {
    let receiver = Recorder::start_on("127.0.0.1");
    receiver.answer(500);
    let emu = Emulator::start();
    let p = project(
        &emu,
        &receiver,
        "    events: [blocked]\n",
        &many_pins(12, &[]),
    );
    assert_eq!(command(&p, &["apply", "--auto-approve"]).run().code, 0);
    write(&p, &emu, &receiver, "    events: [blocked]\n", "  []\n");
    let refused = command(&p, &["apply", "--auto-approve", "--prune"]).run();
    assert_eq!(refused.code, 3, "{refused:?}");
    assert_eq!(receiver.received().len(), 3, "three tries");
    assert!(
        refused
            .stderr
            .contains("was not told of blocked: HTTP 500 after 3 tries"),
        "{refused:?}"
    );
    assert!(
        refused.stderr.contains("${HOOK_TOKEN}"),
        "the URL as written: {refused:?}"
    );
    assert_no_secret_in(&format!("{}{}", refused.stdout, refused.stderr));
}

#[test]
fn a_webhook_variable_that_is_not_set_stops_the_apply_before_any_call() {
    let receiver = Recorder::start_on("127.0.0.1");
    let emu = Emulator::start();
    let p = project(&emu, &receiver, "", &many_pins(2, &[]));
    let run = p
        .command(&["apply", "--auto-approve"])
        .env("HOOK_KEY", KEY)
        .run();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("HOOK_TOKEN"), "{run:?}");
    assert!(emu.pins().is_empty());
}

#[test]
fn apply_after_a_refresh_tells_of_the_drift_it_found() {
    let receiver = Recorder::start_on("127.0.0.1");
    let emu = Emulator::start();
    let p = project(&emu, &receiver, "    events: [drift]\n", &many_pins(3, &[]));
    assert_eq!(command(&p, &["apply", "--auto-approve"]).run().code, 0);
    emu.change_pin(json!({"provider": "aioz", "cid": many_cids(3)[0], "lost": true}));
    let applied = command(&p, &["apply", "--auto-approve", "--refresh"]).run();
    assert_eq!(applied.code, 0, "{applied:?}");
    let got = calls(&receiver);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2["event"], "drift");
    assert_eq!(got[0].2["details"]["repin"], 1);
}

#[test]
fn watch_tells_of_its_lost_lease_as_it_stops() {
    let receiver = Recorder::start_on("127.0.0.1");
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = project(
        &emu,
        &receiver,
        "    events: [lease_lost]\n",
        &many_pins(2, &[]),
    );
    let url = format!("{}&lease=6s", pg.url("prod"));
    let on_pg = |args: &[&str]| {
        let mut cmd = command(&p, args);
        cmd.args(["--state", &url]).env("PGPASSWORD", PG_PASSWORD);
        cmd
    };
    assert_eq!(on_pg(&["state", "migrate"]).run().code, 0);
    let watch = Background::spawn(on_pg(&["watch", "--interval", "1h"]));
    watch.wait_for_line("apply: complete");
    let broke = on_pg(&["state", "lock", "break", "--if-older-than", "0s"]).run();
    assert_eq!(broke.code, 0, "{broke:?}");
    wait_until(Duration::from_secs(60), "the watch to stop", || {
        watch.lines().iter().any(|l| l.contains("lease was lost"))
    });
    wait_until(Duration::from_secs(30), "the lost lease told", || {
        !receiver.received().is_empty()
    });
    let got = calls(&receiver);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2["event"], "lease_lost");
}
