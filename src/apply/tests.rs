//! The apply use case against a scripted provider, on tokio's paused clock:
//! retry counts and waits are exact, and no test sleeps for real.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use futures::future::BoxFuture;
use tokio::time::Instant;

use super::*;
use crate::manifest::PinKey;
use crate::state::{Journal, StateFile};

/// A provider that answers from a script (then `otherwise`), after
/// `latency`, and notes when each call came.
struct Scripted {
    script: Mutex<VecDeque<Result<(), ProviderError>>>,
    otherwise: Result<(), ProviderError>,
    latency: Duration,
    calls: Mutex<Vec<(Instant, String)>>,
}

impl Scripted {
    fn new(script: Vec<Result<(), ProviderError>>, otherwise: Result<(), ProviderError>) -> Self {
        Self {
            script: Mutex::new(script.into()),
            otherwise,
            latency: Duration::ZERO,
            calls: Mutex::new(Vec::new()),
        }
    }

    fn always(answer: Result<(), ProviderError>) -> Self {
        Self::new(Vec::new(), answer)
    }

    fn slow(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    fn call_times(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Notes the call, waits `latency`, and gives the next scripted answer.
    async fn answer(&self, call: String) -> Result<(), ProviderError> {
        self.calls.lock().unwrap().push((Instant::now(), call));
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.otherwise.clone())
    }
}

impl Provider for Scripted {
    fn pin<'a>(
        &'a self,
        request: PinRequest<'a>,
    ) -> BoxFuture<'a, Result<PinReceipt, ProviderError>> {
        Box::pin(async move {
            let answer = self.answer(request.cid.to_owned()).await;
            answer.map(|()| PinReceipt {
                pin_id: Some(format!("id-{}", request.cid)),
                already_pinned: false,
                foreign: false,
            })
        })
    }

    fn status<'a>(
        &'a self,
        _request: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<crate::provider::Checked, ProviderError>> {
        Box::pin(async { Ok(crate::state::ProviderStatus::Pinned.into()) })
    }

    fn list<'a>(
        &'a self,
        _cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<crate::provider::Listing, ProviderError>> {
        Box::pin(async {
            Ok(crate::provider::Listing {
                pins: Vec::new(),
                next: None,
            })
        })
    }

    fn unpin<'a>(
        &'a self,
        request: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<UnpinReceipt, ProviderError>> {
        Box::pin(async move {
            let answer = self.answer(format!("unpin {}", request.cid)).await;
            answer.map(|()| UnpinReceipt {
                already_gone: false,
            })
        })
    }
}

fn unavailable() -> ProviderError {
    ProviderError::Unavailable {
        status: 503,
        message: "down".into(),
    }
}

fn rate_limited(after: u64) -> ProviderError {
    ProviderError::RateLimited {
        retry_after: Some(Duration::from_secs(after)),
        message: "slow down".into(),
    }
}

fn rejected(status: u16) -> ProviderError {
    ProviderError::Rejected {
        status,
        message: "no".into(),
    }
}

fn unauthorized() -> ProviderError {
    ProviderError::Unauthorized {
        status: 401,
        message: "invalid api key".into(),
    }
}

/// `n` distinct valid CIDv1s.
fn cids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let mh = cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
            cid::Cid::new_v1(0x55, mh).to_string()
        })
        .collect()
}

/// A plan pinning `n` CIDs on one AIOZ provider `aioz`, from an empty state.
fn plan_of(n: usize) -> Plan {
    let mut text = String::from(
        "version: 1\nproviders:\n  aioz:\n    type: aioz\n    api_key: ${AIOZ_KEY}\n    secret_key: ${AIOZ_SECRET}\ndefaults:\n  to: [aioz]\npins:\n",
    );
    for cid in cids(n) {
        text.push_str(&format!("  - cid: {cid}\n"));
    }
    let m = crate::manifest::parse(Path::new("pins.yaml"), text.as_bytes()).unwrap();
    crate::plan::plan(&m, &State::new(), Default::default())
}

fn options(concurrency: usize, max_attempts: u32) -> ApplyOptions {
    ApplyOptions {
        concurrency,
        retry: RetryPolicy {
            max_attempts,
            max_elapsed: Duration::from_secs(600),
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        },
        move_wait: Duration::from_secs(60),
    }
}

struct Run {
    report: Report,
    state: State,
    _dir: tempfile::TempDir,
}

async fn run(
    plan: &Plan,
    provider: &Arc<Scripted>,
    options: ApplyOptions,
    stop: &CancellationToken,
) -> Run {
    run_with(plan, provider, options, stop, Arc::new(Silent)).await
}

/// A plan of `n` pins, run to its end.
async fn run_all(n: usize, provider: &Arc<Scripted>, options: ApplyOptions) -> Run {
    run(&plan_of(n), provider, options, &CancellationToken::new()).await
}

async fn run_with(
    plan: &Plan,
    provider: &Arc<Scripted>,
    options: ApplyOptions,
    stop: &CancellationToken,
    progress: Arc<dyn Progress>,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path().join("s.json"));
    let providers: Providers = [("aioz".to_string(), provider.clone() as Arc<dyn Provider>)].into();
    let (report, state) = apply(
        plan,
        &providers,
        &file,
        State::new(),
        options,
        stop,
        &progress,
    )
    .await
    .unwrap();
    assert_eq!(
        file.load().unwrap(),
        state,
        "what apply returns is what it saved"
    );
    Run {
        report,
        state,
        _dir: dir,
    }
}

fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_attempt_limit_and_back_off_within_the_jitter_bounds() {
    let provider = Arc::new(Scripted::always(Err(unavailable())));
    let r = run_all(1, &provider, options(1, 5)).await;
    assert_eq!(provider.calls(), 5, "the first call and four retries");
    let [failure] = &r.report.failed[..] else {
        panic!("{:?}", r.report)
    };
    assert_eq!(failure.attempts, 5);
    assert_eq!(failure.error, unavailable());
    // Equal jitter: each wait is between half and all of 250 ms doubled.
    for (i, gap) in gaps(&provider.call_times()).into_iter().enumerate() {
        let full = Duration::from_millis(250 << i);
        assert!(
            gap >= full / 2 && gap <= full,
            "wait {i}: {gap:?} not in [{:?}, {full:?}]",
            full / 2
        );
    }
    assert!(r.state.pins.is_empty());
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_exactly_not_the_shorter_backoff() {
    let provider = Arc::new(Scripted::new(vec![Err(rate_limited(7))], Ok(())));
    let r = run_all(1, &provider, options(1, 5)).await;
    let [gap] = gaps(&provider.call_times())[..] else {
        panic!("two calls expected")
    };
    // The backoff alone would be at most 250 ms; the jitter on top of
    // Retry-After is at most 250 ms.
    assert!(
        gap >= Duration::from_secs(7) && gap <= Duration::from_millis(7250),
        "{gap:?}"
    );
    assert_eq!(r.report.pinned, 1);
    assert!(r.report.succeeded());
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_past_the_time_budget_ends_the_retries() {
    let provider = Arc::new(Scripted::always(Err(rate_limited(3600))));
    let mut opts = options(1, 5);
    opts.retry.max_elapsed = Duration::from_secs(60);
    let started = Instant::now();
    let r = run_all(1, &provider, opts).await;
    assert_eq!(provider.calls(), 1);
    assert_eq!(r.report.failed[0].attempts, 1);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "did not wait an hour"
    );
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_after_three_pins_fail_in_a_row() {
    let provider = Arc::new(Scripted::always(Err(unavailable())));
    let r = run_all(10, &provider, options(1, 2)).await;
    assert_eq!(provider.calls(), 3 * 2, "three pins, two attempts each");
    assert_eq!(r.report.failed.len(), 3);
    let skipped = &r.report.not_attempted["aioz"];
    assert_eq!(skipped.pins, 7);
    assert_eq!(skipped.why, Halt::Down(unavailable()));
    assert_eq!(r.report.pending(), 10);
    assert!(!r.report.succeeded());
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_breaker() {
    // Two failures, a success, two failures, ...: never three in a row.
    let script = (0..10)
        .map(|i| {
            if i % 3 == 2 {
                Ok(())
            } else {
                Err(unavailable())
            }
        })
        .collect();
    let provider = Arc::new(Scripted::new(script, Err(unavailable())));
    let r = run_all(9, &provider, options(1, 1)).await;
    assert_eq!(provider.calls(), 9, "every pin was tried");
    assert_eq!(r.report.pinned, 3);
    assert_eq!(r.report.failed.len(), 6);
    assert!(r.report.not_attempted.is_empty());
}

#[tokio::test(start_paused = true)]
async fn errors_that_are_not_retried_fail_their_pin_at_once_and_do_not_open_the_breaker() {
    let provider = Arc::new(Scripted::always(Err(rejected(400))));
    let r = run_all(6, &provider, options(1, 5)).await;
    assert_eq!(provider.calls(), 6, "one call each, every pin tried");
    assert!(r.report.failed.iter().all(|f| f.attempts == 1));
    assert!(r.report.not_attempted.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_redirect_stops_the_provider_after_one_call() {
    let redirected = ProviderError::Redirected {
        status: 307,
        to: "http://127.0.0.2:8080".into(),
    };
    let provider = Arc::new(Scripted::always(Err(redirected.clone())));
    let r = run_all(50, &provider, options(4, 5)).await;
    assert_eq!(provider.calls(), 1, "not retried, and no other pin tried");
    let skipped = &r.report.not_attempted["aioz"];
    assert_eq!(skipped.pins, 49);
    assert_eq!(skipped.why, Halt::Redirected(redirected));
    assert!(
        skipped
            .describe("aioz")
            .contains("it redirected a call (HTTP 307: redirected to http://127.0.0.2:8080"),
        "{}",
        skipped.describe("aioz")
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_key_stops_the_provider_after_one_call() {
    let provider = Arc::new(Scripted::always(Err(unauthorized())));
    let r = run_all(50, &provider, options(1, 5)).await;
    assert_eq!(provider.calls(), 1, "not retried, and no other pin tried");
    assert_eq!(r.report.failed.len(), 1);
    let skipped = &r.report.not_attempted["aioz"];
    assert_eq!(skipped.pins, 49);
    assert_eq!(skipped.why, Halt::Unauthorized(unauthorized()));
    assert_eq!(skipped.credentials, ["AIOZ_KEY", "AIOZ_SECRET"]);
    assert!(
        skipped.describe("aioz").ends_with(
            "refused the credentials (HTTP 401: invalid api key); check AIOZ_KEY and AIOZ_SECRET"
        ),
        "{}",
        skipped.describe("aioz")
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_key_stays_refused_after_a_success_in_flight() {
    // Four calls in flight: the first is refused, the others succeed.
    let script = vec![Err(unauthorized()), Ok(()), Ok(()), Ok(())];
    let provider = Arc::new(Scripted::new(script, Ok(())).slow(Duration::from_millis(10)));
    let r = run_all(20, &provider, options(4, 1)).await;
    assert_eq!(provider.calls(), 4);
    assert_eq!(r.report.pinned, 3);
    assert_eq!(r.report.not_attempted["aioz"].pins, 16);
}

#[tokio::test(start_paused = true)]
async fn a_refused_key_wakes_the_pins_waiting_to_retry_and_they_do_not_call_again() {
    // The first pin is told to come back in 5 s; the second is refused.
    let script = vec![Err(rate_limited(5)), Err(unauthorized())];
    let provider = Arc::new(Scripted::new(script, Ok(())));
    let started = Instant::now();
    let r = run_all(10, &provider, options(2, 5)).await;
    assert_eq!(provider.calls(), 2, "no retry after the refusal");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken, not waited out"
    );
    let mut errors: Vec<&ProviderError> = r.report.failed.iter().map(|f| &f.error).collect();
    errors.sort_by_key(|e| e.to_string());
    assert_eq!(errors, [&unauthorized(), &rate_limited(5)]);
    assert_eq!(r.report.not_attempted["aioz"].pins, 8);
}

/// Hears which providers were halted, and with what credentials to check.
#[derive(Default)]
struct Halts(Mutex<Vec<(String, Halt, Vec<String>)>>);

impl Progress for Halts {
    fn halted(&self, provider: &str, why: &Halt, credentials: &[String]) {
        self.0
            .lock()
            .unwrap()
            .push((provider.into(), why.clone(), credentials.to_vec()));
    }
}

#[tokio::test(start_paused = true)]
async fn the_variables_to_check_are_told_even_when_no_pin_is_left() {
    let provider = Arc::new(Scripted::always(Err(unauthorized())));
    let halts = Arc::new(Halts::default());
    let Run { report, .. } = run_with(
        &plan_of(1),
        &provider,
        options(1, 5),
        &CancellationToken::new(),
        halts.clone(),
    )
    .await;
    assert!(report.not_attempted.is_empty(), "the only pin was tried");
    let halts = halts.0.lock().unwrap();
    let [(name, why, credentials)] = &halts[..] else {
        panic!("{halts:?}")
    };
    assert_eq!(name, "aioz");
    assert_eq!(
        why.describe(credentials),
        "it refused the credentials (HTTP 401: invalid api key); check AIOZ_KEY and AIOZ_SECRET"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_before_the_first_call_makes_none() {
    let provider = Arc::new(Scripted::always(Ok(())));
    let stop = CancellationToken::new();
    stop.cancel();
    let r = run(&plan_of(5), &provider, options(2, 5), &stop).await;
    assert_eq!(provider.calls(), 0);
    assert_eq!(r.report.not_started, 5);
    assert!(r.report.interrupted);
    assert!(r.state.pins.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_calls_lets_the_calls_in_flight_land_and_starts_no_more() {
    let provider = Arc::new(Scripted::always(Ok(())).slow(Duration::from_secs(1)));
    let stop = CancellationToken::new();
    let later = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        later.cancel();
    });
    let r = run(&plan_of(10), &provider, options(2, 5), &stop).await;
    // Calls start at 0 s, 1 s and 2 s, two at a time: six, the last two
    // in flight at the stop, and they land.
    assert_eq!(provider.calls(), 6);
    assert_eq!(r.report.pinned, 6);
    assert_eq!(r.report.not_started, 4);
    assert!(r.report.interrupted);
    assert_eq!(r.state.pins.len(), 6, "every confirmed pin is recorded");
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_a_backoff_interrupts_the_pin_instead_of_failing_it() {
    let provider = Arc::new(Scripted::always(Err(rate_limited(30))));
    let stop = CancellationToken::new();
    let later = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        later.cancel();
    });
    let started = Instant::now();
    let r = run(&plan_of(1), &provider, options(1, 5), &stop).await;
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(provider.calls(), 1);
    assert!(r.report.failed.is_empty(), "{:?}", r.report.failed);
    assert_eq!(r.report.not_started, 1);
    assert!(r.report.interrupted);
}

#[tokio::test(start_paused = true)]
async fn every_confirmation_is_recorded_with_the_providers_id() {
    let provider = Arc::new(Scripted::always(Ok(())).slow(Duration::from_millis(10)));
    let plan = plan_of(200);
    let r = run(&plan, &provider, options(16, 1), &CancellationToken::new()).await;
    assert_eq!(r.report.pinned, 200);
    assert_eq!(r.state.pins.len(), 200);
    for change in &plan.changes {
        let record = &r.state.pins[&change.key()];
        assert_eq!(
            record.pin_id.as_deref(),
            Some(format!("id-{}", change.cid).as_str())
        );
        assert_eq!(record.status, PinStatus::Managed);
    }
}

/// The recorder journals pins in the order it receives them, in batches,
/// each line bringing the serial up by one.
#[test]
fn the_recorder_journals_confirmations_in_the_order_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path().join("s.json"));
    let plan = plan_of(30);
    let mut state = State::new();
    state.ensure_lineage();
    let journal = Journal::create(&file.journal_path(), &state).unwrap();
    let (tx, rx) = mpsc::channel();
    let order: Vec<PinKey> = plan.changes.iter().rev().map(Change::key).collect();
    let sender = {
        let plan = plan.clone();
        std::thread::spawn(move || {
            for change in plan.changes.iter().rev() {
                let pin = StoredPin {
                    key: change.key(),
                    record: PinRecord {
                        cid_as_pinned: None,
                        labels: change.labels.clone(),
                        pin_id: None,
                        pinned_at: "2026-12-01T00:00:00Z".into(),
                        status: PinStatus::Managed,
                        observed: None,
                        foreign: false,
                    },
                };
                tx.send(Recorded::Pin(pin)).unwrap();
                std::thread::yield_now();
            }
        })
    };
    let state = record(rx, state, Box::new(journal), &CancellationToken::new()).unwrap();
    sender.join().unwrap();
    assert_eq!(state.pins.len(), 30);
    let text = std::fs::read_to_string(file.journal_path()).unwrap();
    let mut journaled = Vec::new();
    let mut serials = Vec::new();
    for line in text.lines().skip(1) {
        let batch: serde_json::Value = serde_json::from_str(line).unwrap();
        serials.push(batch["serial"].as_u64().unwrap());
        for pin in batch["pins"].as_array().unwrap() {
            journaled.push(pin["cid"].as_str().unwrap().to_owned());
        }
    }
    let expected: Vec<String> = order.iter().map(|k| k.cid.to_string()).collect();
    assert_eq!(journaled, expected, "in the order sent");
    assert_eq!(serials, (1..=serials.len() as u64).collect::<Vec<_>>());
    assert_eq!(state.serial, serials.len() as u64);
}

/// A CID moved from `arkive/cl1-eu` to `aioz`: its plan and two providers.
fn move_plan() -> (Plan, State) {
    const CID: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    let text = |to: &str| {
        format!(
            "version: 1\nproviders:\n  aioz:\n    type: aioz\n    api_key: ${{K}}\n    secret_key: ${{S}}\n  arkive:\n    type: pinarkive\n    api_key: ${{P}}\npins:\n  - cid: {CID}\n    to: [{to}]\n"
        )
    };
    let parse = |t: String| crate::manifest::parse(Path::new("pins.yaml"), t.as_bytes()).unwrap();
    let before = parse(text("arkive/cl1-eu"));
    let mut state = State::new();
    for (key, pin) in &before.pins {
        state.record(StoredPin {
            key: key.clone(),
            record: PinRecord {
                cid_as_pinned: pin.cid_as_written().map(Into::into),
                labels: pin.labels.clone(),
                pin_id: None,
                pinned_at: "2026-12-01T00:00:00Z".into(),
                status: PinStatus::Managed,
                observed: None,
                foreign: false,
            },
        });
    }
    let plan = crate::plan::plan(
        &parse(text("aioz")),
        &state,
        crate::plan::PlanOptions { prune: true },
    );
    assert_eq!(plan.summary.pin, 1);
    assert_eq!(plan.summary.unpin, 1);
    (plan, state)
}

async fn run_move(aioz: &Arc<Scripted>, arkive: &Arc<Scripted>) -> (Report, State) {
    let (plan, state) = move_plan();
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path().join("s.json"));
    let providers: Providers = [
        ("aioz".to_string(), aioz.clone() as Arc<dyn Provider>),
        ("arkive".to_string(), arkive.clone() as Arc<dyn Provider>),
    ]
    .into();
    let progress: Arc<dyn Progress> = Arc::new(Silent);
    apply(
        &plan,
        &providers,
        &file,
        state,
        options(4, 1),
        &CancellationToken::new(),
        &progress,
    )
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_move_unpins_the_old_pin_only_after_the_new_one_is_confirmed() {
    let aioz = Arc::new(Scripted::always(Ok(())).slow(Duration::from_secs(3)));
    let arkive = Arc::new(Scripted::always(Ok(())));
    let started = Instant::now();
    let (report, state) = run_move(&aioz, &arkive).await;
    assert_eq!((report.pinned, report.unpinned), (1, 1));
    let unpinned_at = arkive.call_times()[0];
    assert!(
        unpinned_at - started >= Duration::from_secs(3),
        "the unpin waited for the 3 s pin: {:?}",
        unpinned_at - started
    );
    let targets: Vec<String> = state.pins.keys().map(|k| k.target.to_string()).collect();
    assert_eq!(targets, ["aioz"], "the old pin left the state");
}

#[tokio::test(start_paused = true)]
async fn a_move_whose_new_pin_fails_keeps_the_old_pin() {
    let aioz = Arc::new(Scripted::always(Err(rejected(400))));
    let arkive = Arc::new(Scripted::always(Ok(())));
    let (report, state) = run_move(&aioz, &arkive).await;
    assert_eq!(arkive.calls(), 0, "no unpin");
    assert_eq!(report.failed.len(), 1);
    let [kept] = &report.kept[..] else {
        panic!("{report:?}")
    };
    assert_eq!(kept.change.target.to_string(), "arkive/cl1-eu");
    assert!(
        kept.reason.contains("new pin on aioz did not land"),
        "{}",
        kept.reason
    );
    assert!(!report.succeeded());
    let targets: Vec<String> = state.pins.keys().map(|k| k.target.to_string()).collect();
    assert_eq!(targets, ["arkive/cl1-eu"], "the old pin is still recorded");
}
