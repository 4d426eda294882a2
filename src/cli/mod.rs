//! The command line: the clap definitions (`args`), one file per command
//! (`commands`: parse, call the use case in `ops`, render, exit code), and
//! the rendering and progress they share. No pinning logic lives here.

mod args;
mod commands;
mod progress;
pub mod render;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{CommandFactory as _, Parser};

use crate::manifest::{self, Diagnostics};
use args::{Cli, Command, LockCommand, StateCommand};
use render::Palette;

/// Runs the command line and maps the outcome to an exit code, as Terraform
/// does: 0 ok, 1 error (usage errors too), 2 changes (with
/// `--detailed-exitcode`).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            match e.downcast_ref::<Diagnostics>() {
                Some(diags) => {
                    let _ = writeln!(err, "{diags}");
                    let n = diags.0.len();
                    let _ = writeln!(err, "{n} problem{} found.", if n == 1 { "" } else { "s" });
                }
                None => {
                    let _ = writeln!(
                        err,
                        "{} {e:#}",
                        Palette::for_stream(std::io::stderr().is_terminal()).red("error:")
                    );
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// clap's own exit code for a usage error is 2, which CI reads as "changes
/// present" under `--detailed-exitcode`: a mistyped flag would pass a
/// `plan --detailed-exitcode || [ $? -eq 2 ]` check. Help and version are
/// not errors.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init(args) => commands::init::init_command(&args),
        Command::Validate(args) => commands::validate::validate(&args),
        Command::Plan(args) => commands::plan::plan_command(&args),
        Command::Apply(args) => commands::apply::apply_command(&args),
        Command::Watch(args) => commands::watch::watch_command(&args),
        Command::State(StateCommand::List(args)) => commands::state::state_list(&args),
        Command::State(StateCommand::Restore(args)) => commands::state::state_restore(&args),
        Command::State(StateCommand::Lock(LockCommand::Status(args))) => {
            commands::state::lock_status(&args)
        }
        Command::State(StateCommand::Lock(LockCommand::Break(args))) => {
            commands::state::lock_break(&args)
        }
        Command::State(StateCommand::Migrate(args)) => commands::state::state_migrate(&args),
        Command::State(StateCommand::Push(args) | StateCommand::Pull(args)) => {
            commands::state::state_copy(&args)
        }
        Command::Refresh(args) => commands::refresh::refresh_command(&args),
        Command::Import(args) => commands::import::import_command(&args),
        Command::Completions(args) => {
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "pinsync", &mut script);
            print(&String::from_utf8_lossy(&script))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(args) => {
            print(&man_page(&args.command)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            let text = serde_json::to_string_pretty(&manifest::schema())?;
            print(&format!("{text}\n"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The man page of pinsync, or of the command `path` names (`["state",
/// "restore"]`), titled `pinsync-state-restore` as the pages that list it
/// refer to it.
fn man_page(path: &[String]) -> anyhow::Result<String> {
    // Built, so that each command is named by its whole path; without the
    // help command, which has no page of its own.
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let mut words = vec!["pinsync"];
    for word in path {
        let sub = command.find_subcommand(word).cloned();
        command = sub.with_context(|| {
            format!(
                "`{} {word}` is not a command; `{} --help` lists them",
                words.join(" "),
                words.join(" ")
            )
        })?;
        words.push(word);
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .source(format!("pinsync {}", env!("CARGO_PKG_VERSION")))
        .render(&mut page)
        .context("render the man page")?;
    Ok(String::from_utf8_lossy(&page).into_owned())
}

fn stdout_palette() -> Palette {
    Palette::for_stream(std::io::stdout().is_terminal())
}

/// Set once standard output is found closed (`pinsync plan | head -1`).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes to standard output. A reader that went away is not an error of
/// the command: the rest of its output is dropped and it ends with the exit
/// code it would have had, so `plan --detailed-exitcode | head -1` still
/// says 2 when there are changes.
fn print(text: &str) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => Ok(other.context("write to standard output")?),
    }
}

/// Skips the destructors of values the process is about to drop on exit:
/// freeing 100,000 pins one by one costs a tenth of a plan, and the OS
/// reclaims the memory at once.
fn exit_without_freeing<T>(value: T) {
    std::mem::forget(value);
}

/// The runtime that drives provider calls: one thread. The calls wait on
/// the network, and one thread makes tens of thousands a second, more than
/// any provider accepts; a thread pool measured slower (about 15% at 100k
/// calls against the local emulator), its cost going on waking threads
/// across cores for every answer.
fn calls_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start async runtime")
}

/// Asks for `yes` on a terminal; refuses without one.
fn confirm() -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "refusing to apply without confirmation: standard input is not a terminal. \
             Review the plan above, then run again with --auto-approve (or apply a saved plan)"
        );
    }
    print("\nDo you want to make these changes? Only 'yes' will be accepted.\n  Enter a value: ")?;
    let mut answer = String::new();
    stdin.read_line(&mut answer).context("read confirmation")?;
    Ok(answer.trim() == "yes")
}
