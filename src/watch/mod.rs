//! Watch mode: pinsync as a long-running reconciler next to a git checkout.
//!
//! Applies at start, then on every change to the manifest or a file it
//! includes (debounced) and every `interval`, one apply at a time, holding
//! the state lock for the life of the process. A manifest that does not
//! validate is reported and the last good one stays in force.

mod event_log;
mod manifest_diff;
pub(crate) mod status_file;
mod watch_set;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use notify::{EventKind, RecursiveMode, Watcher as _};
use serde_json::json;
use tokio::sync::mpsc;

use crate::apply::{self, ApplyOptions, Halt, Outcome as PinOutcome, Progress};
use crate::manifest::{
    self, Diagnostics, IncludeEntry, LiveManifest, LoadObserver, Manifest, ManifestUpdate,
    NotifyHook, PinKey,
};
use crate::notify::{Notice, Notifier};
use crate::plan::{self, Change};
use crate::provider::{HttpSettings, ProviderError};
use crate::state::State;

pub(crate) use event_log::{EventLog, Level, LogFormat};
pub(crate) use status_file::{Outcome, Role, StandbyStatus, Status};

/// How watch runs.
#[derive(Debug, Clone)]
pub(crate) struct WatchOptions {
    /// Reconcile this often even without a change.
    pub(crate) interval: Duration,
    /// Quiet time after the last file event before a burst counts as one change.
    pub(crate) debounce: Duration,
    pub(crate) apply: ApplyOptions,
    pub(crate) http: HttpSettings,
    pub(crate) status_file: Option<PathBuf>,
}

/// Why a reconcile ran.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Start,
    Change,
    Interval,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Change => "change",
            Self::Interval => "interval",
        }
    }
}

/// The reconciler's memory between runs.
struct Reconciler<'a> {
    manifest_path: &'a Path,
    ws: &'a crate::ops::Workspace,
    state: Option<State>,
    /// The last good manifest, kept up to date file by file.
    live: Option<LiveManifest>,
    /// The main manifest's text at the last reconcile, to log its changed
    /// lines; `None` before the first. Included files' changes are logged
    /// pin by pin, from the model: their text is not kept.
    main_text: Option<String>,
    /// The manifest's include entries as last read.
    includes: Vec<IncludeEntry>,
    files: FileWatch,
    last_success_at: Option<String>,
    options: &'a WatchOptions,
    log: EventLog,
    /// The webhooks of the manifest in force, and what they were made from.
    notifier: Option<(Vec<NotifyHook>, Arc<Notifier>)>,
    /// How the last reconcile ended: events are sent on a change.
    last_outcome: Option<Outcome>,
    /// Whether the last plan pinned again what the providers lost.
    drifted: bool,
}

/// Runs until the workspace's stop token is cancelled, then returns with
/// the state saved. The workspace holds the state lock.
pub(crate) async fn watch(
    manifest_path: &Path,
    ws: &crate::ops::Workspace,
    state: State,
    options: &WatchOptions,
    log: EventLog,
) -> anyhow::Result<()> {
    let stop = ws.stop();
    let (tx, changes) = mpsc::unbounded_channel::<()>();
    let files = FileWatch::start(manifest_path, tx)?;
    log.event(
        Level::Info,
        "start",
        "watching the manifest",
        json!({
            "manifest": manifest_path.display().to_string(),
            "state": ws.store().describe(),
            "interval": humantime::format_duration(options.interval).to_string(),
        }),
    );
    let mut r = Reconciler {
        manifest_path,
        ws,
        state: Some(state),
        live: None,
        main_text: None,
        includes: Vec::new(),
        files,
        last_success_at: None,
        options,
        log,
        notifier: None,
        last_outcome: None,
        drifted: false,
    };
    let ran = r.run(changes, stop).await;
    if ws.lease_lost().is_some_and(|l| l.is_cancelled()) {
        r.notify(&Notice::lease_lost());
    }
    if let Some((_, notifier)) = &r.notifier {
        let left = notifier.settle(NOTIFY_SETTLE).await;
        if left > 0 {
            log.event(
                Level::Warn,
                "notify",
                &format!(
                    "{left} webhook call(s) still unanswered after {} s; not waited for",
                    NOTIFY_SETTLE.as_secs()
                ),
                json!({"unanswered": left}),
            );
        }
    }
    ran?;
    // A clean stop leaves the store whole, its journal folded in.
    if let Some(state) = &r.state {
        ws.store().compact(state)?;
    }
    log.event(
        Level::Info,
        "stop",
        "stopped; the state is saved",
        json!({}),
    );
    Ok(())
}

/// How long a stopping watch waits for its webhooks' calls.
const NOTIFY_SETTLE: Duration = Duration::from_secs(30);

impl Reconciler<'_> {
    /// Reconciles at start, on each change and each interval, until `stop`.
    async fn run(
        &mut self,
        mut changes: mpsc::UnboundedReceiver<()>,
        stop: &tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<()> {
        let (options, r) = (self.options, self);
        r.reconcile(Trigger::Start).await?;
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + options.interval,
            options.interval,
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let trigger = tokio::select! {
                () = stop.cancelled() => break,
                Some(()) = changes.recv() => {
                    // Debounce: wait for a quiet spell, so one save (or one
                    // `git pull` touching the file several times) is one apply.
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => break,
                            more = tokio::time::timeout(options.debounce, changes.recv()) => {
                                if !matches!(more, Ok(Some(()))) { break; }
                            }
                        }
                    }
                    Trigger::Change
                }
                _ = ticker.tick() => Trigger::Interval,
            };
            if stop.is_cancelled() {
                break;
            }
            r.reconcile(trigger).await?;
        }
        Ok(())
    }
}

/// Hands the pages the allocator holds free back to the system: a whole
/// load of a million pins freed what it parsed the files into, and the
/// names [`State::share_names`] replaced; watch lives long.
fn release_freed_memory() {
    // SAFETY: mi_collect takes a flag and touches only mimalloc's own
    // free lists; with another global allocator it has nothing to do.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// The file watcher: the directories of the manifest, of the files it
/// includes and of its globs (see [`watch_set`]), and a tick sent for each
/// event on one of its files.
struct FileWatch {
    watcher: notify::RecommendedWatcher,
    /// The directories watched now.
    watched: BTreeMap<PathBuf, RecursiveMode>,
    filter: Arc<Mutex<watch_set::Filter>>,
    tx: mpsc::UnboundedSender<()>,
}

impl FileWatch {
    /// Watches the manifest's directory; its includes are added once read.
    fn start(manifest: &Path, tx: mpsc::UnboundedSender<()>) -> anyhow::Result<Self> {
        let set = watch_set::WatchSet::new(manifest, &[]);
        let filter = Arc::new(Mutex::new(set.filter));
        let events = (filter.clone(), tx.clone());
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            // Reads (ours included) are not changes.
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let (filter, tx) = &events;
            let filter = filter
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if event.paths.iter().any(|p| filter.matches(p)) {
                let _ = tx.send(());
            }
        })
        .context("start the file watcher")?;
        let mut files = Self {
            watcher,
            watched: BTreeMap::new(),
            filter,
            tx,
        };
        if let Some(e) = files.follow(set.dirs).into_iter().next() {
            return Err(e);
        }
        Ok(files)
    }

    /// Watches what `set` names and stops watching the rest; the
    /// directories that could not be watched, with why.
    fn update(&mut self, set: watch_set::WatchSet) -> Vec<anyhow::Error> {
        *self
            .filter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = set.filter;
        self.follow(set.dirs)
    }

    fn follow(&mut self, dirs: BTreeMap<PathBuf, RecursiveMode>) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        for (dir, mode) in &self.watched {
            if dirs.get(dir) != Some(mode) {
                // Gone already when the directory was removed.
                let _ = self.watcher.unwatch(dir);
            }
        }
        self.watched.retain(|dir, mode| dirs.get(dir) == Some(mode));
        for (dir, mode) in dirs {
            if self.watched.contains_key(&dir) {
                continue;
            }
            match self.watcher.watch(&dir, mode) {
                Ok(()) => {
                    self.watched.insert(dir, mode);
                }
                Err(e) => {
                    errors.push(anyhow::Error::new(e).context(format!("watch {}", dir.display())))
                }
            }
        }
        errors
    }
}

/// Logs the lines of the main manifest that changed since the last load,
/// and keeps its text for the next; notes what `include:` expanded to.
struct MainDiff<'a> {
    log: EventLog,
    path: &'a Path,
    text: &'a mut Option<String>,
    /// What `include:` expanded to, when the load got that far.
    included: Option<(Vec<IncludeEntry>, Vec<PathBuf>)>,
}

impl LoadObserver for MainDiff<'_> {
    fn read(&mut self, path: &Path, bytes: &[u8], _: &std::fs::Metadata) {
        if path != self.path {
            return;
        }
        let text = String::from_utf8_lossy(bytes);
        if let Some(old) = self.text.as_deref() {
            let diff = manifest_diff::ManifestDiff::between(old, &text);
            if !diff.is_empty() {
                let file = path.display().to_string();
                self.log.event(
                    Level::Info,
                    "manifest_diff",
                    &format!("{file}: +{} -{} lines", diff.added, diff.removed),
                    json!({"file": file, "added": diff.added, "removed": diff.removed, "lines": diff.lines}),
                );
            }
        }
        *self.text = Some(text.into_owned());
    }

    fn included(&mut self, entries: &[IncludeEntry], files: &[PathBuf]) {
        self.included = Some((entries.to_vec(), files.to_vec()));
    }
}

impl Reconciler<'_> {
    async fn reconcile(&mut self, trigger: Trigger) -> anyhow::Result<()> {
        if !matches!(trigger, Trigger::Start) {
            self.log
                .event(Level::Info, trigger.as_str(), "reconciling", json!({}));
        }
        let loaded = self.load();
        if let (Ok(None | Some(ManifestUpdate { reloaded: true, .. })), Some(live), Some(state)) =
            (&loaded, &self.live, &mut self.state)
        {
            // Read whole: the state's names are the manifest's again.
            state.share_names(live.manifest());
            release_freed_memory();
        }
        let (result, error, update) = match loaded {
            Ok(update) => (None, None, update),
            Err(e) => {
                match e.downcast_ref::<Diagnostics>() {
                    Some(diags) => {
                        for d in &diags.0 {
                            self.log.event(
                                Level::Error,
                                "invalid_manifest",
                                &d.to_string(),
                                json!({"file": d.file.display().to_string(), "line": d.position.line, "column": d.position.column}),
                            );
                        }
                    }
                    None => self.log.event(
                        Level::Error,
                        "invalid_manifest",
                        &format!("{e:#}"),
                        json!({}),
                    ),
                }
                let kept = if self.live.is_some() {
                    "keeping the last good manifest in force"
                } else {
                    "no good manifest yet; waiting for the next save"
                };
                self.log
                    .event(Level::Warn, "invalid_manifest", kept, json!({}));
                (Some(Outcome::InvalidManifest), Some(format!("{e:#}")), None)
            }
        };
        let Some(live) = self.live.take() else {
            self.write_status(
                result.unwrap_or(Outcome::Error),
                &apply::Report::default(),
                0,
                error,
                None,
            );
            return Ok(());
        };
        // After an edit that was read file by file, when all was in sync
        // before it, only the pins it touched can have changes.
        let only = update
            .as_ref()
            .filter(|u| {
                !u.reloaded
                    && matches!(trigger, Trigger::Change)
                    && self.last_outcome == Some(Outcome::Ok)
                    && !self.drifted
            })
            .map(|u| u.touched.as_slice());
        let ran = self
            .reconcile_manifest(live.manifest(), only, result, error)
            .await;
        self.live = Some(live);
        ran
    }

    /// Plans `manifest` (the pins `only` names, if given) and applies
    /// the plan; `result` and `error` say why the manifest in force is not
    /// the one on disk.
    async fn reconcile_manifest(
        &mut self,
        manifest: &Manifest,
        only: Option<&[PinKey]>,
        result: Option<Outcome>,
        error: Option<String>,
    ) -> anyhow::Result<()> {
        self.update_notifier(manifest.notify.clone());
        let state = self.state.take().expect("state is put back after each run");
        // Watch prunes only when the manifest says `prune: true`.
        let options = plan::PlanOptions::default();
        let plan = match only {
            Some(keys) => plan::plan_of_pins(manifest, &state, options, keys),
            None => plan::plan(manifest, &state, options),
        };
        let s = plan.summary;
        self.log.event(
            Level::Info,
            "plan",
            if s.has_changes() {
                "changes to make"
            } else {
                "in sync"
            },
            json!({"pin": s.pin, "repin": s.repin, "update": s.update, "orphan": s.orphan, "unpin": s.unpin, "unchanged": s.unchanged}),
        );
        // Told once when the providers' losses show, not at every run.
        if s.repin > 0 && !self.drifted {
            self.notify(&Notice::drift(s.repin));
        }
        self.drifted = s.repin > 0;
        // Watch passes no guard: a refused plan waits for a better manifest.
        let next = crate::ops::next(
            &plan,
            &state,
            plan::UnpinAllowance::default(),
            &self.options.http,
        );
        let providers = match next {
            Ok(crate::ops::Next::InSync) => {
                self.state = Some(state);
                let outcome = result.unwrap_or(Outcome::Ok);
                let report = apply::Report {
                    unchanged: s.unchanged,
                    ..Default::default()
                };
                self.write_status(outcome, &report, 0, error, None);
                return Ok(());
            }
            Ok(crate::ops::Next::Refused(refused)) => {
                for message in &refused {
                    self.log.event(
                        Level::Error,
                        "blocked",
                        &format!("refused: {message}"),
                        json!({}),
                    );
                }
                self.state = Some(state);
                self.write_status(
                    Outcome::Blocked,
                    &apply::Report::default(),
                    s.pin + s.repin + s.unpin,
                    refused.first().cloned(),
                    None,
                );
                return Ok(());
            }
            Ok(crate::ops::Next::Calls(p)) => p,
            Err(e) => {
                self.log.event(
                    Level::Error,
                    "apply",
                    &format!("cannot apply: {e:#}"),
                    json!({}),
                );
                self.state = Some(state);
                self.write_status(
                    Outcome::Error,
                    &apply::Report::default(),
                    s.pin + s.repin + s.unpin,
                    Some(format!("{e:#}")),
                    None,
                );
                return Ok(());
            }
        };
        let progress: Arc<dyn Progress> = Arc::new(LogProgress {
            log: self.log,
            metrics: self.options.http.metrics.clone(),
        });
        let started = std::time::Instant::now();
        let applied = crate::ops::apply(
            self.ws,
            &plan,
            state,
            &providers,
            self.options.apply,
            None,
            &progress,
            &|_, _, _| {},
        )
        .await;
        let took = Some(started.elapsed());
        let (report, state) = match applied {
            Ok(done) => (done.report, done.state),
            Err(e) => {
                // The state on disk is behind what was pinned: stop, and say
                // so where monitors look, before the caller exits.
                let message = format!("{e:#}");
                self.log
                    .event(Level::Error, "apply", &message, json!({"fatal": true}));
                let report = e
                    .downcast_ref::<apply::ApplyError>()
                    .and_then(apply::ApplyError::report)
                    .cloned()
                    .unwrap_or_default();
                let pending = report.pending();
                self.write_status(Outcome::Error, &report, pending, Some(message), took);
                return Err(e);
            }
        };
        self.state = Some(state);
        let level = if report.succeeded() {
            Level::Info
        } else {
            Level::Warn
        };
        self.log.event(
            level,
            "apply",
            if report.interrupted {
                "interrupted"
            } else if report.succeeded() {
                "complete"
            } else {
                "finished with failures; they are retried at the next reconcile"
            },
            json!({
                "pinned": report.pinned,
                "already_pinned": report.already_pinned,
                "unpinned": report.unpinned,
                "kept": report.kept.len(),
                "updated": report.updated,
                "orphaned": report.orphaned,
                "failed": report.failed.len(),
                "not_attempted": report.not_attempted.values().map(|n| n.pins).sum::<usize>(),
                "unchanged": report.unchanged,
                "not_started": report.not_started,
            }),
        );
        let outcome = match result {
            Some(o) => o,
            None if report.succeeded() => Outcome::Ok,
            None => Outcome::Failed,
        };
        let pending = report.pending();
        let error = error
            .or_else(|| {
                report
                    .not_attempted
                    .iter()
                    .next()
                    .map(|(provider, n)| format!("not attempted: {}", n.describe(provider)))
            })
            .or_else(|| {
                report
                    .failed
                    .first()
                    .map(|f| format!("{} {}: {}", f.change.target, f.change.cid, f.error))
            });
        self.write_status(outcome, &report, pending, error, took);
        Ok(())
    }

    /// Makes the webhooks of `hooks`, unless they are those in use.
    fn update_notifier(&mut self, hooks: Vec<NotifyHook>) {
        if self.notifier.as_ref().map(|(h, _)| h) == Some(&hooks) {
            return;
        }
        if hooks.is_empty() {
            self.notifier = None;
            return;
        }
        let (log, metrics) = (self.log, self.options.http.metrics.clone());
        let report: crate::notify::Report = Arc::new(move |delivery| {
            if let Some(metrics) = &metrics {
                metrics.notified(delivery.event.as_str(), delivery.failed.is_none());
            }
            match &delivery.failed {
                Some(why) => log.event(
                    Level::Warn,
                    "notify",
                    &format!(
                        "webhook {} was not told of {}: {why}",
                        delivery.hook,
                        delivery.event.as_str()
                    ),
                    json!({"webhook": delivery.hook, "event": delivery.event.as_str()}),
                ),
                None => log.event(
                    Level::Info,
                    "notify",
                    &format!(
                        "webhook {} told of {}",
                        delivery.hook,
                        delivery.event.as_str()
                    ),
                    json!({"webhook": delivery.hook, "event": delivery.event.as_str()}),
                ),
            }
        });
        match Notifier::new(
            &hooks,
            self.manifest_path,
            |v| std::env::var(v).ok(),
            report,
        ) {
            Ok(notifier) => self.notifier = Some((hooks, Arc::new(notifier))),
            Err(e) => {
                self.log
                    .event(Level::Error, "notify", &format!("{e:#}"), json!({}));
                self.notifier = None;
            }
        }
    }

    fn notify(&self, notice: &Notice) {
        if let Some((_, notifier)) = &self.notifier {
            notifier.notify(notice);
        }
    }

    /// Brings the manifest up to date (loading it whole the first time),
    /// logging what changed: the main manifest's lines, the included
    /// files' pins (a log reader sees what a save or a `git pull`
    /// brought); then watches the files it includes now. `None` at the
    /// first load.
    fn load(&mut self) -> anyhow::Result<Option<ManifestUpdate>> {
        let mut observer = MainDiff {
            log: self.log,
            path: self.manifest_path,
            text: &mut self.main_text,
            included: None,
        };
        let loaded = if let Some(live) = self.live.as_mut() {
            live.update(&mut observer).map(Some)
        } else {
            LiveManifest::load(self.manifest_path, &mut observer).map(|live| {
                self.live = Some(live);
                None
            })
        };
        let included = observer.included.take();
        let diffs = loaded.iter().flatten().flat_map(|u| &u.files);
        for diff in diffs.filter(|d| d.path != self.manifest_path) {
            let file = diff.path.display().to_string();
            self.log.event(
                Level::Info,
                "manifest_diff",
                &format!(
                    "{file}: +{} -{} ~{} pins",
                    diff.added, diff.removed, diff.changed
                ),
                json!({"file": file, "pins_added": diff.added, "pins_removed": diff.removed, "pins_changed": diff.changed, "lines": diff.lines}),
            );
        }
        // Without a readable manifest the last include list stays watched.
        let seen = included.map(|(entries, files)| {
            self.includes = entries;
            files
        });
        self.watch_includes(seen);
        loaded
    }

    /// Watches the directories and files of the current include list.
    /// A directory watched for the first time may have gained a file
    /// between the load's listing and the watch: it is listed again, and a
    /// difference is a change.
    fn watch_includes(&mut self, seen: Option<Vec<PathBuf>>) {
        let set = watch_set::WatchSet::new(self.manifest_path, &self.includes);
        let before: Vec<PathBuf> = self.files.watched.keys().cloned().collect();
        for e in self.files.update(set) {
            self.log
                .event(Level::Warn, "watch", &format!("{e:#}"), json!({}));
        }
        let added = self
            .files
            .watched
            .keys()
            .filter(|d| !before.contains(d))
            .count();
        if added == 0 {
            return;
        }
        self.log.event(
            Level::Info,
            "watch",
            &format!(
                "watching {} director{} for changes to the manifest and the files it includes",
                self.files.watched.len(),
                if self.files.watched.len() == 1 { "y" } else { "ies" }
            ),
            json!({"directories": self.files.watched.keys().map(|d| d.display().to_string()).collect::<Vec<_>>()}),
        );
        if let Some(seen) = seen
            && manifest::included_files(self.manifest_path, &self.includes) != seen
        {
            let _ = self.files.tx.send(());
        }
    }

    /// Says how the reconcile ended, in the status file and the metrics;
    /// `applied` is how long its apply took, when it made calls.
    fn write_status(
        &mut self,
        outcome: Outcome,
        report: &apply::Report,
        pending: usize,
        error: Option<String>,
        applied: Option<Duration>,
    ) {
        if let Some(metrics) = &self.options.http.metrics {
            metrics.reconciled(outcome, applied, error.as_deref());
            if let Some(state) = &self.state {
                metrics.pins(state);
            }
        }
        // Each event once, when the result changes to it. An interrupted
        // apply, or a manifest that does not validate (the last good one
        // stays in force), changes nothing to tell.
        let failed = |o: Option<Outcome>| matches!(o, Some(Outcome::Failed | Outcome::Error));
        let notice = match outcome {
            _ if report.interrupted || outcome == Outcome::InvalidManifest => None,
            Outcome::Failed if !failed(self.last_outcome) => {
                Some(Notice::apply_failed(pending, None))
            }
            Outcome::Error if !failed(self.last_outcome) => {
                Some(Notice::apply_failed(pending, error.as_deref()))
            }
            Outcome::Blocked if self.last_outcome != Some(Outcome::Blocked) => {
                Some(Notice::blocked(error.as_slice()))
            }
            Outcome::Ok
                if failed(self.last_outcome) || self.last_outcome == Some(Outcome::Blocked) =>
            {
                Some(Notice::recovered())
            }
            _ => None,
        };
        if let Some(notice) = notice {
            self.notify(&notice);
        }
        if !report.interrupted && outcome != Outcome::InvalidManifest {
            self.last_outcome = Some(outcome);
        }
        let now = crate::state::now_rfc3339();
        if outcome == Outcome::Ok {
            self.last_success_at = Some(now.clone());
        }
        let Some(path) = &self.options.status_file else {
            return;
        };
        let status = Status {
            pid: std::process::id(),
            manifest: self.manifest_path.to_path_buf(),
            role: status_file::Role::Active,
            last_run_at: now,
            last_result: outcome,
            last_success_at: self.last_success_at.clone(),
            pinned: report.pinned,
            failed: report.failed.len(),
            unchanged: report.unchanged,
            pending,
            error,
        };
        if let Err(e) = status_file::write(path, &status) {
            self.log
                .event(Level::Error, "status_file", &format!("{e:#}"), json!({}));
        }
    }
}

/// Apply progress as log lines: each retry and each failure; retries are
/// counted in the metrics too.
struct LogProgress {
    log: EventLog,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Progress for LogProgress {
    fn start(&self, calls: usize) {
        self.log
            .event(Level::Info, "apply", "pinning", json!({"calls": calls}));
    }

    fn retrying(&self, change: &Change, error: &ProviderError, attempt: u32, delay: Duration) {
        if let Some(metrics) = &self.metrics {
            metrics.retry(&change.target.provider);
        }
        self.log.event(
            Level::Warn,
            "retry",
            &error.to_string(),
            json!({
                "target": change.target.to_string(),
                "cid": change.cid,
                "attempt": attempt,
                "delay_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            }),
        );
    }

    fn finished(&self, change: &Change, outcome: &PinOutcome) {
        if let PinOutcome::Failed { error, attempts } = outcome {
            self.log.event(
                Level::Error,
                "pin_failed",
                &apply::failure_reason(error, *attempts),
                json!({"target": change.target.to_string(), "cid": change.cid, "attempts": attempts}),
            );
        }
    }

    fn halted(&self, provider: &str, why: &Halt, credentials: &[String]) {
        let reason = match why {
            Halt::Down(_) => "down",
            Halt::Unauthorized(_) => "unauthorized",
            Halt::Redirected(_) => "redirected",
        };
        self.log.event(
            Level::Error,
            "provider_halted",
            &format!(
                "provider `{provider}`: {}; its remaining pins are not attempted until the next reconcile",
                why.describe(credentials)
            ),
            json!({"provider": provider, "reason": reason}),
        );
    }
}
