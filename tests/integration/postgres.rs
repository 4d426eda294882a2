//! The PostgreSQL harness itself: a real server per test, password auth,
//! stop and restart, and several at once.

use std::path::Path;

use crate::support::*;

fn assert_refused(result: Result<String, String>, why: &str) {
    let err = result.expect_err(why);
    assert!(
        err.contains("password authentication failed") || err.contains("no password supplied"),
        "{why}, but not for its password: {err}"
    );
}

#[test]
fn the_cluster_listens_on_loopback_with_password_auth_and_a_pinsync_role() {
    let pg = Postgres::start();
    assert!(pg.accepts_connections());
    assert_eq!(
        pg.psql_as(
            "pinsync",
            PG_PASSWORD,
            "SELECT current_user, current_database()"
        ),
        Ok("pinsync|pinsync_test".to_owned())
    );
    assert_eq!(pg.psql("SHOW listen_addresses"), "127.0.0.1");
    assert_eq!(pg.psql("SHOW port"), pg.port.to_string());
    let sockets = pg.psql("SHOW unix_socket_directories");
    assert!(
        Path::new(&sockets).starts_with(pg.dir()),
        "socket directory {sockets} is outside {}",
        pg.dir().display()
    );
    // No trust anywhere: every pg_hba.conf rule asks for a SCRAM password.
    assert_eq!(
        pg.psql("SELECT DISTINCT auth_method FROM pg_hba_file_rules"),
        "scram-sha-256"
    );
    assert_eq!(
        pg.psql(
            "SELECT rolcanlogin, rolcreatedb, rolsuper FROM pg_roles WHERE rolname = 'pinsync'"
        ),
        "t|t|f"
    );
    assert_eq!(
        pg.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'pinsync_test'"),
        "pinsync"
    );
    // The store makes its own schema.
    assert_eq!(
        pg.psql_as(
            "pinsync",
            PG_PASSWORD,
            "CREATE SCHEMA pinsync_state;
             CREATE TABLE pinsync_state.t (x int);
             SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'pinsync_state';"
        ),
        Ok("pinsync".to_owned())
    );
}

#[test]
fn the_url_names_the_pinsync_role_the_database_and_the_workspace_without_the_password() {
    let pg = Postgres::start();
    let url = pg.url("prod");
    assert_eq!(
        url,
        format!(
            "postgres://pinsync@127.0.0.1:{}/pinsync_test?workspace=prod",
            pg.port
        )
    );
    let encoded = pg.url("a b/c&d");
    let parsed = url::Url::parse(&encoded).unwrap();
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    assert_eq!(pairs, [("workspace".to_owned(), "a b/c&d".to_owned())]);
    assert_eq!(parsed.password(), None);
    assert_no_secret("the URL", &url);
    // The URL reaches the server (libpq knows no `workspace` parameter).
    let libpq_url = url.split('?').next().unwrap();
    assert_eq!(
        pg.try_psql(libpq_url, Some(PG_PASSWORD), "SELECT current_user"),
        Ok("pinsync".to_owned())
    );
    assert_refused(
        pg.try_psql(libpq_url, None, "SELECT 1"),
        "the URL alone must not log in",
    );
}

#[test]
fn wrong_or_missing_passwords_are_refused() {
    let pg = Postgres::start();
    assert_refused(
        pg.psql_as("pinsync", "pgPASS-wrong", "SELECT 1"),
        "a wrong password must be refused",
    );
    assert_refused(
        pg.psql_as("pinsync", "", "SELECT 1"),
        "an empty password must be refused",
    );
    assert_refused(
        pg.psql_as("postgres", PG_PASSWORD, "SELECT 1"),
        "the superuser has a password of its own",
    );
    assert_refused(
        pg.try_psql(
            &format!(
                "host={} port={} user=postgres dbname=postgres",
                pg.psql("SHOW unix_socket_directories"),
                pg.port
            ),
            None,
            "SELECT 1",
        ),
        "the unix socket must ask for a password too",
    );
    // The right one still works, so the refusals were about passwords.
    assert_eq!(
        pg.psql_as("pinsync", PG_PASSWORD, "SELECT 1"),
        Ok("1".to_owned())
    );
    assert_eq!(
        pg.psql_as("postgres", PG_SUPERUSER_PASSWORD, "SELECT 2"),
        Ok("2".to_owned())
    );
}

#[test]
fn an_immediate_stop_and_a_restart_keep_the_data_and_the_port() {
    let pg = Postgres::start();
    pg.psql_as(
        "pinsync",
        PG_PASSWORD,
        "CREATE TABLE kept (id int PRIMARY KEY, name text);
         INSERT INTO kept VALUES (1, 'one'), (2, 'two');",
    )
    .unwrap();
    let port = pg.port;

    pg.stop();
    assert!(!pg.accepts_connections(), "still up after stop");
    let down = pg
        .psql_as("pinsync", PG_PASSWORD, "SELECT 1")
        .expect_err("connected to a stopped server");
    assert!(down.contains("Connection refused"), "{down}");

    pg.restart();
    assert_eq!(pg.port, port);
    assert!(pg.accepts_connections());
    assert_eq!(
        pg.psql_as(
            "pinsync",
            PG_PASSWORD,
            "SELECT id, name FROM kept ORDER BY id"
        ),
        Ok("1|one\n2|two".to_owned())
    );
    // Recovered from the crash rather than a clean shutdown.
    assert!(
        pg.log().contains("database system was interrupted"),
        "{}",
        pg.log()
    );
    // And it still takes writes, and stops and starts again.
    pg.psql("INSERT INTO kept VALUES (3, 'three')");
    pg.stop();
    pg.restart();
    assert_eq!(pg.psql("SELECT count(*) FROM kept"), "3");
}

#[test]
fn two_clusters_run_at_once_on_their_own_ports_and_data() {
    let a = Postgres::start();
    let b = Postgres::start();
    assert_ne!(a.port, b.port);
    assert_ne!(a.dir(), b.dir());
    a.psql_as("pinsync", PG_PASSWORD, "CREATE TABLE only_in_a (x int)")
        .unwrap();
    assert_eq!(a.psql("SELECT to_regclass('only_in_a') IS NOT NULL"), "t");
    assert_eq!(b.psql("SELECT to_regclass('only_in_a') IS NOT NULL"), "f");
    assert_eq!(
        b.psql_as("pinsync", PG_PASSWORD, "SHOW port"),
        Ok(b.port.to_string())
    );

    a.stop();
    assert!(!a.accepts_connections());
    assert!(b.accepts_connections(), "stopping one stopped the other");
    assert_eq!(
        b.psql_as("pinsync", PG_PASSWORD, "SELECT 1"),
        Ok("1".to_owned())
    );
}

#[test]
fn drop_stops_the_server_and_removes_its_directory() {
    let pg = Postgres::start();
    let dir = pg.dir().to_path_buf();
    let port = pg.port;
    assert!(dir.join("data/PG_VERSION").is_file());
    drop(pg);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on port {port}"
    );
}

#[test]
fn the_binaries_are_found_under_the_newest_complete_version_or_on_path() {
    let root = tempfile::tempdir().unwrap();
    let tools = ["initdb", "pg_ctl", "postgres", "psql", "pg_isready"];
    let install = |version: &str, tools: &[&str]| {
        let bin = root.path().join(version).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for t in tools {
            std::fs::write(bin.join(t), "").unwrap();
        }
        bin
    };
    let empty_path = std::ffi::OsString::new();

    let err = find_pg_bin(root.path(), &empty_path).unwrap_err();
    assert!(err.contains("apt-get install postgresql"), "{err}");
    assert!(err.contains("initdb"), "{err}");

    install("9.6", &tools);
    let v13 = install("13", &tools);
    install("16", &["psql", "pg_isready"]); // the client alone
    install("not-a-version", &tools);
    assert_eq!(find_pg_bin(root.path(), &empty_path), Ok(v13));

    let elsewhere = tempfile::tempdir().unwrap();
    for t in tools {
        std::fs::write(elsewhere.path().join(t), "").unwrap();
    }
    let path = std::env::join_paths([Path::new("/nonexistent"), elsewhere.path()]).unwrap();
    let no_versions = tempfile::tempdir().unwrap();
    assert_eq!(
        find_pg_bin(no_versions.path(), &path),
        Ok(elsewhere.path().to_path_buf())
    );
}
