//! `watch --listen`: Prometheus metrics scraped from a running watch during
//! an apply and after it, read by a real Prometheus server (Debian's
//! `prometheus`), and the health checks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// A `watch --listen 127.0.0.1:0` and the address it serves on.
fn watch(p: &Project, extra: &[&str]) -> (Background, String) {
    let mut args = vec!["watch", "--listen", "127.0.0.1:0", "--interval", "1h"];
    args.extend_from_slice(extra);
    let watch = Background::spawn(p.command(&args));
    watch.wait_for_line("serving /metrics");
    let line = watch
        .lines()
        .into_iter()
        .find(|l| l.contains("serving /metrics"))
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    (watch, url)
}

/// `GET url`: the status and the body.
fn get(url: &str) -> (u16, String) {
    match ureq::get(url).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// The value of the sample `series` (name and labels, as written) in a
/// scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A Prometheus server (Debian's `prometheus`) scraping `target` every
/// second, on a free port of 127.0.0.1; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn scraping(target: &str) -> Self {
        let bin = which("prometheus")
            .expect("these tests need a Prometheus server: install Debian's `prometheus` package");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: pinsync\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        wait_until(Duration::from_secs(60), "prometheus ready", || {
            ureq::get(&format!("{}/-/ready", server.url)).call().is_ok()
        });
        server
    }

    /// The result of an instant query.
    fn query(&self, query: &str) -> Vec<Value> {
        let answer: Value = ureq::get(&format!("{}/api/v1/query", self.url))
            .query("query", query)
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| Path::new(p).is_file())
}

#[test]
fn a_running_watch_is_scraped_during_and_after_an_apply() {
    // Slow answers, and some 429s: the apply takes a few seconds, and
    // calls are refused and retried.
    let emu = Emulator::start_with(&[
        "--delay-ms",
        "150",
        "--rate-limit-rate",
        "0.15",
        "--retry-after",
        "0",
    ]);
    let cids = many_cids(30);
    let p = Project::new(&emu, &many_pins(30, &[]));
    let (watch, url) = watch(&p, &["--concurrency", "2"]);

    // During the apply: calls counted, no reconcile ended, not ready.
    let mut during = String::new();
    wait_until(Duration::from_secs(30), "calls counted mid-apply", || {
        during = get(&format!("{url}/metrics")).1;
        sample(
            &during,
            r#"pinsync_provider_calls_total{provider="aioz",kind="pin",outcome="ok"}"#,
        )
        .is_some()
    });
    assert!(
        sample(&during, r#"pinsync_reconciles_total{result="ok"}"#).is_none(),
        "the apply was still running: {during}"
    );
    let (code, why) = get(&format!("{url}/readyz"));
    assert_eq!(code, 503, "{why}");
    assert!(why.contains("no successful reconcile yet"), "{why}");
    assert_eq!(get(&format!("{url}/healthz")).0, 200);

    watch.wait_for_line("apply: complete");
    let (_, after) = get(&format!("{url}/metrics"));
    assert_eq!(
        sample(&after, r#"pinsync_reconciles_total{result="ok"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&after, r#"pinsync_pins{target="aioz",status="managed"}"#),
        Some(30.0),
        "{after}"
    );
    let refused = sample(
        &after,
        r#"pinsync_provider_calls_total{provider="aioz",kind="pin",outcome="rate_limited"}"#,
    )
    .unwrap_or(0.0);
    let ok = sample(
        &after,
        r#"pinsync_provider_calls_total{provider="aioz",kind="pin",outcome="ok"}"#,
    );
    assert_eq!(ok, Some(30.0), "{after}");
    assert!(refused > 0.0, "the 429s are counted: {after}");
    assert!(
        sample(&after, r#"pinsync_provider_retries_total{provider="aioz"}"#)
            .is_some_and(|n| n >= refused),
        "each refused call was retried: {after}"
    );
    assert!(sample(&after, "pinsync_apply_duration_seconds_count").is_some_and(|n| n == 1.0));
    assert!(sample(&after, r#"pinsync_lease_role{role="active"}"#) == Some(1.0));
    assert!(sample(&after, "pinsync_last_success_timestamp_seconds").is_some_and(|t| t > 1.7e9));
    // Bounded labels: no CID in any series.
    assert!(cids.iter().all(|c| !after.contains(c.as_str())), "{after}");
    let (code, ready) = get(&format!("{url}/readyz"));
    assert_eq!(code, 200, "{ready}");

    // A real Prometheus server scrapes it, negotiating the format.
    let target = url.trim_start_matches("http://");
    let prometheus = Prometheus::scraping(target);
    wait_until(
        Duration::from_secs(60),
        "prometheus to hold the pins",
        || {
            prometheus
                .query(r#"pinsync_pins{status="managed"}"#)
                .first()
                .is_some_and(|r| r["value"][1] == "30")
        },
    );
    let up = prometheus.query(r#"up{job="pinsync"}"#);
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    let calls = prometheus.query("sum by (outcome) (pinsync_provider_calls_total)");
    assert!(
        calls
            .iter()
            .any(|r| r["metric"]["outcome"] == "rate_limited"),
        "{calls:?}"
    );
    let (code, output) = watch.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{output}");
}

#[test]
fn readyz_says_why_a_watch_is_not_ready() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    std::fs::write(p.manifest(), "version: 1\npins: [\n").unwrap();
    let (watch, url) = watch(&p, &[]);
    watch.wait_for_line("invalid_manifest");
    let (code, why) = get(&format!("{url}/readyz"));
    assert_eq!(code, 503, "{why}");
    assert!(
        why.contains("no successful reconcile yet (last result invalid_manifest"),
        "{why}"
    );
    assert_eq!(get(&format!("{url}/healthz")), (200, "ok\n".into()));
    let (_, metrics) = get(&format!("{url}/metrics"));
    assert_eq!(
        sample(
            &metrics,
            r#"pinsync_reconciles_total{result="invalid_manifest"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn listen_takes_an_address_beyond_loopback_only_when_told_to() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let refused = p.run(&["watch", "--listen", "0.0.0.0:0"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("--listen-non-loopback"),
        "{refused:?}"
    );
    let watch =
        Background::spawn(p.command(&["watch", "--listen", "0.0.0.0:0", "--listen-non-loopback"]));
    watch.wait_for_line("serving /metrics");
    let (code, output) = watch.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{output}");
}
