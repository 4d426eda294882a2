//! Test harness: the emulator as a child process, a scratch project
//! directory, and the real `pinsync` binary run in it.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
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
pub const ALL_SECRETS: [&str; 4] = [AIOZ_KEY, AIOZ_SECRET, ARKIVE_KEY, PSA_TOKEN];

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
        let mut child = Command::new(emulator_bin())
            .args(["--listen", "127.0.0.1:0"])
            .args(["--aioz-api-key", AIOZ_KEY, "--aioz-secret-key", AIOZ_SECRET])
            .args(["--pinarkive-api-key", ARKIVE_KEY])
            .args(["--psa-token", PSA_TOKEN])
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
}

impl Project {
    /// A project whose providers point at `emu`, with these pins (YAML
    /// list items, indented by two spaces).
    pub fn new(emu: &Emulator, pins: &str) -> Self {
        let p = Self {
            dir: tempfile::tempdir().unwrap(),
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

    pub fn state(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.state_path()).unwrap()).unwrap()
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
            .env("AIOZ_PINNING_API_KEY", AIOZ_KEY)
            .env("AIOZ_PINNING_SECRET_KEY", AIOZ_SECRET)
            .env("PINARKIVE_API_KEY", ARKIVE_KEY)
            .env("PSA_TOKEN", PSA_TOKEN)
            .stdin(Stdio::null());
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

pub fn assert_no_secret(what: &str, text: &str) {
    for s in ALL_SECRETS {
        assert!(!text.contains(s), "secret {s} leaked into {what}:\n{text}");
    }
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
    static INSTALL: Once = Once::new();
    let dir = project_root().join("target").join("psa-mock");
    let bin = dir.join("node_modules/.bin/mock-ipfs-pinning-service");
    INSTALL.call_once(|| {
        if bin.exists() {
            return;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", PSA_MOCK])
            .current_dir(&dir)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "these tests need {PSA_MOCK} from the npm registry: install Node.js and npm, or run \
             `npm install --prefix target/psa-mock {PSA_MOCK}`"
        );
    });
    assert!(
        bin.exists(),
        "{PSA_MOCK} is not installed at {}",
        bin.display()
    );
    bin
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
