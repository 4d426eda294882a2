//! Test harness: the emulator as a child process, a scratch project
//! directory, and the real `pinsync` binary run in it.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Distinctive credentials: tests scan every output and file for them.
pub const AIOZ_KEY: &str = "aiozKEY-0f9e8d7c-SECRET";
pub const AIOZ_SECRET: &str = "aiozSECRET-1a2b3c4d-SECRET";
pub const ARKIVE_KEY: &str = "arkiveKEY-5e6f7a8b-SECRET";
/// The Pinning Service token, for the emulator's `/psa` and the npm mock.
pub const PSA_TOKEN: &str = "psaTOKEN-7c6b5a49-SECRET";
/// The password of role `pinsync` in a [`Postgres`] cluster (never in its URLs).
pub const PG_PASSWORD: &str = "pgPASS-3e4f5a6b-SECRET";
/// The password of a [`Postgres`] cluster's superuser `postgres`.
pub const PG_SUPERUSER_PASSWORD: &str = "pgSUPER-8a9b0c1d-SECRET";
pub const ALL_SECRETS: [&str; 6] = [
    AIOZ_KEY,
    AIOZ_SECRET,
    ARKIVE_KEY,
    PSA_TOKEN,
    PG_PASSWORD,
    PG_SUPERUSER_PASSWORD,
];

/// The credentials of the emulator's three services, and the variables a
/// [`Project`] passes them to pinsync in.
pub struct Keys {
    pub aioz_key: &'static str,
    pub aioz_secret: &'static str,
    pub arkive_key: &'static str,
    pub psa_token: &'static str,
}

impl Keys {
    pub const DEFAULT: Keys = Keys {
        aioz_key: AIOZ_KEY,
        aioz_secret: AIOZ_SECRET,
        arkive_key: ARKIVE_KEY,
        psa_token: PSA_TOKEN,
    };

    pub fn all(&self) -> [&'static str; 4] {
        [
            self.aioz_key,
            self.aioz_secret,
            self.arkive_key,
            self.psa_token,
        ]
    }

    pub fn env(&self) -> [(&'static str, &'static str); 4] {
        [
            ("AIOZ_PINNING_API_KEY", self.aioz_key),
            ("AIOZ_PINNING_SECRET_KEY", self.aioz_secret),
            ("PINARKIVE_API_KEY", self.arkive_key),
            ("PSA_TOKEN", self.psa_token),
        ]
    }
}

/// Real CIDs (CIDv0 and CIDv1 of different content).
pub const CID_A: &str = "Qmc1135ziMvmFG534i75E8HpJoLqzLzgKBxfjBV9cBsMAs";
pub const CID_B: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
pub const CID_C: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";

pub fn pinsync_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pinsync"))
}

fn emulator_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    let bin = pinsync_bin()
        .parent()
        .unwrap()
        .join("examples")
        .join("emulator");
    BUILD.call_once(|| {
        // `cargo test` builds examples; `cargo test --test integration` does not.
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--example", "emulator", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --example emulator");
        assert!(status.success(), "building the emulator failed");
    });
    assert!(bin.exists(), "emulator not found at {}", bin.display());
    bin
}

/// A running emulator on a free port of 127.0.0.1, killed on drop.
pub struct Emulator {
    child: Child,
    pub url: String,
}

impl Emulator {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Self {
        Self::start_with_keys(&Keys::DEFAULT, args)
    }

    /// An emulator that takes `keys` rather than the distinctive defaults.
    pub fn start_with_keys(keys: &Keys, args: &[&str]) -> Self {
        let mut child = Command::new(emulator_bin())
            .args(["--listen", "127.0.0.1:0"])
            .args(["--aioz-api-key", keys.aioz_key])
            .args(["--aioz-secret-key", keys.aioz_secret])
            .args(["--pinarkive-api-key", keys.arkive_key])
            .args(["--psa-token", keys.psa_token])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read emulator banner");
        let url = line
            .trim()
            .strip_prefix("emulator listening on ")
            .unwrap_or_else(|| panic!("unexpected emulator banner {line:?}"))
            .to_owned();
        Self { child, url }
    }

    fn get(&self, path: &str) -> Value {
        ureq::get(&format!("{}{path}", self.url))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .into_json()
            .unwrap()
    }

    /// Every pin the emulator holds.
    pub fn pins(&self) -> Vec<Value> {
        self.get("/_emulator/pins").as_array().unwrap().clone()
    }

    /// The pins one provider (`aioz`, `pinata`, ...) holds.
    pub fn pins_of(&self, provider: &str) -> Vec<Value> {
        self.pins()
            .into_iter()
            .filter(|p| p["provider"] == provider)
            .collect()
    }

    /// Changes a pin behind pinsync's back (`/_emulator/pins/status`):
    /// `{provider, cid, status}` or `{provider, cid, lost: true}`.
    pub fn change_pin(&self, change: Value) {
        self.post("/_emulator/pins/status", change);
    }

    /// Every provider request received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.get("/_emulator/requests").as_array().unwrap().clone()
    }

    /// Provider pin calls received (POSTs to either pin endpoint).
    pub fn pin_calls(&self) -> u64 {
        self.get("/_emulator/stats")["pin_calls"].as_u64().unwrap()
    }

    /// Replaces the fault configuration.
    pub fn faults(&self, config: Value) {
        self.post("/_emulator/faults", config);
    }

    /// Counters: requests, pin calls, pins held, refusals by the limits.
    pub fn stats(&self) -> Value {
        self.get("/_emulator/stats")
    }

    /// Replaces the rate limits the emulator enforces.
    pub fn limits(&self, limits: Value) {
        self.post("/_emulator/limits", limits);
    }

    /// Replaces the Pinning Service traps (`/psa`).
    pub fn psa_traps(&self, traps: Value) {
        self.post("/_emulator/psa", traps);
    }

    /// Makes Pinning Service requests by hand (a list of `{cid, name,
    /// meta}`, or `{"count": N}`); their request ids.
    pub fn psa_add_by_hand(&self, requests: Value) -> Vec<String> {
        let answer = self.post("/_emulator/psa/requests", requests);
        serde_json::from_value(answer["requestids"].clone()).unwrap()
    }

    /// Pinning Service requests held, as the control API shows pins.
    pub fn psa_requests(&self) -> Vec<Value> {
        self.pins()
            .into_iter()
            .filter(|p| p["provider"] == "psa")
            .collect()
    }

    fn post(&self, path: &str, body: Value) -> Value {
        ureq::post(&format!("{}{path}", self.url))
            .send_json(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
            .into_json()
            .unwrap()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch project: a temp dir holding `pins.yaml` and its state.
pub struct Project {
    pub dir: tempfile::TempDir,
    /// A PostgreSQL state (given to pinsync as `PINSYNC_STATE`, with the
    /// password in `PGPASSWORD`); `None`: the state file beside the manifest.
    pub state_url: Option<String>,
}

impl Project {
    /// A project whose providers point at `emu`, with these pins (YAML
    /// list items, indented by two spaces).
    pub fn new(emu: &Emulator, pins: &str) -> Self {
        Self::with_state(emu, pins, None)
    }

    /// A project whose state is `state_url` (PostgreSQL), or the file.
    pub fn with_state(emu: &Emulator, pins: &str, state_url: Option<String>) -> Self {
        let p = Self {
            dir: tempfile::tempdir().unwrap(),
            state_url,
        };
        p.write_manifest(emu, pins);
        p
    }

    pub fn write_manifest(&self, emu: &Emulator, pins: &str) {
        let text = format!(
            "version: 1
providers:
  aioz:
    type: aioz
    api_key: ${{AIOZ_PINNING_API_KEY}}
    secret_key: ${{AIOZ_PINNING_SECRET_KEY}}
    base_url: {url}
    rate_limit: none
  arkive:
    type: pinarkive
    api_key: ${{PINARKIVE_API_KEY}}
    base_url: {url}/
    rate_limit: none
  psa:
    type: pinning-service
    token: ${{PSA_TOKEN}}
    base_url: {url}/psa
defaults:
  to: [aioz]
pins:
{pins}",
            url = emu.url
        );
        std::fs::write(self.manifest(), text).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn manifest(&self) -> PathBuf {
        self.path("pins.yaml")
    }

    pub fn state_path(&self) -> PathBuf {
        self.path("pins.state.json")
    }

    /// The state file, parsed: for tests of the file itself. A test that
    /// runs on either store reads the state with [`Project::listed_state`].
    pub fn state(&self) -> Value {
        assert!(
            self.state_url.is_none(),
            "this project's state is in PostgreSQL, not in a file: use listed_state()"
        );
        serde_json::from_slice(&std::fs::read(self.state_path()).unwrap()).unwrap()
    }

    /// The state as `pinsync state list --json` shows it, from whichever
    /// store the project uses: `{lineage, serial, pins}`, each pin shaped as
    /// in the state file; or why not. On PostgreSQL, a state file beside
    /// the manifest is an error too: the state went to the wrong store.
    pub fn listed_state(&self) -> Result<Value, String> {
        let run = self.run(&["state", "list", "--json"]);
        if run.code != 0 {
            return Err(format!("state list --json failed: {run:?}"));
        }
        if self.state_url.is_some() && self.state_path().exists() {
            return Err(format!(
                "the state is meant to be in PostgreSQL, yet {} was written",
                self.state_path().display()
            ));
        }
        let doc: Value = serde_json::from_str(&run.stdout)
            .map_err(|e| format!("state list --json is not JSON ({e}): {run:?}"))?;
        if !doc["pins"].is_array() {
            return Err(format!("state list --json has no pins array: {run:?}"));
        }
        Ok(doc)
    }

    /// The pins [`Project::listed_state`] shows, which must be readable.
    pub fn listed_pins(&self) -> Vec<Value> {
        let doc = self.listed_state().unwrap_or_else(|why| panic!("{why}"));
        doc["pins"].as_array().unwrap().clone()
    }

    /// `pinsync ARGS` in the project dir with credentials set, no terminal.
    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args).run()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(pinsync_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(Keys::DEFAULT.env())
            .stdin(Stdio::null());
        if let Some(url) = &self.state_url {
            cmd.env("PINSYNC_STATE", url).env("PGPASSWORD", PG_PASSWORD);
        }
        cmd
    }

    /// Every file in the project, as text, for secret scans.
    pub fn all_files(&self) -> Vec<(PathBuf, String)> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                (p, text)
            })
            .collect()
    }
}

/// The outcome of one run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub trait RunExt {
    fn run(&mut self) -> Run;
}

impl RunExt for Command {
    fn run(&mut self) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = self.output().expect("run pinsync");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// Polls `check` until it is true or `deadline` passes.
pub fn wait_until(deadline: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !check() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Sends a signal (`libc::SIGINT`, `libc::SIGTERM`, ...) to a child process.
pub fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a pid we spawned and a valid signal number.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

/// A pin line for a manifest.
pub fn pin(cid: &str, name: &str, to: &[&str]) -> String {
    if to.is_empty() {
        format!("  - cid: {cid}\n    name: {name}\n")
    } else {
        format!(
            "  - cid: {cid}\n    name: {name}\n    to: [{}]\n",
            to.join(", ")
        )
    }
}

/// Pin lines for `n` distinct CIDs named `p0`, `p1`, ..., each on `to`.
pub fn many_pins(n: usize, to: &[&str]) -> String {
    many_cids(n)
        .iter()
        .enumerate()
        .map(|(i, c)| pin(c, &format!("p{i}"), to))
        .collect()
}

/// A large state in sync, for tests of what an apply on top of it writes:
/// `n` pins on the `psa` provider (which no such test calls). Its manifest
/// lines, and the state file's bytes (`lineage` "base", serial 1), with
/// the last `journaled` of its pins in a journal instead (its bytes).
pub struct InSyncBase {
    /// How many pins.
    pub len: usize,
    pub pins: String,
    pub state: Vec<u8>,
    pub journal: Vec<u8>,
}

impl InSyncBase {
    pub fn new(n: usize, journaled: usize) -> Self {
        let cids = many_cids(n);
        let pins = cids
            .iter()
            .enumerate()
            .map(|(i, c)| pin(c, &format!("b{i}"), &["psa"]))
            .collect();
        let record = |i: usize, c: &String| {
            serde_json::json!({"provider": "psa", "cid": c, "name": format!("b{i}"),
                "pin_id": format!("r{i}"), "pinned_at": "2026-01-01T00:00:00Z"})
        };
        let (in_file, in_journal) = cids.split_at(n - journaled);
        let records: Vec<serde_json::Value> = in_file
            .iter()
            .enumerate()
            .map(|(i, c)| record(i, c))
            .collect();
        let state = serde_json::to_vec(&serde_json::json!({
            "format_version": 4, "lineage": "base", "serial": 1, "pins": records,
        }))
        .unwrap();
        let journal = if journaled == 0 {
            Vec::new()
        } else {
            let batch: Vec<serde_json::Value> = in_journal
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut r = record(n - journaled + i, c);
                    r["status"] = "managed".into();
                    r
                })
                .collect();
            format!(
                "{}\n{}\n",
                serde_json::json!({"journal_for_lineage": "base"}),
                serde_json::json!({"serial": 2, "pins": batch})
            )
            .into_bytes()
        };
        Self {
            len: n,
            pins,
            state,
            journal,
        }
    }

    /// Puts the state (and its journal, if any) in place for `p`.
    pub fn write(&self, p: &Project) {
        std::fs::write(p.state_path(), &self.state).unwrap();
        let journal = p.path("pins.state.json.journal");
        if self.journal.is_empty() {
            let _ = std::fs::remove_file(journal);
        } else {
            std::fs::write(journal, &self.journal).unwrap();
        }
    }
}

/// `n` distinct valid CIDv1s (raw codec, identity-free sha2-256 digests).
pub fn many_cids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let digest = {
                // Any 32 bytes make a valid sha2-256 multihash for pinning tests.
                let mut d = [0u8; 32];
                d[..8].copy_from_slice(&(i as u64).to_be_bytes());
                d[31] = 0x5a;
                d
            };
            let mh = cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
            cid::Cid::new_v1(0x55, mh).to_string()
        })
        .collect()
}

/// The `Authorization` value Basic auth sends for `user` and `password`.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {pair}")
}

pub fn assert_no_secret(what: &str, text: &str) {
    for s in ALL_SECRETS {
        assert!(!text.contains(s), "secret {s} leaked into {what}:\n{text}");
    }
}

/// A project whose one provider (`block`, its lines under `providers:`,
/// naming it `target`) needs one key from the environment: every run sets
/// it, and fails the test if the key shows in the output.
pub struct OneProvider {
    pub project: Project,
    target: &'static str,
    var: &'static str,
    key: &'static str,
}

impl OneProvider {
    pub fn new(target: &'static str, var: &'static str, key: &'static str) -> Self {
        Self {
            project: Project {
                dir: tempfile::tempdir().unwrap(),
                state_url: None,
            },
            target,
            var,
            key,
        }
    }

    /// Writes the manifest: `identity: site`, the provider, the pins.
    pub fn write(&self, block: &str, pins: &str) {
        let pins = if pins.is_empty() { "  []\n" } else { pins };
        let text = format!(
            "version: 1\nidentity: site\nproviders:\n{block}defaults:\n  to: [{}]\npins:\n{pins}",
            self.target
        );
        std::fs::write(self.project.manifest(), text).unwrap();
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let run = self.project.command(args).env(self.var, self.key).run();
        assert!(
            !run.stdout.contains(self.key) && !run.stderr.contains(self.key),
            "key in output: {run:?}"
        );
        run
    }
}

/// The requests the emulator logged for `provider` (`pinata`, `quicknode`, ...).
pub fn requests_to(emu: &Emulator, provider: &str) -> Vec<Value> {
    emu.requests()
        .into_iter()
        .filter(|r| r["provider"] == provider)
        .collect()
}

/// A logged request as `METHOD /path?query`.
pub fn call_line(request: &Value) -> String {
    format!(
        "{} {}",
        request["method"].as_str().unwrap(),
        request["path"].as_str().unwrap()
    )
}

pub fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A `pinsync watch` child whose stdout lines are collected as they come.
pub struct Background {
    pub child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pinsync");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let readers = [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ]
        .into_iter()
        .map(|stream| {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            })
        })
        .collect();
        Self {
            child,
            lines,
            readers,
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn output(&self) -> String {
        self.lines().join("\n")
    }

    /// Waits for a line containing `needle`.
    pub fn wait_for_line(&self, needle: &str) {
        wait_until(Duration::from_secs(30), needle, || {
            self.lines().iter().any(|l| l.contains(needle))
        });
    }

    /// Stops with a signal and returns the exit code.
    pub fn stop(mut self, sig: i32) -> (i32, String) {
        signal(&self.child, sig);
        let end = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < end,
                "did not exit after signal {sig}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(25));
        };
        // The pipes close with the process: the readers end once drained.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (status.code().unwrap_or(-1), self.output())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` with its output discarded, for runs a test kills.
pub fn spawn_quiet(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pinsync")
}

/// Every file directly in `dir`, by name, with its bytes: for "left
/// byte-for-byte untouched" checks.
pub fn snapshot_dir(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// This machine's host name, read where pinsync reads it for its lock.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// `mock-ipfs-pinning-service` from the npm registry (a third-party
/// implementation of the IPFS Pinning Service API), installed once under
/// target/ with npm and run on a free port; killed on drop.
pub struct PsaMock {
    child: Child,
    pub url: String,
}

const PSA_MOCK: &str = "mock-ipfs-pinning-service@0.4.2";

fn psa_mock_bin() -> PathBuf {
    npm_package("psa-mock", PSA_MOCK).join(".bin/mock-ipfs-pinning-service")
}

/// `spec` (`name@version`) from the npm registry, installed once under
/// target/`dir`: its `node_modules`.
pub fn npm_package(dir: &str, spec: &str) -> PathBuf {
    static INSTALLS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let dir = project_root().join("target").join(dir);
    let modules = dir.join("node_modules");
    let name = spec.rsplit_once('@').map_or(spec, |(name, _)| name);
    let mut installed = INSTALLS.lock().unwrap_or_else(|e| e.into_inner());
    if !installed.iter().any(|s| s == spec) && !modules.join(name).join("package.json").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", spec])
            .current_dir(&dir)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "these tests need {spec} from the npm registry: install Node.js and npm, or run \
             `npm install --prefix {} {spec}`",
            dir.display()
        );
    }
    installed.push(spec.to_owned());
    assert!(
        modules.join(name).join("package.json").exists(),
        "{spec} is not installed in {}",
        modules.display()
    );
    modules
}

/// `node tests/third_party/SCRIPT ARGS`, its `require`s found in
/// `node_modules`.
pub fn run_node(script: &str, node_modules: &Path, args: &[&str]) -> Run {
    Command::new("node")
        .arg(project_root().join("tests/third_party").join(script))
        .args(args)
        .env("NODE_PATH", node_modules)
        .stdin(Stdio::null())
        .run()
}

impl PsaMock {
    pub fn start() -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = Command::new(psa_mock_bin())
            .args(["--port", &port.to_string(), "--token", PSA_TOKEN])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Pinning Service mock");
        let url = format!("http://127.0.0.1:{port}");
        let mock = Self { child, url };
        wait_until(Duration::from_secs(30), "the Pinning Service mock", || {
            mock.try_get("/pins").is_some()
        });
        mock
    }

    fn try_get(&self, path: &str) -> Option<Value> {
        ureq::get(&format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {PSA_TOKEN}"))
            .call()
            .ok()?
            .into_json()
            .ok()
    }

    /// Every request the mock holds, of every status.
    pub fn requests(&self) -> Vec<Value> {
        self.try_get("/pins?status=queued,pinning,pinned,failed&limit=1000")
            .and_then(|v| v["results"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Adds a request by hand, as a person or another tool would.
    pub fn add_by_hand(&self, cid: &str, name: &str) -> Value {
        self.add(cid, name, serde_json::json!({}))
    }

    /// Adds a request with the given meta.
    pub fn add(&self, cid: &str, name: &str, meta: Value) -> Value {
        ureq::post(&format!("{}/pins", self.url))
            .set("Authorization", &format!("Bearer {PSA_TOKEN}"))
            .send_json(serde_json::json!({"cid": cid, "name": name, "meta": meta}))
            .unwrap()
            .into_json()
            .unwrap()
    }
}

impl Drop for PsaMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tools a [`Postgres`] cluster needs, all from one installation.
const PG_TOOLS: [&str; 5] = ["initdb", "pg_ctl", "postgres", "psql", "pg_isready"];

/// The directory holding PostgreSQL's server binaries: the newest version
/// under `lib_root` (Debian's `/usr/lib/postgresql/<version>/bin`, off
/// PATH), else the directory of the `initdb` on `path`; or why not.
pub fn find_pg_bin(lib_root: &Path, path: &std::ffi::OsStr) -> Result<PathBuf, String> {
    let complete = |dir: &Path| PG_TOOLS.iter().all(|t| dir.join(t).is_file());
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(lib_root)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            complete(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    for dir in std::env::split_paths(path) {
        let initdb = dir.join("initdb");
        if !initdb.is_file() {
            continue;
        }
        // A symlink's target directory holds the same version's tools.
        let real = std::fs::canonicalize(&initdb)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        if let Some(bin) = real.into_iter().chain([dir]).find(|d| complete(d)) {
            return Ok(bin);
        }
    }
    Err(format!(
        "these tests need a PostgreSQL server of their own, but its binaries ({}) are not in \
         {}/<version>/bin nor on PATH: install them with `apt-get install postgresql` (Debian, \
         Ubuntu) or your system's PostgreSQL server package",
        PG_TOOLS.join(", "),
        lib_root.display()
    ))
}

/// The user `name`'s uid and gid, if it exists.
fn os_user(name: &str) -> Option<(u32, u32)> {
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a zeroed passwd is a valid out-parameter for getpwnam_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf's length is given.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    (rc == 0 && !found.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

/// How the PostgreSQL tools are run on this machine.
struct PgTools {
    bin: PathBuf,
    /// Under root (which PostgreSQL refuses), the unprivileged user the
    /// tools run as: `runuser`, the user's name, uid and gid.
    run_as: Option<(PathBuf, &'static str, u32, u32)>,
}

fn pg_tools() -> &'static PgTools {
    static TOOLS: std::sync::OnceLock<PgTools> = std::sync::OnceLock::new();
    TOOLS.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let bin = find_pg_bin(Path::new("/usr/lib/postgresql"), &path)
            .unwrap_or_else(|why| panic!("{why}"));
        // SAFETY: geteuid has no preconditions.
        let run_as = (unsafe { libc::geteuid() } == 0).then(|| {
            const USER: &str = "postgres";
            let (uid, gid) = os_user(USER).unwrap_or_else(|| {
                panic!(
                    "these tests run as root, and PostgreSQL refuses to run as root: they run it \
                     as the unprivileged user `{USER}`, which does not exist here (`apt-get \
                     install postgresql` creates it)"
                )
            });
            let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
                .into_iter()
                .map(PathBuf::from)
                .chain(std::env::split_paths(&path).map(|d| d.join("runuser")))
                .find(|p| p.is_file())
                .unwrap_or_else(|| {
                    panic!("these tests run as root and need `runuser` (util-linux) to run PostgreSQL as `{USER}`")
                });
            (runuser, USER, uid, gid)
        });
        PgTools { bin, run_as }
    })
}

/// A certificate authority made for one test, which signs server
/// certificates for a [`Postgres::start_tls`] cluster.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// Its certificate, for `sslrootcert=`.
    pub cert_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert_pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            cert_pem,
        }
    }

    /// Writes its certificate to `path`; the path, for a URL.
    pub fn write_to(&self, path: &Path) -> String {
        std::fs::write(path, &self.cert_pem).unwrap();
        path.display().to_string()
    }

    /// A server certificate for `names` (host names or IP addresses) and
    /// its key, in PEM.
    pub fn server_cert(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pinsync test server");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A throwaway PostgreSQL cluster in a temporary directory, listening on a
/// free port of 127.0.0.1 only, with password (scram-sha-256) auth for
/// every connection: the superuser `postgres` ([`PG_SUPERUSER_PASSWORD`]),
/// and role `pinsync` ([`PG_PASSWORD`], CREATEDB) owning database
/// `pinsync_test`. Stopped and removed on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Postgres {
    pub const DATABASE: &str = "pinsync_test";
    pub const USER: &str = "pinsync";

    /// Makes and starts a new cluster; panics (with how to install
    /// PostgreSQL) if its binaries are missing.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Like [`Postgres::start`], with `ssl = on` serving `cert_pem` and
    /// `key_pem` (see [`TestCa`]), and TCP connections over TLS only: its
    /// `pg_hba.conf` has `hostssl` lines and rejects every `hostnossl` one,
    /// so a client that got in used TLS.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Self {
        pg_tools();
        let dir = tempfile::Builder::new()
            .prefix("pinsync-pg-")
            .tempdir()
            .unwrap();
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut pg = Self { dir, port };
        pg.give_to_server_user(pg.dir.path());
        let socket_dir = pg.socket_dir();
        std::fs::create_dir(&socket_dir).unwrap();
        pg.give_to_server_user(&socket_dir);
        let pwfile = pg.dir.path().join("superuser-password");
        std::fs::write(&pwfile, PG_SUPERUSER_PASSWORD).unwrap();
        pg.give_to_server_user(&pwfile);

        let mut initdb = pg.tool("initdb");
        initdb
            .arg("--pgdata")
            .arg(pg.data_dir())
            .args(["--username", "postgres", "--auth=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--encoding=UTF8", "--locale=C", "--no-sync"]);
        pg.check(initdb, "initdb");
        std::fs::remove_file(&pwfile).unwrap();

        // Appended settings override initdb's; fsync off is safe here (an
        // immediate stop still leaves every commit in the page cache).
        let quoted = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "''"));
        let mut settings = format!(
            "\n# pinsync tests\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
             unix_socket_directories = {}\nfsync = off\n",
            quoted(&socket_dir)
        );
        if let Some((cert_pem, key_pem)) = tls {
            let cert = pg.dir.path().join("server.crt");
            let key = pg.dir.path().join("server.key");
            std::fs::write(&cert, cert_pem).unwrap();
            pg.give_to_server_user(&cert);
            // The server refuses a key that others can read.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key)
                .unwrap();
            std::io::Write::write_all(&mut file, key_pem.as_bytes()).unwrap();
            drop(file);
            pg.give_to_server_user(&key);
            settings += &format!(
                "ssl = on\nssl_cert_file = {}\nssl_key_file = {}\n",
                quoted(&cert),
                quoted(&key)
            );
            // The superuser's psql goes through the socket; TCP needs TLS.
            std::fs::write(
                pg.data_dir().join("pg_hba.conf"),
                "local all all scram-sha-256\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256\n\
                 hostnossl all all all reject\n",
            )
            .unwrap();
        }
        let conf = pg.data_dir().join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .unwrap();
        std::io::Write::write_all(&mut file, settings.as_bytes()).unwrap();
        drop(file);

        // The free port may be taken by another test between the probe and
        // the server's bind: then another port, a later `port` line
        // overriding the first.
        let mut tries = 0;
        while let Err(failure) = pg.try_start_server() {
            tries += 1;
            assert!(
                tries < 5 && failure.contains("Address already in use"),
                "{failure}"
            );
            pg.port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&conf)
                .unwrap();
            std::io::Write::write_all(&mut file, format!("port = {}\n", pg.port).as_bytes())
                .unwrap();
            // The next failure is told by its own log.
            let _ = std::fs::remove_file(pg.log_path());
        }
        pg.psql_on(
            "postgres",
            &format!(
                "CREATE ROLE {user} LOGIN CREATEDB PASSWORD '{PG_PASSWORD}';
                 CREATE DATABASE {db} OWNER {user};",
                user = Self::USER,
                db = Self::DATABASE
            ),
        );
        pg
    }

    /// `postgres://pinsync@127.0.0.1:PORT/pinsync_test?workspace=NAME`:
    /// no password (it is [`PG_PASSWORD`]).
    pub fn url(&self, workspace: &str) -> String {
        let workspace: String =
            url::form_urlencoded::byte_serialize(workspace.as_bytes()).collect();
        format!(
            "postgres://{}@127.0.0.1:{}/{}?workspace={workspace}",
            Self::USER,
            self.port,
            Self::DATABASE
        )
    }

    /// Runs `sql` (any number of statements) in `pinsync_test` as the
    /// superuser; the rows, `|` between columns. Panics on an error.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_on(Self::DATABASE, sql)
    }

    fn psql_on(&self, database: &str, sql: &str) -> String {
        let conninfo = format!(
            "host={} port={} user=postgres dbname={database}",
            self.socket_dir().display(),
            self.port
        );
        self.try_psql(&conninfo, Some(PG_SUPERUSER_PASSWORD), sql)
            .unwrap_or_else(|e| panic!("psql as the superuser: {e}\n--- sql\n{sql}"))
    }

    /// How many pins workspace `workspace` of schema `pinsync` holds.
    pub fn pins_in(&self, workspace: &str) -> usize {
        self.psql(&format!(
            "SELECT count(*) FROM pinsync.pins WHERE workspace = '{workspace}'"
        ))
        .trim()
        .parse()
        .unwrap()
    }

    /// Runs `sql` in `pinsync_test` over TCP as `user` with `password`; the
    /// rows, or psql's error.
    pub fn psql_as(&self, user: &str, password: &str, sql: &str) -> Result<String, String> {
        let conninfo = format!(
            "host=127.0.0.1 port={} user={user} dbname={}",
            self.port,
            Self::DATABASE
        );
        self.try_psql(&conninfo, Some(password), sql)
    }

    /// Runs `sql` with psql on `conninfo` (a libpq connection string or
    /// URI); the password, if any, goes in psql's environment.
    pub fn try_psql(
        &self,
        conninfo: &str,
        password: Option<&str>,
        sql: &str,
    ) -> Result<String, String> {
        let mut cmd = self.tool("psql");
        cmd.args(["--no-psqlrc", "--no-password", "--quiet", "--no-align"])
            .args(["--tuples-only", "--set=ON_ERROR_STOP=1", "--dbname"])
            .arg(conninfo)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(password) = password {
            cmd.env("PGPASSWORD", password);
        }
        let mut child = cmd.spawn().expect("run psql");
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, sql.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned())
        } else {
            Err(format!(
                "psql {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                stdout
            ))
        }
    }

    /// Whether the server accepts connections on its TCP port.
    pub fn accepts_connections(&self) -> bool {
        let mut cmd = self.tool("pg_isready");
        cmd.args(["--host=127.0.0.1", "--timeout=5"])
            .arg(format!("--port={}", self.port))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.status().expect("run pg_isready").success()
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: no checkpoint,
    /// clients cut off), as a crash would.
    pub fn stop(&self) {
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("--pgdata").arg(self.data_dir()).args([
            "--mode=immediate",
            "--wait",
            "--timeout=60",
            "stop",
        ]);
        self.check(cmd, "pg_ctl stop");
    }

    /// Starts the (stopped) server again, on the same port and data, and
    /// waits until it accepts connections.
    pub fn restart(&self) {
        self.start_server();
    }

    fn start_server(&self) {
        self.try_start_server()
            .unwrap_or_else(|failure| panic!("{failure}"));
    }

    /// Starts the server and waits until it accepts connections; or why
    /// not, with its log.
    fn try_start_server(&self) -> Result<(), String> {
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("--pgdata")
            .arg(self.data_dir())
            .arg("--log")
            .arg(self.log_path())
            .args(["--wait", "--timeout=60", "start"]);
        self.run(cmd, "pg_ctl start")?;
        wait_until(
            Duration::from_secs(60),
            "PostgreSQL to accept connections",
            || self.accepts_connections(),
        );
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// A PostgreSQL tool, run as the unprivileged user under root, with a
    /// clean environment (no PG* variables from the caller).
    fn tool(&self, name: &str) -> Command {
        let tools = pg_tools();
        let program = tools.bin.join(name);
        let mut cmd = match &tools.run_as {
            Some((runuser, user, ..)) => {
                let mut cmd = Command::new(runuser);
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .env("PGPASSFILE", self.dir.path().join("no-pgpass"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `cmd`; panics with its output and the server log on failure.
    fn check(&self, cmd: Command, what: &str) {
        self.run(cmd, what)
            .unwrap_or_else(|failure| panic!("{failure}"));
    }

    /// Runs `cmd`; on failure, its output and the server log.
    fn run(&self, mut cmd: Command, what: &str) -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("run {what}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{what} failed ({}):\n{}{}\n--- server log\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        ))
    }

    /// Under root, hands `path` to the user the server runs as.
    fn give_to_server_user(&self, path: &Path) {
        if let Some((_, user, uid, gid)) = &pg_tools().run_as {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .unwrap_or_else(|e| panic!("chown {} to {user}: {e}", path.display()));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            let mut cmd = self.tool("pg_ctl");
            cmd.arg("--pgdata")
                .arg(self.data_dir())
                .args(["--mode=immediate", "--wait", "--timeout=60", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = cmd.status();
        }
    }
}

/// A plain HTTP listener that records every request it receives, raw, and
/// answers `status` with `{}` (200 unless set), once released when held.
/// On 127.0.0.2 (another origin than the emulator's 127.0.0.1) by default:
/// where a redirected call would land.
pub struct Recorder {
    pub origin: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Recorder {
    pub fn start() -> Self {
        Self::start_on("127.0.0.2")
    }

    pub fn start_on(host: &str) -> Self {
        use std::io::{Read as _, Write as _};
        use std::sync::atomic::Ordering::SeqCst;
        let listener = std::net::TcpListener::bind(format!("{host}:0")).expect("bind");
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200));
        let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (log, stopped, answer, hold) =
            (received.clone(), stop.clone(), status.clone(), held.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let (log, answer, hold) = (log.clone(), answer.clone(), hold.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    // Everything that arrives until the head and the body
                    // it announces are in, or the client stops sending.
                    let mut raw = Vec::new();
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        raw.extend_from_slice(&buf[..n]);
                        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if raw.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    log.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&raw).into_owned());
                    while hold.load(SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let _ = stream.write_all(
                        format!(
                            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}",
                            answer.load(SeqCst)
                        )
                        .as_bytes(),
                    );
                });
            }
        });
        Self {
            origin,
            received,
            stop,
            status,
            held,
        }
    }

    /// Every request received so far, raw (head and body).
    pub fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// Holds every answer until [`Recorder::release`].
    pub fn hold(&self) {
        self.held.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.held.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.release();
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = std::net::TcpStream::connect(self.origin.trim_start_matches("http://"));
    }
}
