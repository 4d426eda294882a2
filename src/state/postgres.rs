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

use postgres::fallible_iterator::FallibleIterator as _;
use postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

use super::lock::Holder;
use super::pin_table::PinTableBuilder;
use super::store::{HeldLock, Recorder, StateStore};
use super::{LockError, PinRef, State, StateFileError, StoredPin};
use crate::manifest::PinKey;

/// The schema's versions, oldest first: each step's SQL brings a schema at
/// the version before it to its own (`{s}` stands for the quoted schema).
/// A new version is a new step at the end; a released step never changes.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
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
         expires_at timestamptz NOT NULL);",
)];

/// The version this build writes: its last migration's.
const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;
/// The lease a holder takes when the URL does not say (`lease=`).
const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Rows sent in one statement when a whole state is written.
const CHUNK: usize = 10_000;
/// Rows read in one statement when the state is loaded: a tenth of a
/// second of decoding, far within the statement timeout, and 40 round
/// trips for two million rows.
const FETCHED: usize = 50_000;

/// Where a PostgreSQL state lives, from a `postgres://` URL.
#[derive(Clone)]
pub(crate) struct PgLocation {
    config: postgres::Config,
    tls: Tls,
    /// The host the URL names, for messages about its certificate.
    host: String,
    /// The URL without its password, for messages.
    shown: String,
    pub(crate) workspace: String,
    pub(crate) schema: String,
    /// The schema as SQL names it: quoted, so that any valid name (even a
    /// reserved word such as `user`) works, and its case is kept.
    schema_sql: String,
    pub(crate) lease: Duration,
}

/// `sslmode=`, with libpq's meanings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, else plain TCP.
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, and the certificate chains to a trusted CA.
    VerifyCa,
    /// TLS, the certificate chains to a trusted CA and names the host.
    VerifyFull,
}

/// What is checked of the server's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Nothing but that the server holds its key (libpq's `require`
    /// without a root certificate): it protects against eavesdropping,
    /// not against a server that pretends to be the database.
    Nothing,
    /// That it chains to a trusted CA, whatever name it holds.
    Chain,
    /// That it chains to a trusted CA and names the host of the URL.
    ChainAndName,
}

/// How a connection uses TLS.
#[derive(Clone)]
struct Tls {
    mode: SslMode,
    check: Check,
    /// The CAs of `sslrootcert=`; without it, the Mozilla roots
    /// (`webpki-roots`).
    roots: Arc<rustls::RootCertStore>,
    /// The file they came from, for messages.
    root_file: Option<String>,
}

impl Tls {
    fn new(mode: SslMode, root_file: Option<(String, rustls::RootCertStore)>) -> Self {
        // As libpq: a root certificate makes `require` (and `prefer`) check
        // the chain, as `verify-ca` does.
        let check = match (mode, root_file.is_some()) {
            (SslMode::VerifyFull, _) => Check::ChainAndName,
            (SslMode::VerifyCa, _) | (_, true) => Check::Chain,
            _ => Check::Nothing,
        };
        let (root_file, roots) = match root_file {
            Some((path, roots)) => (Some(path), roots),
            None => (
                None,
                rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                },
            ),
        };
        Self {
            mode,
            check,
            roots: Arc::new(roots),
            root_file,
        }
    }

    fn client_config(&self) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        match self.check {
            Check::ChainAndName => builder
                .with_root_certificates(Arc::clone(&self.roots))
                .with_no_client_auth(),
            Check::Chain | Check::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly {
                    roots: (self.check == Check::Chain).then(|| Arc::clone(&self.roots)),
                    algorithms,
                }))
                .with_no_client_auth(),
        }
    }
}

/// The verifier of `verify-ca` (the chain, not the name) and of `require`
/// without a root certificate (neither). Either way the handshake's
/// signatures are checked, so the server holds the certificate's key.
#[derive(Debug)]
struct ChainOnly {
    roots: Option<Arc<rustls::RootCertStore>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The CA certificates of the PEM file `path` (`sslrootcert=`).
fn read_root_certs(path: &str) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject as _;
    let pem =
        std::fs::read(path).map_err(|e| format!("sslrootcert {path:?}: cannot read it ({e})"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("sslrootcert {path:?}: not a PEM file ({e})"))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {path:?}: a certificate in it is not valid ({e})"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert {path:?}: holds no certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(roots)
}

impl std::fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the config: it holds the password.
        f.write_str(&self.shown)
    }
}

/// Whether `text` names a PostgreSQL state rather than a file.
pub(crate) fn is_postgres_url(text: &str) -> bool {
    let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl PgLocation {
    /// Reads `postgres://user[:password]@host[:port]/db?workspace=NAME
    /// [&schema=S][&lease=60s][&sslmode=MODE][&sslrootcert=PATH]`. The
    /// password, where the URL has none, comes from `PGPASSWORD` (through
    /// `env`) or the `.pgpass` file at `pgpass`.
    ///
    /// `sslmode` is libpq's: `disable` (no TLS), `prefer` (TLS if the server
    /// offers it, else plain; the certificate is not verified), `require`
    /// (TLS; the certificate is not verified, as libpq does when it has no
    /// root certificate), `verify-ca` (TLS; the certificate chains to a
    /// trusted CA, whatever host it names) or `verify-full` (the chain and
    /// the host name). Without `sslmode`, a loopback host gets `disable`
    /// and any other `verify-full` (stricter than libpq's `prefer`).
    ///
    /// `sslrootcert` is a PEM file of the CAs to trust instead of the
    /// Mozilla roots, read here: a missing or empty file is an error. With
    /// it, `require` and `prefer` check the chain as `verify-ca` does (as
    /// libpq does with a root certificate), a URL without `sslmode` gets
    /// `verify-full`, and `disable` does not read it. Unlike libpq,
    /// `~/.postgresql/root.crt` is not read.
    pub(crate) fn parse(
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
        let mut sslmode = None;
        let mut sslrootcert = None;
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
                    sslmode = Some(match value.as_ref() {
                        "disable" => SslMode::Disable,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(fail(format!(
                                "sslmode {other:?}: pinsync takes disable, prefer, require, \
                                 verify-ca or verify-full"
                            )));
                        }
                    });
                }
                "sslrootcert" if value.is_empty() => {
                    return Err(fail("sslrootcert is empty (sslrootcert=PATH)".into()));
                }
                "sslrootcert" => sslrootcert = Some(value.into_owned()),
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
        let mode = sslmode.unwrap_or(if sslrootcert.is_some() || !is_loopback(&host) {
            SslMode::VerifyFull
        } else {
            SslMode::Disable
        });
        let root_file = match sslrootcert {
            Some(path) if mode != SslMode::Disable => {
                let roots = read_root_certs(&path).map_err(fail)?;
                Some((path, roots))
            }
            _ => None,
        };
        let tls = Tls::new(mode, root_file);
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
            .options(&format!("-c statement_timeout={}", (lease / 4).as_millis()))
            .ssl_mode(match mode {
                SslMode::Disable => postgres::config::SslMode::Disable,
                SslMode::Prefer => postgres::config::SslMode::Prefer,
                // Never the driver's default, `prefer`: a server that
                // offers no TLS must not get the password in the clear.
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                    postgres::config::SslMode::Require
                }
            });
        if let Some(password) = password {
            config.password(password);
        }
        Ok(Self {
            config,
            tls,
            host,
            shown: shown_text,
            workspace,
            schema_sql: format!("\"{schema}\""),
            schema,
            lease,
        })
    }

    fn connect(&self) -> Result<Client, postgres::Error> {
        match self.tls.mode {
            SslMode::Disable => self.config.connect(NoTls),
            _ => self
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                    self.tls.client_config(),
                )),
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
pub(crate) struct PgStore {
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
    pub(crate) fn new(location: PgLocation) -> Self {
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
pub(crate) struct LeaseInfo {
    /// The holder's JSON (command, host, pid, since, CI run).
    pub(crate) holder: String,
    pub(crate) acquired_at: String,
    pub(crate) expires_at: String,
    /// Seconds since it was taken.
    pub(crate) age: f64,
    /// Past its expiry: the next run takes it over.
    pub(crate) expired: bool,
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
    pub(crate) fn lease(&self) -> Result<Option<LeaseInfo>, StateFileError> {
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
    pub(crate) fn break_lease(
        &self,
        older_than: Duration,
    ) -> Result<Option<LeaseInfo>, StateFileError> {
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
    pub(crate) fn migrate(&self) -> Result<i32, StateFileError> {
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
    let reason = match tls_hint(location, e) {
        Some(hint) => format!("{hint}: {}", reason(e)),
        None => reason(e),
    };
    StateFileError::Database {
        store: location.shown.clone(),
        reason,
    }
}

/// What to do about a certificate the TLS handshake refused.
fn tls_hint(location: &PgLocation, e: &postgres::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(why) = rustls_error(e)? else {
        return None;
    };
    match why {
        C::UnknownIssuer => Some(match &location.tls.root_file {
            Some(path) => {
                format!("the server's certificate is not signed by a CA of sslrootcert {path:?}")
            }
            None => "the server's certificate is not signed by a CA pinsync trusts (the \
                     Mozilla roots): name the CA's PEM file with sslrootcert=PATH"
                .into(),
        }),
        C::NotValidForName | C::NotValidForNameContext { .. } => Some(format!(
            "the server's certificate is not valid for host {:?}, which sslmode=verify-full \
             checks: connect by a name the certificate holds, or use sslmode=verify-ca",
            location.host
        )),
        _ => None,
    }
}

/// The TLS error under a driver's error, if any: rustls's error is wrapped
/// in an `io::Error`, whose `source` skips it.
fn rustls_error(e: &postgres::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = next {
        let inner = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        if let Some(tls) = inner
            .unwrap_or(error)
            .downcast_ref::<rustls::Error>()
            .or_else(|| error.downcast_ref())
        {
            return Some(tls);
        }
        next = error.source();
    }
    None
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
pub(super) fn migrate(client: &mut Client, location: &PgLocation) -> Result<i32, postgres::Error> {
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
    let from = current.unwrap_or(0);
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        tx.batch_execute(&sql.replace("{s}", s))?;
        tx.execute(
            &format!("INSERT INTO {s}.migrations (version) VALUES ($1)"),
            &[version],
        )?;
    }
    tx.commit()?;
    Ok(from.max(SCHEMA_VERSION))
}

fn key_columns(key: &PinKey) -> (&str, &str, String) {
    (
        key.target.provider.as_str(),
        key.target.cluster.as_deref().unwrap_or(""),
        key.cid.to_string(),
    )
}

/// A `json` or `jsonb` value's text, borrowed from the row it came in:
/// decoded straight into what it holds, with no `serde_json::Value`
/// between.
struct JsonText<'a>(&'a [u8]);

impl<'a> postgres::types::FromSql<'a> for JsonText<'a> {
    fn from_sql(
        ty: &postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == postgres::types::Type::JSON {
            return Ok(Self(raw));
        }
        // jsonb's binary form: a version byte, then the text.
        match raw.split_first() {
            Some((1, text)) => Ok(Self(text)),
            Some((version, _)) => Err(format!("jsonb of version {version}, not 1").into()),
            None => Err("an empty jsonb value".into()),
        }
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        matches!(
            *ty,
            postgres::types::Type::JSON | postgres::types::Type::JSONB
        )
    }
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
        let loaded = self.with_client(|client, location| {
            let s = &location.schema_sql;
            // One snapshot, so that a plan made during an apply pairs the
            // serial with the pins it had.
            let mut tx = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            // The primary key's index gives the rows in key order. Without
            // fresh statistics (right after a bulk write, before autovacuum
            // analyses the table) the planner expects a few rows for the
            // workspace and sorts them instead: at two million rows, a sort
            // that spills to disk and takes seconds.
            tx.batch_execute("SET LOCAL enable_sort = off")?;
            let head = tx.query_opt(
                &format!("SELECT lineage, serial FROM {s}.workspaces WHERE name = $1"),
                &[&location.workspace],
            )?;
            let head = match head {
                Some(row) => Some((row.try_get::<_, String>(0)?, row.try_get::<_, i64>(1)?)),
                None => None,
            };
            // A hint, for the table's whole list (the server's estimate of
            // the rows of every workspace; -1 before its first analysis).
            let estimate: Option<f32> = tx
                .query_one(
                    "SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)",
                    &[&format!("{s}.pins")],
                )?
                .try_get(0)?;
            let mut table = PinTableBuilder::default();
            // At most 2^24 pins reserved: the estimate is never trusted.
            table.try_reserve(estimate.unwrap_or(0.0).clamp(0.0, 16_777_216.0) as usize);
            // Streamed: each row is decoded as it arrives, never two
            // million of them held at once. Through a cursor, a batch a
            // statement: a statement lasts as long as its rows take to
            // read, and each must end within the statement timeout.
            tx.execute(
                &format!(
                    "DECLARE pins NO SCROLL CURSOR FOR
                     SELECT record FROM {s}.pins WHERE workspace = $1
                     ORDER BY provider, cluster, cid"
                ),
                &[&location.workspace],
            )?;
            let fetch = tx.prepare(&format!("FETCH {FETCHED} FROM pins"))?;
            loop {
                let mut rows = tx.query_raw(&fetch, std::iter::empty::<&str>())?;
                let mut fetched = 0;
                while let Some(row) = rows.next()? {
                    fetched += 1;
                    let record: JsonText<'_> = row.try_get(0)?;
                    match serde_json::from_slice::<StoredPin>(record.0) {
                        Ok(pin) => table.push(pin.key, pin.record),
                        Err(e) => return Ok(Err(format!("a pin row is not a pin: {e}"))),
                    }
                }
                if fetched < FETCHED {
                    break;
                }
            }
            tx.commit()?;
            Ok(Ok((head, table)))
        })?;
        let (head, table) = loaded.map_err(|reason| StateFileError::Database {
            store: self.describe(),
            reason,
        })?;
        let mut state = State::new();
        if let Some((lineage, serial)) = head {
            state.lineage = lineage;
            state.serial = u64::try_from(serial).map_err(|_| StateFileError::Database {
                store: self.describe(),
                reason: format!("the workspace's serial {serial} is negative"),
            })?;
        }
        // The database's collation may order the rows otherwise than the
        // keys: the builder sorts them if so.
        state.pins = table.build().map_err(|key| StateFileError::Database {
            store: self.describe(),
            reason: format!("pin {key} is stored twice"),
        })?;
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

    fn finish(&self, state: &State) -> Result<(), StateFileError> {
        // Every pin row was committed as its batch landed (the recorder
        // started from the state this store holds, under its lease), so
        // rewriting 100,000 rows would only repeat them.
        self.write(|tx, location| write_head(tx, location, state))
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
pub(super) struct Lease {
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
    fn migrations_are_numbered_one_by_one_from_one() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        let expected: Vec<i32> = (1..=SCHEMA_VERSION).collect();
        assert_eq!(versions, expected);
        for (version, sql) in MIGRATIONS {
            assert!(
                sql.contains("{s}."),
                "step {version} names no table in the schema"
            );
        }
    }

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
        assert_eq!(
            (l.tls.mode, l.tls.check),
            (SslMode::VerifyFull, Check::ChainAndName),
            "a remote host gets verified TLS"
        );
        assert!(!format!("{l:?}").contains("s3cret"), "{l:?}");
        assert_eq!(l.config.get_password(), Some(&b"s3cret!"[..]));
        let env = |v: &str| (v == "PGPASSWORD").then(|| "from-env".to_owned());
        let l = PgLocation::parse("postgres://ci@127.0.0.1/pins?workspace=w", env, None).unwrap();
        assert_eq!(l.config.get_password(), Some(&b"from-env"[..]));
        assert_eq!(l.tls.mode, SslMode::Disable, "loopback needs no TLS");
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

    /// A self-signed CA certificate, in PEM.
    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn sslmode_takes_libpqs_values_with_their_checks() {
        let parse = |query: &str| {
            PgLocation::parse(
                &format!("postgres://ci:pw@db.example/pins?workspace=w{query}"),
                |_| None,
                None,
            )
            .map(|l| {
                let ssl = l.config.get_ssl_mode();
                (l.tls.mode, l.tls.check, ssl)
            })
        };
        use postgres::config::SslMode as Driver;
        for (query, expected) in [
            (
                "",
                (SslMode::VerifyFull, Check::ChainAndName, Driver::Require),
            ),
            (
                "&sslmode=disable",
                (SslMode::Disable, Check::Nothing, Driver::Disable),
            ),
            (
                "&sslmode=prefer",
                (SslMode::Prefer, Check::Nothing, Driver::Prefer),
            ),
            (
                "&sslmode=require",
                (SslMode::Require, Check::Nothing, Driver::Require),
            ),
            (
                "&sslmode=verify-ca",
                (SslMode::VerifyCa, Check::Chain, Driver::Require),
            ),
            (
                "&sslmode=verify-full",
                (SslMode::VerifyFull, Check::ChainAndName, Driver::Require),
            ),
        ] {
            assert_eq!(parse(query).unwrap(), expected, "{query}");
        }
        // Loopback: no TLS unless asked.
        let l = PgLocation::parse(
            "postgres://ci@localhost/pins?workspace=w&sslmode=require",
            |_| None,
            None,
        )
        .unwrap();
        assert_eq!(
            (l.tls.mode, l.tls.check),
            (SslMode::Require, Check::Nothing)
        );
        for bad in ["allow", "Require", "verify_full", ""] {
            let err = parse(&format!("&sslmode={bad}")).unwrap_err();
            assert!(
                err.contains(&format!("sslmode {bad:?}"))
                    && err.contains("disable, prefer, require, verify-ca or verify-full")
                    && !err.contains(":pw@"),
                "{err}"
            );
        }
    }

    #[test]
    fn sslrootcert_replaces_the_mozilla_roots_as_libpq_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        // Two CAs in one file, with text around them as openssl leaves it.
        std::fs::write(&ca, format!("# team CA\n{}\n{}", ca_pem(), ca_pem())).unwrap();
        let parse = |host: &str, query: &str| {
            PgLocation::parse(
                &format!("postgres://ci:pw@{host}/pins?workspace=w{query}"),
                |_| None,
                None,
            )
        };
        let with = |mode: &str| format!("&sslmode={mode}&sslrootcert={}", ca.display());
        for (mode, check) in [
            ("verify-full", Check::ChainAndName),
            ("verify-ca", Check::Chain),
            // libpq: a root certificate makes require check the chain.
            ("require", Check::Chain),
            ("prefer", Check::Chain),
        ] {
            let l = parse("db.example", &with(mode)).unwrap();
            assert_eq!(l.tls.check, check, "{mode}");
            assert_eq!(l.tls.roots.len(), 2, "{mode}: the file's CAs only");
            assert_eq!(l.tls.root_file.as_deref(), ca.to_str());
        }
        let l = parse("db.example", "&sslmode=verify-full").unwrap();
        assert!(l.tls.roots.len() > 50, "the Mozilla roots by default");
        // Without sslmode, even on loopback, a root certificate means verify-full.
        let only_root = format!("&sslrootcert={}", ca.display());
        let l = parse("127.0.0.1", &only_root).unwrap();
        assert_eq!(
            (l.tls.mode, l.tls.check),
            (SslMode::VerifyFull, Check::ChainAndName)
        );
        // With disable it is not read, as in libpq.
        let l = parse("db.example", "&sslmode=disable&sslrootcert=/nowhere/ca.pem").unwrap();
        assert_eq!(l.tls.mode, SslMode::Disable);

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let key_only = dir.path().join("key.pem");
        std::fs::write(
            &key_only,
            rcgen::KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let not_der = dir.path().join("not-der.pem");
        std::fs::write(
            &not_der,
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let missing = dir.path().join("missing.pem");
        for (path, expected) in [
            (&missing, "cannot read it"),
            (&dir.path().to_path_buf(), "cannot read it"),
            (&empty, "holds no certificate"),
            (&key_only, "holds no certificate"),
            (&broken, "not a PEM file"),
            (&not_der, "is not valid"),
        ] {
            let query = format!("&sslmode=verify-full&sslrootcert={}", path.display());
            let err = parse("db.example", &query).unwrap_err();
            assert!(
                err.contains(&format!("sslrootcert {:?}", path.display().to_string()))
                    && err.contains(expected)
                    && !err.contains(":pw@"),
                "{}: {err}",
                path.display()
            );
        }
        let err = parse("db.example", "&sslrootcert=").unwrap_err();
        assert!(err.contains("sslrootcert is empty"), "{err}");
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
