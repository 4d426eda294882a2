//! Failures that must not be silent: a write that fails stops the calls, a
//! refused key costs one call and not one per pin, and an interrupt says
//! what it left undone.

use std::os::unix::process::CommandExt as _;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

/// Files the command writes may not grow past `bytes`; SIGXFSZ is ignored,
/// so a write past it fails with EFBIG, as on a full disk, rather than
/// killing the process.
fn limit_file_size(cmd: &mut std::process::Command, bytes: u64) {
    // SAFETY: setrlimit and signal are async-signal-safe, and nothing else
    // runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

fn calls_to(emu: &Emulator, prefix: &str) -> usize {
    emu.requests()
        .iter()
        .filter(|r| r["path"].as_str().unwrap_or("").starts_with(prefix))
        .count()
}

/// The journal hits a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored,
/// so the write fails with EFBIG as it would on a full disk): apply makes
/// no further call, names the file, exits 1, and what it had recorded is
/// there for the next run.
#[test]
fn a_journal_that_cannot_be_written_stops_the_calls() {
    const PINS: usize = 50;
    let emu = Emulator::start_with(&["--delay-ms", "50"]);
    let p = Project::new(&emu, &many_pins(PINS, &["aioz"]));
    let mut cmd = p.command(&["apply", "--auto-approve", "--concurrency", "1"]);
    limit_file_size(&mut cmd, 2000);
    let run = cmd.run();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("pins.state.json.journal")
            && run.stderr.contains("File too large")
            && run
                .stderr
                .contains("the apply stopped there and made no further call"),
        "{run:?}"
    );
    let calls = emu.pin_calls() as usize;
    let recorded = p.listed_pins().len();
    assert!(recorded >= 1, "the first batches fit: {run:?}");
    // One call in flight at a time: only the failed batch (one or two
    // answers, as fsyncs allow) and the call in flight may be unrecorded.
    assert!(
        calls <= recorded + 3,
        "{calls} calls for {recorded} recorded: only the failed batch and a call in flight may be unrecorded"
    );
    assert!(calls < PINS, "stopped long before the end");

    // Without the limit, the next apply does the rest; the unrecorded
    // ones come back as "already pinned".
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(p.listed_pins().len(), PINS);
    assert_eq!(emu.pins().len(), PINS);
    assert_eq!(emu.pin_calls() as usize, calls + PINS - recorded);
}

/// Wrong keys on both providers: each provider gets the calls already in
/// flight (two), not one per pin, and the report says which variables to
/// check, once per provider.
#[test]
fn a_refused_key_costs_one_call_per_slot_not_one_per_pin() {
    const PINS: usize = 50;
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(PINS, &["aioz", "arkive/cl0-global"]));
    let mut cmd = p.command(&["apply", "--auto-approve", "--concurrency", "2"]);
    cmd.env("AIOZ_PINNING_API_KEY", "wrong-aioz-key-SECRET")
        .env("PINARKIVE_API_KEY", "wrong-arkive-key-SECRET");
    let run = cmd.run();
    assert_eq!(run.code, 1, "{run:?}");
    let aioz = calls_to(&emu, "/api/pinning/");
    let arkive = calls_to(&emu, "/api/v3/");
    assert!(
        (1..=2).contains(&aioz) && (1..=2).contains(&arkive),
        "{aioz} and {arkive} calls: {run:?}"
    );
    for (provider, vars, calls) in [
        (
            "aioz",
            "AIOZ_PINNING_API_KEY and AIOZ_PINNING_SECRET_KEY",
            aioz,
        ),
        ("arkive", "PINARKIVE_API_KEY", arkive),
    ] {
        let line = format!(
            "not attempted: {} pins on `{provider}`: it refused the credentials (HTTP 401",
            PINS - calls
        );
        let found: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.starts_with(&line))
            .collect();
        assert_eq!(found.len(), 1, "{line}\n{run:?}");
        assert!(
            found[0].ends_with(&format!("; check {vars}")),
            "{}",
            found[0]
        );
        assert!(
            run.stdout.contains(&format!(
                "stopped: provider `{provider}`: it refused the credentials"
            )),
            "{run:?}"
        );
    }
    assert!(
        run.stdout
            .contains(&format!("{} not attempted.", 2 * PINS - aioz - arkive)),
        "{run:?}"
    );
    for key in ["wrong-aioz-key-SECRET", "wrong-arkive-key-SECRET"] {
        assert!(!format!("{run:?}").contains(key));
    }
    assert!(p.listed_pins().is_empty());
}

/// Ctrl-C while a pin waits out a 30 s Retry-After: it is reported as not
/// started (it was interrupted, the provider did not fail it), at once, and
/// the exit code is 1.
#[test]
fn ctrl_c_during_a_backoff_interrupts_the_pin_rather_than_failing_it() {
    let emu = Emulator::start();
    emu.faults(json!({"fail_next": [{"status": 429, "retry_after": 30}]}));
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let apply = Background::spawn(p.command(&["apply", "--auto-approve"]));
    apply.wait_for_line("retrying aioz");
    let started = Instant::now();
    let (code, out) = apply.stop(libc::SIGINT);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "did not wait out the backoff"
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Apply interrupted: 0 pinned"), "{out}");
    assert!(
        out.contains("0 failed") && out.contains("1 not started"),
        "{out}"
    );
    assert!(!out.lines().any(|l| l.starts_with("failed")), "{out}");
    assert_eq!(emu.pin_calls(), 1);
    assert!(p.listed_pins().is_empty());
}

/// A second Ctrl-C does not wait for the calls in flight (here 20 s each):
/// it exits at once, 1, and the state still loads.
#[test]
fn a_second_ctrl_c_exits_at_once() {
    let emu = Emulator::start_with(&["--delay-ms", "20000"]);
    let p = Project::new(&emu, &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    let apply = Background::spawn(p.command(&["apply", "--auto-approve"]));
    wait_until(Duration::from_secs(30), "the calls in flight", || {
        emu.requests().len() == 2
    });
    signal(&apply.child, libc::SIGINT);
    apply.wait_for_line("Interrupted: no new calls will start");
    let started = Instant::now();
    let (code, out) = apply.stop(libc::SIGINT);
    assert!(started.elapsed() < Duration::from_secs(10), "{out}");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Interrupted again: exiting now"), "{out}");
    assert!(p.listed_pins().is_empty());
    assert!(
        emu.pins().is_empty(),
        "the calls were still in the emulator's delay"
    );
}

/// Every call landed and was journaled, and the journal has grown past
/// the share of the state that makes the apply compact it, but the state
/// file cannot be rewritten (it is larger than the file-size limit, the
/// journal is not): exit 1 naming the file, the old state file untouched,
/// and every pin still there through the journal.
#[test]
fn a_state_file_that_cannot_be_rewritten_keeps_every_pin_in_the_journal() {
    let emu = Emulator::start();
    let cids = many_cids(50);
    let first: String = cids[..40]
        .iter()
        .enumerate()
        .map(|(i, c)| pin(c, &format!("p{i}"), &["aioz"]))
        .collect();
    let p = Project::new(&emu, &first);
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    let before = std::fs::read(p.state_path()).unwrap();
    assert!(before.len() > 6000, "the state outgrows the limit below");
    let all: String = cids
        .iter()
        .enumerate()
        .map(|(i, c)| pin(c, &format!("p{i}"), &["aioz"]))
        .collect();
    p.write_manifest(&emu, &all);
    let mut cmd = p.command(&["apply", "--auto-approve"]);
    limit_file_size(&mut cmd, 6000);
    let run = cmd.run();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("pins.state.json")
            && run.stderr.contains("File too large")
            && run
                .stderr
                .contains("every confirmed pin is kept in the journal"),
        "{run:?}"
    );
    assert_eq!(
        std::fs::read(p.state_path()).unwrap(),
        before,
        "the state file is untouched"
    );
    assert_eq!(
        p.listed_pins().len(),
        50,
        "the journal holds the ten new pins"
    );
    assert_eq!(emu.pin_calls(), 50);
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("No changes"), "{run:?}");
    assert_eq!(emu.pin_calls(), 50, "nothing pinned twice");
}
