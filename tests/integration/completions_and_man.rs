//! `pinsync completions SHELL` and `pinsync man [COMMAND]`, both made from
//! the clap definitions.
//!
//! - Completions for bash, zsh and fish name the commands and the values
//!   `--provider` takes; bash's parses (`bash -n`).
//! - The man page names the commands, and every page a page refers to
//!   (`pinsync-state-restore(1)`) is one `pinsync man` prints.
//! - An unknown shell or command is exit 1, naming it.

use std::collections::BTreeSet;
use std::process::Command;

use crate::support::{Run, RunExt as _, pinsync_bin};

fn pinsync(args: &[&str]) -> Run {
    Command::new(pinsync_bin()).args(args).env_clear().run()
}

/// Commands the completions and the man page must name.
const COMMANDS: [&str; 7] = [
    "apply",
    "plan",
    "watch",
    "init",
    "schema",
    "completions",
    "man",
];

#[test]
fn completions_for_bash_zsh_and_fish_name_the_commands_and_provider_types() {
    for (shell, marker) in [
        ("bash", "complete -F _pinsync"),
        ("zsh", "#compdef pinsync"),
        ("fish", "complete -c pinsync"),
    ] {
        let run = pinsync(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {run:?}");
        assert!(run.stdout.contains(marker), "{shell}: no {marker:?}");
        for word in COMMANDS
            .iter()
            .chain(&["aioz", "pinarkive", "pinning-service"])
        {
            assert!(run.stdout.contains(word), "{shell}: no {word:?}");
        }
    }
}

#[test]
fn the_bash_completions_parse() {
    let run = pinsync(&["completions", "bash"]);
    assert_eq!(run.code, 0, "{run:?}");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pinsync.bash");
    std::fs::write(&script, &run.stdout).unwrap();
    let check = Command::new("bash").arg("-n").arg(&script).run();
    assert_eq!(check.code, 0, "{check:?}");
}

/// The pages a man page refers to: `pinsync\-state\-list(1)` is
/// `["state", "list"]`.
fn referenced_pages(page: &str) -> BTreeSet<Vec<String>> {
    page.lines()
        .filter_map(|l| l.strip_prefix("pinsync\\-")?.strip_suffix("(1)"))
        .map(|name| name.split("\\-").map(str::to_owned).collect())
        .collect()
}

#[test]
fn the_man_page_names_the_commands_and_each_page_it_refers_to_exists() {
    let run = pinsync(&["man"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(".TH pinsync 1"), "{}", run.stdout);
    for word in COMMANDS {
        assert!(
            run.stdout.contains(&format!("pinsync\\-{word}(1)")),
            "no {word}"
        );
    }
    // Every page referred to, and those they refer to, is printed with its
    // own title and its command's flags.
    let mut pending: Vec<Vec<String>> = referenced_pages(&run.stdout).into_iter().collect();
    let mut printed = 0;
    while let Some(path) = pending.pop() {
        let mut args = vec!["man"];
        args.extend(path.iter().map(String::as_str));
        let run = pinsync(&args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        let title = format!(".TH pinsync-{} 1", path.join("-"));
        assert!(run.stdout.contains(&title), "{args:?}: no {title:?}");
        pending.extend(referenced_pages(&run.stdout));
        printed += 1;
    }
    assert!(printed >= COMMANDS.len() + 2, "only {printed} pages");
    let apply = pinsync(&["man", "apply"]);
    assert!(apply.stdout.contains("auto\\-approve"), "{}", apply.stdout);
}

#[test]
fn an_unknown_shell_or_command_is_exit_1_naming_it() {
    let run = pinsync(&["completions", "tcsh"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("tcsh"), "{run:?}");
    let run = pinsync(&["man", "state", "nope"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("`pinsync state nope` is not a command"),
        "{run:?}"
    );
    assert_eq!(run.stdout, "");
}
