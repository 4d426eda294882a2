//! Fuzzes the manifest parser and validator with arbitrary bytes.
//!
//! Whatever the input, `parse` must return (no panic, no hang, bounded
//! memory); an error must carry at least one diagnostic with a real position;
//! a manifest that parses must plan without panicking, one change per pin.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match pinsync::manifest::parse(Path::new("fuzz.yaml"), data) {
        Ok(manifest) => {
            let plan = pinsync::plan::plan(&manifest, &pinsync::state::State::new(), Default::default());
            assert_eq!(plan.change_count(), manifest.pin_count());
        }
        Err(diagnostics) => {
            assert!(!diagnostics.0.is_empty());
            // YAML breaks lines at \n, \r\n and a lone \r.
            let lines = data.split(|&b| b == b'\n' || b == b'\r').count();
            // Problems of a file the input includes are at places in that file.
            for d in diagnostics.0.iter().filter(|d| d.file == Path::new("fuzz.yaml")) {
                assert!(d.position.line >= 1 && d.position.line <= lines + 1, "{d}");
                assert!(d.position.column >= 1, "{d}");
            }
        }
    }
});
