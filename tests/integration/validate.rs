//! `pinsync validate`, the real binary, on bad and good manifests.
//!
//! - Every `NAME.yaml` of `tests/corpus/manifests/` (and 10,000-deep
//!   manifests generated here) must exit 1 and print, for each line
//!   `LINE:COL: fragment` of `NAME.expected`, a line
//!   `…/NAME.yaml:LINE:COL: …fragment…` to stderr, then
//!   `N problems found.` with N the number of expected lines; no panic, no
//!   stack overflow, no raw control character in the output, and done
//!   within 20 s (a guard against hangs).
//! - The repository's `pins.yaml` is valid (exit 0), run from a scratch copy
//!   so no file appears in the repository.
//! - Every run has an empty environment apart from `PATH`: validating needs
//!   no credentials.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `pinsync validate ARGS` in `dir`, with no environment but `PATH`.
fn validate(dir: &Path, args: &[&OsStr]) -> Outcome {
    let out = tempfile::tempdir().expect("temp dir");
    let stdout_path = out.path().join("stdout");
    let stderr_path = out.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinsync"))
        .arg("validate")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("stdout file"))
        .stderr(File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn pinsync");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for pinsync") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pinsync validate {args:?} still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).expect("read output")).into_owned();
    Outcome {
        status,
        stdout: read(&stdout_path),
        stderr: read(&stderr_path),
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/manifests")
}

/// Runs validate on `file` and returns what is wrong with the outcome.
fn check_refused(file: &Path, expected: &[String]) -> Vec<String> {
    let scratch = tempfile::tempdir().expect("temp dir");
    let out = validate(scratch.path(), &["-f".as_ref(), file.as_os_str()]);
    let name = file.file_name().unwrap().to_string_lossy();
    let mut wrong = Vec::new();
    if out.status.code() != Some(1) {
        wrong.push(format!("{name}: exit {:?}, expected 1", out.status));
    }
    // Names from the manifest are escaped: no terminal escape sequences.
    if let Some(c) = out.stderr.chars().find(|&c| c.is_control() && c != '\n') {
        wrong.push(format!("{name}: stderr holds the control character {c:?}"));
    }
    for crash in ["panicked", "overflowed its stack"] {
        if out.stderr.contains(crash) {
            wrong.push(format!("{name}: stderr says {crash:?}"));
        }
    }
    for line in expected {
        let (at, fragment) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("{name}.expected: {line:?} is not `LINE:COL: fragment`"));
        let prefix = format!("{}:{at}: ", file.display());
        let found = out
            .stderr
            .lines()
            .any(|l| l.starts_with(&prefix) && l[prefix.len()..].contains(fragment));
        if !found {
            wrong.push(format!("{name}: no line `{prefix}…{fragment}…`"));
        }
    }
    let n = expected.len();
    let summary = format!("{n} problem{} found.", if n == 1 { "" } else { "s" });
    if out.stderr.lines().last() != Some(summary.as_str()) {
        wrong.push(format!("{name}: last line is not {summary:?}"));
    }
    if !out.stdout.is_empty() {
        wrong.push(format!("{name}: stdout is not empty"));
    }
    if !wrong.is_empty() {
        wrong.push(format!("{name}: stderr was:\n{}", out.stderr));
    }
    wrong
}

#[test]
fn every_corpus_manifest_is_refused_with_each_problem_at_its_place() {
    let mut cases: Vec<PathBuf> = fs::read_dir(corpus_dir())
        .expect("read the corpus")
        .map(|e| e.expect("corpus entry").path())
        .collect();
    cases.sort();
    let yamls: Vec<&PathBuf> = cases
        .iter()
        .filter(|p| p.extension() == Some("yaml".as_ref()))
        .collect();
    assert!(yamls.len() >= 25, "only {} corpus cases", yamls.len());
    // No stray file: every NAME.expected has its NAME.yaml and back.
    for p in &cases {
        let twin = match p.extension().and_then(OsStr::to_str) {
            Some("yaml") => p.with_extension("expected"),
            Some("expected") => p.with_extension("yaml"),
            _ => panic!("unexpected corpus file {}", p.display()),
        };
        assert!(twin.exists(), "{} has no {}", p.display(), twin.display());
    }

    let mut wrong = Vec::new();
    for yaml in yamls {
        let expected: Vec<String> = fs::read_to_string(yaml.with_extension("expected"))
            .expect("read .expected")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        assert!(!expected.is_empty(), "{}: nothing expected", yaml.display());
        wrong.extend(check_refused(yaml, &expected));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Manifests nested 10,000 levels deep (7,000 for the indented mapping,
/// which grows as depth² and must stay under the 32 MiB size limit), each
/// with where the 65th level opens. Without a depth check the YAML loader
/// overflowed the stack (and the process aborted) from about 2,700 levels.
fn deep_manifests() -> Vec<(&'static str, String, &'static str)> {
    const DEPTH: usize = 10_000;
    const INDENTED_DEPTH: usize = 7_000;
    let head = "version: 1\nproviders: {}\npins:";
    let mut block_mapping = head.to_string();
    for i in 0..INDENTED_DEPTH {
        block_mapping.push('\n');
        block_mapping.push_str(&" ".repeat(i + 1));
        block_mapping.push_str("k:");
    }
    block_mapping.push_str(" v\n");
    vec![
        ("deep-block-mapping", block_mapping, "67:65"),
        (
            "deep-block-list",
            format!("{head}\n{}v\n", "- ".repeat(DEPTH)),
            "4:129",
        ),
        (
            "deep-flow-list",
            format!("{head} {}{}\n", "[".repeat(DEPTH), "]".repeat(DEPTH)),
            "3:70",
        ),
        (
            "deep-flow-mapping",
            format!("{head} {}1{}\n", "{a: ".repeat(DEPTH), "}".repeat(DEPTH)),
            "3:259",
        ),
    ]
}

#[test]
fn deep_nesting_is_refused_without_a_crash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wrong = Vec::new();
    for (name, text, at) in deep_manifests() {
        let file = dir.path().join(format!("{name}.yaml"));
        fs::write(&file, text).expect("write deep manifest");
        let expected = [format!("{at}: nested more than 64 levels deep")];
        wrong.extend(check_refused(&file, &expected));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_repository_pins_yaml_is_valid_without_credentials() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("pins.yaml");
    fs::copy(&source, dir.path().join("pins.yaml")).expect("copy pins.yaml");
    // The manifest names ${AIOZ_PINNING_API_KEY} and others; none is set.
    let runs: [&[&OsStr]; 2] = [&[], &["-f".as_ref(), "pins.yaml".as_ref()]];
    for args in runs {
        let out = validate(dir.path(), args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "validate {args:?}: {}{}",
            out.stdout,
            out.stderr
        );
        assert_eq!(
            out.stdout, "pins.yaml: valid (2 providers, 3 pin targets)\n",
            "validate {args:?}"
        );
        assert_eq!(out.stderr, "", "validate {args:?}");
    }
    // Validating writes nothing: no state file, no lock.
    let files: Vec<_> = fs::read_dir(dir.path())
        .expect("read temp dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(files, ["pins.yaml"]);
}

#[test]
fn a_missing_manifest_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = validate(dir.path(), &["-f".as_ref(), "nowhere.yaml".as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("nowhere.yaml"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn the_corpus_duplicate_is_really_the_same_content() {
    // The v0/v1 duplicate case is only a duplicate if the pair is real.
    let text = fs::read_to_string(corpus_dir().join("duplicate-cid-v0-and-v1.yaml"))
        .expect("read corpus case");
    let v0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
    let v1 = cid::Cid::try_from(v0)
        .and_then(|c| c.into_v1())
        .expect("v0 to v1")
        .to_string();
    assert!(text.contains(v0) && text.contains(&v1), "{text}");
}

#[test]
fn literal_credentials_are_refused_without_being_echoed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = corpus_dir().join("literal-credentials.yaml");
    let text = fs::read_to_string(&file).expect("read corpus case");
    let out = validate(dir.path(), &["-f".as_ref(), file.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    for key in ["6f1c0a9e-live-key", "s3cr3t"] {
        assert!(text.contains(key), "the case holds {key}");
        assert!(!out.stderr.contains(key), "{key} echoed:\n{}", out.stderr);
    }
}

#[test]
fn a_50_mb_manifest_is_refused_at_once_without_reading_it_as_yaml() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let file = scratch.path().join("huge.yaml");
    // Valid-looking YAML, so only the size limit can stop it.
    let pin = "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi\n    name: x\n";
    let mut text = String::from("version: 1\nproviders: {}\npins:\n");
    while text.len() < 50 * 1024 * 1024 {
        text.push_str(pin);
    }
    fs::write(&file, &text).unwrap();
    let started = Instant::now();
    let wrong = check_refused(&file, &["1:1: the limit is 32 MiB".to_string()]);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused without parsing"
    );
}

/// The size is checked before reading: a sparse 50 GB file is refused from
/// its metadata, and a file with no size (`/dev/zero`) is read only up to
/// the limit. Reading either whole would take minutes and 50 GB of memory.
#[test]
fn an_endless_or_enormous_manifest_is_refused_without_reading_it() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let sparse = scratch.path().join("sparse.yaml");
    File::create(&sparse)
        .and_then(|f| f.set_len(50 * 1024 * 1024 * 1024))
        .unwrap();
    for file in [sparse.as_path(), Path::new("/dev/zero")] {
        let started = Instant::now();
        let out = validate(scratch.path(), &["-f".as_ref(), file.as_os_str()]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {}",
            file.display(),
            out.stderr
        );
        assert!(
            out.stderr
                .contains(&format!("{}:1:1: manifest is", file.display()))
                && out.stderr.contains("the limit is 32 MiB"),
            "{}: {}",
            file.display(),
            out.stderr
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}: refused without reading it all",
            file.display()
        );
    }
}
