//! `pinsync refresh`.

use std::process::ExitCode;

use crate::cli::args::RefreshArgs;
use crate::cli::{calls_runtime, print, render};
use crate::ops;

pub(crate) fn refresh_command(args: &RefreshArgs) -> anyhow::Result<ExitCode> {
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
