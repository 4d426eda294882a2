//! Behaviour on a terminal, through a pseudo-terminal made by `script(1)`:
//! colour (never with NO_COLOR) and the `yes` confirmation.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

/// Runs `pinsync ARGS` on a pseudo-terminal, typing `input` once it asks.
fn on_terminal(p: &Project, args: &str, input: &str, no_color: bool) -> Run {
    use std::io::{Read as _, Write as _};
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
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let stdout = stdout.clone();
        let mut pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                stdout.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        })
    };
    if !input.is_empty() {
        wait_until(Duration::from_secs(30), "the prompt", || {
            String::from_utf8_lossy(&stdout.lock().unwrap()).contains("Enter a value:")
        });
        let _ = stdin.write_all(input.as_bytes());
    }
    drop(stdin);
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let stdout = String::from_utf8_lossy(&stdout.lock().unwrap()).into_owned();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
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
