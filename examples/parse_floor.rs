//! The parse floor for `bench/run`: reads a manifest and parses it into a
//! generic `serde_yaml::Value`, and does nothing else. `pinsync plan` cannot
//! be faster than this, so the benchmark reports plan's time as a multiple
//! of it.
//!
//! Usage: `parse_floor MANIFEST`

use std::process::ExitCode;

// The same allocator as pinsync, so the ratio compares the work done.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: parse_floor MANIFEST");
        return ExitCode::FAILURE;
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("parse_floor: read {}: {e}", path.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    match serde_yaml::from_slice::<serde_yaml::Value>(&bytes) {
        Ok(value) => {
            // Keep the tree alive until here so its construction is measured
            // in full, and drop it as plan drops its own.
            std::hint::black_box(&value);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("parse_floor: {}: {e}", path.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
