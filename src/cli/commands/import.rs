//! `pinsync import`.

use std::process::ExitCode;

use crate::cli::args::ImportArgs;
use crate::cli::{calls_runtime, print, render};
use crate::ops;

pub(crate) fn import_command(args: &ImportArgs) -> anyhow::Result<ExitCode> {
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
