//! Behaviour on a terminal, through a pseudo-terminal made by `script(1)`:
//! colour (never with NO_COLOR) and the `yes` confirmation.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// Runs `pinsync ARGS` on a pseudo-terminal, typing `input` after a moment.
fn on_terminal(p: &Project, args: &str, input: &str, no_color: bool) -> Run {
    let inner = format!("{} {args}", pinsync_bin().display());
    let cmd = p.command(&[]);
    let mut script = Command::new("script");
    script
        .args(["-qec", &inner, "/dev/null"])
        .current_dir(p.dir.path())
        .env_clear()
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let mut child = script.spawn().expect("script(1) from util-linux");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        std::thread::sleep(Duration::from_millis(500));
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn colour_on_a_terminal_and_never_with_no_color() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let run = on_terminal(&p, "plan", "", false);
    assert!(
        run.stdout.contains("\u{1b}[32m+\u{1b}[0m"),
        "green + on a terminal: {run:?}"
    );
    let run = on_terminal(&p, "plan", "", true);
    assert!(run.stdout.contains("Plan: 1 to pin"), "{run:?}");
    assert!(!run.stdout.contains('\u{1b}'), "NO_COLOR: {run:?}");
}

#[test]
fn on_a_terminal_apply_asks_and_only_yes_applies() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let run = on_terminal(&p, "apply", "y\n", true);
    assert!(
        run.stdout.contains("Only 'yes' will be accepted"),
        "{run:?}"
    );
    assert!(run.stdout.contains("Apply cancelled."), "{run:?}");
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(emu.pin_calls(), 0);

    let run = on_terminal(&p, "apply", "yes\n", true);
    assert!(run.stdout.contains("Apply complete: 1 pinned"), "{run:?}");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(emu.pin_calls(), 1);
}
