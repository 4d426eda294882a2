//! The command line's definitions: every command, its flags, and the
//! help they print. Parsing only; each command runs in its own file under
//! `commands`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::apply::ApplyOptions;
use crate::manifest::ProviderKind;
use crate::plan;
use crate::provider::HttpSettings;
use crate::retry::RetryPolicy;
use crate::state::{StateLocation, StateStore};
use crate::watch::LogFormat;

pub(super) const ABOUT: &str = "Pins as code for IPFS pinning services.\n\n\
pinsync reads a manifest (pins.yaml) that says which CIDs must be pinned on which \
provider and cluster, compares it with its state file (what it has pinned), shows a \
plan, and makes exactly the pin calls needed.";

pub(super) const EXAMPLES: &str = "Examples:
  pinsync validate                 check pins.yaml
  pinsync plan                     show what apply would do
  pinsync apply                    pin what is missing (asks for 'yes')
  pinsync apply --auto-approve     the same, in CI
  pinsync state list               what pinsync has pinned";

#[derive(Debug, Parser)]
#[command(name = "pinsync", version, about = ABOUT, after_help = EXAMPLES)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
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
pub(super) struct ManArgs {
    /// The command whose page to print (`apply`, `state restore`, ...);
    /// pinsync's own page, which lists them, without one.
    #[arg(value_name = "COMMAND")]
    pub(super) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(super) struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_name = "SHELL")]
    pub(super) shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub(super) enum StateCommand {
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
pub(super) enum LockCommand {
    /// Show the lease's holder, when it was taken and when it expires.
    Status(StateOnlyArgs),
    /// Remove a lease taken longer ago than --if-older-than (its holder, if
    /// alive, stops at its next renewal).
    Break(LockBreakArgs),
}

#[derive(Debug, Args)]
pub(super) struct StateOnlyArgs {
    #[command(flatten)]
    pub(super) manifest: ManifestArg,
    #[command(flatten)]
    pub(super) state: StateArg,
}

#[derive(Debug, Args)]
pub(super) struct LockBreakArgs {
    #[command(flatten)]
    pub(super) manifest: ManifestArg,
    #[command(flatten)]
    pub(super) state: StateArg,
    /// Only a lease taken longer ago than this is broken (e.g. 10m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(super) if_older_than: Duration,
}

#[derive(Debug, Args)]
pub(super) struct StateCopyArgs {
    #[command(flatten)]
    pub(super) manifest: ManifestArg,
    #[command(flatten)]
    pub(super) state: StateArg,
    /// The other store (push): a file or a postgres:// URL.
    #[arg(
        long,
        value_name = "FILE|URL",
        required_unless_present = "from",
        conflicts_with = "from"
    )]
    pub(super) to: Option<String>,
    /// The other store (pull).
    #[arg(long, value_name = "FILE|URL")]
    pub(super) from: Option<String>,
    /// Wait this long for the locks.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub(super) lock_timeout: Duration,
}

#[derive(Debug, Args)]
pub(super) struct StateRestoreArgs {
    #[command(flatten)]
    pub(super) manifest: ManifestArg,
    #[command(flatten)]
    pub(super) state: StateArg,
    /// The copy to restore [default: the state file's .backup]
    #[arg(long, value_name = "FILE")]
    pub(super) from: Option<PathBuf>,
    /// Wait this long for another pinsync holding the state lock.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub(super) lock_timeout: Duration,
}

#[derive(Debug, Args)]
pub(super) struct ManifestArg {
    /// The manifest.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "MANIFEST",
        default_value = "pins.yaml"
    )]
    pub(super) file: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct StateArg {
    /// The state: a file, or a PostgreSQL workspace
    /// (postgres://USER@HOST/DB?workspace=NAME) [default: the manifest's name
    /// with .state.json, beside it]
    #[arg(
        long,
        value_name = "FILE|URL",
        env = "PINSYNC_STATE",
        hide_env_values = true
    )]
    pub(super) state: Option<String>,
}

impl StateArg {
    /// Where the state is kept (see [`StateLocation::choose`]).
    pub(super) fn location(&self, manifest: &Path) -> anyhow::Result<StateLocation> {
        StateLocation::choose(self.state.as_deref(), manifest)
    }

    pub(super) fn store(&self, manifest: &Path) -> anyhow::Result<Box<dyn StateStore>> {
        self.location(manifest)?.open()
    }
}

#[derive(Debug, Args)]
pub(super) struct RefreshArgs {
    #[command(flatten)]
    pub(super) manifest: ManifestArg,
    #[command(flatten)]
    pub(super) state: StateArg,
    #[command(flatten)]
    pub(super) calls: CallArgs,
}

#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    #[command(flatten)]
    pub(super) manifest: ManifestArg,
    #[command(flatten)]
    pub(super) state: StateArg,
    /// Only this target: `provider` or `provider/cluster`.
    #[arg(long, value_name = "TARGET")]
    pub(super) target: Option<String>,
    /// Print YAML `pins:` entries for what the providers hold that the
    /// manifest lacks, and record nothing.
    #[arg(long)]
    pub(super) print_manifest: bool,
    #[command(flatten)]
    pub(super) calls: CallArgs,
}

#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// The provider type to start with: `pinning-service` (Pinata's
    /// Pinning Service endpoint live; Filebase, 4EVERLAND, Crust, AIOZ and
    /// ipfs-cluster ready to uncomment), or any other type (`pinata`,
    /// `quicknode`, `kubo`, ...).
    #[arg(long, value_name = "TYPE", default_value = "pinning-service", value_parser = provider_type())]
    pub(super) provider: ProviderKind,
    /// Where to write the manifest.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "MANIFEST",
        default_value = "pins.yaml"
    )]
    pub(super) file: PathBuf,
}

/// A provider type by its name in `type:`.
pub(super) fn provider_type() -> impl clap::builder::TypedValueParser<Value = ProviderKind> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(ProviderKind::names())
        .try_map(|name| ProviderKind::from_name(&name).ok_or("unknown provider type"))
}

#[derive(Debug, Args)]
pub(super) struct ValidateArgs {
    #[command(flatten)]
    pub(super) manifest: ManifestArg,
}

/// Unpinning: whether to prune, and what may pass the guards.
#[derive(Debug, Args)]
pub(super) struct UnpinArgs {
    /// Unpin pins that are no longer in the manifest (also `prune: true` in
    /// the manifest); without it they stay pinned and are marked orphaned.
    #[arg(long)]
    pub(super) prune: bool,
    /// Allow up to N unpins, past the safety guards (a target losing more
    /// than its `unpin_guard`, an empty manifest).
    #[arg(long, value_name = "N")]
    pub(super) max_unpins: Option<usize>,
    /// Allow any number of unpins, past every safety guard.
    #[arg(long)]
    pub(super) force_unpins: bool,
}

impl UnpinArgs {
    pub(super) fn plan_options(&self) -> plan::PlanOptions {
        plan::PlanOptions { prune: self.prune }
    }

    pub(super) fn allowance(&self) -> plan::UnpinAllowance {
        plan::UnpinAllowance {
            max_unpins: self.max_unpins,
            force: self.force_unpins,
        }
    }
}

/// How `plan` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum PlanFormat {
    Text,
    Json,
    Markdown,
}

/// Exit code of a plan a safety guard refuses, as Terraform keeps 2 for
/// "changes present".
pub(super) const GUARD_REFUSED: u8 = 3;

#[derive(Debug, Args)]
pub(super) struct PlanArgs {
    #[command(flatten)]
    pub(super) manifest: ManifestArg,
    #[command(flatten)]
    pub(super) state: StateArg,
    #[command(flatten)]
    pub(super) unpin: UnpinArgs,
    /// Refresh first (see `pinsync refresh`): needs the providers'
    /// credentials. `plan` does not write what it learns; `apply` does.
    #[arg(long)]
    pub(super) refresh: bool,
    /// Print the plan as JSON (a stable format, versioned by
    /// `format_version`); the same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub(super) json: bool,
    /// `text` for people, `json` for machines, `markdown` for a pull-request
    /// comment (no colour).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub(super) format: PlanFormat,
    /// Exit 0 when there are no changes, 2 when there are, 3 when a safety
    /// guard would refuse them, 1 on error.
    #[arg(long)]
    pub(super) detailed_exitcode: bool,
    /// Save the plan to this file, for `pinsync apply PLAN`.
    #[arg(long, value_name = "PLAN")]
    pub(super) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct ApplyArgs {
    #[command(flatten)]
    pub(super) manifest: ManifestArg,
    #[command(flatten)]
    pub(super) state: StateArg,
    /// Apply without asking for confirmation.
    #[arg(long)]
    pub(super) auto_approve: bool,
    #[command(flatten)]
    pub(super) unpin: UnpinArgs,
    /// Refresh first (see `pinsync refresh`): needs the providers'
    /// credentials. `plan` does not write what it learns; `apply` does.
    #[arg(long)]
    pub(super) refresh: bool,
    #[command(flatten)]
    pub(super) calls: CallArgs,
    /// After the calls, wait until every new pin is pinned (or failed, or
    /// --wait-timeout passes); exit 1 naming those that are not.
    #[arg(long)]
    pub(super) wait: bool,
    /// How long --wait waits at most, and how long a move waits for its new
    /// pin to be pinned before it unpins the old one.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = request_timeout)]
    pub(super) wait_timeout: Duration,
    /// A plan saved by `pinsync plan --out`.
    #[arg(value_name = "PLAN")]
    pub(super) plan: Option<PathBuf>,
}

/// How provider calls are made; shared by `apply` and `watch`.
#[derive(Debug, Args)]
pub(super) struct CallArgs {
    /// Calls in flight at most on each provider (each has its own pool, so a
    /// slow one does not hold up the others).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(super) concurrency: u16,
    /// Wait this long for another pinsync holding the state lock (e.g. 30s).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub(super) lock_timeout: Duration,
    /// Bound on one provider request.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = request_timeout)]
    pub(super) timeout: Duration,
    /// Calls made per pin at most, the first included.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(super) retry_attempts: u32,
    /// No retry of a pin starts after this much time from its first call.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = retry_budget)]
    pub(super) retry_max_time: Duration,
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
    pub(super) fn apply_options(&self) -> ApplyOptions {
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

    pub(super) fn http(&self) -> HttpSettings {
        HttpSettings {
            timeout: self.timeout,
            pacers: crate::provider::Pacers::default(),
            metrics: None,
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct WatchArgs {
    #[command(flatten)]
    pub(super) manifest: ManifestArg,
    #[command(flatten)]
    pub(super) state: StateArg,
    /// Reconcile this often even without a change (retries failed pins).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = watch_interval)]
    pub(super) interval: Duration,
    /// Log lines as text or as one JSON object per line.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub(super) log_format: LogFormat,
    /// Keep this JSON file up to date with the last apply's time, result and
    /// counts, for monitoring.
    #[arg(long, value_name = "PATH")]
    pub(super) status_file: Option<PathBuf>,
    /// Serve Prometheus metrics (/metrics) and health checks (/healthz,
    /// /readyz) on this address, such as 127.0.0.1:9464 (off by default;
    /// port 0 picks a free one, which the log names).
    #[arg(long, value_name = "ADDR")]
    pub(super) listen: Option<std::net::SocketAddr>,
    /// Let --listen take an address other than loopback. The endpoints have
    /// no authentication, and the metrics name the providers and targets:
    /// expose them on purpose, behind a firewall or a proxy.
    #[arg(long, requires = "listen")]
    pub(super) listen_non_loopback: bool,
    #[command(flatten)]
    pub(super) calls: CallArgs,
}

/// A duration flag within bounds: zero or centuries would make no sense,
/// and overflow the clock they are added to.
pub(super) fn duration_between(
    text: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, String> {
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

pub(super) const DAY: Duration = Duration::from_secs(24 * 3600);

pub(super) fn request_timeout(text: &str) -> Result<Duration, String> {
    duration_between(text, Duration::from_millis(1), DAY)
}

pub(super) fn retry_budget(text: &str) -> Result<Duration, String> {
    duration_between(text, Duration::ZERO, 7 * DAY)
}

pub(super) fn watch_interval(text: &str) -> Result<Duration, String> {
    duration_between(text, Duration::from_secs(1), 30 * DAY)
}

#[derive(Debug, Args)]
pub(super) struct StateListArgs {
    #[command(flatten)]
    pub(super) manifest: ManifestArg,
    #[command(flatten)]
    pub(super) state: StateArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(super) json: bool,
}
