//! Exit codes CI can trust: usage errors are 1 (never 2, which
//! `--detailed-exitcode` means "changes"), help and version are 0, and a
//! closed pipe does not change the code a command ends with.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use crate::support::*;

#[test]
fn a_mistyped_flag_exits_1_on_every_command() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    for command in [
        &["validate"][..],
        &["plan"],
        &["plan", "--detailed-exitcode"],
        &["apply"],
        &["watch"],
        &["state", "list"],
        &["state", "restore"],
        &["init"],
        &["schema"],
        &["completions", "bash"],
        &["man"],
    ] {
        let mut args = command.to_vec();
        args.push("--no-such-flag");
        let run = p.run(&args);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(
            run.stderr.contains("--no-such-flag"),
            "the error names the flag: {args:?}: {run:?}"
        );
    }
    for bad in [
        &["plan", "--detailed-exitcod"][..],
        &["no-such-command"],
        &[],
        &["state"],
        &["apply", "--concurrency", "0"],
        &["watch", "--interval", "soon"],
        // Durations that used to panic: a zero period, and an overflow of
        // the clock they are added to.
        &["watch", "--interval", "0s"],
        &["watch", "--interval", "500000000000y"],
        &["apply", "--auto-approve", "--timeout", "0s"],
        &["apply", "--auto-approve", "--timeout", "500000000000y"],
    ] {
        let run = p.run(bad);
        assert_eq!(run.code, 1, "{bad:?}: {run:?}");
        assert!(!run.stderr.contains("panicked"), "{bad:?}: {run:?}");
    }
    assert!(emu.requests().is_empty());
    assert!(!p.state_path().exists());
}

#[test]
fn help_and_version_exit_0() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    for args in [
        &["--help"][..],
        &["--version"],
        &["plan", "--help"],
        &["state", "restore", "-h"],
        &["help", "apply"],
    ] {
        let run = p.run(args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(!run.stdout.is_empty(), "{args:?}: {run:?}");
    }
}

/// `pinsync plan --detailed-exitcode | head -1` must still exit 2: the plan
/// is longer than a pipe's buffer, so its writes hit the closed pipe.
#[test]
fn a_closed_pipe_keeps_the_exit_code() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(2_000, &["aioz"]));
    for (args, code) in [
        (&["plan", "--detailed-exitcode"][..], 2),
        (&["plan"], 0),
        (&["plan", "--json", "--detailed-exitcode"], 2),
    ] {
        let mut child = p
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The reader is dropped here: the pipe is closed.
        assert!(!first.is_empty());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.is_empty(),
            "{args:?}: no error for a closed pipe: {stderr}"
        );
    }
}
