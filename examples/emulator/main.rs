//! A local stand-in for the pinning services pinsync talks to (AIOZ W3IPFS,
//! Pinarkive v3, the IPFS Pinning Service API under `/psa`, Kubo's RPC API
//! under `/kubo`, ipfs-cluster under `/cluster`, Pinata's v3 Files API,
//! QuickNode's IPFS REST API and Lighthouse), built from their published
//! documents, so pinsync can be tried without an account and tested
//! without the network.
//!
//! It keeps pins in memory, checks every header and body against the
//! documents, logs what it received, and can inject faults on demand. Run it
//! with `cargo run --example emulator`; it prints one line on stdout,
//! `emulator listening on http://ADDR`, and everything else on stderr.

mod aioz;
mod cluster;
mod control;
mod faults;
mod kubo;
mod lighthouse;
mod limits;
mod pinarkive;
mod pinata;
mod pinning_service;
mod quicknode;
mod requests;
mod store;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use clap::Parser;
use serde_json::json;

use crate::faults::{FaultConfig, Provider};
use crate::store::{AppState, Counters, Settings, Shared};

/// Emulates the AIOZ W3IPFS, Pinarkive v3, Pinata v3, QuickNode and
/// Lighthouse pinning APIs, the IPFS Pinning Service API (under /psa),
/// Kubo's RPC API (under /kubo) and ipfs-cluster (under /cluster), on one
/// local port.
#[derive(Parser)]
#[command(name = "emulator", version)]
struct Cli {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Value AIOZ calls must send in the `pinning_api_key` header.
    #[arg(long, env = "EMULATOR_AIOZ_API_KEY", default_value = "demo-aioz-key")]
    aioz_api_key: String,
    /// Value AIOZ calls must send in the `pinning_secret_key` header.
    #[arg(
        long,
        env = "EMULATOR_AIOZ_SECRET_KEY",
        default_value = "demo-aioz-secret"
    )]
    aioz_secret_key: String,
    /// Key Pinarkive calls must send (`X-API-Key` or `Authorization: Bearer`).
    #[arg(
        long,
        env = "EMULATOR_PINARKIVE_API_KEY",
        default_value = "demo-pinarkive-key"
    )]
    pinarkive_api_key: String,
    /// Bearer token Pinning Service API calls (under /psa) must send.
    #[arg(long, env = "EMULATOR_PSA_TOKEN", default_value = "demo-psa-token")]
    psa_token: String,
    /// How Kubo calls (under /kubo) must authenticate: `none`,
    /// `basic:USER:PASSWORD` or `bearer:TOKEN`.
    #[arg(
        long,
        env = "EMULATOR_KUBO_AUTH",
        default_value = "basic:demo-kubo-user:demo-kubo-password"
    )]
    kubo_auth: String,
    /// How long Kubo's pin/add takes to fetch a CID the node does not hold.
    #[arg(long, default_value_t = 0)]
    kubo_fetch_ms: u64,
    /// How often pin/add with progress=true reports what it fetched.
    #[arg(long, default_value_t = 500)]
    kubo_progress_ms: u64,
    /// End every streamed pin/ls after this many pins with an
    /// X-Stream-Error trailer, as a node failing midway does.
    #[arg(long)]
    kubo_stream_error_after: Option<usize>,
    /// The Kubo version the node reports; before 0.26 it refuses pin names.
    #[arg(long, default_value = "0.32.1")]
    kubo_version: String,
    /// How ipfs-cluster calls (under /cluster) must authenticate: `none` or
    /// `basic:USER:PASSWORD` (a JWT from POST /token is taken too).
    #[arg(
        long,
        env = "EMULATOR_CLUSTER_AUTH",
        default_value = "basic:demo-cluster-user:demo-cluster-password"
    )]
    cluster_auth: String,
    /// The JWT Pinata calls must send (`Authorization: Bearer`).
    #[arg(long, env = "EMULATOR_PINATA_JWT", default_value = "demo-pinata-jwt")]
    pinata_jwt: String,
    /// How long a Pinata pin-by-CID job takes from getting one of the 250
    /// working slots to done (prechecking, searching, retrieving: a third each).
    #[arg(long, default_value_t = 0)]
    pinata_pinning_ms: u64,
    /// The key QuickNode calls must send in `x-api-key`.
    #[arg(
        long,
        env = "EMULATOR_QUICKNODE_API_KEY",
        default_value = "demo-quicknode-key"
    )]
    quicknode_api_key: String,
    /// How long a QuickNode pinned object takes to go from queued (first
    /// half) through pinning (second half) to pinned.
    #[arg(long, default_value_t = 0)]
    quicknode_pinning_ms: u64,
    /// The key Lighthouse calls must send (`Authorization: Bearer`).
    #[arg(
        long,
        env = "EMULATOR_LIGHTHOUSE_API_KEY",
        default_value = "demo-lighthouse-key"
    )]
    lighthouse_api_key: String,
    /// Uploads in one page of Lighthouse's files_uploaded (2000, as documented).
    #[arg(long, default_value_t = 2000)]
    lighthouse_page_size: usize,
    /// Peers in the cluster.
    #[arg(long, default_value_t = 3)]
    cluster_peers: usize,
    /// How long each allocated peer reports `pinning` before `pinned`.
    #[arg(long, default_value_t = 0)]
    cluster_pinning_ms: u64,
    /// The first N peers report `pin_error` for every pin allocated to them.
    #[arg(long, default_value_t = 0)]
    cluster_failing_peers: usize,
    /// Wait this long before answering every provider request.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Share of provider requests answered with --error-status (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Status used for --error-rate failures.
    #[arg(long, default_value_t = 503)]
    error_status: u16,
    /// Share of provider requests answered 429 (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// Seconds sent in `Retry-After` on injected errors and 429s.
    #[arg(long)]
    retry_after: Option<u64>,
    /// Share of provider requests whose connection is closed unanswered (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Share of provider requests answered 200 with broken JSON (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    malformed_rate: f64,
    /// Share of provider requests answered 200 with JSON of the wrong shape (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    wrong_shape_rate: f64,
    /// Inject faults only into this provider's requests.
    #[arg(long, value_parser = [
        "aioz", "pinarkive", "psa", "kubo", "cluster", "pinata", "quicknode", "lighthouse",
    ])]
    only: Option<String>,
    /// A new AIOZ pin reports RETRIEVAL for this long, then DONE (as the
    /// service pins asynchronously).
    #[arg(long, default_value_t = 0)]
    aioz_pinning_ms: u64,
    /// Enforce a rate limit on one provider's requests, as the services do
    /// (429 with Retry-After and X-RateLimit-* past it): `aioz=20/s`,
    /// `psa=180/min`, `pinarkive=10/s,burst=5`. Repeatable.
    #[arg(long = "limit", value_name = "PROVIDER=RATE")]
    limit: Vec<String>,
    /// Do not keep the request log (for benchmarks); counters still work.
    #[arg(long)]
    no_request_log: bool,
    /// Print one line per provider request on stderr.
    #[arg(long, short)]
    verbose: bool,
}

impl Cli {
    fn limits(&self) -> anyhow::Result<std::collections::BTreeMap<Provider, limits::Limit>> {
        self.limit
            .iter()
            .map(|spec| {
                let (name, rate) = spec
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("{spec:?} is not PROVIDER=RATE"))?;
                let provider = Provider::from_name(name)
                    .ok_or_else(|| anyhow::anyhow!("unknown provider {name:?} in {spec:?}"))?;
                Ok((
                    provider,
                    limits::Limit::parse(rate).map_err(anyhow::Error::msg)?,
                ))
            })
            .collect()
    }

    fn fault_config(&self) -> anyhow::Result<FaultConfig> {
        let config = FaultConfig {
            delay_ms: self.delay_ms,
            error_rate: self.error_rate,
            error_status: self.error_status,
            rate_limit_rate: self.rate_limit_rate,
            retry_after: self.retry_after,
            drop_rate: self.drop_rate,
            malformed_rate: self.malformed_rate,
            wrong_shape_rate: self.wrong_shape_rate,
            fail_next: Default::default(),
            only: self.only.as_deref().and_then(Provider::from_name),
        };
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // Print errors as one plain line: this is a tool users run by hand.
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("emulator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    requests::started();
    let faults = cli.fault_config().context("invalid fault flags")?;
    let mut limits = limits::Limits::default();
    limits.set(cli.limits().context("invalid --limit")?);
    let state: Shared = Arc::new(AppState {
        settings: Settings {
            aioz_api_key: cli.aioz_api_key,
            aioz_secret_key: cli.aioz_secret_key,
            pinarkive_api_key: cli.pinarkive_api_key,
            psa_token: cli.psa_token,
            keep_request_log: !cli.no_request_log,
            verbose: cli.verbose,
            aioz_pinning: Duration::from_millis(cli.aioz_pinning_ms),
            kubo_auth: kubo::ExpectedAuth::parse(&cli.kubo_auth)
                .map_err(anyhow::Error::msg)
                .context("invalid --kubo-auth")?,
            kubo_fetch: Duration::from_millis(cli.kubo_fetch_ms),
            kubo_progress: Duration::from_millis(cli.kubo_progress_ms),
            kubo_stream_error_after: cli.kubo_stream_error_after,
            kubo_version: cli.kubo_version,
            cluster_auth: kubo::ExpectedAuth::parse(&cli.cluster_auth)
                .map_err(anyhow::Error::msg)
                .context("invalid --cluster-auth")?,
            cluster_peers: cli.cluster_peers.max(1),
            cluster_pinning: Duration::from_millis(cli.cluster_pinning_ms),
            cluster_failing_peers: cli.cluster_failing_peers,
            pinata_jwt: cli.pinata_jwt,
            pinata_pinning: Duration::from_millis(cli.pinata_pinning_ms),
            quicknode_api_key: cli.quicknode_api_key,
            quicknode_pinning: Duration::from_millis(cli.quicknode_pinning_ms),
            lighthouse_api_key: cli.lighthouse_api_key,
            lighthouse_page_size: cli.lighthouse_page_size.max(1),
        },
        aioz: Mutex::default(),
        pinarkive: Mutex::default(),
        psa: Mutex::default(),
        kubo: Mutex::default(),
        cluster: Mutex::default(),
        pinata: Mutex::default(),
        quicknode: Mutex::default(),
        lighthouse: Mutex::default(),
        faults: Mutex::new(faults),
        limits: Mutex::new(limits),
        log: Mutex::default(),
        counters: Counters::default(),
    });

    let app = Router::new()
        .merge(aioz::routes())
        .merge(pinarkive::routes())
        .merge(pinning_service::routes())
        .merge(kubo::routes())
        .merge(cluster::routes())
        .merge(pinata::routes())
        .merge(quicknode::routes())
        .merge(lighthouse::routes())
        .merge(control::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            requests::gate,
        ))
        .with_state(state);

    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    let addr = listener.local_addr()?;
    {
        // Tests read this exact line to learn the port.
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "emulator listening on http://{addr}")?;
        stdout.flush()?;
    }
    eprintln!("AIOZ W3IPFS base URL: http://{addr}  (pinning_api_key / pinning_secret_key)");
    eprintln!("Pinarkive base URL:   http://{addr}  (X-API-Key or Authorization: Bearer)");
    eprintln!("Pinning Service API:  http://{addr}/psa  (Authorization: Bearer)");
    eprintln!("Kubo RPC API:         http://{addr}/kubo  (--kubo-auth)");
    eprintln!("ipfs-cluster API:     http://{addr}/cluster  (--cluster-auth)");
    eprintln!("Pinata v3 Files API:  http://{addr}  (Authorization: Bearer JWT)");
    eprintln!("QuickNode IPFS REST:  http://{addr}/ipfs/rest/v1  (x-api-key)");
    eprintln!("Lighthouse API:       http://{addr}  (Authorization: Bearer)");
    eprintln!(
        "control API:          http://{addr}/_emulator/{{pins,requests,stats,faults,reset,pinata/queue}}"
    );

    // Small request/answer pairs: send them at once rather than wait for Nagle.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .into_future(),
    );
    shutdown_signal().await;
    eprintln!("emulator shutting down");
    let _ = stop_tx.send(());
    // Let in-flight requests finish, but do not hang on a long --delay-ms.
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(joined) => joined?.context("server error")?,
        Err(_) => eprintln!("emulator: requests still in flight after 5s, exiting anyway"),
    }
    Ok(())
}

/// Resolves on Ctrl-C, or SIGTERM on Unix (what test harnesses send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Unknown paths answer in the error shape of the service they fall under.
async fn not_found(request: Request) -> Response {
    let path = request.uri().path();
    match Provider::for_path(path) {
        Some(Provider::Aioz) => aioz::fail(StatusCode::NOT_FOUND, "not found").into_response(),
        Some(Provider::Pinarkive) => pinarkive::not_found(path),
        Some(Provider::PinningService) => pinning_service::error_for_status(StatusCode::NOT_FOUND),
        Some(Provider::Kubo) => kubo::error_for_status(StatusCode::NOT_FOUND),
        Some(Provider::Cluster) => cluster::error_for_status(StatusCode::NOT_FOUND),
        Some(Provider::Pinata) => pinata::error_for_status(StatusCode::NOT_FOUND),
        Some(Provider::QuickNode) => quicknode::error_for_status(StatusCode::NOT_FOUND),
        Some(Provider::Lighthouse) => lighthouse::error_for_status(StatusCode::NOT_FOUND),
        None => {
            let body = json!({"error": "not found", "path": path});
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
    }
}
