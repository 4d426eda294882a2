//! Fuzzes the saved-plan reader (`pinsync apply PLAN`) with arbitrary bytes.
//!
//! Whatever the input, `decode` must return without a panic; a plan it
//! accepts must render, and connect (with stand-in credentials, no call
//! made) without a panic: the checks on load are what stand between an
//! edited plan and the code that sends keys.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(plan) = pinsync::plan::saved_plan::decode(data) {
        let _ = pinsync::cli::render::plan(&plan, pinsync::cli::render::Palette::plain());
        let _ = pinsync::apply::connect_for(&plan, |_| Some("stand-in-key".into()));
    }
});
