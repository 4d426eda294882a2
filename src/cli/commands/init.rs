//! `pinsync init`.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::args::InitArgs;
use crate::cli::{print, render};

pub(crate) fn init_command(args: &InitArgs) -> anyhow::Result<ExitCode> {
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
