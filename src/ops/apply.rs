//! `pinsync apply`: the plan (from the manifest, after an optional
//! refresh, or a saved one), then its calls, then an optional wait for the
//! new pins to be pinned. The command asks for confirmation between
//! [`prepare`] and [`apply`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::apply::{self, ApplyOptions, Progress, Report};
use crate::plan::{self, Plan, PlanOptions, UnpinAllowance, saved_plan};
use crate::provider::{Connect, Providers};
use crate::refresh::RefreshReport;
use crate::state::State;
use crate::wait::{Awaited, Waited};

use super::{Refreshed, Workspace};

/// Where an apply's plan comes from.
pub(crate) enum PlanFrom<'a> {
    /// Made from the manifest and the state, after a refresh if asked.
    Manifest { refresh: bool, options: PlanOptions },
    /// Saved by `plan --out`: checked against the state it was made from.
    Saved(&'a Path),
}

/// An apply up to its calls.
pub(crate) struct Prepared {
    pub(crate) plan: Plan,
    /// What the refresh found, if one was made (and saved).
    pub(crate) refreshed: Option<RefreshReport>,
    /// The state the plan was made against.
    pub(crate) state: State,
    pub(crate) next: Next,
    /// The manifest's webhooks (none for a saved plan, which carries none).
    pub(crate) notify: Vec<crate::manifest::NotifyHook>,
}

/// What is left to do.
pub(crate) enum Next {
    /// Nothing: the state is in line with the plan.
    InSync,
    /// A safety guard refused the plan's unpins; each message says how to
    /// pass it. Nothing was connected.
    Refused(Vec<String>),
    /// The calls, on the providers connected for them.
    Calls(Providers),
}

/// Makes or loads the plan and connects what it calls.
pub(crate) async fn prepare(
    ws: &Workspace,
    from: PlanFrom<'_>,
    connect: &dyn Connect,
    retry: crate::retry::RetryPolicy,
    allowance: UnpinAllowance,
) -> anyhow::Result<Prepared> {
    let (plan, state, refreshed, notify) = match from {
        PlanFrom::Saved(path) => {
            let state = ws.store().load()?;
            let plan = saved_plan::load(path)?;
            saved_plan::check_current(&plan, &state, path)?;
            saved_plan::check_pins_against_state(&plan, &state, path)?;
            (plan, state, None, Vec::new())
        }
        PlanFrom::Manifest { refresh, options } => {
            let (m, mut state) = ws.load()?;
            let refreshed = if refresh {
                match super::refresh(ws, &m, &mut state, connect, retry, true).await? {
                    Refreshed::Report(report) => Some(report),
                    Refreshed::NothingRecorded => None,
                }
            } else {
                None
            };
            (plan::plan(&m, &state, options), state, refreshed, m.notify)
        }
    };
    let next = next(&plan, &state, allowance, connect)?;
    Ok(Prepared {
        plan,
        refreshed,
        state,
        next,
        notify,
    })
}

/// What is left to do for `plan` on `state` (as loaded, which `watch`
/// keeps between its runs): nothing, a refusal by a guard, or the calls,
/// on the providers connected for them.
pub(crate) fn next(
    plan: &Plan,
    state: &State,
    allowance: UnpinAllowance,
    connect: &dyn Connect,
) -> anyhow::Result<Next> {
    Ok(match apply::prepare(plan, state, allowance, connect)? {
        apply::Prepared::InSync => Next::InSync,
        apply::Prepared::Refused(refused) => Next::Refused(refused),
        apply::Prepared::Ready(providers) => Next::Calls(providers),
    })
}

/// What an apply did, and what its wait saw.
pub(crate) struct Applied {
    pub(crate) report: Report,
    pub(crate) waited: Option<Waited>,
    /// The state as recorded at the end.
    pub(crate) state: State,
}

impl Applied {
    /// Whether everything planned was done (and, after a wait, pinned).
    pub(crate) fn succeeded(&self) -> bool {
        self.report.succeeded()
            && self
                .waited
                .as_ref()
                .is_none_or(|w| w.failed.is_empty() && w.timed_out.is_empty())
    }
}

/// Makes `plan`'s calls on `state`, recording each as it lands; then, with
/// `wait`, waits up to that long for the pins it confirmed to be pinned,
/// and records what the providers said. Stops when the workspace does.
/// An [`apply::ApplyError`] carries what was done before it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply(
    ws: &Workspace,
    plan: &Plan,
    state: State,
    providers: &Providers,
    options: ApplyOptions,
    wait: Option<Duration>,
    progress: &Arc<dyn Progress>,
    on_wait_round: &dyn Fn(usize, usize, Duration),
) -> anyhow::Result<Applied> {
    let (report, mut state) = apply::apply(
        plan,
        providers,
        ws.store(),
        state,
        options,
        ws.stop(),
        progress,
    )
    .await?;
    let Some(timeout) = wait.filter(|_| !report.confirmed.is_empty() && !report.interrupted) else {
        return Ok(Applied {
            report,
            waited: None,
            state,
        });
    };
    let pins = Awaited::from_state(&state, &report.confirmed);
    let waited = crate::wait::wait(
        &pins,
        providers,
        timeout,
        ws.stop(),
        report.refusing(),
        on_wait_round,
    )
    .await;
    crate::wait::record(&mut state, &waited.seen);
    ws.save(&mut state)?;
    Ok(Applied {
        report,
        waited: Some(waited),
        state,
    })
}
