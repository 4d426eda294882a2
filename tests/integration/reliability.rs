//! Reliability guarantees (issue 4), each proven against the real binary and
//! the emulator, and each written so that it fails if the guarantee breaks:
//!
//! 1. crash safety: `apply` SIGKILLed at random moments never leaves an
//!    unreadable state, never records a pin the provider did not confirm,
//!    never loses one it recorded, and never pins anything twice;
//! 2. one writer: a lock dies with its process, `--lock-timeout` waits for
//!    the holder, and without it the second writer fails at once naming it;
//! 3. provider faults (broken JSON, wrong shapes, slowness, dropped
//!    connections, endless 429s, a 404) end pinned or failed with a reason,
//!    within bounds, and nothing unconfirmed is recorded;
//! 4. hostile state files are refused, left byte-for-byte untouched, and no
//!    provider call is made; a torn last journal line is ignored;
//! 5. no credential reaches watch logs (text or JSON) or backtraces;
//! 6. safe defaults: plain `http://` only to loopback unless opted in.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// A pin as the tests compare them: (target as written in the manifest, CID
/// as sent to the provider).
type Key = (String, String);

fn target_of(provider: &str, cluster: Option<&str>) -> String {
    match cluster {
        Some(c) => format!("{provider}/{c}"),
        None => provider.to_owned(),
    }
}

/// The CID as sent to the provider, from a stored pin (`cid_as_pinned` may be
/// left out when it is the canonical `cid` itself).
fn as_pinned(pin: &Value) -> &str {
    pin["cid_as_pinned"]
        .as_str()
        .or_else(|| pin["cid"].as_str())
        .unwrap_or_else(|| panic!("a stored pin without a CID: {pin}"))
}

/// `pinsync state list --json`, which must succeed: each listed pin and its
/// record.
fn listed(p: &Project, context: &str) -> BTreeMap<Key, Value> {
    let doc = p
        .listed_state()
        .unwrap_or_else(|why| panic!("{context}: {why}"));
    doc["pins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let target = target_of(x["provider"].as_str().unwrap(), x["cluster"].as_str());
            let cid = as_pinned(x).to_owned();
            ((target, cid), x.clone())
        })
        .collect()
}

/// What the emulator holds, keyed like the manifest names it (the Pinarkive
/// provider is called `arkive` there), with the provider's pin id.
fn held(emu: &Emulator) -> BTreeMap<Key, Option<String>> {
    emu.pins()
        .iter()
        .map(|x| {
            let target = match x["provider"].as_str().unwrap() {
                "aioz" => "aioz".to_owned(),
                _ => target_of("arkive", x["cluster"].as_str()),
            };
            let key = (target, x["cid"].as_str().unwrap().to_owned());
            (key, x["id"].as_str().map(str::to_owned))
        })
        .collect()
}

/// The pin each logged pin call asked for, in order.
fn requested(requests: &[Value]) -> Vec<Key> {
    requests
        .iter()
        .filter(|r| r["method"] == "POST")
        .filter_map(|r| {
            let path = r["path"].as_str()?;
            if path == "/api/pinning/pinByHash" {
                Some((
                    "aioz".to_owned(),
                    r["body"]["hash_to_pin"].as_str()?.to_owned(),
                ))
            } else {
                let cid = path.strip_prefix("/api/v3/files/pin/")?;
                Some((
                    target_of("arkive", r["body"]["cl"].as_str()),
                    cid.to_owned(),
                ))
            }
        })
        .collect()
}

fn state_pins(p: &Project) -> Vec<Value> {
    p.state()["pins"].as_array().unwrap().clone()
}

// 1. Crash safety -----------------------------------------------------------

/// Seed for the kill moments; `PINSYNC_TEST_SEED` replays another run.
const CRASH_SEED: u64 = 0x5eed_0004;
/// Pins the provider may hold that a killed apply had not journaled yet: the
/// calls in flight (8, or 8 per provider where each provider has its own
/// pool), plus as many answers arriving during one journal fsync.
const MAX_UNRECORDED: usize = 32;

/// `n` pins, alternately on AIOZ and on a Pinarkive cluster, so both
/// services' answers (and "already pinned" answers) are exercised.
fn both_providers(n: usize) -> String {
    many_cids(n)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let to: &[&str] = if i % 2 == 0 {
                &["aioz"]
            } else {
                &["arkive/cl0-global"]
            };
            pin(c, &format!("p{i}"), to)
        })
        .collect()
}

#[test]
fn apply_killed_at_random_moments_never_corrupts_loses_or_doubles_a_pin() {
    killed_at_random_moments(None, 12, None);
}

/// The same on a PostgreSQL state: a killed holder's lease (5 s here)
/// expires and the next run, waiting for it, takes over.
#[test]
fn apply_killed_at_random_moments_on_postgres_never_loses_or_doubles_a_pin() {
    let pg = Postgres::start();
    killed_at_random_moments(Some(format!("{}&lease=5s", pg.url("crash"))), 6, None);
}

/// The same on a large state, where each apply appends its pins to the
/// journal the last one left (cut where a kill tore it) and never
/// rewrites the state file.
#[test]
fn an_incremental_apply_killed_at_random_moments_never_loses_or_doubles_a_pin() {
    killed_at_random_moments(None, 8, Some(&InSyncBase::new(5_000, 0)));
}

/// The base's pins are on `psa`.
const BASE_TARGET: &str = "psa";

fn killed_at_random_moments(state_url: Option<String>, kills: u32, base: Option<&InSyncBase>) {
    let seed = std::env::var("PINSYNC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CRASH_SEED);
    let mut rng = fastrand::Rng::with_seed(seed);
    const PINS: usize = 60;
    let emu = Emulator::start_with(&["--delay-ms", "50"]);
    let on_file = state_url.is_none();
    let base_pins = base.map_or("", |b| b.pins.as_str());
    let p = Project::with_state(&emu, &(both_providers(PINS) + base_pins), state_url);
    if let Some(base) = base {
        base.write(&p);
    }
    // The pins of this test's applies, the base's (which never change)
    // checked and left out.
    let listed = |p: &Project, ctx: &str| {
        let mut all = listed(p, ctx);
        let n = all.keys().filter(|(t, _)| t == BASE_TARGET).count();
        assert_eq!(n, base.map_or(0, |b| b.len), "{ctx}: the base's pins");
        all.retain(|(t, _), _| t != BASE_TARGET);
        all
    };
    let apply = [
        "apply",
        "--auto-approve",
        "--concurrency",
        "8",
        "--lock-timeout",
        "30s",
    ];

    let mut recorded: BTreeMap<Key, Value> = BTreeMap::new();
    let mut seen_requests = 0;
    let mut log = Vec::new();
    for kill in 1..=kills {
        // Where the kill lands, measured from an event of this run rather
        // than from the spawn alone, so machine load cannot push every kill
        // into the same phase: in start-up (lock, replay, folding the last
        // journal), with calls in flight (the provider may pin what pinsync
        // never hears of), or just after answers came (journal appends, the
        // next calls, the final save).
        let phase = match rng.u8(0..4) {
            0 => "start-up",
            1 | 2 => "in-flight",
            _ => "answered",
        };
        let delay = rng.u64(0..=40);
        let calls_before = emu.pin_calls();
        let held_before = emu.pins().len();
        let mut child = spawn_quiet(p.command(&apply));
        let mut exited = false;
        if phase != "start-up" {
            wait_until(Duration::from_secs(30), phase, || {
                exited = child.try_wait().unwrap().is_some();
                exited
                    || if phase == "in-flight" {
                        emu.pin_calls() > calls_before
                    } else {
                        emu.pins().len() > held_before
                    }
            });
        }
        if !exited {
            std::thread::sleep(Duration::from_millis(delay));
            // Succeeds even if the child has exited meanwhile: it stays a
            // zombie until waited for.
            signal(&child, libc::SIGKILL);
        }
        child.wait().unwrap();
        let when = format!("{phase}+{delay}ms");
        let ctx = format!(
            "seed {seed} (PINSYNC_TEST_SEED), kill {kill} at {when}; earlier (moment->pins listed/held): {log:?}"
        );

        for name in ["pins.state.json", "pins.state.json.backup"] {
            if let Ok(bytes) = std::fs::read(p.path(name))
                && on_file
            {
                serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|e| {
                    panic!(
                        "{ctx}: {name} is not JSON ({e}):\n{}",
                        String::from_utf8_lossy(&bytes)
                    )
                });
            }
        }
        let now = listed(&p, &ctx);
        let emulator = held(&emu);
        for (key, record) in &now {
            let id = emulator.get(key).unwrap_or_else(|| {
                panic!("{ctx}: the state lists {key:?}, which the provider does not hold")
            });
            if let Some(recorded_id) = record["pin_id"].as_str() {
                assert_eq!(Some(recorded_id), id.as_deref(), "{ctx}: pin id of {key:?}");
            }
        }
        for key in recorded.keys() {
            assert!(
                now.contains_key(key),
                "{ctx}: {key:?} was recorded before this run and is lost"
            );
        }
        let requests = emu.requests();
        for key in requested(&requests[seen_requests..]) {
            assert!(
                !recorded.contains_key(&key),
                "{ctx}: {key:?} was pinned again although the state held it"
            );
        }
        seen_requests = requests.len();
        // The state lags the provider by the calls in flight at the kill and
        // the answers not yet journaled, never by what earlier runs recorded.
        let unrecorded: Vec<&Key> = emulator.keys().filter(|k| !now.contains_key(*k)).collect();
        assert!(
            unrecorded.len() <= MAX_UNRECORDED,
            "{ctx}: {} pins held but not in the state: {unrecorded:?}",
            unrecorded.len()
        );
        log.push(format!("{when}->{}/{}", now.len(), emulator.len()));
        recorded = now;
    }

    println!("kills (moment->pins listed/held after): {log:?}");
    let ctx = format!("seed {seed} (PINSYNC_TEST_SEED); kills: {log:?}");
    let run = p.run(&apply);
    assert_eq!(run.code, 0, "{ctx}: {run:?}");
    assert!(
        run.stdout.contains("Apply complete") || run.stdout.contains("No changes."),
        "{ctx}: {run:?}"
    );
    let requests = emu.requests();
    for key in requested(&requests[seen_requests..]) {
        assert!(
            !recorded.contains_key(&key),
            "{ctx}: {key:?} was pinned again although the state held it"
        );
    }
    // Pins confirmed just before a kill but not yet journaled come back as
    // "already pinned": a few at most, and never one the state held.
    let again: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("pinned ") && l.ends_with("(already pinned)"))
        .collect();
    assert!(again.len() <= MAX_UNRECORDED, "{ctx}: {again:#?}");
    for line in &again {
        let words: Vec<&str> = line.split_whitespace().collect();
        let key = (words[1].to_owned(), words[2].to_owned());
        assert!(
            !recorded.contains_key(&key),
            "{ctx}: {key:?} was held by the state yet called again: {run:?}"
        );
    }

    let finished = listed(&p, &ctx);
    assert_eq!(finished.len(), PINS, "{ctx}: {run:?}");
    let emulator = held(&emu);
    assert_eq!(emu.pins().len(), PINS, "{ctx}: nothing pinned twice");
    assert_eq!(
        finished.keys().collect::<Vec<_>>(),
        emulator.keys().collect::<Vec<_>>(),
        "{ctx}"
    );
    match base {
        None => assert!(!p.path("pins.state.json.journal").exists(), "{ctx}"),
        Some(base) => assert_eq!(
            std::fs::read(p.state_path()).unwrap(),
            base.state,
            "{ctx}: the state file is never rewritten; the journal holds the applies"
        ),
    }
    if !on_file {
        assert!(
            !p.state_path().exists(),
            "{ctx}: no state file beside a PostgreSQL state"
        );
    }
}

/// A kill during a compaction (the end of an apply whose journal has
/// passed an eighth of the state file) loses nothing: killed while the new
/// file is written, or between its rename and the journal's removal, or
/// after, the state reads the same, and the next apply makes no call.
#[test]
fn a_kill_during_a_compaction_loses_nothing_and_the_next_apply_makes_no_call() {
    let seed = std::env::var("PINSYNC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CRASH_SEED);
    let mut rng = fastrand::Rng::with_seed(seed);
    const BASE: usize = 10_000;
    const NEW: usize = 10;
    const ROUNDS: usize = 30;
    // A journal just under an eighth of the file, which NEW pins pass.
    let sizes = InSyncBase::new(BASE, 0);
    let per_pin = sizes.state.len() / BASE;
    let mut journaled = BASE * per_pin / (8 * (per_pin + 20) + per_pin) - 1;
    let mut base = InSyncBase::new(BASE, journaled);
    loop {
        let more = InSyncBase::new(BASE, journaled + 1);
        if more.journal.len() * 8 >= more.state.len() {
            break;
        }
        (journaled, base) = (journaled + 1, more);
    }
    let (file, journal) = (base.state.len(), base.journal.len());
    assert!(
        journal * 8 < file && (journal + NEW * 150) * 8 > file,
        "{journal} {file}"
    );

    let emu = Emulator::start();
    let cids = many_cids(BASE + ROUNDS * NEW);
    let p = Project::new(&emu, "");
    let temporary = |p: &Project| {
        std::fs::read_dir(p.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".pinsync-"))
            .collect::<Vec<_>>()
    };
    let mut log: Vec<String> = Vec::new();
    // A busy machine may not see the new file in time: the round is
    // checked all the same, and rounds go on until four kills landed
    // during a compaction.
    let during = |log: &[String]| log.iter().filter(|l| !l.ends_with("after")).count();
    for round in 0..ROUNDS {
        if during(&log) >= 4 {
            break;
        }
        base.write(&p);
        for name in temporary(&p) {
            std::fs::remove_file(p.path(&name)).unwrap();
        }
        let new = &cids[BASE + round * NEW..BASE + (round + 1) * NEW];
        let new_pins: String = new.iter().map(|c| pin(c, c, &["aioz"])).collect();
        p.write_manifest(&emu, &(base.pins.clone() + &new_pins));
        let mut child = spawn_quiet(p.command(&["apply", "--auto-approve"]));
        // Polled closely: the file is there for milliseconds.
        let end = Instant::now() + Duration::from_secs(60);
        let mut ended = false;
        while temporary(&p).is_empty() {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "seed {seed}: the apply failed: {status}");
                ended = true;
                break;
            }
            assert!(Instant::now() < end, "seed {seed}: no compaction");
            std::thread::sleep(Duration::from_micros(200));
        }
        // Frozen as soon as its new file is seen, or at a random moment of
        // the writes after.
        let how = if ended {
            "not seen".to_owned()
        } else if rng.bool() {
            signal(&child, libc::SIGSTOP);
            "frozen".to_owned()
        } else {
            let ms = rng.u64(0..=8);
            std::thread::sleep(Duration::from_millis(ms));
            format!("{ms} ms")
        };
        if !ended {
            signal(&child, libc::SIGKILL);
        }
        child.wait().unwrap();
        let left = (
            p.path("pins.state.json.journal").exists(),
            std::fs::read(p.state_path()).unwrap() == base.state,
        );
        let when = match left {
            (true, true) => "before the rename",
            (true, false) => "between the rename and the journal's removal",
            (false, _) => "after",
        };
        log.push(format!("{how}: {when}"));
        let ctx = format!("seed {seed} (PINSYNC_TEST_SEED), round {round}: {log:?}");

        let listed = listed(&p, &ctx);
        assert_eq!(listed.len(), BASE + NEW, "{ctx}");
        for c in new {
            assert!(
                listed.contains_key(&("aioz".to_owned(), c.clone())),
                "{ctx}: {c}"
            );
        }
        let calls = emu.pin_calls();
        let run = p.run(&["apply", "--auto-approve"]);
        assert_eq!(run.code, 0, "{ctx}: {run:?}");
        assert!(run.stdout.contains("No changes"), "{ctx}: {run:?}");
        assert_eq!(emu.pin_calls(), calls, "{ctx}: no call");
    }
    println!("kills: {log:?}");
    assert!(
        during(&log) >= 2,
        "seed {seed}: too few kills landed before the compaction ended: {log:?}"
    );
}

/// The random kills above cannot tell a lost journal from calls in flight
/// (both leave pins the provider holds and the state does not); this kill,
/// long after many answers arrived, can.
#[test]
fn a_sigkill_loses_no_pin_whose_answer_had_arrived() {
    const PINS: usize = 300;
    let emu = Emulator::start_with(&["--delay-ms", "50"]);
    let p = Project::new(&emu, &both_providers(PINS));
    let mut child = spawn_quiet(p.command(&["apply", "--auto-approve", "--concurrency", "8"]));
    wait_until(Duration::from_secs(30), "48 pin calls", || {
        emu.pin_calls() >= 48
    });
    // At most 16 calls are ever in flight (8, or 8 per provider), so
    // pinsync had the answers to at least 32 when the 48th call went out.
    // Once the journal holds them, kill it mid-run: every pin it journaled
    // must survive the kill.
    let journal = p.path("pins.state.json.journal");
    wait_until(Duration::from_secs(30), "32 journaled pins", || {
        journaled_pins(&journal) >= 32
    });
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    let held = held(&emu);
    assert!(held.len() < PINS, "killed before the end");
    let listed = listed(&p, "after the kill");
    assert!(
        listed.len() >= 32,
        "{} pins listed; pinsync had received at least 32 answers",
        listed.len()
    );
    for key in listed.keys() {
        assert!(held.contains_key(key), "{key:?} listed but not held");
    }
}

/// A pruning apply killed at random moments never unpins what the manifest
/// still wants, never loses the record of a pin it has not unpinned, and
/// the next run finishes the rest.
#[test]
fn a_pruning_apply_killed_at_random_moments_unpins_only_what_is_unwanted_file() {
    pruning_apply_killed_at_random_moments(None, 8);
}

/// The same on a PostgreSQL state, where each killed holder's lease (5 s
/// here) is waited out by the next run's `--lock-timeout`.
#[test]
fn a_pruning_apply_killed_at_random_moments_unpins_only_what_is_unwanted_postgres() {
    let pg = Postgres::start();
    pruning_apply_killed_at_random_moments(Some(format!("{}&lease=5s", pg.url("prune-crash"))), 4);
}

fn pruning_apply_killed_at_random_moments(state_url: Option<String>, kills: u32) {
    let seed = std::env::var("PINSYNC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CRASH_SEED);
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x0f);
    const PINS: usize = 60;
    let emu = Emulator::start_with(&["--delay-ms", "40"]);
    let all = both_providers(PINS);
    let p = Project::with_state(&emu, &all, state_url);
    assert_eq!(
        p.run(&["apply", "--auto-approve", "--concurrency", "8"])
            .code,
        0
    );
    // Keep every other pin: the rest are unpinned.
    let lines: Vec<&str> = all.lines().collect();
    let kept: String = lines
        .chunks(3)
        .step_by(2)
        .flat_map(|c| c.iter().map(|l| format!("{l}\n")))
        .collect();
    p.write_manifest(&emu, &kept);
    let wanted: Vec<Key> = listed(&p, "before")
        .into_keys()
        .filter(|(_, cid)| kept.contains(cid.as_str()))
        .collect();
    assert_eq!(wanted.len(), PINS / 2);
    let prune = [
        "apply",
        "--auto-approve",
        "--prune",
        "--force-unpins",
        "--concurrency",
        "4",
        "--lock-timeout",
        "30s",
    ];
    let mut mid_run = 0;
    let deletes = |emu: &Emulator| {
        emu.requests()
            .iter()
            .filter(|r| r["method"] == "DELETE")
            .count()
    };
    for kill in 1..=kills {
        // Measured from this run's first unpin call, so machine load cannot
        // push every kill before the unpins start or after they end.
        let delay = rng.u64(0..=60);
        let before = deletes(&emu);
        let mut child = spawn_quiet(p.command(&prune));
        let mut exited = false;
        wait_until(Duration::from_secs(30), "an unpin call, or the end", || {
            exited = child.try_wait().unwrap().is_some();
            exited || deletes(&emu) > before
        });
        if !exited {
            std::thread::sleep(Duration::from_millis(delay));
            signal(&child, libc::SIGKILL);
        }
        child.wait().unwrap();
        let ctx = format!("seed {seed}, kill {kill} {delay} ms after an unpin call");
        let now = listed(&p, &ctx);
        let emulator = held(&emu);
        for key in &wanted {
            assert!(
                emulator.contains_key(key),
                "{ctx}: wanted {key:?} was unpinned"
            );
            assert!(
                now.contains_key(key),
                "{ctx}: wanted {key:?} left the state"
            );
        }
        // Every pin the provider still holds is still recorded: nothing
        // leaves the state before its unpin is confirmed.
        for key in emulator.keys() {
            assert!(
                now.contains_key(key),
                "{ctx}: {key:?} is held but no longer recorded"
            );
        }
        mid_run += usize::from(emulator.len() > PINS / 2 && emulator.len() < PINS);
    }
    assert!(
        mid_run > 0,
        "seed {seed}: some kill landed among the unpins"
    );
    let run = p.run(&prune);
    assert_eq!(run.code, 0, "{run:?}");
    let emulator = held(&emu);
    assert_eq!(emulator.keys().cloned().collect::<Vec<_>>(), wanted);
    assert_eq!(listed(&p, "after").into_keys().collect::<Vec<_>>(), wanted);
}

/// Pins in the complete lines of a journal (a line being written is not).
fn journaled_pins(journal: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|batch| Some(batch.get("pins")?.as_array()?.len()))
        .sum()
}

// 2. One writer ---------------------------------------------------------------

#[test]
fn a_lock_left_by_a_killed_apply_is_taken_at_once_by_the_next() {
    let emu = Emulator::start_with(&["--delay-ms", "5000"]);
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let mut first = spawn_quiet(p.command(&["apply", "--auto-approve"]));
    wait_until(Duration::from_secs(20), "the first apply's call", || {
        emu.pin_calls() > 0
    });
    signal(&first, libc::SIGKILL);
    first.wait().unwrap();
    let lock = std::fs::read_to_string(p.path("pins.state.json.lock")).unwrap();
    assert!(
        lock.contains(&format!("\"pid\":{}", first.id())),
        "the dead holder is still written in the lock file: {lock}"
    );

    emu.faults(json!({}));
    let started = Instant::now();
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "a dead process's lock is not held: {run:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{run:?}");
    assert!(!run.stderr.contains("locked"), "{run:?}");
    assert_eq!(state_pins(&p).len(), 1);
    assert_eq!(emu.pins().len(), 1);
}

#[test]
fn lock_timeout_waits_for_the_running_apply_then_applies_from_its_state() {
    let emu = Emulator::start();
    emu.faults(json!({"delay_ms": 2000}));
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let mut first = p.command(&["apply", "--auto-approve"]).spawn().unwrap();
    wait_until(Duration::from_secs(20), "the first apply's call", || {
        emu.pin_calls() > 0
    });
    // The first apply has read its manifest; the second will pin B only,
    // from the state the first leaves, if it really waited for it.
    emu.faults(json!({}));
    p.write_manifest(&emu, &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    let started = Instant::now();
    let run = p.run(&["apply", "--auto-approve", "--lock-timeout", "10s"]);
    let waited = started.elapsed();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stderr.contains("locked"), "{run:?}");
    assert!(
        waited > Duration::from_millis(500) && waited < Duration::from_secs(10),
        "waited {waited:?} for the holder"
    );
    assert!(
        first.try_wait().unwrap().is_some(),
        "the second apply ran only after the first ended"
    );
    assert!(first.wait().unwrap().success());
    assert!(run.stdout.contains("Plan: 1 to pin"), "{run:?}");
    let calls = requested(&emu.requests());
    assert_eq!(
        calls,
        [
            ("aioz".to_owned(), CID_A.to_owned()),
            ("aioz".to_owned(), CID_B.to_owned())
        ],
        "one call each: the second apply saw the first's state"
    );
    assert_eq!(state_pins(&p).len(), 2);
}

#[test]
fn without_lock_timeout_the_second_apply_fails_within_a_second_naming_host_and_since() {
    let emu = Emulator::start();
    emu.faults(json!({"delay_ms": 2000}));
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let mut first = p.command(&["apply", "--auto-approve"]).spawn().unwrap();
    wait_until(Duration::from_secs(20), "the first apply's call", || {
        emu.pin_calls() > 0
    });
    let started = Instant::now();
    let run = p.run(&["apply", "--auto-approve"]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "fails at once: {:?}",
        started.elapsed()
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!("pid {}", first.id())),
        "{run:?}"
    );
    let host = host_name();
    assert!(!host.is_empty());
    assert!(run.stderr.contains(&format!(" on {host},")), "{run:?}");
    let since = run
        .stderr
        .split("since ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no `since` in {run:?}"));
    let since = humantime::parse_rfc3339(since)
        .unwrap_or_else(|e| panic!("since {since:?} is not RFC 3339 ({e}): {run:?}"));
    let age = std::time::SystemTime::now()
        .duration_since(since)
        .unwrap_or_default();
    assert!(
        age < Duration::from_secs(60),
        "since is when it began: {run:?}"
    );
    assert_eq!(emu.pin_calls(), 1, "the second apply made no call");
    assert!(first.wait().unwrap().success());
}

/// `Instant::now() + wait` in `StateLock::acquire` used to overflow.
#[test]
fn an_out_of_range_lock_timeout_is_an_error_not_a_panic() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    for cmd in ["apply", "watch"] {
        let mut args = vec![cmd, "--lock-timeout", "500000000000y"];
        if cmd == "apply" {
            args.push("--auto-approve");
        }
        let mut command = p.command(&args);
        command.env("RUST_BACKTRACE", "0");
        let run = command.run();
        assert_eq!(run.code, 1, "{cmd}: {run:?}");
        assert!(!run.stderr.contains("panicked"), "{cmd}: {run:?}");
        assert!(run.stderr.contains("lock"), "{cmd}: {run:?}");
    }
    assert!(emu.requests().is_empty());
}

// 3. Provider faults ----------------------------------------------------------

/// A one-pin project on `to`, applied with `args`: the run and its duration.
fn apply_one(emu: &Emulator, to: &str, args: &[&str]) -> (Project, Run, Duration) {
    let p = Project::new(emu, &pin(CID_A, "a", &[to]));
    let mut all = vec!["apply", "--auto-approve"];
    all.extend_from_slice(args);
    let started = Instant::now();
    let run = p.run(&all);
    (p, run, started.elapsed())
}

/// The pin failed with `reason`, and nothing was recorded.
fn assert_failed_unrecorded(p: &Project, run: &Run, reason: &str) {
    assert_eq!(run.code, 1, "{run:?}");
    let failed = run
        .stdout
        .lines()
        .find(|l| l.starts_with("failed: "))
        .unwrap_or_else(|| panic!("no failure reported: {run:?}"));
    assert!(
        failed.to_lowercase().contains(reason),
        "reason {reason:?} in {failed:?}"
    );
    assert!(run.stdout.contains("1 failed"), "{run:?}");
    assert!(
        listed(p, "after a failed pin").is_empty(),
        "nothing recorded that was not confirmed"
    );
}

#[test]
fn a_malformed_answer_is_retried_and_the_pin_lands() {
    for to in ["aioz", "arkive/cl0-global"] {
        let emu = Emulator::start();
        emu.faults(json!({"fail_next": [{"malformed": true}]}));
        let (p, run, _) = apply_one(&emu, to, &[]);
        assert_eq!(run.code, 0, "{to}: {run:?}");
        assert!(run.stdout.contains("unexpected answer"), "{to}: {run:?}");
        assert!(run.stdout.contains("retrying"), "{to}: {run:?}");
        assert_eq!(emu.pin_calls(), 2, "{to}");
        assert_eq!(emu.pins().len(), 1, "{to}");
        assert_eq!(state_pins(&p).len(), 1, "{to}");
    }
}

#[test]
fn wrong_shape_answers_every_time_fail_the_pin_after_the_attempts() {
    for to in ["aioz", "arkive/cl0-global"] {
        let emu = Emulator::start();
        emu.faults(json!({"wrong_shape_rate": 1.0}));
        let (p, run, _) = apply_one(&emu, to, &["--retry-attempts", "2"]);
        assert_failed_unrecorded(&p, &run, "unexpected answer");
        assert!(run.stdout.contains("after 2 attempts"), "{to}: {run:?}");
        assert_eq!(emu.pin_calls(), 2, "{to}");
    }
}

#[test]
fn answers_slower_than_the_timeout_fail_in_bounded_time() {
    let emu = Emulator::start();
    emu.faults(json!({"delay_ms": 3000}));
    let (p, run, took) = apply_one(&emu, "aioz", &["--timeout", "1s", "--retry-attempts", "2"]);
    assert_failed_unrecorded(&p, &run, "timed out");
    assert_eq!(emu.pin_calls(), 2);
    // Two 1 s attempts and one short backoff; not two 3 s answers.
    assert!(
        took < Duration::from_millis(4500),
        "apply took {took:?}: {run:?}"
    );
}

#[test]
fn dropped_connections_fail_the_pin_with_a_connection_reason() {
    let emu = Emulator::start();
    emu.faults(json!({"drop_rate": 1.0}));
    let (p, run, _) = apply_one(&emu, "arkive/cl0-global", &["--retry-attempts", "2"]);
    assert_failed_unrecorded(&p, &run, "connection");
    assert_eq!(emu.pin_calls(), 2);
    assert!(emu.pins().is_empty());
}

#[test]
fn endless_rate_limits_stop_at_the_retry_time_budget() {
    let emu = Emulator::start();
    emu.faults(json!({"rate_limit_rate": 1.0, "retry_after": 1}));
    // Attempts are not the limit here: only --retry-max-time can end it.
    let (p, run, took) = apply_one(
        &emu,
        "arkive/cl0-global",
        &["--retry-max-time", "2s", "--retry-attempts", "100"],
    );
    assert_failed_unrecorded(&p, &run, "rate limited (http 429)");
    assert!(took < Duration::from_secs(5), "apply took {took:?}");
    let calls = emu.pin_calls();
    assert!((2..=3).contains(&calls), "{calls} calls: {run:?}");
}

#[test]
fn a_404_with_a_custom_body_is_shown_and_not_retried() {
    for to in ["aioz", "arkive/cl0-global"] {
        let emu = Emulator::start();
        emu.faults(json!({"fail_next": [{
            "status": 404,
            "body": {"error": "Not Found", "message": "CID not found"}
        }]}));
        let (p, run, _) = apply_one(&emu, to, &[]);
        assert_failed_unrecorded(&p, &run, "http 404: not found: cid not found");
        assert!(!run.stdout.contains("retrying"), "{to}: {run:?}");
        assert!(!run.stdout.contains("attempts"), "{to}: {run:?}");
        assert_eq!(emu.pin_calls(), 1, "{to}");
    }
}

// 4. Hostile state ------------------------------------------------------------

fn json_line(value: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).unwrap();
    line.push(b'\n');
    line
}

#[test]
fn hostile_state_is_refused_naming_the_file_untouched_and_without_calls() {
    let emu = Emulator::start();
    let base = Project::new(&emu, &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    assert_eq!(base.run(&["apply", "--auto-approve"]).code, 0);
    let real = std::fs::read(base.state_path()).unwrap();
    let doc: Value = serde_json::from_slice(&real).unwrap();
    let lineage = doc["lineage"].as_str().unwrap().to_owned();
    let serial = doc["serial"].as_u64().unwrap();
    let pins = doc["pins"].as_array().unwrap().clone();

    let mut v99 = doc.clone();
    v99["format_version"] = json!(99);
    let mut twice = doc.clone();
    twice["pins"].as_array_mut().unwrap().push(pins[0].clone());
    let mut garbage = json_line(&json!({"journal_for_lineage": lineage}));
    garbage.extend_from_slice(b"{\"serial\": 12, \"pins\": [ this is not json\n");
    garbage.extend(json_line(&json!({"serial": serial + 1, "pins": [pins[1]]})));
    let mut foreign = json_line(&json!({"journal_for_lineage": "another-lineage"}));
    foreign.extend(json_line(&json!({"serial": serial + 1, "pins": [pins[1]]})));

    const STATE: &str = "pins.state.json";
    const JOURNAL: &str = "pins.state.json.journal";
    // (what, files written, the file the message must name, its reason)
    type Variant<'a> = (&'a str, Vec<(&'a str, Vec<u8>)>, &'a str, &'a str);
    let variants: Vec<Variant> = vec![
        (
            "truncated",
            vec![(STATE, real[..real.len() / 2].to_vec())],
            STATE,
            "cannot be read",
        ),
        ("empty", vec![(STATE, Vec::new())], STATE, "empty"),
        (
            "format_version 99",
            vec![(STATE, serde_json::to_vec_pretty(&v99).unwrap())],
            STATE,
            "format version 99",
        ),
        (
            "a pin listed twice",
            vec![(STATE, serde_json::to_vec_pretty(&twice).unwrap())],
            STATE,
            "listed twice",
        ),
        (
            "journal with garbage in the middle",
            vec![(STATE, real.clone()), (JOURNAL, garbage)],
            JOURNAL,
            "line 2",
        ),
        (
            "journal of another lineage",
            vec![(STATE, real.clone()), (JOURNAL, foreign)],
            JOURNAL,
            "lineage",
        ),
    ];
    let calls = emu.requests().len();
    for (what, files, named, reason) in variants {
        // C is not in any state: an apply that went ahead would call for it.
        let p = Project::new(
            &emu,
            &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[]) + &pin(CID_C, "c", &[])),
        );
        for (name, bytes) in &files {
            std::fs::write(p.path(name), bytes).unwrap();
        }
        let before = snapshot_dir(p.dir.path());
        for args in [
            &["plan"][..],
            &["apply", "--auto-approve"],
            &["state", "list"],
        ] {
            let run = p.run(args);
            assert_eq!(run.code, 1, "{what}, {args:?}: {run:?}");
            assert!(
                run.stderr.contains(&format!("{named} ")),
                "{what}, {args:?}: the message names {named}: {run:?}"
            );
            assert!(
                run.stderr.contains(reason),
                "{what}, {args:?}: the message says {reason:?}: {run:?}"
            );
            let mut after = snapshot_dir(p.dir.path());
            after.remove("pins.state.json.lock");
            assert!(
                before == after,
                "{what}, {args:?}: files changed: before {:?}, after {:?}",
                before.keys().collect::<Vec<_>>(),
                after.keys().collect::<Vec<_>>()
            );
        }
        assert_eq!(emu.requests().len(), calls, "{what}: no provider call");
    }
}

/// What a crash just after a journal append leaves: removes `cid`'s pin
/// from the state file and returns a journal holding it (header and one
/// line at the next serial), the pin, and the file's serial.
fn move_into_journal(p: &Project, cid: &str) -> (Vec<u8>, Value, u64) {
    let mut doc = p.state();
    let serial = doc["serial"].as_u64().unwrap();
    let lineage = doc["lineage"].as_str().unwrap().to_owned();
    let stored = doc["pins"].as_array_mut().unwrap();
    let at = stored.iter().position(|x| as_pinned(x) == cid).unwrap();
    let moved = stored.remove(at);
    std::fs::write(p.state_path(), serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let mut journal = json_line(&json!({"journal_for_lineage": lineage}));
    journal.extend(json_line(&json!({"serial": serial + 1, "pins": [moved]})));
    (journal, moved, serial)
}

/// An apply killed after its last journal append leaves nothing to do:
/// the journal is part of the state, so the next apply makes no call and
/// writes nothing, and `state list` holds the journaled pin.
#[test]
fn an_apply_with_nothing_to_do_reads_a_left_journal_as_part_of_the_state() {
    let emu = Emulator::start();
    let cids = many_cids(3);
    let pins: String = cids.iter().map(|c| pin(c, c, &[])).collect();
    let p = Project::new(&emu, &pins);
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    let (journal, _, _) = move_into_journal(&p, &cids[1]);
    let journal_path = p.path("pins.state.json.journal");
    std::fs::write(&journal_path, &journal).unwrap();

    let calls = emu.requests().len();
    let files = || {
        let mut files = snapshot_dir(p.dir.path());
        files.remove("pins.state.json.lock"); // names its holder
        files
    };
    let before = files();
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("No changes"), "{run:?}");
    assert_eq!(emu.requests().len(), calls, "no provider call");
    assert_eq!(files(), before, "nothing written");
    let held: BTreeSet<String> = listed(&p, "a left journal")
        .into_keys()
        .map(|(_, cid)| cid)
        .collect();
    assert_eq!(held, cids.iter().cloned().collect());
}

#[test]
fn a_torn_last_journal_line_is_ignored_and_the_rest_replays() {
    let emu = Emulator::start();
    let cids = many_cids(4);
    let three: String = cids[..3]
        .iter()
        .enumerate()
        .map(|(i, c)| pin(c, &format!("p{i}"), &[]))
        .collect();
    let p = Project::new(&emu, &three);
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);

    // Rebuild what a crash leaves: the state file without the third pin,
    // the journal holding it, then half of a line being appended.
    let (mut journal, third, serial) = move_into_journal(&p, &cids[2]);
    let mut fourth = third.clone();
    fourth["cid"] = json!(cids[3]);
    if fourth.get("cid_as_pinned").is_some() {
        fourth["cid_as_pinned"] = json!(cids[3]);
    }
    let torn = json_line(&json!({"serial": serial + 2, "pins": [fourth]}));
    journal.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(p.path("pins.state.json.journal"), &journal).unwrap();
    p.write_manifest(&emu, &(three + &pin(&cids[3], "p3", &[])));

    let before = snapshot_dir(p.dir.path());
    let list = listed(&p, "torn journal");
    let names: BTreeSet<&str> = list.keys().map(|(_, c)| c.as_str()).collect();
    assert_eq!(
        names,
        cids[..3].iter().map(String::as_str).collect(),
        "the journal's complete line replays; its torn line does not"
    );
    let run = p.run(&["plan"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("Plan: 1 to pin, 0 to update, 0 no longer managed, 3 unchanged."),
        "{run:?}"
    );
    assert_eq!(snapshot_dir(p.dir.path()), before, "reading writes nothing");

    let calls = emu.requests().len();
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        requested(&emu.requests()[calls..]),
        [("aioz".to_owned(), cids[3].clone())],
        "only the pin the torn line never acknowledged is made"
    );
    let doc = p.state();
    assert_eq!(doc["pins"].as_array().unwrap().len(), 4);
    assert!(doc["serial"].as_u64().unwrap() > serial + 1);
    assert!(!p.path("pins.state.json.journal").exists());
}

// 5. Secrets ----------------------------------------------------------------

/// Keys that are wrong but look as secret as the right ones.
const WRONG_AIOZ_KEY: &str = "wrongAIOZ-9c8b7a6f-SECRET";
const WRONG_ARKIVE_KEY: &str = "wrongARKIVE-3e2d1c0b-SECRET";

fn assert_no_key(what: &str, text: &str) {
    assert_no_secret(what, text);
    for s in [WRONG_AIOZ_KEY, WRONG_ARKIVE_KEY] {
        assert!(
            !text.contains(s),
            "wrong key {s} leaked into {what}:\n{text}"
        );
    }
}

#[test]
fn watch_logs_in_text_and_json_carry_no_secret_through_401_and_500() {
    for format in ["json", "text"] {
        for wrong_keys in [false, true] {
            let what = format!("watch --log-format {format}, wrong keys {wrong_keys}");
            let emu = Emulator::start();
            if !wrong_keys {
                emu.faults(json!({"fail_next": [{"status": 401}, {"status": 500}]}));
            }
            let p = Project::new(
                &emu,
                &(pin(CID_A, "a", &["aioz"]) + &pin(CID_B, "b", &["arkive/cl0-global"])),
            );
            let mut cmd = p.command(&[
                "watch",
                "--log-format",
                format,
                "--interval",
                "1h",
                "--status-file",
                "status.json",
            ]);
            cmd.env("RUST_BACKTRACE", "1");
            if wrong_keys {
                cmd.env("AIOZ_PINNING_API_KEY", WRONG_AIOZ_KEY)
                    .env("PINARKIVE_API_KEY", WRONG_ARKIVE_KEY);
            }
            let w = Background::spawn(cmd);
            w.wait_for_line("finished with failures");
            let (code, out) = w.stop(libc::SIGTERM);
            assert_eq!(code, 0, "{what}: {out}");
            assert!(out.contains("HTTP 401"), "{what}: {out}");
            if !wrong_keys {
                assert!(out.contains("HTTP 500"), "{what}: {out}");
            }
            if format == "json" {
                for line in out.lines().filter(|l| !l.is_empty()) {
                    let v: Value = serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("{what}: not a JSON line ({e}): {line}"));
                    assert!(v["ts"].is_string() && v["event"].is_string(), "{line}");
                }
            }
            assert_no_key(&what, &out);
            for (path, text) in p.all_files() {
                assert_no_key(&format!("{what}: {}", path.display()), &text);
            }
            if wrong_keys {
                assert!(
                    emu.requests()
                        .iter()
                        .any(|r| r["headers"]["x-api-key"] == WRONG_ARKIVE_KEY),
                    "{what}: the wrong key was really sent"
                );
            }
        }
    }
}

#[test]
fn apply_with_backtraces_on_leaks_no_secret() {
    let emu = Emulator::start();
    let pins = pin(CID_A, "a", &["aioz", "arkive/cl0-global"]) + &pin(CID_B, "b", &[]);
    let p = Project::new(&emu, &pins);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let mut outputs = Vec::new();
    let mut run = |p: &Project, what: &str, args: &[&str], wrong: bool| {
        let mut cmd = p.command(args);
        cmd.env("RUST_BACKTRACE", "1")
            .env("RUST_LIB_BACKTRACE", "1");
        if wrong {
            cmd.env("AIOZ_PINNING_SECRET_KEY", WRONG_AIOZ_KEY)
                .env("PINARKIVE_API_KEY", WRONG_ARKIVE_KEY);
        }
        let run = cmd.run();
        outputs.push((what.to_owned(), format!("{run:?}")));
        run
    };

    emu.faults(json!({"fail_next": [{"status": 500}, {"status": 401}, {"status": 503}]}));
    let r = run(&p, "401 and 5xx", &["apply", "--auto-approve"], false);
    assert!(r.stdout.contains("HTTP 401"), "{r:?}");
    p.write_manifest(&emu, &(pins.clone() + &pin(CID_C, "c", &["arkive/cl1-eu"])));
    let r = run(&p, "wrong keys", &["apply", "--auto-approve"], true);
    assert_eq!(r.code, 1, "{r:?}");
    let r = run(
        &p,
        "out-of-range lock timeout",
        &["apply", "--auto-approve", "--lock-timeout", "500000000000y"],
        false,
    );
    assert_eq!(r.code, 1, "{r:?}");
    let manifest = std::fs::read_to_string(p.manifest()).unwrap();
    std::fs::write(p.manifest(), manifest.replace(&emu.url, &closed)).unwrap();
    let r = run(
        &p,
        "connection refused",
        &["apply", "--auto-approve", "--retry-attempts", "1"],
        false,
    );
    assert_eq!(r.code, 1, "{r:?}");
    std::fs::write(p.state_path(), b"{\"format_version\": 1, \"pins\": [").unwrap();
    let r = run(&p, "corrupt state", &["apply", "--auto-approve"], false);
    assert_eq!(r.code, 1, "{r:?}");

    for (what, text) in &outputs {
        assert_no_key(what, text);
    }
    for (path, text) in p.all_files() {
        assert_no_key(&path.display().to_string(), &text);
    }
}

/// A provider, or a proxy in front of it, that echoes the request's headers
/// in its error: the keys are redacted from the message before it is
/// printed or stored.
#[test]
fn keys_echoed_back_in_a_provider_error_are_redacted() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &["aioz", "arkive/cl0-global"]));
    emu.faults(
        json!({"fail_next": [{"echo_headers": true}, {"echo_headers": true, "status": 500}]}),
    );
    let run = p.run(&["apply", "--auto-approve", "--retry-attempts", "1"]);
    assert_eq!(run.code, 1, "{run:?}");
    let echoed: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("failed: ") && l.contains("request headers were"))
        .collect();
    assert_eq!(
        echoed.len(),
        2,
        "both providers echoed their headers: {run:?}"
    );
    for line in &echoed {
        assert!(line.contains("<redacted>"), "{line}");
    }
    assert!(
        echoed
            .iter()
            .any(|l| l.contains("pinning_api_key: <redacted>")
                && l.contains("pinning_secret_key: <redacted>")),
        "{run:?}"
    );
    assert!(
        echoed.iter().any(|l| l.contains("x-api-key: <redacted>")),
        "{run:?}"
    );
    assert_no_secret("apply output", &format!("{run:?}"));
    for (path, text) in p.all_files() {
        assert_no_secret(&path.display().to_string(), &text);
    }
    let log: Vec<_> = emu.requests();
    assert!(
        log.iter().any(|r| r["fault"] == "fail_next:echo_headers"),
        "the emulator echoed: {log:?}"
    );
}

/// 429s asking to wait u64::MAX seconds, answered after 0.9 s so that the
/// elapsed time's fraction plus the retry jitter carries into the seconds.
fn absurd_retry_after() -> Value {
    json!({"rate_limit_rate": 1.0, "retry_after": u64::MAX, "delay_ms": 900})
}

/// Bug: `elapsed + delay` in `RetryPolicy::next_delay` (and `after + jitter`)
/// overflow for a Retry-After near u64::MAX seconds; the panic in the pin
/// task takes the whole apply down (exit 101). With 16 pins at least one
/// jitter roll carries in practice; a fix passes whatever the rolls.
#[test]
fn an_absurd_retry_after_fails_the_pin_instead_of_panicking() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &both_providers(16));
    emu.faults(absurd_retry_after());
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    assert!(run.stdout.contains("16 failed"), "{run:?}");
    assert!(run.stdout.contains("rate limited (HTTP 429)"), "{run:?}");
    assert!(listed(&p, "after 429s").is_empty());
}

// 6. Safe defaults ------------------------------------------------------------

/// `pinsync validate` on a one-provider manifest whose `base_url` (line 7,
/// column 15) is `url`, with `extra` lines after it.
fn validate_base_url(url: &str, extra: &str) -> Run {
    let p = Project {
        dir: tempfile::tempdir().unwrap(),
        state_url: None,
    };
    let text = format!(
        "version: 1
providers:
  aioz:
    type: aioz
    api_key: ${{AIOZ_PINNING_API_KEY}}
    secret_key: ${{AIOZ_PINNING_SECRET_KEY}}
    base_url: {url}
{extra}pins:
  - cid: {CID_A}
    to: [aioz]
"
    );
    std::fs::write(p.manifest(), text).unwrap();
    p.run(&["validate"])
}

#[test]
fn plain_http_is_refused_except_to_loopback_or_when_opted_in() {
    for url in [
        "http://example.com",
        "http://example.com:8080/api",
        "http://localhost.example.com:8917",
        "http://127.0.0.1.nip.io:8917",
    ] {
        let run = validate_base_url(url, "");
        assert_eq!(run.code, 1, "{url}: {run:?}");
        assert!(run.stderr.contains("pins.yaml:7:15: "), "{url}: {run:?}");
        assert!(run.stderr.contains("https"), "{url}: {run:?}");
        assert!(run.stderr.contains("allow_insecure_http"), "{url}: {run:?}");
        let run = validate_base_url(url, "    allow_insecure_http: false\n");
        assert_eq!(run.code, 1, "{url}, opt-in false: {run:?}");
    }
    for (url, extra) in [
        ("http://example.com", "    allow_insecure_http: true\n"),
        ("https://example.com", ""),
        ("http://127.0.0.1:8917", ""),
        ("http://127.0.0.1:8917/", ""),
        ("http://localhost:8917", ""),
        ("http://[::1]:8917", ""),
    ] {
        let run = validate_base_url(url, extra);
        assert_eq!(run.code, 0, "{url} {extra:?}: {run:?}");
    }
}
