//! A deterministic fuzz run that `cargo test` can afford: random mutations of
//! good and bad manifests through `parse`, which must never panic, and must
//! either validate or say where the problem is. The long, coverage-guided
//! run is `cargo fuzz run manifest` (see fuzz/).

use std::path::Path;

use super::parse;

fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = vec![std::fs::read(root.join("pins.yaml")).unwrap()];
    seeds.push(std::fs::read(root.join("examples/pins.emulator.yaml")).unwrap());
    let corpus = root.join("tests/corpus/manifests");
    let mut files: Vec<_> = std::fs::read_dir(corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    seeds.extend(files.iter().map(|p| std::fs::read(p).unwrap()));
    seeds
}

/// Bytes that YAML and the validator give meaning to.
const INTERESTING: &[&[u8]] = &[
    b":", b"-", b" ", b"\n", b"  ", b"[", b"]", b"{", b"}", b",", b"&a", b"*a", b"!!str", b"\"",
    b"'", b"#", b"---\n", b"${", b"}", b"/", b"Qm", b"bafy", b"\t", b"\0", b"\xff", b"\xc3", b"~",
    b"null", b"true",
];

fn mutate(rng: &mut fastrand::Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(0..=out.len());
        match rng.u8(0..6) {
            0 if !out.is_empty() => {
                let end = (at + rng.usize(1..16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            1 => {
                let piece = INTERESTING[rng.usize(0..INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 if !out.is_empty() => {
                let i = rng.usize(0..out.len());
                out[i] = rng.u8(..);
            }
            3 if !out.is_empty() => {
                // Duplicate a line somewhere else.
                let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
                let line = lines[rng.usize(0..lines.len())].to_vec();
                out.splice(at..at, line.into_iter().chain([b'\n']));
            }
            4 if !out.is_empty() => {
                let i = rng.usize(0..out.len());
                out[i] ^= 1 << rng.u8(0..8);
            }
            _ => out.truncate(at),
        }
    }
    out
}

#[test]
fn mutated_manifests_never_panic_and_errors_have_positions() {
    let seeds = seeds();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let file = Path::new("m.yaml");
    let mut valid = 0;
    for round in 0..20_000 {
        let input = mutate(&mut rng, &seeds[round % seeds.len()]);
        // YAML breaks lines at \n, \r\n and a lone \r.
        let lines = input.split(|&b| b == b'\n' || b == b'\r').count();
        let outcome = std::panic::catch_unwind(|| parse(file, &input));
        let Ok(result) = outcome else {
            panic!(
                "parse panicked on round {round}: {:?}",
                String::from_utf8_lossy(&input)
            );
        };
        match result {
            Ok(m) => {
                valid += 1;
                assert!(
                    m.pins
                        .iter()
                        .all(|(k, _)| k.cid.to_string().starts_with('b')),
                    "canonical CIDs are base32 v1"
                );
            }
            Err(d) => {
                assert!(!d.0.is_empty());
                for p in &d.0 {
                    assert!(
                        p.position.line >= 1
                            && p.position.line <= lines + 1
                            && p.position.column >= 1,
                        "round {round}: {p} in {:?}",
                        String::from_utf8_lossy(&input)
                    );
                }
            }
        }
    }
    assert!(
        valid > 100,
        "mutations should leave some manifests valid ({valid})"
    );
}
