//! `pinsync watch`: take the state's lock (or wait for its lease as a
//! standby) and keep applying until a signal.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::args::WatchArgs;
use crate::cli::calls_runtime;
use crate::metrics::Metrics;
use crate::ops;
use crate::state::LockError;
use crate::watch::{EventLog, Level, WatchOptions};

pub(crate) fn watch_command(args: &WatchArgs) -> anyhow::Result<ExitCode> {
    let log = EventLog::new(args.log_format);
    let location = args.state.location(&args.manifest.file)?;
    let mut http = args.calls.http();
    // Served from the start: a standby answers too, as such.
    let metrics = match args.listen {
        Some(addr) => Some(listen(args, addr, &mut http, log)?),
        None => None,
    };
    // On a shared state, a second server waits for the lease (standby)
    // rather than failing, and takes over once the holder's lease ends.
    let shared = location.is_postgres();
    let ws = ops::Workspace::new(&args.manifest.file, location.open()?);
    let ws = if shared {
        ws.lock_as_standby(
            "pinsync watch",
            &StandbyLog {
                log,
                args,
                metrics: metrics.as_deref(),
            },
        )?
    } else {
        ws.lock(args.calls.lock_timeout, "pinsync watch")?
    };
    let state = ws.store().load()?;
    let options = WatchOptions {
        interval: args.interval,
        debounce: Duration::from_millis(300),
        apply: args.calls.apply_options(),
        http,
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

/// Starts the metrics server on `addr` and counts `http`'s calls in it.
fn listen(
    args: &WatchArgs,
    addr: std::net::SocketAddr,
    http: &mut crate::provider::HttpSettings,
    log: EventLog,
) -> anyhow::Result<std::sync::Arc<Metrics>> {
    if !addr.ip().is_loopback() && !args.listen_non_loopback {
        anyhow::bail!(
            "--listen {addr} is not a loopback address: the endpoints have no authentication and the metrics name providers and targets; pass --listen-non-loopback to expose them on purpose"
        );
    }
    let metrics = Metrics::new(args.interval);
    let bound = crate::metrics::serve(addr, metrics.clone(), http.pacers.clone())?;
    log.event(
        Level::Info,
        "listen",
        &format!("serving /metrics, /healthz and /readyz on http://{bound}"),
        serde_json::json!({"address": bound.to_string()}),
    );
    http.metrics = Some(metrics.clone());
    Ok(metrics)
}

/// A standby's waiting, said in the log, the status file and the metrics.
struct StandbyLog<'a> {
    log: EventLog,
    args: &'a WatchArgs,
    metrics: Option<&'a Metrics>,
}

impl ops::Standby for StandbyLog<'_> {
    fn waiting(&self, holder: &str) -> anyhow::Result<()> {
        if let Some(metrics) = self.metrics {
            metrics.set_role(crate::watch::Role::Standby);
        }
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
        if let Some(metrics) = self.metrics {
            metrics.set_role(crate::watch::Role::Active);
        }
        self.log.event(
            Level::Info,
            "lease",
            "active: this server took over the lease and applies",
            serde_json::json!({}),
        );
    }
}
