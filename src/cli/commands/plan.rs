//! `pinsync plan`: the plan, rendered for people, machines or a pull request.

use std::process::ExitCode;

use crate::cli::args::{CallArgs, GUARD_REFUSED, PlanArgs, PlanFormat};
use crate::cli::{calls_runtime, exit_without_freeing, print, render, stdout_palette};
use crate::ops;
use crate::plan;
use crate::plan::saved_plan;

pub(crate) fn plan_command(args: &PlanArgs) -> anyhow::Result<ExitCode> {
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
