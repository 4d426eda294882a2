//! The parse floor for `bench/run`: reads manifests and parses each into a
//! generic `serde_yaml::Value`, one after another, and does nothing else.
//! `pinsync plan` cannot be faster than this, so the benchmark reports
//! plan's time as a multiple of it.
//!
//! Usage: `parse_floor MANIFEST...` (a manifest and the files it includes)

use std::process::ExitCode;

// The same allocator as pinsync, so the ratio compares the work done.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let paths: Vec<_> = std::env::args_os().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: parse_floor MANIFEST...");
        return ExitCode::FAILURE;
    }
    for path in paths {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("parse_floor: read {}: {e}", path.to_string_lossy());
                return ExitCode::FAILURE;
            }
        };
        match serde_yaml::from_slice::<serde_yaml::Value>(&bytes) {
            // Keep each tree alive until here so its construction is
            // measured in full, and drop it as plan drops its own.
            Ok(value) => drop(std::hint::black_box(value)),
            Err(e) => {
                eprintln!("parse_floor: {}: {e}", path.to_string_lossy());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
