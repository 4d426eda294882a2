//! `pinsync watch`: take the state's lock (or wait for its lease as a
//! standby) and keep applying until a signal.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::args::WatchArgs;
use crate::cli::calls_runtime;
use crate::ops;
use crate::state::LockError;
use crate::watch::{EventLog, Level, WatchOptions};

pub(crate) fn watch_command(args: &WatchArgs) -> anyhow::Result<ExitCode> {
    let log = EventLog::new(args.log_format);
    let location = args.state.location(&args.manifest.file)?;
    // On a shared state, a second server waits for the lease (standby)
    // rather than failing, and takes over once the holder's lease ends.
    let shared = location.is_postgres();
    let ws = ops::Workspace::new(&args.manifest.file, location.open()?);
    let ws = if shared {
        ws.lock_as_standby("pinsync watch", &StandbyLog { log, args })?
    } else {
        ws.lock(args.calls.lock_timeout, "pinsync watch")?
    };
    let state = ws.settled_state()?;
    let options = WatchOptions {
        interval: args.interval,
        debounce: Duration::from_millis(300),
        apply: args.calls.apply_options(),
        http: args.calls.http(),
        status_file: args.status_file.clone(),
    };
    let runtime = calls_runtime()?;
    let lost = ws.lease_lost();
    runtime.block_on(async {
        ws.stop_on_signals(move |name| {
            log.event(
                Level::Info,
                "signal",
                "stopping: no new calls start; calls in flight finish; the state is saved",
                serde_json::json!({"signal": name}),
            );
        })?;
        if let Some(lost) = lost.clone() {
            tokio::spawn(async move {
                lost.cancelled().await;
                log.event(
                    Level::Error,
                    "lease",
                    "the state's lease was lost (taken over, or the database is out of reach): stopping",
                    serde_json::json!({}),
                );
            });
        }
        crate::watch::watch(&args.manifest.file, &ws, state, &options, log).await
    })?;
    if lost.is_some_and(|l| l.is_cancelled()) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A standby's waiting, said in the log and the status file.
struct StandbyLog<'a> {
    log: EventLog,
    args: &'a WatchArgs,
}

impl ops::Standby for StandbyLog<'_> {
    fn waiting(&self, holder: &str) -> anyhow::Result<()> {
        self.log.event(
            Level::Info,
            "lease",
            &format!("standby: {holder} holds the lease; this server takes over when it ends"),
            serde_json::json!({"held_by": holder}),
        );
        if let Some(path) = &self.args.status_file {
            let status = crate::watch::StandbyStatus {
                pid: std::process::id(),
                manifest: self.args.manifest.file.clone(),
                role: crate::watch::Role::Standby,
                held_by: holder.to_owned(),
                since: crate::state::now_rfc3339(),
            };
            crate::watch::status_file::write(path, &status)?;
        }
        Ok(())
    }

    fn unreachable(&self, error: &LockError, pause: Duration) {
        self.log.event(
            Level::Warn,
            "lease",
            &format!("{error}; trying again in {} s", pause.as_secs()),
            serde_json::json!({}),
        );
    }

    fn took_over(&self) {
        self.log.event(
            Level::Info,
            "lease",
            "active: this server took over the lease and applies",
            serde_json::json!({}),
        );
    }
}
