//! The state in PostgreSQL, shared by every CI runner and watch server of
//! a team: one row per workspace (lineage, serial), one per pin, and a
//! lease per workspace.
//!
//! Locks are leases, not session locks or advisory locks: a row keyed by
//! (schema, workspace) with its holder and an expiry that the holder
//! renews while it works. A holder that dies stops renewing and the next
//! run takes over once the lease expires; a holder whose lease was taken
//! learns it at its next renewal or write, and stops. Two workspaces, or two
//! schemas, never share a row, so they never block each other.
//!
//! The `postgres` client runs its own small runtime, which must not be
//! entered from inside pinsync's: every call goes through a scoped thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

use super::lock::Holder;
use super::store::{HeldLock, Recorder, StateStore};
use super::{LockError, PinRef, State, StateFileError, StoredPin};
use crate::manifest::PinKey;

/// Version of the schema this build creates and reads.
const SCHEMA_VERSION: i32 = 1;
/// The lease a holder takes when the URL does not say (`lease=`).
const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Rows sent in one statement when a whole state is written.
const CHUNK: usize = 10_000;

/// Where a PostgreSQL state lives, from a `postgres://` URL.
#[derive(Clone)]
pub struct PgLocation {
    config: postgres::Config,
    tls: Tls,
    /// The URL without its password, for messages.
    shown: String,
    pub workspace: String,
    pub schema: String,
    /// The schema as SQL names it: quoted, so that any valid name (even a
    /// reserved word such as `user`) works, and its case is kept.
    schema_sql: String,
    pub lease: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tls {
    Disable,
    /// `require` and `verify-full` both verify the server's certificate
    /// and name (stricter than libpq's `require`).
    Verify,
}

impl std::fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the config: it holds the password.
        f.write_str(&self.shown)
    }
}

/// Whether `text` names a PostgreSQL state rather than a file.
pub fn is_postgres_url(text: &str) -> bool {
    let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl PgLocation {
    /// Reads `postgres://user[:password]@host[:port]/db?workspace=NAME
    /// [&schema=S][&lease=60s][&sslmode=disable|require|verify-full]`. The
    /// password, where the URL has none, comes from `PGPASSWORD` (through
    /// `env`) or the `.pgpass` file at `pgpass`.
    pub fn parse(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
        pgpass: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|e| format!("the state URL is not a URL ({e})"))?;
        // Not echoed: the query would show it.
        if url.query_pairs().any(|(k, _)| k == "password") {
            return Err(
                "the state URL must not carry password= (use PGPASSWORD or .pgpass)".into(),
            );
        }
        let mut shown = url.clone();
        let _ = shown.set_password(None);
        let shown_text = shown.to_string();
        let fail = |what: String| format!("state {shown_text}: {what}");
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(fail("the scheme must be postgres://".into()));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| fail("no host".into()))?
            .to_owned();
        let port = url.port().unwrap_or(5432);
        let user = url.username();
        if user.is_empty() {
            return Err(fail("no user (postgres://USER@HOST/DB)".into()));
        }
        let user = percent_decode(user);
        let db = url.path().trim_start_matches('/');
        if db.is_empty() {
            return Err(fail("no database (postgres://USER@HOST/DB)".into()));
        }
        let db = percent_decode(db);
        let mut workspace = None;
        let mut schema = "pinsync".to_owned();
        let mut lease = DEFAULT_LEASE;
        let mut tls = if is_loopback(&host) {
            Tls::Disable
        } else {
            Tls::Verify
        };
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "workspace" => workspace = Some(value.into_owned()),
                "schema" => schema = value.into_owned(),
                "lease" => {
                    lease = humantime::parse_duration(&value)
                        .ok()
                        .filter(|d| {
                            (Duration::from_secs(5)..=Duration::from_secs(86_400)).contains(d)
                        })
                        .ok_or_else(|| {
                            fail(format!("lease {value:?} is not a duration from 5s to 24h"))
                        })?;
                }
                "sslmode" => {
                    tls = match value.as_ref() {
                        "disable" => Tls::Disable,
                        "require" | "verify-ca" | "verify-full" => Tls::Verify,
                        other => {
                            return Err(fail(format!(
                                "sslmode {other:?}: pinsync takes disable, require or verify-full"
                            )));
                        }
                    }
                }
                other => return Err(fail(format!("unknown parameter {other:?}"))),
            }
        }
        let workspace =
            workspace.ok_or_else(|| fail("no workspace (add ?workspace=NAME)".into()))?;
        if !is_identifier(&workspace, 63) {
            return Err(fail(format!(
                "workspace {workspace:?} may hold only letters, digits, '-' and '_' (at most 63)"
            )));
        }
        if !is_identifier(&schema, 63)
            || schema.contains('-')
            || schema.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(fail(format!(
                "schema {schema:?} must be letters, digits and '_', not starting with a digit"
            )));
        }
        let password = url
            .password()
            .map(percent_decode)
            .or_else(|| env("PGPASSWORD"))
            .or_else(|| pgpass.and_then(|p| from_pgpass(p, &host, port, &db, &user)));
        let mut config = postgres::Config::new();
        config
            .host(&host)
            .port(port)
            .user(&user)
            .dbname(&db)
            .application_name("pinsync")
            .connect_timeout(Duration::from_secs(10))
            // A dead link must fail a call well within the lease, or a
            // partitioned holder would not notice it lost the lease.
            .keepalives_idle(Duration::from_secs(5))
            .tcp_user_timeout(lease / 4)
            .options(&format!("-c statement_timeout={}", (lease / 4).as_millis()));
        if let Some(password) = password {
            config.password(password);
        }
        Ok(Self {
            config,
            tls,
            shown: shown_text,
            workspace,
            schema_sql: format!("\"{schema}\""),
            schema,
            lease,
        })
    }

    fn connect(&self) -> Result<Client, postgres::Error> {
        match self.tls {
            Tls::Disable => self.config.connect(NoTls),
            Tls::Verify => {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
                self.config
                    .connect(tokio_postgres_rustls::MakeRustlsConnect::new(config))
            }
        }
    }
}

/// `%XX` decoding of a URL part (user, password, database).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn is_identifier(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The password of the first `.pgpass` line that matches (`*` matches
/// anything), as libpq reads it.
fn from_pgpass(
    path: &std::path::Path,
    host: &str,
    port: u16,
    db: &str,
    user: &str,
) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let port = port.to_string();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            let [h, p, d, u, password] = fields.as_slice() else {
                return None;
            };
            let matches = |field: &str, value: &str| field == "*" || field == value;
            (matches(h, host) && matches(p, &port) && matches(d, db) && matches(u, user))
                .then(|| password.clone())
        })
}

/// A `.pgpass` line's fields: `:` separates, `\` escapes.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// A state in one workspace of a PostgreSQL schema.
pub struct PgStore {
    location: Arc<PgLocation>,
    /// Shared with the store's recorder, which writes on the connection the
    /// state was read on rather than opening one when the first pins are
    /// confirmed.
    client: Arc<Mutex<Option<Client>>>,
    /// The token of the lease this store's lock took: every write checks,
    /// in its own transaction, that the lease is still this one's.
    lease_token: Arc<Mutex<Option<String>>>,
}

impl PgStore {
    pub fn new(location: PgLocation) -> Self {
        Self {
            location: Arc::new(location),
            client: Arc::default(),
            lease_token: Arc::default(),
        }
    }

    fn token(&self) -> Option<String> {
        self.lease_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs a write `f` in one transaction that first locks this store's
    /// lease row: a taker waits for the commit, and a lease already taken
    /// (or broken) fails the write, which commits nothing.
    fn write(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>, &PgLocation) -> Result<(), postgres::Error>
        + Send,
    ) -> Result<(), StateFileError> {
        let token = self.token();
        let held = self.with_client(|client, location| {
            let mut tx = client.transaction()?;
            // Every writer holds the lease; one that does not writes nothing.
            let Some(token) = &token else {
                return Ok(false);
            };
            let s = &location.schema_sql;
            let ours = tx.query_opt(
                &format!("SELECT 1 FROM {s}.leases WHERE workspace = $1 AND token = $2 FOR UPDATE"),
                &[&location.workspace, token],
            )?;
            if ours.is_none() {
                return Ok(false);
            }
            f(&mut tx, location)?;
            tx.commit()?;
            Ok(true)
        })?;
        if held {
            Ok(())
        } else {
            Err(StateFileError::Database {
                store: self.location.shown.clone(),
                reason: "this run's lease was taken over or broken; nothing more was recorded"
                    .into(),
            })
        }
    }

    /// Runs `f` with a connection whose schema is migrated, on a thread of
    /// its own (see the module's note).
    fn with_client<R: Send>(
        &self,
        f: impl FnOnce(&mut Client, &PgLocation) -> Result<R, postgres::Error> + Send,
    ) -> Result<R, StateFileError> {
        let location = &self.location;
        let client = &self.client;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let mut guard = client.lock().unwrap_or_else(PoisonError::into_inner);
                    if guard.as_ref().is_none_or(Client::is_closed) {
                        let mut fresh = location.connect().map_err(|e| db_error(location, &e))?;
                        let version =
                            migrate(&mut fresh, location).map_err(|e| db_error(location, &e))?;
                        check_version(location, version)?;
                        *guard = Some(fresh);
                    }
                    let connection = guard.as_mut().expect("connected above");
                    f(connection, location).map_err(|e| db_error(location, &e))
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(StateFileError::Database {
                        store: location.shown.clone(),
                        reason: "the database thread panicked".into(),
                    })
                })
        })
    }
}

/// Who holds a workspace's lease, as `state lock status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseInfo {
    /// The holder's JSON (command, host, pid, since, CI run).
    pub holder: String,
    pub acquired_at: String,
    pub expires_at: String,
    /// Seconds since it was taken.
    pub age: f64,
    /// Past its expiry: the next run takes it over.
    pub expired: bool,
}

/// The columns a [`LeaseInfo`] is read from, in its fields' order.
const LEASE_COLUMNS: &str = "holder::text, acquired_at::text, expires_at::text,
     extract(epoch FROM now() - acquired_at)::float8, expires_at < now()";

impl LeaseInfo {
    fn from_row(r: &postgres::Row) -> Self {
        Self {
            holder: r.get(0),
            acquired_at: r.get(1),
            expires_at: r.get(2),
            age: r.get(3),
            expired: r.get(4),
        }
    }
}

impl PgStore {
    /// The workspace's lease, if one is recorded.
    pub fn lease(&self) -> Result<Option<LeaseInfo>, StateFileError> {
        self.with_client(|client, location| {
            let s = &location.schema_sql;
            let row = client.query_opt(
                &format!("SELECT {LEASE_COLUMNS} FROM {s}.leases WHERE workspace = $1"),
                &[&location.workspace],
            )?;
            Ok(row.as_ref().map(LeaseInfo::from_row))
        })
    }

    /// Removes the workspace's lease if it was taken more than `older_than`
    /// ago; the lease removed, if any. Its holder, if alive, finds it gone
    /// at its next renewal or write and stops.
    pub fn break_lease(&self, older_than: Duration) -> Result<Option<LeaseInfo>, StateFileError> {
        self.with_client(|client, location| {
            let s = &location.schema_sql;
            let row = client.query_opt(
                &format!(
                    "DELETE FROM {s}.leases WHERE workspace = $1
                       AND acquired_at < now() - $2 * interval '1 second'
                     RETURNING {LEASE_COLUMNS}"
                ),
                &[&location.workspace, &older_than.as_secs_f64()],
            )?;
            Ok(row.as_ref().map(LeaseInfo::from_row))
        })
    }

    /// Brings the schema to this build's version; the version it is at.
    pub fn migrate(&self) -> Result<i32, StateFileError> {
        self.with_client(|client, location| {
            let s = &location.schema_sql;
            let version: Option<i32> = client
                .query_one(&format!("SELECT max(version) FROM {s}.migrations"), &[])?
                .get(0);
            Ok(version.unwrap_or(0))
        })
    }
}

fn db_error(location: &PgLocation, e: &postgres::Error) -> StateFileError {
    StateFileError::Database {
        store: location.shown.clone(),
        reason: reason(e),
    }
}

/// The driver's message with its causes. It names no password, and the
/// URL shown has none.
fn reason(e: &postgres::Error) -> String {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    reason
}

/// Refuses a schema a newer pinsync made: this build would misread it.
fn check_version(location: &PgLocation, version: i32) -> Result<(), StateFileError> {
    if version > SCHEMA_VERSION {
        return Err(StateFileError::Database {
            store: location.shown.clone(),
            reason: format!(
                "schema {} is at version {version}, made by a newer pinsync; this one knows \
                 version {SCHEMA_VERSION}: upgrade pinsync",
                location.schema
            ),
        });
    }
    Ok(())
}

/// Creates the schema's tables, or brings them to [`SCHEMA_VERSION`]; the
/// version found before. Concurrent first runs wait on the migrations
/// table's lock, not on an advisory lock another schema could share.
pub fn migrate(client: &mut Client, location: &PgLocation) -> Result<i32, postgres::Error> {
    let s = &location.schema_sql;
    // Up to date: no DDL, so a role with no right to create anything can
    // use a schema its administrator migrated.
    let exists: Option<String> = client
        .query_one(
            "SELECT to_regclass($1)::text",
            &[&format!("{s}.migrations")],
        )?
        .get(0);
    if exists.is_some() {
        let current: Option<i32> = client
            .query_one(&format!("SELECT max(version) FROM {s}.migrations"), &[])?
            .get(0);
        if current.unwrap_or(0) >= SCHEMA_VERSION {
            return Ok(current.unwrap_or(0));
        }
    }
    let mut tx = client.transaction()?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now());
         LOCK TABLE {s}.migrations IN EXCLUSIVE MODE;"
    ))?;
    let current: Option<i32> = tx
        .query_one(&format!("SELECT max(version) FROM {s}.migrations"), &[])?
        .get(0);
    if current.unwrap_or(0) < SCHEMA_VERSION {
        tx.batch_execute(&format!(
            "CREATE TABLE {s}.workspaces (
                 name text PRIMARY KEY,
                 lineage text NOT NULL,
                 serial bigint NOT NULL);
             CREATE TABLE {s}.pins (
                 workspace text NOT NULL REFERENCES {s}.workspaces (name) ON DELETE CASCADE,
                 provider text NOT NULL,
                 cluster text NOT NULL,
                 cid text NOT NULL,
                 record jsonb NOT NULL,
                 PRIMARY KEY (workspace, provider, cluster, cid));
             CREATE TABLE {s}.leases (
                 workspace text PRIMARY KEY,
                 token text NOT NULL,
                 holder jsonb NOT NULL,
                 acquired_at timestamptz NOT NULL,
                 expires_at timestamptz NOT NULL);
             INSERT INTO {s}.migrations (version) VALUES ({SCHEMA_VERSION});"
        ))?;
    }
    tx.commit()?;
    Ok(current.unwrap_or(0).max(SCHEMA_VERSION))
}

fn key_columns(key: &PinKey) -> (&str, &str, &str) {
    (
        key.target.provider.as_str(),
        key.target.cluster.as_deref().unwrap_or(""),
        key.cid.as_str(),
    )
}

/// Upserts `pins` into the workspace, in chunks.
fn upsert_pins(
    tx: &mut postgres::Transaction<'_>,
    location: &PgLocation,
    pins: &[PinRef<'_>],
) -> Result<(), postgres::Error> {
    let s = &location.schema_sql;
    let statement = tx.prepare(&format!(
        "INSERT INTO {s}.pins (workspace, provider, cluster, cid, record)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::jsonb[])
         ON CONFLICT (workspace, provider, cluster, cid) DO UPDATE SET record = EXCLUDED.record"
    ))?;
    for chunk in pins.chunks(CHUNK) {
        let mut providers = Vec::with_capacity(chunk.len());
        let mut clusters = Vec::with_capacity(chunk.len());
        let mut cids = Vec::with_capacity(chunk.len());
        let mut records = Vec::with_capacity(chunk.len());
        for pin in chunk {
            let (p, c, cid) = key_columns(pin.key);
            providers.push(p);
            clusters.push(c);
            cids.push(cid);
            records.push(serde_json::to_value(pin).expect("a pin serialises"));
        }
        tx.execute(
            &statement,
            &[&location.workspace, &providers, &clusters, &cids, &records],
        )?;
    }
    Ok(())
}

impl StateStore for PgStore {
    fn describe(&self) -> String {
        // The URL names the workspace (`?workspace=`).
        self.location.shown.clone()
    }

    fn load(&self) -> Result<State, StateFileError> {
        let rows = self.with_client(|client, location| {
            let s = &location.schema_sql;
            let head = client.query_opt(
                &format!("SELECT lineage, serial FROM {s}.workspaces WHERE name = $1"),
                &[&location.workspace],
            )?;
            let pins = client.query(
                &format!(
                    "SELECT record FROM {s}.pins WHERE workspace = $1 ORDER BY provider, cluster, cid"
                ),
                &[&location.workspace],
            )?;
            Ok((head, pins))
        })?;
        let (head, pins) = rows;
        let mut state = State::new();
        if let Some(head) = head {
            state.lineage = head.get(0);
            state.serial = u64::try_from(head.get::<_, i64>(1)).unwrap_or_default();
        }
        for row in pins {
            let record: serde_json::Value = row.get(0);
            let pin: StoredPin =
                serde_json::from_value(record).map_err(|e| StateFileError::Database {
                    store: self.describe(),
                    reason: format!("a pin row is not a pin: {e}"),
                })?;
            state.record(pin);
        }
        Ok(state)
    }

    fn save(&self, state: &State) -> Result<(), StateFileError> {
        // Borrowed, not cloned: at the end of an apply of 100,000 pins.
        let pins: Vec<PinRef<'_>> = state
            .pins
            .iter()
            .map(|(key, record)| PinRef { key, record })
            .collect();
        self.write(|tx, location| {
            let s = &location.schema_sql;
            write_head(tx, location, state)?;
            tx.execute(
                &format!("DELETE FROM {s}.pins WHERE workspace = $1"),
                &[&location.workspace],
            )?;
            upsert_pins(tx, location, &pins)
        })
    }

    fn recorder(&self, state: &State) -> Result<Box<dyn Recorder>, StateFileError> {
        // The workspace row must exist before pins refer to it.
        let head = State {
            lineage: state.lineage.clone(),
            serial: state.serial,
            pins: Default::default(),
        };
        self.write(|tx, location| write_head(tx, location, &head))?;
        // The same connection and lease: a new connection's handshake
        // would keep the first confirmed pins unrecorded meanwhile.
        let store = PgStore {
            location: self.location.clone(),
            client: self.client.clone(),
            lease_token: self.lease_token.clone(),
        };
        Ok(Box::new(PgRecorder { store }))
    }

    fn lock(&self, wait: Duration, command: &str) -> Result<Box<dyn HeldLock>, LockError> {
        let lease = Lease::acquire(self.location.clone(), wait, command)?;
        *self
            .lease_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(lease.token.clone());
        Ok(Box::new(lease))
    }
}

fn write_head(
    tx: &mut postgres::Transaction<'_>,
    location: &PgLocation,
    state: &State,
) -> Result<(), postgres::Error> {
    let s = &location.schema_sql;
    let serial = i64::try_from(state.serial).unwrap_or(i64::MAX);
    tx.execute(
        &format!(
            "INSERT INTO {s}.workspaces (name, lineage, serial) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET lineage = EXCLUDED.lineage, serial = EXCLUDED.serial"
        ),
        &[&location.workspace, &state.lineage, &serial],
    )?;
    Ok(())
}

/// Commits each batch of an apply as one transaction (group commit).
struct PgRecorder {
    store: PgStore,
}

impl Recorder for PgRecorder {
    fn append(
        &mut self,
        serial: u64,
        pins: &[StoredPin],
        unpinned: &[PinKey],
    ) -> Result<(), StateFileError> {
        let pins: Vec<PinRef<'_>> = pins
            .iter()
            .map(|p| PinRef {
                key: &p.key,
                record: &p.record,
            })
            .collect();
        self.store.write(|tx, location| {
            let s = &location.schema_sql;
            upsert_pins(tx, location, &pins)?;
            for key in unpinned {
                let (p, c, cid) = key_columns(key);
                tx.execute(
                    &format!(
                        "DELETE FROM {s}.pins WHERE workspace = $1 AND provider = $2 AND cluster = $3 AND cid = $4"
                    ),
                    &[&location.workspace, &p, &c, &cid],
                )?;
            }
            let serial = i64::try_from(serial).unwrap_or(i64::MAX);
            tx.execute(
                &format!("UPDATE {s}.workspaces SET serial = $2 WHERE name = $1"),
                &[&location.workspace, &serial],
            )?;
            Ok(())
        })
    }
}

/// A lease on a workspace, renewed by a thread of its own until dropped.
pub struct Lease {
    token: String,
    stop: Arc<AtomicBool>,
    lost: CancellationToken,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl Lease {
    fn acquire(
        location: Arc<PgLocation>,
        wait: Duration,
        command: &str,
    ) -> Result<Self, LockError> {
        let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let holder = Holder {
            pid: std::process::id(),
            host: super::lock::hostname(),
            since: super::now_rfc3339(),
            command: command.to_owned(),
        };
        let mut holder_json = serde_json::to_value(&holder).expect("holder serialises");
        if let Some(url) = ci_run_url() {
            holder_json["ci_run"] = serde_json::Value::String(url);
        }
        let deadline = Instant::now()
            .checked_add(wait)
            .ok_or(LockError::WaitTooLong(wait))?;
        let db = |e: postgres::Error| LockError::Database {
            store: location.shown.clone(),
            reason: reason(&e),
        };
        let mut client = connect_migrated(&location)?;
        loop {
            let s = &location.schema_sql;
            let lease_secs = location.lease.as_secs_f64();
            let taken = client
                .query_opt(
                    &format!(
                        "INSERT INTO {s}.leases AS l (workspace, token, holder, acquired_at, expires_at)
                         VALUES ($1, $2, $3, now(), now() + $4 * interval '1 second')
                         ON CONFLICT (workspace) DO UPDATE
                           SET token = EXCLUDED.token, holder = EXCLUDED.holder,
                               acquired_at = now(), expires_at = EXCLUDED.expires_at
                           WHERE l.expires_at < now()
                         RETURNING token"
                    ),
                    &[&location.workspace, &token, &holder_json, &lease_secs],
                )
                .map_err(db)?;
            if taken.is_some() {
                break;
            }
            if Instant::now() >= deadline {
                let held = client
                    .query_opt(
                        &format!(
                            "SELECT holder::text, acquired_at::text, expires_at::text FROM {s}.leases WHERE workspace = $1"
                        ),
                        &[&location.workspace],
                    )
                    .map_err(db)?;
                let holder = held.map_or_else(
                    || "another pinsync".to_owned(),
                    |row| {
                        let who: String = row.get(0);
                        let since: String = row.get(1);
                        let until: String = row.get(2);
                        let who: String = who
                            .chars()
                            .map(|c| if c.is_control() { ' ' } else { c })
                            .take(300)
                            .collect();
                        format!("{who} (since {since}, lease until {until})")
                    },
                );
                return Err(LockError::Held {
                    state: std::path::PathBuf::from(format!(
                        "{} workspace {}",
                        location.shown, location.workspace
                    )),
                    holder,
                    waited: if wait.is_zero() {
                        String::new()
                    } else {
                        format!(" (waited {})", humantime::format_duration(wait))
                    },
                });
            }
            std::thread::sleep(Duration::from_millis(250).min(wait));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let lost = CancellationToken::new();
        let renewer = {
            let (location, token, stop, lost) =
                (location.clone(), token.clone(), stop.clone(), lost.clone());
            std::thread::spawn(move || renew(client, &location, &token, &stop, &lost))
        };
        Ok(Self {
            token,
            stop,
            lost,
            renewer: Some(renewer),
        })
    }
}

/// Renews the lease every third of its length; cancels `lost` (and stops)
/// when it finds the lease gone or cannot renew it before it expires. Once
/// told to stop, releases the lease on the same connection, so that a run
/// needs no other (a role's connection limit may allow no more).
fn renew(
    mut client: Client,
    location: &PgLocation,
    token: &str,
    stop: &AtomicBool,
    lost: &CancellationToken,
) {
    let s = &location.schema_sql;
    let every = location.lease / 3;
    let mut renewed = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        if renewed.elapsed() < every {
            continue;
        }
        let sent = Instant::now();
        let kept = client
            .execute(
                &format!(
                    "UPDATE {s}.leases SET expires_at = now() + $3 * interval '1 second'
                     WHERE workspace = $1 AND token = $2"
                ),
                &[&location.workspace, &token, &location.lease.as_secs_f64()],
            )
            .ok();
        match kept {
            // Counted from the send: the database's expiry runs from there.
            Some(1) => renewed = sent,
            Some(_) => {
                lost.cancel();
                return;
            }
            None => {
                // The database is out of reach: past the lease, another run
                // may hold it, so this one stops.
                if renewed.elapsed() >= location.lease {
                    lost.cancel();
                    return;
                }
                if client.is_closed()
                    && let Ok(fresh) = location.connect()
                {
                    client = fresh;
                }
            }
        }
    }
    let release = |client: &mut Client| {
        client.execute(
            &format!("DELETE FROM {s}.leases WHERE workspace = $1 AND token = $2"),
            &[&location.workspace, &token],
        )
    };
    // Best effort: an unreleased lease expires anyway.
    if release(&mut client).is_err()
        && let Ok(mut fresh) = location.connect()
    {
        let _ = release(&mut fresh);
    }
}

/// A connection on a thread of its own (see [`PgStore::with_client`]),
/// the schema migrated and checked.
fn connect_migrated(location: &PgLocation) -> Result<Client, LockError> {
    let failed = |reason: String| LockError::Database {
        store: location.shown.clone(),
        reason,
    };
    let owned = location.clone();
    let (client, version) = std::thread::spawn(move || {
        let mut client = owned.connect()?;
        let version = migrate(&mut client, &owned)?;
        Ok::<_, postgres::Error>((client, version))
    })
    .join()
    .map_err(|_| failed("the database thread panicked".into()))?
    .map_err(|e| failed(reason(&e)))?;
    check_version(location, version).map_err(|e| failed(e.to_string()))?;
    Ok(client)
}

/// The URL of the CI run holding the lease, where the environment says.
fn ci_run_url() -> Option<String> {
    let get = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    if let (Some(server), Some(repo), Some(run)) = (
        get("GITHUB_SERVER_URL"),
        get("GITHUB_REPOSITORY"),
        get("GITHUB_RUN_ID"),
    ) {
        return Some(format!("{server}/{repo}/actions/runs/{run}"));
    }
    get("CI_JOB_URL").or_else(|| get("BUILD_URL"))
}

impl HeldLock for Lease {
    fn lost(&self) -> Option<CancellationToken> {
        Some(self.lost.clone())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The renewer releases the lease as it stops.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_the_password_is_never_shown() {
        let l = PgLocation::parse(
            "postgres://ci:s3cret%21@db.example:6543/pins?workspace=prod&schema=team_a&lease=90s",
            |_| None,
            None,
        )
        .unwrap();
        assert_eq!(
            (l.workspace.as_str(), l.schema.as_str()),
            ("prod", "team_a")
        );
        assert_eq!(l.lease, Duration::from_secs(90));
        assert!(l.tls == Tls::Verify, "a remote host gets TLS");
        assert!(!format!("{l:?}").contains("s3cret"), "{l:?}");
        assert_eq!(l.config.get_password(), Some(&b"s3cret!"[..]));
        let env = |v: &str| (v == "PGPASSWORD").then(|| "from-env".to_owned());
        let l = PgLocation::parse("postgres://ci@127.0.0.1/pins?workspace=w", env, None).unwrap();
        assert_eq!(l.config.get_password(), Some(&b"from-env"[..]));
        assert!(l.tls == Tls::Disable, "loopback needs no TLS");
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        for (url, expected) in [
            ("postgres://ci:pw@h/db", "no workspace"),
            ("postgres://ci:pw@h/db?workspace=a/b", "may hold only"),
            ("postgres://ci:pw@h/db?workspace=w&schema=x;drop", "schema"),
            ("postgres://ci:pw@h/db?workspace=w&lease=1s", "lease"),
            ("postgres://ci:pw@h/db?workspace=w&sslmode=allow", "sslmode"),
            (
                "postgres://ci:pw@h/db?workspace=w&colour=red",
                "unknown parameter",
            ),
            ("postgres://:pw@h/db?workspace=w", "no user"),
            ("postgres://ci:pw@h/?workspace=w", "no database"),
            (
                "postgres://ci@h/db?workspace=w&password=pw",
                "must not carry password=",
            ),
        ] {
            let err = PgLocation::parse(url, |_| None, None).unwrap_err();
            assert!(err.contains(expected), "{url}: {err}");
            assert!(
                !err.contains(":pw@") && !err.contains("=pw"),
                "{url}: {err}"
            );
        }
        assert!(is_postgres_url("POSTGRES://ci@h/db") && is_postgres_url("postgresql://x"));
        assert!(!is_postgres_url("pins.state.json") && !is_postgres_url("p"));
    }

    #[test]
    fn pgpass_lines_match_as_libpq_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(
            &path,
            "# comment\nother:5432:*:*:nope\ndb.example:*:pins:ci:pa\\:ss\n*:*:*:*:fallback\n",
        )
        .unwrap();
        assert_eq!(
            from_pgpass(&path, "db.example", 5432, "pins", "ci").as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            from_pgpass(&path, "else", 1, "x", "y").as_deref(),
            Some("fallback")
        );
    }
}
