//! `pinsync apply`: parse, prepare, ask, apply, render.

use std::io::IsTerminal as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;

use crate::apply;
use crate::apply::ApplyOptions;
use crate::cli::args::{ApplyArgs, GUARD_REFUSED};
use crate::cli::progress::ApplyProgress;
use crate::cli::{calls_runtime, confirm, exit_without_freeing, print, render, stdout_palette};
use crate::notify::{Notice, Notifier};
use crate::ops;

/// How long an apply waits for its webhooks' calls before it exits.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(30);

/// The manifest's webhooks, each failed call said on stderr.
fn notifier(
    hooks: &[crate::manifest::NotifyHook],
    manifest: &std::path::Path,
) -> anyhow::Result<Option<Notifier>> {
    if hooks.is_empty() {
        return Ok(None);
    }
    let report: crate::notify::Report = Arc::new(|delivery| {
        if let Some(why) = &delivery.failed {
            let _ = writeln!(
                std::io::stderr(),
                "warning: webhook {} was not told of {}: {why}",
                delivery.hook,
                delivery.event.as_str()
            );
        }
    });
    Notifier::new(hooks, manifest, |var| std::env::var(var).ok(), report).map(Some)
}

pub(crate) fn apply_command(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
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
    // Webhooks are ready (their variables set) before any call.
    let notifier = notifier(&prepared.notify, &args.manifest.file)?;
    let notify = |notices: &[Notice]| {
        if let Some(n) = &notifier {
            runtime.block_on(async {
                for notice in notices {
                    n.notify(notice);
                }
                let left = n.settle(SETTLE).await;
                if left > 0 {
                    let _ = writeln!(
                        std::io::stderr(),
                        "warning: {left} webhook call{} still unanswered after {} s; not waited for",
                        if left == 1 { " is" } else { "s are" },
                        SETTLE.as_secs()
                    );
                }
            });
        }
    };
    let drift = plan.summary.repin;
    let drift = (drift > 0).then(|| Notice::drift(drift));
    let state = prepared.state;
    let providers = match prepared.next {
        ops::Next::InSync => {
            notify(drift.as_slice());
            return Ok(ExitCode::SUCCESS);
        }
        ops::Next::Refused(refused) => {
            print(&render::guards(&refused, palette))?;
            print("Nothing was changed.\n")?;
            let mut notices: Vec<Notice> = drift.into_iter().collect();
            notices.push(Notice::blocked(&refused));
            notify(&notices);
            return Ok(ExitCode::from(GUARD_REFUSED));
        }
        ops::Next::Calls(providers) => providers,
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
        ws.stop_on_signals(|_| {
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
    let mut notices: Vec<Notice> = drift.into_iter().collect();
    match &applied {
        // An interrupted apply (a signal, a lost lease) is no failure to
        // report: the next one carries on.
        Ok(applied) if !applied.succeeded() && !applied.report.interrupted => {
            let unsettled = applied
                .waited
                .as_ref()
                .map_or(0, |w| w.failed.len() + w.timed_out.len());
            notices.push(Notice::apply_failed(
                applied.report.pending() + unsettled,
                None,
            ));
        }
        Ok(_) => {}
        Err(e) => notices.push(Notice::apply_failed(0, Some(&format!("{e:#}")))),
    }
    notify(&notices);
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
