//! The command line: clap definitions, and the glue that runs each command
//! and prints its result. No pinning logic lives here.

mod progress;
pub mod render;

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, CommandFactory as _, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::apply::{self, ApplyOptions};
use crate::manifest::{self, Diagnostics, ProviderKind};
use crate::ops;
use crate::plan::{self, saved_plan};
use crate::provider::HttpSettings;
use crate::retry::RetryPolicy;
use crate::state::{StateFile, StateLocation, StateStore, StoredPin};
use crate::watch::{EventLog, LogFormat, WatchOptions};
use progress::ApplyProgress;
use render::Palette;

const ABOUT: &str = "Pins as code for IPFS pinning services.\n\n\
pinsync reads a manifest (pins.yaml) that says which CIDs must be pinned on which \
provider and cluster, compares it with its state file (what it has pinned), shows a \
plan, and makes exactly the pin calls needed.";

const EXAMPLES: &str = "Examples:
  pinsync validate                 check pins.yaml
  pinsync plan                     show what apply would do
  pinsync apply                    pin what is missing (asks for 'yes')
  pinsync apply --auto-approve     the same, in CI
  pinsync state list               what pinsync has pinned";

#[derive(Debug, Parser)]
#[command(name = "pinsync", version, about = ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a starter manifest for one provider type, and the .gitignore
    /// lines that keep the state's companion files out of git.
    ///
    /// The manifest starts with the line that points editors at the schema
    /// and passes `pinsync validate` as written. An existing file is never
    /// overwritten. The lines are appended to the .gitignore beside the
    /// manifest if there is one (those missing from it), and printed if not.
    #[command(
        after_help = "Examples:\n  pinsync init                                  # Pinata, with five more services ready\n  pinsync init --provider aioz\n  pinsync init --provider pinarkive -f archive/pins.yaml"
    )]
    Init(InitArgs),
    /// Check a manifest and report every problem as file:line:col.
    ///
    /// Needs no credentials and makes no network call.
    #[command(after_help = "Example:\n  pinsync validate -f pins.yaml")]
    Validate(ValidateArgs),
    /// Show what apply would change: + pin, ~ update, - no longer managed.
    ///
    /// Reads the manifest and the state only: no network call, no credentials,
    /// so it is safe on pull requests from forks.
    #[command(
        after_help = "Examples:\n  pinsync plan\n  pinsync plan --detailed-exitcode   # exit 2 when there are changes\n  pinsync plan --json > plan.json\n  pinsync plan --out pins.plan && pinsync apply pins.plan"
    )]
    Plan(PlanArgs),
    /// Make the pin calls the plan needs, recording each as it lands.
    ///
    /// Shows the plan and asks for 'yes' on a terminal. With a saved PLAN file
    /// it applies exactly that plan (the plan was the review), and refuses if
    /// the state changed since it was made.
    #[command(
        after_help = "Examples:\n  pinsync apply\n  pinsync apply --auto-approve --concurrency 16\n  pinsync apply pins.plan"
    )]
    Apply(ApplyArgs),
    /// Keep applying: at start, on every change to the manifest or a file it
    /// includes, and every --interval. Runs until SIGINT or SIGTERM.
    ///
    /// Watch holds the state lock for its whole life, so a CI `apply` on the
    /// same state fails clearly instead of racing it. An invalid manifest is
    /// reported and the last good one stays in force.
    #[command(
        after_help = "Examples:\n  pinsync watch\n  pinsync watch --interval 1m --log-format json --status-file /var/lib/pinsync/status.json"
    )]
    Watch(WatchArgs),
    /// Ask the providers what they hold of every pin the state records, and
    /// record what they say; makes no pin or unpin call.
    ///
    /// A pin the provider lost or failed is drift: the next plan shows it as
    /// `!` and apply pins it again. Lists each provider in pages (10,000
    /// AIOZ pins are 10 calls). Needs the providers' credentials.
    #[command(
        after_help = "Examples:\n  pinsync refresh\n  pinsync plan --refresh      # the same first, without writing it\n  pinsync apply --refresh"
    )]
    Refresh(RefreshArgs),
    /// Adopt pins the providers already hold: those the manifest wants are
    /// recorded with their ids, so apply makes no call for them.
    ///
    /// Makes no pin or unpin call. With --print-manifest, prints manifest
    /// entries for what the providers hold that the manifest lacks, and
    /// records nothing.
    #[command(
        after_help = "Examples:\n  pinsync import\n  pinsync import --target arkive/cl1-eu\n  pinsync import --print-manifest >> held.yaml"
    )]
    Import(ImportArgs),
    /// Inspect the state file.
    #[command(subcommand)]
    State(StateCommand),
    /// Print the manifest's JSON Schema (draft-07), for editors and checkers.
    ///
    /// Editors using yaml-language-server (VS Code's YAML extension, Neovim,
    /// Helix, Zed, ...) read it from a manifest's first line,
    /// `# yaml-language-server: $schema=URL`, which `pinsync init` writes;
    /// `$schema=` may also name a saved copy. The schema checks structure;
    /// `pinsync validate` checks everything.
    #[command(
        after_help = "Examples:\n  pinsync schema > pins.schema.json\n  # then, as the first line of pins.yaml:\n  # yaml-language-server: $schema=./pins.schema.json"
    )]
    Schema,
    /// Print shell completions for pinsync: bash, zsh, fish, elvish or
    /// powershell.
    #[command(
        after_help = "Examples:\n  pinsync completions bash > ~/.local/share/bash-completion/completions/pinsync\n  pinsync completions zsh > \"${fpath[1]}/_pinsync\"\n  pinsync completions fish > ~/.config/fish/completions/pinsync.fish"
    )]
    Completions(CompletionsArgs),
    /// Print a man page (roff), made from the same definitions as --help:
    /// pinsync's, or a command's.
    #[command(
        after_help = "Examples:\n  pinsync man > pinsync.1 && man ./pinsync.1\n  pinsync man apply > pinsync-apply.1\n  pinsync man state restore > pinsync-state-restore.1"
    )]
    Man(ManArgs),
}

#[derive(Debug, Args)]
struct ManArgs {
    /// The command whose page to print (`apply`, `state restore`, ...);
    /// pinsync's own page, which lists them, without one.
    #[arg(value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_name = "SHELL")]
    shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
enum StateCommand {
    /// List every recorded pin: target, CID, name, pin id and status.
    #[command(after_help = "Examples:\n  pinsync state list\n  pinsync state list --json")]
    List(StateListArgs),
    /// Replace the state with its backup (or another copy) after it was
    /// damaged. The current file and journal are moved aside, not deleted.
    #[command(
        after_help = "Examples:\n  pinsync state restore                       # from pins.state.json.backup\n  pinsync state restore --from old.state.json"
    )]
    Restore(StateRestoreArgs),
    /// Who holds a PostgreSQL state's lease, or break a stuck one.
    #[command(subcommand)]
    Lock(LockCommand),
    /// Create or upgrade a PostgreSQL state's tables (also done on first use).
    Migrate(StateOnlyArgs),
    /// Copy a state (a file by default) to another store, e.g. PostgreSQL.
    #[command(
        after_help = "Example:\n  pinsync state push --to 'postgres://ci@db.example/pins?workspace=prod'"
    )]
    Push(StateCopyArgs),
    /// Copy a state from another store (e.g. PostgreSQL) into this one.
    #[command(
        after_help = "Example:\n  pinsync state pull --from 'postgres://ci@db.example/pins?workspace=prod'"
    )]
    Pull(StateCopyArgs),
}

#[derive(Debug, Subcommand)]
enum LockCommand {
    /// Show the lease's holder, when it was taken and when it expires.
    Status(StateOnlyArgs),
    /// Remove a lease taken longer ago than --if-older-than (its holder, if
    /// alive, stops at its next renewal).
    Break(LockBreakArgs),
}

#[derive(Debug, Args)]
struct StateOnlyArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    #[command(flatten)]
    state: StateArg,
}

#[derive(Debug, Args)]
struct LockBreakArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    #[command(flatten)]
    state: StateArg,
    /// Only a lease taken longer ago than this is broken (e.g. 10m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    if_older_than: Duration,
}

#[derive(Debug, Args)]
struct StateCopyArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    #[command(flatten)]
    state: StateArg,
    /// The other store (push): a file or a postgres:// URL.
    #[arg(
        long,
        value_name = "FILE|URL",
        required_unless_present = "from",
        conflicts_with = "from"
    )]
    to: Option<String>,
    /// The other store (pull).
    #[arg(long, value_name = "FILE|URL")]
    from: Option<String>,
    /// Wait this long for the locks.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,
}

#[derive(Debug, Args)]
struct StateRestoreArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    #[command(flatten)]
    state: StateArg,
    /// The copy to restore [default: the state file's .backup]
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// Wait this long for another pinsync holding the state lock.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,
}

#[derive(Debug, Args)]
struct ManifestArg {
    /// The manifest.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "MANIFEST",
        default_value = "pins.yaml"
    )]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct StateArg {
    /// The state: a file, or a PostgreSQL workspace
    /// (postgres://USER@HOST/DB?workspace=NAME) [default: the manifest's name
    /// with .state.json, beside it]
    #[arg(
        long,
        value_name = "FILE|URL",
        env = "PINSYNC_STATE",
        hide_env_values = true
    )]
    state: Option<String>,
}

impl StateArg {
    /// Where the state is kept (see [`StateLocation::choose`]).
    fn location(&self, manifest: &Path) -> anyhow::Result<StateLocation> {
        StateLocation::choose(self.state.as_deref(), manifest)
    }

    fn store(&self, manifest: &Path) -> anyhow::Result<Box<dyn StateStore>> {
        self.location(manifest)?.open()
    }

    /// The state file (for the commands that only a file has).
    fn file(&self, manifest: &Path) -> StateFile {
        StateLocation::file(self.state.as_deref(), manifest)
    }
}

#[derive(Debug, Args)]
struct RefreshArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    #[command(flatten)]
    state: StateArg,
    #[command(flatten)]
    calls: CallArgs,
}

#[derive(Debug, Args)]
struct ImportArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    #[command(flatten)]
    state: StateArg,
    /// Only this target: `provider` or `provider/cluster`.
    #[arg(long, value_name = "TARGET")]
    target: Option<String>,
    /// Print YAML `pins:` entries for what the providers hold that the
    /// manifest lacks, and record nothing.
    #[arg(long)]
    print_manifest: bool,
    #[command(flatten)]
    calls: CallArgs,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// The provider type to start with: `pinning-service` (Pinata live;
    /// Filebase, 4EVERLAND, Crust, AIOZ and ipfs-cluster ready to uncomment),
    /// `aioz` or `pinarkive`.
    #[arg(long, value_name = "TYPE", default_value = "pinning-service", value_parser = provider_type())]
    provider: ProviderKind,
    /// Where to write the manifest.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "MANIFEST",
        default_value = "pins.yaml"
    )]
    file: PathBuf,
}

/// A provider type by its name in `type:`.
fn provider_type() -> impl clap::builder::TypedValueParser<Value = ProviderKind> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(ProviderKind::NAMES)
        .try_map(|name| ProviderKind::from_name(&name).ok_or("unknown provider type"))
}

#[derive(Debug, Args)]
struct ValidateArgs {
    #[command(flatten)]
    manifest: ManifestArg,
}

/// Unpinning: whether to prune, and what may pass the guards.
#[derive(Debug, Args)]
struct UnpinArgs {
    /// Unpin pins that are no longer in the manifest (also `prune: true` in
    /// the manifest); without it they stay pinned and are marked orphaned.
    #[arg(long)]
    prune: bool,
    /// Allow up to N unpins, past the safety guards (a target losing more
    /// than its `unpin_guard`, an empty manifest).
    #[arg(long, value_name = "N")]
    max_unpins: Option<usize>,
    /// Allow any number of unpins, past every safety guard.
    #[arg(long)]
    force_unpins: bool,
}

impl UnpinArgs {
    fn plan_options(&self) -> plan::PlanOptions {
        plan::PlanOptions { prune: self.prune }
    }

    fn allowance(&self) -> plan::UnpinAllowance {
        plan::UnpinAllowance {
            max_unpins: self.max_unpins,
            force: self.force_unpins,
        }
    }
}

/// How `plan` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PlanFormat {
    Text,
    Json,
    Markdown,
}

/// Exit code of a plan a safety guard refuses, as Terraform keeps 2 for
/// "changes present".
const GUARD_REFUSED: u8 = 3;

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    #[command(flatten)]
    state: StateArg,
    #[command(flatten)]
    unpin: UnpinArgs,
    /// Refresh first (see `pinsync refresh`): needs the providers'
    /// credentials. `plan` does not write what it learns; `apply` does.
    #[arg(long)]
    refresh: bool,
    /// Print the plan as JSON (a stable format, versioned by
    /// `format_version`); the same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// `text` for people, `json` for machines, `markdown` for a pull-request
    /// comment (no colour).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    format: PlanFormat,
    /// Exit 0 when there are no changes, 2 when there are, 3 when a safety
    /// guard would refuse them, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    /// Save the plan to this file, for `pinsync apply PLAN`.
    #[arg(long, value_name = "PLAN")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    #[command(flatten)]
    state: StateArg,
    /// Apply without asking for confirmation.
    #[arg(long)]
    auto_approve: bool,
    #[command(flatten)]
    unpin: UnpinArgs,
    /// Refresh first (see `pinsync refresh`): needs the providers'
    /// credentials. `plan` does not write what it learns; `apply` does.
    #[arg(long)]
    refresh: bool,
    #[command(flatten)]
    calls: CallArgs,
    /// After the calls, wait until every new pin is pinned (or failed, or
    /// --wait-timeout passes); exit 1 naming those that are not.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits at most, and how long a move waits for its new
    /// pin to be pinned before it unpins the old one.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = request_timeout)]
    wait_timeout: Duration,
    /// A plan saved by `pinsync plan --out`.
    #[arg(value_name = "PLAN")]
    plan: Option<PathBuf>,
}

/// How provider calls are made; shared by `apply` and `watch`.
#[derive(Debug, Args)]
struct CallArgs {
    /// Calls in flight at most on each provider (each has its own pool, so a
    /// slow one does not hold up the others).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Wait this long for another pinsync holding the state lock (e.g. 30s).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,
    /// Bound on one provider request.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = request_timeout)]
    timeout: Duration,
    /// Calls made per pin at most, the first included.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    retry_attempts: u32,
    /// No retry of a pin starts after this much time from its first call.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = retry_budget)]
    retry_max_time: Duration,
}

impl Default for CallArgs {
    /// The flags' defaults, for `plan --refresh`, which has no call flags.
    fn default() -> Self {
        Self {
            concurrency: 8,
            lock_timeout: Duration::ZERO,
            timeout: Duration::from_secs(30),
            retry_attempts: 5,
            retry_max_time: Duration::from_secs(120),
        }
    }
}

impl CallArgs {
    fn apply_options(&self) -> ApplyOptions {
        ApplyOptions {
            move_wait: ApplyOptions::default().move_wait,
            concurrency: usize::from(self.concurrency),
            retry: RetryPolicy {
                max_attempts: self.retry_attempts,
                max_elapsed: self.retry_max_time,
                ..RetryPolicy::default()
            },
        }
    }

    fn http(&self) -> HttpSettings {
        HttpSettings {
            timeout: self.timeout,
            pacers: crate::provider::Pacers::default(),
        }
    }
}

#[derive(Debug, Args)]
struct WatchArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    #[command(flatten)]
    state: StateArg,
    /// Reconcile this often even without a change (retries failed pins).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = watch_interval)]
    interval: Duration,
    /// Log lines as text or as one JSON object per line.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// Keep this JSON file up to date with the last apply's time, result and
    /// counts, for monitoring.
    #[arg(long, value_name = "PATH")]
    status_file: Option<PathBuf>,
    #[command(flatten)]
    calls: CallArgs,
}

/// A duration flag within bounds: zero or centuries would make no sense,
/// and overflow the clock they are added to.
fn duration_between(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d < min || d > max {
        return Err(format!(
            "must be between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

const DAY: Duration = Duration::from_secs(24 * 3600);

fn request_timeout(text: &str) -> Result<Duration, String> {
    duration_between(text, Duration::from_millis(1), DAY)
}

fn retry_budget(text: &str) -> Result<Duration, String> {
    duration_between(text, Duration::ZERO, 7 * DAY)
}

fn watch_interval(text: &str) -> Result<Duration, String> {
    duration_between(text, Duration::from_secs(1), 30 * DAY)
}

#[derive(Debug, Args)]
struct StateListArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    #[command(flatten)]
    state: StateArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

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
        Command::Init(args) => init_command(&args),
        Command::Validate(args) => validate(&args),
        Command::Plan(args) => plan_command(&args),
        Command::Apply(args) => apply_command(&args),
        Command::Watch(args) => watch_command(&args),
        Command::State(StateCommand::List(args)) => state_list(&args),
        Command::State(StateCommand::Restore(args)) => state_restore(&args),
        Command::State(StateCommand::Lock(LockCommand::Status(args))) => lock_status(&args),
        Command::State(StateCommand::Lock(LockCommand::Break(args))) => lock_break(&args),
        Command::State(StateCommand::Migrate(args)) => state_migrate(&args),
        Command::State(StateCommand::Push(args) | StateCommand::Pull(args)) => state_copy(&args),
        Command::Refresh(args) => refresh_command(&args),
        Command::Import(args) => import_command(&args),
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

fn init_command(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let done = crate::init::init(&args.file, args.provider)?;
    // The next commands name the manifest as init was told to.
    let file_flag = if args.file == Path::new("pins.yaml") {
        String::new()
    } else {
        format!(" -f {}", args.file.display())
    };
    print(&render::initialized(&done, args.provider, &file_flag))?;
    Ok(ExitCode::SUCCESS)
}

fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let m = manifest::load(&args.manifest.file)?;
    let included = match m.included.len() {
        0 => String::new(),
        1 => ", 1 included file".to_owned(),
        n => format!(", {n} included files"),
    };
    print(&format!(
        "{}: valid ({} provider{}, {} pin target{}{included})\n",
        m.path.display(),
        m.providers.len(),
        if m.providers.len() == 1 { "" } else { "s" },
        m.pins.len(),
        if m.pins.len() == 1 { "" } else { "s" }
    ))?;
    exit_without_freeing(m);
    Ok(ExitCode::SUCCESS)
}

/// Skips the destructors of values the process is about to drop on exit:
/// freeing 100,000 pins one by one costs a tenth of a plan, and the OS
/// reclaims the memory at once.
fn exit_without_freeing<T>(value: T) {
    std::mem::forget(value);
}

fn plan_command(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let ws = ops::Workspace::new(&args.manifest.file, args.state.store(&args.manifest.file)?);
    let (m, mut state) = ws.load()?;
    if args.refresh {
        // Read-only: what is learned shapes this plan and is not written.
        let calls = CallArgs::default();
        let refreshed = calls_runtime()?.block_on(ops::refresh(
            &ws,
            &m,
            &mut state,
            &calls.http(),
            calls.apply_options().retry,
            false,
        ))?;
        if let ops::Refreshed::Report(report) = refreshed {
            eprint!("{}", render::refresh(&report));
        }
    }
    let plan = plan::plan(&m, &state, args.unpin.plan_options());
    let refused = plan::guards(&plan, &state, args.unpin.allowance());
    if let Some(out) = &args.out {
        saved_plan::save(&plan, out)?;
    }
    let format = if args.json {
        PlanFormat::Json
    } else {
        args.format
    };
    if format == PlanFormat::Markdown {
        print(&render::markdown(&plan, &refused))?;
    } else if format == PlanFormat::Json {
        #[derive(serde::Serialize)]
        struct Document<'a> {
            #[serde(flatten)]
            plan: &'a plan::Plan,
            /// The safety guards this plan trips, if any.
            guards: &'a [String],
        }
        let mut text = serde_json::to_string_pretty(&Document {
            plan: &plan,
            guards: &refused,
        })?;
        text.push('\n');
        print(&text)?;
    } else {
        let palette = stdout_palette();
        print(&render::plan(&plan, palette))?;
        print(&render::guards(&refused, palette))?;
        if let Some(out) = &args.out {
            print(&format!(
                "\nSaved the plan to {}; apply it with: pinsync apply {}\n",
                out.display(),
                out.display()
            ))?;
        }
    }
    let changes = plan.summary.has_changes();
    exit_without_freeing((m, state, plan));
    Ok(
        match (args.detailed_exitcode, refused.is_empty(), changes) {
            (true, false, _) => ExitCode::from(GUARD_REFUSED),
            (true, true, true) => ExitCode::from(2),
            _ => ExitCode::SUCCESS,
        },
    )
}

fn apply_command(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    if args.plan.is_some() && args.refresh {
        bail!(
            "--refresh makes a new plan; it cannot be used with a saved PLAN (run `pinsync refresh` first)"
        );
    }
    let ws = ops::Workspace::new(&args.manifest.file, args.state.store(&args.manifest.file)?)
        .lock(args.calls.lock_timeout, "pinsync apply")?;
    let runtime = calls_runtime()?;
    let http = args.calls.http();
    let pacers = http.pacers.clone();
    let from = match &args.plan {
        Some(path) => ops::PlanFrom::Saved(path),
        None => ops::PlanFrom::Manifest {
            refresh: args.refresh,
            options: args.unpin.plan_options(),
        },
    };
    let prepared = runtime.block_on(ops::prepare(
        &ws,
        from,
        &http,
        args.calls.apply_options().retry,
        args.unpin.allowance(),
    ))?;
    if let Some(report) = &prepared.refreshed {
        print(&render::refresh(report))?;
    }
    let plan = prepared.plan;
    let palette = stdout_palette();
    print(&render::plan(&plan, palette))?;
    let (state, providers) = match prepared.next {
        ops::Next::InSync => return Ok(ExitCode::SUCCESS),
        ops::Next::Refused(refused) => {
            print(&render::guards(&refused, palette))?;
            print("Nothing was changed.\n")?;
            return Ok(ExitCode::from(GUARD_REFUSED));
        }
        ops::Next::Calls { state, providers } => (state, providers),
    };
    if args.plan.is_none() && !args.auto_approve && !confirm()? {
        print("Apply cancelled.\n")?;
        return Ok(ExitCode::FAILURE);
    }
    let options = ApplyOptions {
        move_wait: args.wait_timeout,
        ..args.calls.apply_options()
    };
    let progress = Arc::new(ApplyProgress::choose(
        std::io::stderr().is_terminal(),
        palette,
        pacers,
    ));
    let dyn_progress: Arc<dyn apply::Progress> = progress.clone();
    let applied = runtime.block_on(async {
        spawn_stop_on_signals(ws.stop().clone(), |_| {
            let _ = writeln!(
                std::io::stderr(),
                "\nInterrupted: no new calls will start; waiting for calls in flight, then saving the state."
            );
        })?;
        if let Some(lost) = ws.lease_lost() {
            tokio::spawn(async move {
                lost.cancelled().await;
                let _ = writeln!(
                    std::io::stderr(),
                    "\nThe state's lease was lost (taken over, or the database is out of reach): no new calls will start."
                );
            });
        }
        ops::apply(
            &ws,
            &plan,
            state,
            &providers,
            options,
            args.wait.then_some(args.wait_timeout),
            &dyn_progress,
            &|pinned, pending, next| {
                progress.line(format!(
                    "waiting: {pinned} pinned, {pending} not yet (next check in {}s)",
                    next.as_secs()
                ));
            },
        )
        .await
    });
    progress.finish();
    let applied = match applied {
        Ok(applied) => applied,
        Err(e) => {
            // What was done before the failed write, then the error.
            if let Some(report) = e
                .downcast_ref::<apply::ApplyError>()
                .and_then(|e| e.report())
            {
                print(&format!("\n{}", render::report(report, palette)))?;
            }
            return Err(e);
        }
    };
    print(&format!("\n{}", render::report(&applied.report, palette)))?;
    if let Some(waited) = &applied.waited {
        print(&render::waited(waited, args.wait_timeout, palette))?;
    }
    let succeeded = applied.succeeded();
    exit_without_freeing((plan, applied.state));
    Ok(if succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn watch_command(args: &WatchArgs) -> anyhow::Result<ExitCode> {
    let state_file = args.state.store(&args.manifest.file)?;
    let state_file = state_file.as_ref();
    let log = EventLog::new(args.log_format);
    // On a shared state, a second server waits for the lease (standby)
    // rather than failing, and takes over once the holder's lease ends.
    let lock = if args.state.location(&args.manifest.file)?.is_postgres() {
        wait_for_lease(state_file, args, log)?
    } else {
        state_file.lock(args.calls.lock_timeout, "pinsync watch")?
    };
    let state = state_file.load()?;
    state_file.settle(&state)?;
    let options = WatchOptions {
        interval: args.interval,
        debounce: Duration::from_millis(300),
        apply: args.calls.apply_options(),
        http: args.calls.http(),
        status_file: args.status_file.clone(),
    };
    let runtime = calls_runtime()?;
    let lost = lock.lost();
    runtime.block_on(async {
        let stop = CancellationToken::new();
        spawn_stop_on_signals(stop.clone(), move |name| {
            log.event(
                crate::watch::Level::Info,
                "signal",
                "stopping: no new calls start; calls in flight finish; the state is saved",
                serde_json::json!({"signal": name}),
            );
        })?;
        if let Some(lost) = lost.clone() {
            let stop = stop.clone();
            tokio::spawn(async move {
                lost.cancelled().await;
                log.event(
                    crate::watch::Level::Error,
                    "lease",
                    "the state's lease was lost (taken over, or the database is out of reach): stopping",
                    serde_json::json!({}),
                );
                stop.cancel();
            });
        }
        crate::watch::watch(&args.manifest.file, state_file, state, &options, log, &stop).await
    })?;
    if lost.is_some_and(|l| l.is_cancelled()) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits, as a standby, until this server holds the state's lease: says
/// so once in the log and the status file, then takes over when the
/// holder releases it or its lease expires.
fn wait_for_lease(
    store: &dyn StateStore,
    args: &WatchArgs,
    log: EventLog,
) -> anyhow::Result<Box<dyn crate::state::HeldLock>> {
    let mut said = false;
    loop {
        match store.lock(Duration::from_secs(2), "pinsync watch") {
            Ok(lock) => {
                if said {
                    log.event(
                        crate::watch::Level::Info,
                        "lease",
                        "active: this server took over the lease and applies",
                        serde_json::json!({}),
                    );
                }
                return Ok(lock);
            }
            Err(crate::state::LockError::Held { holder, .. }) => {
                if said {
                    continue;
                }
                said = true;
                log.event(
                    crate::watch::Level::Info,
                    "lease",
                    &format!(
                        "standby: {holder} holds the lease; this server takes over when it ends"
                    ),
                    serde_json::json!({"held_by": holder}),
                );
                if let Some(path) = &args.status_file {
                    let status = crate::watch::StandbyStatus {
                        pid: std::process::id(),
                        manifest: args.manifest.file.clone(),
                        role: crate::watch::Role::Standby,
                        held_by: holder,
                        since: crate::state::now_rfc3339(),
                    };
                    crate::watch::status_file::write(path, &status)?;
                }
            }
            // The database out of reach: a standby waits for it too.
            Err(e @ crate::state::LockError::Database { .. }) => {
                log.event(
                    crate::watch::Level::Warn,
                    "lease",
                    &format!("{e}; trying again in 5 s"),
                    serde_json::json!({}),
                );
                std::thread::sleep(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
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

/// Cancels `stop` on SIGINT or SIGTERM, after telling `on_signal` which:
/// calls in flight finish, no new call starts, and the state is saved. A
/// second signal exits at once (exit 1): the journal holds every pin
/// recorded so far, and the next run replays it.
fn spawn_stop_on_signals(
    stop: CancellationToken,
    on_signal: impl FnOnce(&str) + Send + 'static,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listen for SIGINT")?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        stop.cancel();
        on_signal(name);
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        // stderr may be a closed pipe: writing must not panic here.
        let _ = writeln!(
            std::io::stderr(),
            "\nInterrupted again: exiting now. Pins recorded so far are kept; run the command again to finish."
        );
        std::process::exit(1);
    });
    Ok(())
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

fn refresh_command(args: &RefreshArgs) -> anyhow::Result<ExitCode> {
    let ws = ops::Workspace::new(&args.manifest.file, args.state.store(&args.manifest.file)?)
        .lock(args.calls.lock_timeout, "pinsync refresh")?;
    let (m, mut state) = ws.load()?;
    let refreshed = calls_runtime()?.block_on(ops::refresh(
        &ws,
        &m,
        &mut state,
        &args.calls.http(),
        args.calls.apply_options().retry,
        true,
    ))?;
    let ops::Refreshed::Report(report) = refreshed else {
        print("The state holds no pins; nothing to refresh.\n")?;
        return Ok(ExitCode::SUCCESS);
    };
    print(&render::refresh(&report))?;
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn import_command(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let ws = ops::Workspace::new(&args.manifest.file, args.state.store(&args.manifest.file)?);
    // Printing records nothing, so it needs no lock.
    let ws = if args.print_manifest {
        ws
    } else {
        ws.lock(args.calls.lock_timeout, "pinsync import")?
    };
    let outcome = calls_runtime()?.block_on(ops::import(
        &ws,
        &args.calls.http(),
        args.calls.apply_options().retry,
        args.target.as_deref(),
        !args.print_manifest,
    ))?;
    let mut text = render::imported(&outcome);
    let unmanaged = outcome.unmanaged();
    if args.print_manifest {
        print(&crate::import::manifest_entries(&unmanaged))?;
        eprint!("{text}");
    } else {
        if !unmanaged.is_empty() {
            text.push_str("`pinsync import --print-manifest` prints manifest entries for those not in the manifest.\n");
        }
        print(&text)?;
    }
    Ok(if outcome.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn state_list(args: &StateListArgs) -> anyhow::Result<ExitCode> {
    let state = args.state.store(&args.manifest.file)?.load()?;
    if args.json {
        let pins: Vec<StoredPin> = state
            .pins
            .iter()
            .map(|(key, record)| StoredPin {
                key: key.clone(),
                record: record.clone(),
            })
            .collect();
        let doc = serde_json::json!({
            "lineage": state.lineage,
            "serial": state.serial,
            "pins": pins,
        });
        print(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
    } else if state.pins.is_empty() {
        print("The state holds no pins.\n")?;
    } else {
        print(&render::state_list(&state))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn lock_status(args: &StateOnlyArgs) -> anyhow::Result<ExitCode> {
    let store = args
        .state
        .location(&args.manifest.file)?
        .postgres("state lock status")?;
    match store.lease()? {
        None => print(&format!("{}: no lease is held.\n", store.describe()))?,
        Some(l) => print(&format!(
            "{}: {} by {}, taken {} ({:.0} s ago), {} {}.\n",
            store.describe(),
            if l.expired {
                "lease expired, was held"
            } else {
                "lease held"
            },
            l.holder,
            l.acquired_at,
            l.age,
            if l.expired { "expired" } else { "expires" },
            l.expires_at
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn lock_break(args: &LockBreakArgs) -> anyhow::Result<ExitCode> {
    let store = args
        .state
        .location(&args.manifest.file)?
        .postgres("state lock break")?;
    match store.break_lease(args.if_older_than)? {
        Some(l) => print(&format!(
            "Broke the lease held by {} since {}.\n",
            l.holder, l.acquired_at
        ))?,
        None => {
            print(&format!(
                "No lease older than {} on {}; nothing was broken.\n",
                humantime::format_duration(args.if_older_than),
                store.describe()
            ))?;
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn state_migrate(args: &StateOnlyArgs) -> anyhow::Result<ExitCode> {
    let store = args
        .state
        .location(&args.manifest.file)?
        .postgres("state migrate")?;
    let version = store.migrate()?;
    print(&format!(
        "{}: the schema is at version {version}.\n",
        store.describe()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `state push --to` / `state pull --from`: the whole state, its lineage
/// and serial kept, under both stores' locks.
fn state_copy(args: &StateCopyArgs) -> anyhow::Result<ExitCode> {
    let here = args.state.store(&args.manifest.file)?;
    let other_arg = StateArg {
        state: args.to.clone().or_else(|| args.from.clone()),
    };
    let other = other_arg.store(&args.manifest.file)?;
    let (from, to) = if args.to.is_some() {
        (here.as_ref(), other.as_ref())
    } else {
        (other.as_ref(), here.as_ref())
    };
    let _from_lock = from.lock(args.lock_timeout, "pinsync state copy")?;
    let _to_lock = to.lock(args.lock_timeout, "pinsync state copy")?;
    let state = from.load()?;
    let existing = to.load()?;
    if !existing.lineage.is_empty() && existing.lineage != state.lineage {
        bail!(
            "{} already holds a state of another lineage ({} pins, serial {}); nothing was copied",
            to.describe(),
            existing.pins.len(),
            existing.serial
        );
    }
    if existing.serial > state.serial {
        bail!(
            "{} holds a newer state of this lineage (serial {} against {}); nothing was copied",
            to.describe(),
            existing.serial,
            state.serial
        );
    }
    to.save(&state)?;
    print(&format!(
        "Copied {} pins (serial {}) from {} to {}.\n",
        state.pins.len(),
        state.serial,
        from.describe(),
        to.describe()
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn state_restore(args: &StateRestoreArgs) -> anyhow::Result<ExitCode> {
    if args
        .state
        .state
        .as_deref()
        .is_some_and(crate::state::is_postgres_url)
    {
        bail!(
            "`pinsync state restore` puts back a state file's backup; a PostgreSQL state keeps no backup file"
        );
    }
    let state_file = args.state.file(&args.manifest.file);
    let _lock = state_file.lock(args.lock_timeout, "pinsync state restore")?;
    let from = args
        .from
        .clone()
        .unwrap_or_else(|| state_file.backup_path());
    let restored = state_file.restore(&from).with_context(|| {
        format!(
            "restore {} from {}",
            state_file.path().display(),
            from.display()
        )
    })?;
    let mut text = format!(
        "Restored {} from {}: {} pins, serial {}.\n",
        state_file.path().display(),
        from.display(),
        restored.pins,
        restored.serial
    );
    for aside in &restored.moved_aside {
        text.push_str(&format!("Kept the replaced file as {}.\n", aside.display()));
    }
    text.push_str("Run `pinsync plan` to see what differs from the manifest; pins made since the backup show as `+` and apply records them again (the provider answers \"already pinned\").\n");
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}
