//! The state on a real PostgreSQL: the core loop, leases that never stick,
//! a holder that loses its lease, two workspaces, a database that goes
//! away mid-apply, and a password that never shows.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// `pinsync ARGS --state URL` with the database password in the
/// environment only.
fn on_pg(p: &Project, url: &str, args: &[&str]) -> Command {
    let mut cmd = p.command(args);
    cmd.args(["--state", url]).env("PGPASSWORD", PG_PASSWORD);
    cmd
}

/// A child whose output is kept for `wait_with_output`.
fn spawn_piped(mut cmd: Command) -> std::process::Child {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Creates the tables first, so that a test can watch them from the start.
fn migrate(p: &Project, url: &str) {
    let r = on_pg(p, url, &["state", "migrate"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("the schema is at version 1"), "{r:?}");
}

#[test]
fn apply_plan_and_list_work_on_postgres_and_no_file_is_written() {
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(30, &["aioz"]));
    let url = pg.url("ci");
    let r = on_pg(&p, &url, &["apply", "--auto-approve"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(pg.pins_in("ci"), 30);
    let r = on_pg(&p, &url, &["plan", "--detailed-exitcode"]).run();
    assert_eq!(r.code, 0, "in sync: {r:?}");
    let r = on_pg(&p, &url, &["state", "list", "--json"]).run();
    let listed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(listed["pins"].as_array().unwrap().len(), 30);
    assert!(
        !p.state_path().exists(),
        "no state file beside the manifest"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pinsync.leases").trim(),
        "0",
        "lease released"
    );
    // PINSYNC_STATE is the same as --state.
    let mut cmd = p.command(&["plan", "--detailed-exitcode"]);
    cmd.env("PINSYNC_STATE", &url)
        .env("PGPASSWORD", PG_PASSWORD);
    assert_eq!(cmd.run().code, 0);
}

/// What the server counted on a table of schema `pinsync` since it
/// started: rows inserted, updated and deleted, and rows read (by
/// sequential scans, and through indexes).
#[derive(Debug, Clone, Copy, PartialEq)]
struct TableCounts {
    inserted: i64,
    updated: i64,
    deleted: i64,
    read: i64,
}

impl TableCounts {
    fn of(pg: &Postgres, table: &str) -> Self {
        let row = pg.psql(&format!(
            "SELECT n_tup_ins, n_tup_upd, n_tup_del,
                    coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
             FROM pg_stat_user_tables WHERE schemaname = 'pinsync' AND relname = '{table}'"
        ));
        let n: Vec<i64> = row.split('|').map(|n| n.trim().parse().unwrap()).collect();
        let [inserted, updated, deleted, read] = n[..] else {
            panic!("{table}: {row:?}")
        };
        Self {
            inserted,
            updated,
            deleted,
            read,
        }
    }

    /// The counts once the runs before have ended and their connections
    /// have reported (a backend reports its counts as it exits, a moment
    /// after its client): when no connection of role `pinsync` is left
    /// and the pins table's counts hold still.
    fn settled(pg: &Postgres, table: &str) -> Self {
        wait_until(
            Duration::from_secs(30),
            "the runs' connections to close",
            || pg.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'pinsync'") == "0",
        );
        let mut last = Self::of(pg, "pins");
        wait_until(Duration::from_secs(30), "the counts to hold still", || {
            std::thread::sleep(Duration::from_millis(300));
            let now = Self::of(pg, "pins");
            std::mem::replace(&mut last, now) == now
        });
        Self::of(pg, table)
    }
}

/// Each pin row's key with the transaction that last wrote it (`xmin`).
fn row_versions(pg: &Postgres, workspace: &str) -> std::collections::BTreeMap<String, String> {
    pg.psql(&format!(
        "SELECT provider || '/' || cluster || '/' || cid, xmin::text FROM pinsync.pins
         WHERE workspace = '{workspace}'"
    ))
    .lines()
    .map(|line| {
        let (key, xmin) = line.split_once('|').unwrap();
        (key.to_owned(), xmin.to_owned())
    })
    .collect()
}

/// One new pin on a state of a thousand (on two targets): the apply
/// writes its two rows and the head, and no other row. Rewriting the state whole (as `save` does) deletes
/// and inserts every row; upserting the unchanged ones gives each a new
/// version: either fails here.
#[test]
fn an_apply_of_one_new_pin_writes_its_rows_and_the_head_only() {
    const PINS: usize = 1_000;
    let targets = ["aioz", "arkive/cl0-global"];
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(PINS, &targets));
    let url = pg.url("ci");
    let r = on_pg(&p, &url, &["apply", "--auto-approve"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    let stored = 2 * PINS as i64;
    let pins_before = TableCounts::settled(&pg, "pins");
    assert_eq!(pins_before.inserted, stored);
    let head_before = TableCounts::of(&pg, "workspaces");
    let rows_before = row_versions(&pg, "ci");
    let serial_before = pg.psql("SELECT serial FROM pinsync.workspaces WHERE name = 'ci'");
    assert_eq!(rows_before.len(), 2 * PINS);

    p.write_manifest(&emu, &many_pins(PINS + 1, &targets));
    let r = on_pg(&p, &url, &["apply", "--auto-approve"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    let pins_after = TableCounts::settled(&pg, "pins");
    let head_after = TableCounts::of(&pg, "workspaces");
    assert_eq!(
        (
            pins_after.inserted - pins_before.inserted,
            pins_after.updated - pins_before.updated,
            pins_after.deleted - pins_before.deleted,
        ),
        (2, 0, 0),
        "pin rows inserted, updated and deleted"
    );
    let rows_after = row_versions(&pg, "ci");
    let written: Vec<&String> = rows_after
        .iter()
        .filter(|(key, xmin)| rows_before.get(*key) != Some(xmin))
        .map(|(key, _)| key)
        .collect();
    let new_cid = &many_cids(PINS + 1)[PINS];
    assert_eq!(
        written,
        [
            &format!("aioz//{new_cid}"),
            &format!("arkive/cl0-global/{new_cid}")
        ],
        "only the new pin's rows have new versions"
    );
    // The head: the one workspace row, its serial moved on.
    assert_eq!(
        (
            head_after.inserted - head_before.inserted,
            head_after.deleted - head_before.deleted
        ),
        (0, 0)
    );
    assert!(head_after.updated > head_before.updated, "{head_after:?}");
    let serial_after = pg.psql("SELECT serial FROM pinsync.workspaces WHERE name = 'ci'");
    assert!(
        serial_after.parse::<u64>().unwrap() > serial_before.parse::<u64>().unwrap(),
        "{serial_before} -> {serial_after}"
    );
    let r = on_pg(&p, &url, &["state", "list", "--json"]).run();
    let listed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        serial_after,
        listed["serial"].to_string(),
        "the head has the serial of the last batch"
    );
    assert_eq!(listed["pins"].as_array().unwrap().len(), 2 * (PINS + 1));
    let r = on_pg(&p, &url, &["plan", "--detailed-exitcode"]).run();
    assert_eq!(r.code, 0, "in sync: {r:?}");
}

/// Rows a pinsync did not write (edited by hand, or by a broken tool) are
/// refused with the store and the fault named, never a panic.
#[test]
fn rows_that_are_not_a_state_are_refused_naming_the_store() {
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(3, &["aioz"]));
    let url = pg.url("ci");
    assert_eq!(on_pg(&p, &url, &["apply", "--auto-approve"]).run().code, 0);
    let cid = &many_cids(1)[0];
    pg.psql(
        "CREATE TABLE public.kept_pins AS SELECT * FROM pinsync.pins;
         CREATE TABLE public.kept_head AS SELECT * FROM pinsync.workspaces;",
    );
    for (damage, expected) in [
        (
            format!("UPDATE pinsync.pins SET record = '{{\"provider\": 3}}' WHERE cid = '{cid}'"),
            "a pin row is not a pin: invalid type: integer `3`".to_owned(),
        ),
        (
            format!("UPDATE pinsync.pins SET record = '[1, 2]' WHERE cid = '{cid}'"),
            "a pin row is not a pin".to_owned(),
        ),
        (
            format!(
                "UPDATE pinsync.pins SET record = record || '{{\"colour\": 1}}' WHERE cid = '{cid}'"
            ),
            "a pin row is not a pin: unknown field `colour`".to_owned(),
        ),
        // The same pin under another key: its record is what counts.
        (
            format!(
                "INSERT INTO pinsync.pins SELECT workspace, provider, 'elsewhere', cid, record
                 FROM pinsync.pins WHERE cid = '{cid}'"
            ),
            format!("pin aioz {cid} is stored twice"),
        ),
        (
            "UPDATE pinsync.workspaces SET serial = -1".to_owned(),
            "the workspace's serial -1 is negative".to_owned(),
        ),
    ] {
        pg.psql(&damage);
        let r = on_pg(&p, &url, &["plan"]).run();
        assert_eq!(r.code, 1, "{damage}: {r:?}");
        assert!(
            r.stderr.contains(&format!("state {url}: {expected}"))
                && !r.stderr.contains("panicked"),
            "{damage}: {r:?}"
        );
        pg.psql(
            "DELETE FROM pinsync.pins; INSERT INTO pinsync.pins SELECT * FROM public.kept_pins;
             UPDATE pinsync.workspaces w SET serial = k.serial FROM public.kept_head k
             WHERE w.name = k.name;",
        );
    }
    let r = on_pg(&p, &url, &["plan", "--detailed-exitcode"]).run();
    assert_eq!(r.code, 0, "whole again: {r:?}");
}

/// The pins are read a batch of 50,000 rows (`FETCHED`) a statement:
/// states of exactly two batches, and of two and one row, load whole, in
/// key order, whatever order the rows were written in.
#[test]
fn a_state_of_several_batches_loads_whole_and_in_order() {
    const FETCHED: usize = 50_000;
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(1, &["aioz"]));
    let url = pg.url("ci");
    assert_eq!(on_pg(&p, &url, &["apply", "--auto-approve"]).run().code, 0);
    let mut cids = many_cids(2 * FETCHED + 1);
    // Written in an order unlike the keys', so that the table's order is not theirs.
    fastrand::Rng::with_seed(26).shuffle(&mut cids);
    let array = cids
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(",");
    pg.psql(&format!(
        "DELETE FROM pinsync.pins;
         INSERT INTO pinsync.pins
         SELECT 'ci', 'aioz', '', cid, jsonb_build_object('provider', 'aioz', 'cid', cid,
                'name', 'p' || n, 'pinned_at', '2026-01-01T00:00:00Z')
         FROM unnest(ARRAY[{array}]) WITH ORDINALITY AS t(cid, n);
         ANALYZE pinsync.pins;"
    ));
    for rows in [2 * FETCHED + 1, 2 * FETCHED] {
        if rows == 2 * FETCHED {
            pg.psql(&format!(
                "DELETE FROM pinsync.pins WHERE cid = '{}'",
                cids[0]
            ));
        }
        let r = on_pg(&p, &url, &["state", "list", "--json"]).run();
        assert_eq!(r.code, 0, "{}", r.stderr);
        let listed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let listed: Vec<&str> = listed["pins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pin| pin["cid"].as_str().unwrap())
            .collect();
        let mut expected: Vec<&str> = cids.iter().map(String::as_str).collect();
        if rows == 2 * FETCHED {
            expected.remove(0);
        }
        expected.sort_unstable();
        assert_eq!(listed.len(), rows);
        assert!(
            listed == expected,
            "{rows} rows: not the pins stored, in order"
        );
    }
}

#[test]
fn the_database_password_never_shows_even_when_it_is_wrong_or_in_the_url() {
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(3, &["aioz"]));
    let with_password = pg
        .url("w")
        .replacen("pinsync@", &format!("pinsync:{PG_PASSWORD}@"), 1);
    let ok = p
        .command(&["apply", "--auto-approve", "--state", &with_password])
        .run();
    assert_eq!(ok.code, 0, "{ok:?}");
    let mut wrong = p.command(&["plan", "--state", &pg.url("w")]);
    wrong.env("PGPASSWORD", "pgWRONG-0000-SECRET");
    let wrong = wrong.run();
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(
        wrong.stderr.contains("password authentication failed"),
        "{wrong:?}"
    );
    let held = p
        .command(&["state", "lock", "status", "--state", &with_password])
        .run();
    for run in [&ok, &wrong, &held] {
        let text = format!("{run:?}");
        assert_no_secret("output", &text);
        assert!(!text.contains("pgWRONG-0000-SECRET"), "{text}");
    }
    for (path, text) in p.all_files() {
        assert_no_secret(&path.display().to_string(), &text);
    }
}

#[test]
fn a_second_apply_on_the_workspace_names_the_holder_and_another_workspace_runs() {
    let pg = Postgres::start();
    let emu = Emulator::start_with(&["--delay-ms", "100"]);
    let p = Project::new(&emu, &many_pins(40, &["aioz"]));
    migrate(&p, &pg.url("prod"));
    let mut first = spawn_quiet(on_pg(
        &p,
        &pg.url("prod"),
        &["apply", "--auto-approve", "--concurrency", "1"],
    ));
    wait_until(Duration::from_secs(30), "the first apply's lease", || {
        pg.psql("SELECT count(*) FROM pinsync.leases WHERE workspace = 'prod'")
            .trim()
            == "1"
    });
    let second = on_pg(&p, &pg.url("prod"), &["apply", "--auto-approve"]).run();
    assert_eq!(second.code, 1, "{second:?}");
    assert!(
        second.stderr.contains("is locked by") && second.stderr.contains("pinsync apply"),
        "{second:?}"
    );
    // Another workspace in the same schema is not blocked.
    let other = Project::new(&emu, &many_pins(2, &["arkive/cl0-global"]));
    let r = on_pg(&other, &pg.url("staging"), &["apply", "--auto-approve"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(first.wait().unwrap().code(), Some(0));
    assert_eq!(pg.pins_in("prod"), 40);
    assert_eq!(pg.pins_in("staging"), 2);
}

/// A holder killed with SIGKILL renews nothing: its lease expires and the
/// next run takes over, losing nothing and pinning nothing twice.
#[test]
fn a_killed_holders_lease_expires_and_the_next_run_takes_over() {
    let pg = Postgres::start();
    let emu = Emulator::start_with(&["--delay-ms", "50"]);
    let p = Project::new(&emu, &many_pins(60, &["aioz"]));
    let url = format!("{}&lease=5s", pg.url("prod"));
    migrate(&p, &url);
    let mut holder = spawn_quiet(on_pg(
        &p,
        &url,
        &["apply", "--auto-approve", "--concurrency", "2"],
    ));
    wait_until(Duration::from_secs(30), "some pins recorded", || {
        pg.pins_in("prod") >= 5
    });
    signal(&holder, libc::SIGKILL);
    holder.wait().unwrap();
    let recorded = pg.pins_in("prod");
    let refused = on_pg(&p, &url, &["apply", "--auto-approve"]).run();
    assert_eq!(refused.code, 1, "the lease is still live: {refused:?}");
    let started = Instant::now();
    let r = on_pg(
        &p,
        &url,
        &["apply", "--auto-approve", "--lock-timeout", "30s"],
    )
    .run();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "taken over once it expired"
    );
    assert_eq!(pg.pins_in("prod"), 60);
    let held = emu.pins();
    assert_eq!(held.len(), 60, "nothing pinned twice");
    // What the killed run recorded was not pinned again.
    let again = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("pinned "))
        .count();
    assert!(
        again <= 60 - recorded + 8,
        "{again} pinned after {recorded} recorded"
    );
}

/// A holder whose lease is broken (as after a partition) stops making
/// calls at once and exits 1.
#[test]
fn a_holder_whose_lease_is_broken_stops() {
    let pg = Postgres::start();
    let emu = Emulator::start_with(&["--delay-ms", "100"]);
    let p = Project::new(&emu, &many_pins(200, &["aioz"]));
    let url = format!("{}&lease=6s", pg.url("prod"));
    migrate(&p, &url);
    let holder = spawn_piped(on_pg(
        &p,
        &url,
        &["apply", "--auto-approve", "--concurrency", "1"],
    ));
    wait_until(Duration::from_secs(30), "some pins recorded", || {
        pg.pins_in("prod") >= 3
    });
    let broke = on_pg(
        &p,
        &url,
        &["state", "lock", "break", "--if-older-than", "0s"],
    )
    .run();
    assert_eq!(broke.code, 0, "{broke:?}");
    let out = holder.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The renewal or the next write finds it, whichever comes first.
    assert!(
        stderr.contains("lease was lost") || stderr.contains("lease was taken over or broken"),
        "{stderr}"
    );
    assert!(emu.pins().len() < 200, "it stopped before the end");
    // The next run finishes the job.
    let r = on_pg(&p, &url, &["apply", "--auto-approve"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(emu.pins().len(), 200);
    assert_eq!(pg.pins_in("prod"), 200);
}

/// PostgreSQL going away mid-apply: the write fails, no further call is
/// made, the apply exits 1; once it is back, the next run finishes.
#[test]
fn postgres_stopped_mid_apply_stops_the_calls_and_the_next_run_finishes() {
    let pg = Postgres::start();
    let emu = Emulator::start_with(&["--delay-ms", "50"]);
    // 8 s of calls: long enough that a loaded machine stops the server
    // before they end.
    let p = Project::new(&emu, &many_pins(300, &["aioz"]));
    // A short lease: the stopped run cannot release its own, so the next
    // run waits for it to expire.
    let url = format!("{}&lease=5s", pg.url("prod"));
    migrate(&p, &url);
    let holder = spawn_piped(on_pg(
        &p,
        &url,
        &["apply", "--auto-approve", "--concurrency", "2"],
    ));
    wait_until(Duration::from_secs(30), "some pins recorded", || {
        pg.pins_in("prod") >= 5
    });
    pg.stop();
    let out = holder.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let called = emu.pin_calls();
    assert!(called < 300, "the calls stopped: {called}");
    pg.restart();
    let r = on_pg(
        &p,
        &url,
        &["apply", "--auto-approve", "--lock-timeout", "60s"],
    )
    .run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(pg.pins_in("prod"), 300);
    assert_eq!(emu.pins().len(), 300);
}

#[test]
fn a_file_state_is_pushed_to_postgres_and_pulled_back_with_its_history() {
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(12, &["aioz"]));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    let file_state = p.state();
    let url = pg.url("moved");
    let r = on_pg(&p, &url, &[]).args(["state", "push"]).run();
    assert_eq!(r.code, 1, "push needs --to: {r:?}");
    let mut push = p.command(&["state", "push", "--to", &url]);
    push.env("PGPASSWORD", PG_PASSWORD);
    let r = push.run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(pg.pins_in("moved"), 12);
    let head =
        pg.psql("SELECT lineage || ' ' || serial FROM pinsync.workspaces WHERE name = 'moved'");
    assert_eq!(
        head.trim(),
        format!(
            "{} {}",
            file_state["lineage"].as_str().unwrap(),
            file_state["serial"]
        ),
        "the history travels with it"
    );
    let r = on_pg(&p, &url, &["plan", "--detailed-exitcode"]).run();
    assert_eq!(r.code, 0, "in sync on PostgreSQL: {r:?}");
    std::fs::remove_file(p.state_path()).unwrap();
    let mut pull = p.command(&["state", "pull", "--from", &url]);
    pull.env("PGPASSWORD", PG_PASSWORD);
    assert_eq!(pull.run().code, 0);
    assert_eq!(p.state()["pins"].as_array().unwrap().len(), 12);
    assert_eq!(p.run(&["plan", "--detailed-exitcode"]).code, 0);
}

/// `state: {url: ${VAR}, workspace: NAME}` in the manifest: the state is on
/// PostgreSQL with no flag, its URL read from the environment.
#[test]
fn the_manifest_can_name_its_postgres_state() {
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(4, &["aioz"]));
    let text = std::fs::read_to_string(p.manifest()).unwrap().replacen(
        "version: 1\n",
        "version: 1\nstate:\n  url: ${PINSYNC_STATE_URL}\n  workspace: from-manifest\n",
        1,
    );
    std::fs::write(p.manifest(), text).unwrap();
    let unset = p.run(&["apply", "--auto-approve"]);
    assert_eq!(unset.code, 1, "{unset:?}");
    assert!(
        unset
            .stderr
            .contains("$PINSYNC_STATE_URL, which is not set"),
        "{unset:?}"
    );
    let mut cmd = p.command(&["apply", "--auto-approve"]);
    // The URL's own workspace is replaced by the manifest's.
    cmd.env("PINSYNC_STATE_URL", pg.url("ignored"))
        .env("PGPASSWORD", PG_PASSWORD);
    let r = cmd.run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(pg.pins_in("from-manifest"), 4);
    assert!(!p.state_path().exists());
    let literal = std::fs::read_to_string(p.manifest())
        .unwrap()
        .replace("${PINSYNC_STATE_URL}", &pg.url("x"));
    std::fs::write(p.manifest(), literal).unwrap();
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("pins.yaml:3:8: credentials must name an environment variable"),
        "{r:?}"
    );
}

fn status_of(p: &Project, name: &str) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(p.path(name)).ok()?).ok()
}

/// Two watch servers on one workspace: one applies, the other waits as a
/// standby; kill the active one and the standby takes over within the
/// lease, applying what the manifest asks.
#[test]
fn of_two_watch_servers_one_applies_and_the_other_takes_over_when_it_dies() {
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(5, &["aioz"]));
    let url = format!("{}&lease=5s", pg.url("prod"));
    migrate(&p, &url);
    let watch = |status: &str| {
        Background::spawn(on_pg(
            &p,
            &url,
            &["watch", "--interval", "1h", "--status-file", status],
        ))
    };
    let a = watch("a.json");
    wait_until(Duration::from_secs(30), "server a applies", || {
        status_of(&p, "a.json").is_some_and(|s| s["role"] == "active" && s["last_result"] == "ok")
    });
    let b = watch("b.json");
    wait_until(Duration::from_secs(30), "server b waits", || {
        status_of(&p, "b.json").is_some_and(|s| s["role"] == "standby")
    });
    assert!(b.output().contains("standby:"), "{}", b.output());
    assert_eq!(emu.pins().len(), 5);
    // The active server dies; the manifest meanwhile asks for more.
    a.stop(libc::SIGKILL);
    p.write_manifest(&emu, &many_pins(8, &["aioz"]));
    let started = std::time::Instant::now();
    wait_until(
        Duration::from_secs(40),
        "server b takes over and applies",
        || {
            status_of(&p, "b.json")
                .is_some_and(|s| s["role"] == "active" && s["last_result"] == "ok")
        },
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "within the lease and a poll"
    );
    assert_eq!(emu.pins().len(), 8, "applied once, by the new holder");
    assert_eq!(pg.pins_in("prod"), 8);
    let (code, _) = b.stop(libc::SIGTERM);
    assert_eq!(code, 0);
}

/// A watch server reads the pins table whole once, when it starts, and
/// keeps the state it loaded: a reconcile after an edit reads no more than
/// the rows it writes. A server that loaded the state again for each
/// reconcile would read the table once more per edit.
#[test]
fn a_watch_server_reads_the_pins_once_not_at_each_reconcile() {
    const PINS: usize = 1_000;
    const EDITS: usize = 3;
    let targets = ["aioz", "arkive/cl0-global"];
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(PINS, &targets));
    let url = pg.url("prod");
    let r = on_pg(&p, &url, &["apply", "--auto-approve"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    let stored = 2 * PINS as i64;
    let before = TableCounts::settled(&pg, "pins");
    assert_eq!(before.inserted, stored);

    let server = Background::spawn(on_pg(
        &p,
        &url,
        &["watch", "--interval", "1h", "--status-file", "status.json"],
    ));
    // Each reconcile's report: pins made, and pins already there.
    let reconciled = |pinned: usize, unchanged: usize| {
        status_of(&p, "status.json").is_some_and(|s| {
            s["last_result"] == "ok" && s["pinned"] == pinned && s["unchanged"] == unchanged
        })
    };
    wait_until(Duration::from_secs(60), "the first reconcile", || {
        reconciled(0, 2 * PINS)
    });
    for edit in 1..=EDITS {
        p.write_manifest(&emu, &many_pins(PINS + edit, &targets));
        wait_until(
            Duration::from_secs(60),
            &format!("edit {edit} applied"),
            || reconciled(2, 2 * (PINS + edit - 1)),
        );
    }
    let (code, output) = server.stop(libc::SIGTERM);
    assert_eq!(code, 0, "{output}");
    let after = TableCounts::settled(&pg, "pins");
    assert_eq!(after.inserted - before.inserted, 2 * EDITS as i64);
    let read = after.read - before.read;
    // The start's load reads every row once; each edit's upserts look up
    // their own keys.
    assert!(
        (stored..stored + 100).contains(&read),
        "{read} pin rows read by a watch of {EDITS} edits on {stored} rows: {before:?} -> {after:?}"
    );
    assert_eq!(pg.pins_in("prod"), 2 * (PINS + EDITS));
}

/// A schema a newer pinsync migrated is refused, not misread.
#[test]
fn a_schema_from_a_newer_pinsync_is_refused() {
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(1, &["aioz"]));
    let url = pg.url("prod");
    migrate(&p, &url);
    pg.psql("INSERT INTO pinsync.migrations (version) VALUES (99)");
    for args in [
        &["plan"][..],
        &["apply", "--auto-approve"],
        &["state", "migrate"],
    ] {
        let r = on_pg(&p, &url, args).run();
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("version 99, made by a newer pinsync"),
            "{args:?}: {r:?}"
        );
    }
    assert!(emu.pins().is_empty(), "no call was made");
}

/// The lease is checked in each batch's own transaction, not only at the
/// next renewal: with a 60 s lease (renewed every 20 s), a broken lease
/// stops the holder at its next write.
#[test]
fn a_batch_after_the_lease_is_broken_is_not_recorded_and_the_holder_stops() {
    let pg = Postgres::start();
    let emu = Emulator::start_with(&["--delay-ms", "100"]);
    let p = Project::new(&emu, &many_pins(300, &["aioz"]));
    let url = pg.url("prod");
    migrate(&p, &url);
    let holder = spawn_piped(on_pg(
        &p,
        &url,
        &["apply", "--auto-approve", "--concurrency", "1"],
    ));
    wait_until(Duration::from_secs(30), "some pins recorded", || {
        pg.pins_in("prod") >= 3
    });
    pg.psql("DELETE FROM pinsync.leases");
    let broken_at = Instant::now();
    let out = holder.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("lease was taken over or broken"),
        "{stderr}"
    );
    assert!(
        broken_at.elapsed() < Duration::from_secs(15),
        "stopped at its next write, not at the renewal"
    );
    let recorded = pg.pins_in("prod");
    assert!(
        recorded < 300 && emu.pins().len() < 300,
        "{recorded} recorded"
    );
}

/// A role that may read and write the tables but create nothing works on
/// a schema its administrator migrated: an up-to-date schema needs no DDL.
#[test]
fn a_role_without_create_rights_uses_a_migrated_schema() {
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(3, &["aioz"]));
    migrate(&p, &pg.url("prod"));
    pg.psql(&format!(
        "CREATE ROLE limited LOGIN PASSWORD '{PG_PASSWORD}';
         GRANT USAGE ON SCHEMA pinsync TO limited;
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pinsync TO limited;"
    ));
    let url = pg.url("prod").replacen("pinsync@", "limited@", 1);
    let r = on_pg(&p, &url, &["apply", "--auto-approve"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(pg.pins_in("prod"), 3);
    let denied = pg.psql("SELECT has_database_privilege('limited', 'pinsync_test', 'CREATE')");
    assert_eq!(denied.trim(), "f", "the role really cannot create");
}

/// Two schemas in one database, one named by a reserved word, hold two
/// states that never meet.
#[test]
fn two_schemas_in_one_database_keep_apart_even_one_named_user() {
    let pg = Postgres::start();
    let emu = Emulator::start();
    let a = Project::new(&emu, &many_pins(2, &["aioz"]));
    let b = Project::new(&emu, &many_pins(5, &["arkive/cl0-global"]));
    let in_user = format!("{}&schema=user", pg.url("prod"));
    let in_team = format!("{}&schema=team_b", pg.url("prod"));
    assert_eq!(
        on_pg(&a, &in_user, &["apply", "--auto-approve"]).run().code,
        0
    );
    assert_eq!(
        on_pg(&b, &in_team, &["apply", "--auto-approve"]).run().code,
        0
    );
    assert_eq!(pg.psql("SELECT count(*) FROM \"user\".pins").trim(), "2");
    assert_eq!(pg.psql("SELECT count(*) FROM team_b.pins").trim(), "5");
    assert_eq!(
        on_pg(&a, &in_user, &["plan", "--detailed-exitcode"])
            .run()
            .code,
        0
    );
    assert_eq!(
        on_pg(&b, &in_team, &["plan", "--detailed-exitcode"])
            .run()
            .code,
        0
    );
}

/// `apply --wait` holds the lease while it polls: a lease broken during the
/// wait stops the polling at once, and the run exits 1 recording nothing.
#[test]
fn a_wait_stops_when_its_lease_is_broken() {
    let pg = Postgres::start();
    let emu = Emulator::start_with(&["--aioz-pinning-ms", "600000"]);
    let p = Project::new(&emu, &many_pins(3, &["aioz"]));
    let url = format!("{}&lease=6s", pg.url("prod"));
    migrate(&p, &url);
    let holder = spawn_piped(on_pg(
        &p,
        &url,
        &["apply", "--auto-approve", "--wait", "--wait-timeout", "5m"],
    ));
    wait_until(Duration::from_secs(30), "the pins recorded", || {
        pg.pins_in("prod") == 3
    });
    pg.psql("DELETE FROM pinsync.leases");
    let broken_at = Instant::now();
    let out = holder.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        broken_at.elapsed() < Duration::from_secs(30),
        "stopped, not waited out"
    );
}

/// An apply needs two connections: its lease's, and the state's, on which
/// it also records each batch of confirmed pins. A recorder that opened a
/// connection of its own when the first answers came would leave them
/// unrecorded for a whole handshake (which a kill then loses), and would
/// not fit a role allowed two connections; nor would a lease released on
/// a new one, which would then stay until it expired.
#[test]
fn an_apply_records_on_the_connection_it_read_the_state_on() {
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(10, &["aioz"]));
    let url = pg.url("prod");
    migrate(&p, &url);
    pg.psql("ALTER ROLE pinsync CONNECTION LIMIT 2");
    for pins in [10, 20] {
        wait_until(
            Duration::from_secs(10),
            "the last run's connections to close",
            || pg.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'pinsync'") == "0",
        );
        p.write_manifest(&emu, &many_pins(pins, &["aioz"]));
        // No --lock-timeout: the first run's lease must have been released.
        let r = on_pg(&p, &url, &["apply", "--auto-approve"]).run();
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(pg.pins_in("prod"), pins);
    }
    assert_eq!(pg.psql("SELECT count(*) FROM pinsync.leases"), "0");
    assert_eq!(emu.pins().len(), 20);
}
