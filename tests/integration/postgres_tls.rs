//! `sslmode` and `sslrootcert` against a real PostgreSQL with TLS on: a
//! server whose `pg_hba.conf` takes TCP connections over TLS only, so every
//! run that gets in used TLS, with a certificate from a CA made here.

use std::process::Command;

use crate::support::*;

/// `pinsync ARGS --state URL`, the password in the environment only.
fn on_pg(p: &Project, url: &str, args: &[&str]) -> Command {
    let mut cmd = p.command(args);
    cmd.args(["--state", url]).env("PGPASSWORD", PG_PASSWORD);
    cmd
}

/// `url` with `host` for 127.0.0.1 and `query` appended.
fn with(url: &str, host: &str, query: &str) -> String {
    format!(
        "{}{query}",
        url.replacen("@127.0.0.1:", &format!("@{host}:"), 1)
    )
}

/// A run that failed with `expected` in its message, and no password in
/// its output.
fn assert_fails(run: &Run, expected: &[&str]) {
    assert_eq!(run.code, 1, "{run:?}");
    for text in expected {
        assert!(run.stderr.contains(text), "{text:?} in {run:?}");
    }
    assert_no_secret("output", &format!("{run:?}"));
}

#[test]
fn the_tls_cluster_serves_its_certificate_and_refuses_plain_tcp() {
    let ca = TestCa::new("pinsync test CA");
    let (cert, key) = ca.server_cert(&["localhost"]);
    let pg = Postgres::start_tls(&cert, &key);
    let root = ca.write_to(&pg.dir().join("ca.pem"));
    let over = |params: &str| {
        pg.try_psql(
            &format!(
                "host=localhost port={} user=pinsync dbname=pinsync_test {params}",
                pg.port
            ),
            Some(PG_PASSWORD),
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
    };
    // libpq itself accepts the certificate for localhost from this CA.
    assert_eq!(
        over(&format!("sslmode=verify-full sslrootcert={root}")).as_deref(),
        Ok("t")
    );
    let plain = over("sslmode=disable").unwrap_err();
    assert!(plain.contains("no encryption"), "{plain}");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(pg.dir().join("server.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
}

#[test]
fn require_and_prefer_use_tls_without_checking_the_certificate() {
    // A CA the client is never told of: as good as self-signed.
    let ca = TestCa::new("unknown CA");
    let (cert, key) = ca.server_cert(&["db.elsewhere.example"]);
    let pg = Postgres::start_tls(&cert, &key);
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(5, &["aioz"]));
    let require = with(&pg.url("tls"), "127.0.0.1", "&sslmode=require");
    let r = on_pg(&p, &require, &["apply", "--auto-approve"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(pg.pins_in("tls"), 5);
    // Through localhost too, whose name the certificate does not hold.
    let prefer = with(&pg.url("tls"), "localhost", "&sslmode=prefer");
    let r = on_pg(&p, &prefer, &["state", "list", "--json"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    let listed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(listed["pins"].as_array().unwrap().len(), 5);

    // No TLS: the server's pg_hba.conf refuses it, so the runs above used TLS.
    for url in [
        with(&pg.url("tls"), "127.0.0.1", "&sslmode=disable"),
        // Loopback without sslmode means disable.
        pg.url("tls"),
    ] {
        let r = on_pg(&p, &url, &["state", "list"]).run();
        assert_fails(&r, &["pg_hba.conf rejects connection", "no encryption"]);
    }
    for (path, text) in p.all_files() {
        assert_no_secret(&path.display().to_string(), &text);
    }
}

#[test]
fn verify_full_checks_the_chain_against_sslrootcert_and_the_host_name() {
    let ca = TestCa::new("team CA");
    let (cert, key) = ca.server_cert(&["localhost"]);
    let pg = Postgres::start_tls(&cert, &key);
    let root = ca.write_to(&pg.dir().join("ca.pem"));
    let other_root = TestCa::new("another CA").write_to(&pg.dir().join("other.pem"));
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(4, &["aioz"]));
    // The password in the URL too: no message may show it.
    let url = pg
        .url("full")
        .replacen("pinsync@", &format!("pinsync:{PG_PASSWORD}@"), 1);

    let full = with(
        &url,
        "localhost",
        &format!("&sslmode=verify-full&sslrootcert={root}"),
    );
    let r = on_pg(&p, &full, &["state", "migrate"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    let r = on_pg(&p, &full, &["apply", "--auto-approve"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(pg.pins_in("full"), 4);
    // sslrootcert alone means verify-full, even on loopback.
    let r = on_pg(
        &p,
        &with(&url, "localhost", &format!("&sslrootcert={root}")),
        &["plan", "--detailed-exitcode"],
    )
    .run();
    assert_eq!(r.code, 0, "in sync: {r:?}");

    // The certificate names localhost, not 127.0.0.1.
    let wrong_host = with(
        &url,
        "127.0.0.1",
        &format!("&sslmode=verify-full&sslrootcert={root}"),
    );
    let r = on_pg(&p, &wrong_host, &["state", "list"]).run();
    assert_fails(
        &r,
        &[
            "the server's certificate is not valid for host \"127.0.0.1\"",
            "sslmode=verify-ca",
        ],
    );
    let r = on_pg(
        &p,
        &with(&url, "127.0.0.1", &format!("&sslrootcert={root}")),
        &["state", "list"],
    )
    .run();
    assert_fails(&r, &["not valid for host \"127.0.0.1\""]);

    // Without sslrootcert, the Mozilla roots do not hold this CA.
    let r = on_pg(
        &p,
        &with(&url, "localhost", "&sslmode=verify-full"),
        &["state", "list"],
    )
    .run();
    assert_fails(
        &r,
        &["not signed by a CA pinsync trusts", "sslrootcert=PATH"],
    );
    // Nor does another CA's file, with any mode that checks the chain.
    for mode in ["verify-full", "verify-ca", "require"] {
        let r = on_pg(
            &p,
            &with(
                &url,
                "localhost",
                &format!("&sslmode={mode}&sslrootcert={other_root}"),
            ),
            &["state", "list"],
        )
        .run();
        assert_fails(
            &r,
            &[&format!(
                "the server's certificate is not signed by a CA of sslrootcert {other_root:?}"
            )],
        );
    }
    let missing = pg.dir().join("missing.pem").display().to_string();
    let r = on_pg(
        &p,
        &with(
            &url,
            "localhost",
            &format!("&sslmode=verify-full&sslrootcert={missing}"),
        ),
        &["state", "list"],
    )
    .run();
    assert_fails(&r, &[&format!("sslrootcert {missing:?}: cannot read it")]);
    for (path, text) in p.all_files() {
        assert_no_secret(&path.display().to_string(), &text);
    }
}

#[test]
fn verify_ca_checks_the_chain_but_not_the_host_name() {
    let ca = TestCa::new("team CA");
    let (cert, key) = ca.server_cert(&["localhost"]);
    let pg = Postgres::start_tls(&cert, &key);
    let root = ca.write_to(&pg.dir().join("ca.pem"));
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(3, &["aioz"]));
    for (mode, workspace) in [("verify-ca", "ca"), ("require", "required")] {
        // 127.0.0.1, which the certificate does not name.
        let url = with(
            &pg.url(workspace),
            "127.0.0.1",
            &format!("&sslmode={mode}&sslrootcert={root}"),
        );
        let r = on_pg(&p, &url, &["apply", "--auto-approve"]).run();
        assert_eq!(r.code, 0, "{mode}: {r:?}");
        assert_eq!(pg.pins_in(workspace), 3, "{mode}");
    }
    // Without sslrootcert, verify-ca checks the chain against the Mozilla roots.
    let r = on_pg(
        &p,
        &with(&pg.url("ca"), "127.0.0.1", "&sslmode=verify-ca"),
        &["state", "list"],
    )
    .run();
    assert_fails(&r, &["not signed by a CA pinsync trusts"]);
}

#[test]
fn require_refuses_a_server_without_tls_and_prefer_falls_back() {
    let pg = Postgres::start();
    let emu = Emulator::start();
    let p = Project::new(&emu, &many_pins(2, &["aioz"]));
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = with(&pg.url("w"), "127.0.0.1", &format!("&sslmode={mode}"));
        let r = on_pg(&p, &url, &["state", "list"]).run();
        assert_fails(&r, &["server does not support TLS"]);
    }
    let url = with(&pg.url("w"), "127.0.0.1", "&sslmode=prefer");
    let r = on_pg(&p, &url, &["apply", "--auto-approve"]).run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(pg.pins_in("w"), 2);
}
