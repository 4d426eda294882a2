//! `pinsync validate`.

use std::process::ExitCode;

use crate::cli::args::ValidateArgs;
use crate::cli::{exit_without_freeing, print};
use crate::manifest;

pub(crate) fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let m = manifest::load(&args.manifest.file)?;
    let included = match m.included.len() {
        0 => String::new(),
        1 => ", 1 included file".to_owned(),
        n => format!(", {n} included files"),
    };
    print(&format!(
        "{}: valid ({} provider{}, {} pin target{}{included})\n",
        m.path.display(),
        m.providers.len(),
        if m.providers.len() == 1 { "" } else { "s" },
        m.pins.len(),
        if m.pins.len() == 1 { "" } else { "s" }
    ))?;
    exit_without_freeing(m);
    Ok(ExitCode::SUCCESS)
}
