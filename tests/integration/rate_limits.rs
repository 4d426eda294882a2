//! Pacing at each provider's rate limit, against the emulator enforcing
//! one: no 429 storm, the server's word followed, a 429 pausing the
//! provider's other calls. Times are checked from below only.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// The project's manifest with `provider`'s `rate_limit: none` replaced by
/// `limit`.
fn with_rate_limit(p: &Project, provider: &str, limit: &str) {
    let text = std::fs::read_to_string(p.manifest()).unwrap();
    let marker = format!("  {provider}:\n");
    let at = text.find(&marker).unwrap();
    let (head, tail) = text.split_at(at);
    let tail = tail.replacen(
        "    rate_limit: none\n",
        &format!("    rate_limit: {limit}\n"),
        1,
    );
    std::fs::write(p.manifest(), format!("{head}{tail}")).unwrap();
}

fn refused(emu: &Emulator, provider: &str) -> u64 {
    emu.stats()["rate_limited"][provider].as_u64().unwrap_or(0)
}

#[test]
fn a_paced_apply_gets_no_429_and_takes_as_long_as_the_limit_says() {
    let emu = Emulator::start_with(&["--limit", "aioz=20/s,burst=20"]);
    let p = Project::new(&emu, &many_pins(120, &["aioz"]));
    with_rate_limit(&p, "aioz", "20/s");
    let started = Instant::now();
    let r = p.run(&["apply", "--auto-approve", "--concurrency", "32"]);
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(emu.pins().len(), 120);
    assert_eq!(refused(&emu, "aioz"), 0, "no 429: {r:?}");
    // 120 calls at 20 a second, one at a time after the first.
    assert!(took >= Duration::from_secs(5), "{took:?}");
}

#[test]
fn unpaced_the_same_apply_meets_the_limit() {
    // The control for the test above: the limit is real, and without
    // pacing it refuses calls.
    let emu = Emulator::start_with(&["--limit", "aioz=20/s,burst=20"]);
    let p = Project::new(&emu, &many_pins(120, &["aioz"]));
    let r = p.run(&[
        "apply",
        "--auto-approve",
        "--concurrency",
        "32",
        "--retry-attempts",
        "20",
    ]);
    assert!(refused(&emu, "aioz") > 0, "{r:?} {:?}", emu.stats());
}

/// A `pinning-service` with no limit in the manifest, on a service that
/// sends `X-RateLimit-*` on every answer: pinsync follows its budget, so
/// only the first calls in flight meet the limit.
#[test]
fn with_the_manifest_silent_pinsync_follows_the_services_headers() {
    let emu = Emulator::start();
    emu.limits(json!({"psa": {"per_second": 20, "burst": 20, "headers_always": true}}));
    let p = Project::new(&emu, &many_pins(120, &["psa"]));
    let r = p.run(&["apply", "--auto-approve", "--concurrency", "32"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(emu.psa_requests().len(), 120);
    let refusals = refused(&emu, "psa");
    // 132 calls (12 lookups, 120 adds) at concurrency 32: only calls of the
    // first burst, in flight before any answer said a word, are refused;
    // none after it.
    assert!(refusals <= 32, "{refusals} refused: {:?}", emu.stats());
    let times: Vec<u64> = emu
        .requests()
        .iter()
        .filter(|r| r["fault"] == "limit")
        .map(|r| r["received_ms"].as_u64().unwrap())
        .collect();
    let first = times.iter().min().copied().unwrap_or_default();
    assert!(
        times.iter().all(|t| *t < first + 500),
        "refusals after the first burst: {times:?}"
    );
}

/// A 429 pauses the provider: its other calls wait out the `Retry-After`
/// too, instead of each meeting the limit on its own.
#[test]
fn a_429_pauses_the_providers_other_calls() {
    let emu = Emulator::start();
    emu.faults(json!({"fail_next": [{"on": "POST /psa/pins", "status": 429, "retry_after": 2}]}));
    let p = Project::new(&emu, &many_pins(12, &["psa"]));
    let r = p.run(&["apply", "--auto-approve", "--concurrency", "4"]);
    assert_eq!(r.code, 0, "{r:?}");
    let requests = emu.requests();
    let psa: Vec<&Value> = requests.iter().filter(|r| r["provider"] == "psa").collect();
    let refused_at = psa
        .iter()
        .find(|r| r["status"] == 429)
        .map(|r| r["received_ms"].as_u64().unwrap())
        .expect("the 429 was sent");
    // Calls already in flight land within a moment; nothing else comes
    // until the pause is over.
    let during: Vec<&&Value> = psa
        .iter()
        .filter(|r| {
            let at = r["received_ms"].as_u64().unwrap();
            at > refused_at + 300 && at < refused_at + 1800
        })
        .collect();
    assert!(during.is_empty(), "called during the pause: {during:#?}");
    let after = psa
        .iter()
        .filter(|r| r["received_ms"].as_u64().unwrap() >= refused_at + 1800)
        .count();
    assert!(after > 0, "the apply went on after the pause");
}

/// The plan says, per provider, the calls it makes and how long they take
/// at the limit; `--json` carries both.
#[test]
fn the_plan_says_how_long_its_calls_take_at_each_limit() {
    let emu = Emulator::start();
    let p = Project::new(
        &emu,
        &(many_pins(2000, &["aioz"]) + &many_pins(25, &["psa"])),
    );
    with_rate_limit(&p, "aioz", "180/min");
    let r = p.run(&["plan"]);
    assert!(
        r.stdout
            .contains("aioz: 2,000 calls, about 11 min at 180/min"),
        "{}",
        &r.stdout[r.stdout.len().saturating_sub(600)..]
    );
    // 25 adds and 3 lookups of ten CIDs.
    assert!(
        r.stdout.contains("psa: 28 calls (no rate limit set)"),
        "{}",
        &r.stdout[r.stdout.len().saturating_sub(600)..]
    );
    let r = p.run(&["plan", "--json"]);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(plan["pace"]["aioz"]["calls"], 2000);
    assert_eq!(plan["pace"]["aioz"]["rate_limit"], "180/min");
    assert_eq!(
        plan["pace"]["aioz"]["seconds"], 666,
        "1,999 calls a third of a second apart"
    );
    assert_eq!(plan["pace"]["psa"]["calls"], 28);
    assert!(plan["pace"]["psa"].get("seconds").is_none());
    let r = p.run(&["plan", "--format", "markdown"]);
    assert!(
        r.stdout
            .contains("- `aioz`: 2,000 calls, about 11 min at 180/min"),
        "{}",
        r.stdout
    );
}

/// A manifest rate ten times what the service enforces: the pace finds the
/// service's limit after a 429 or two, instead of meeting it after every
/// pause (the same apply met 26 before the pace adapted).
#[test]
fn a_rate_limit_set_too_high_comes_down_to_the_services() {
    let emu = Emulator::start_with(&["--limit", "aioz=20/s,burst=5"]);
    let p = Project::new(&emu, &many_pins(100, &["aioz"]));
    with_rate_limit(&p, "aioz", "200/s");
    let r = p.run(&["apply", "--auto-approve", "--concurrency", "32"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(emu.pins().len(), 100);
    let refusals = refused(&emu, "aioz");
    assert!(
        (1..=8).contains(&refusals),
        "{refusals} answered 429: {:?}",
        emu.stats()
    );
}
