//! The pace on tokio's paused clock: calls are timed exactly.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::manifest::Per;

fn limit(calls: u32, per: Per, burst: u32) -> RateLimit {
    RateLimit { calls, per, burst }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.insert(*name, value.parse().unwrap());
    }
    h
}

fn ok(pacer: &Pacer, ticket: Ticket) {
    pacer.observe(ticket, StatusCode::OK, &HeaderMap::new(), None);
}

fn refused(pacer: &Pacer, ticket: Ticket, retry_after: u64) {
    pacer.observe(
        ticket,
        StatusCode::TOO_MANY_REQUESTS,
        &HeaderMap::new(),
        Some(Duration::from_secs(retry_after)),
    );
}

/// `n` calls one after the other, each answered 200.
async fn succeed(pacer: &Pacer, n: usize) {
    for _ in 0..n {
        let ticket = pacer.turn(CallKind::Pin).await;
        ok(pacer, ticket);
    }
}

#[tokio::test(start_paused = true)]
async fn calls_go_at_the_limit_after_the_first_burst() {
    let pacer = Pacer::new(Some(limit(10, Per::Second, 3)), &BTreeMap::new());
    let start = Instant::now();
    for _ in 0..3 {
        pacer.turn(CallKind::Pin).await;
    }
    assert_eq!(start.elapsed(), Duration::ZERO, "the burst goes at once");
    for _ in 0..10 {
        pacer.turn(CallKind::Pin).await;
    }
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_kind_limit_holds_that_kind_only() {
    let lists = BTreeMap::from([(CallKind::List, limit(1, Per::Second, 1))]);
    let pacer = Pacer::new(None, &lists);
    let start = Instant::now();
    for _ in 0..20 {
        pacer.turn(CallKind::Pin).await;
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    for _ in 0..3 {
        pacer.turn(CallKind::List).await;
    }
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_429_halves_the_pace_and_pauses_every_call_until_retry_after() {
    let pacer = Pacer::new(Some(limit(100, Per::Second, 1)), &BTreeMap::new());
    // A second at the full pace: the service accepted 100 calls.
    succeed(&pacer, 100).await;
    let ticket = pacer.turn(CallKind::Pin).await;
    refused(&pacer, ticket, 2);
    assert_eq!(pacer.rate(), Some(50.0));
    let refused_at = Instant::now();
    pacer.turn(CallKind::Status).await;
    assert_eq!(refused_at.elapsed(), Duration::from_secs(2), "paused");
    for _ in 0..50 {
        pacer.turn(CallKind::Pin).await;
    }
    assert_eq!(
        refused_at.elapsed(),
        Duration::from_secs(3),
        "then 50 a second"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fresh_start_is_cut_to_twice_what_the_service_accepted() {
    // 200/s against a service that took 5 calls: halving would take four
    // more 429s to get near it.
    let pacer = Pacer::new(Some(limit(200, Per::Second, 1)), &BTreeMap::new());
    succeed(&pacer, 5).await;
    let ticket = pacer.turn(CallKind::Pin).await;
    refused(&pacer, ticket, 1);
    assert_eq!(pacer.rate(), Some(10.0));
}

#[tokio::test(start_paused = true)]
async fn the_pace_never_drops_below_one_call_per_retry_after() {
    let pacer = Pacer::new(Some(limit(8, Per::Second, 1)), &BTreeMap::new());
    for _ in 0..10 {
        let ticket = pacer.turn(CallKind::Pin).await;
        refused(&pacer, ticket, 4);
    }
    assert_eq!(pacer.rate(), Some(0.25));
}

#[tokio::test(start_paused = true)]
async fn calls_in_flight_together_cut_the_pace_once() {
    let pacer = Pacer::new(Some(limit(100, Per::Second, 1)), &BTreeMap::new());
    succeed(&pacer, 100).await;
    let mut tickets = Vec::new();
    for _ in 0..5 {
        tickets.push(pacer.turn(CallKind::Pin).await);
    }
    for ticket in tickets {
        refused(&pacer, ticket, 1);
    }
    assert_eq!(pacer.rate(), Some(50.0), "one cut, not five");
    // A call sent at the new pace and refused cuts again.
    let ticket = pacer.turn(CallKind::Pin).await;
    refused(&pacer, ticket, 1);
    assert!(pacer.rate().unwrap() <= 25.0, "{:?}", pacer.rate());
}

#[tokio::test(start_paused = true)]
async fn successes_raise_the_pace_back_to_the_limit_and_no_further() {
    let pacer = Pacer::new(Some(limit(40, Per::Second, 1)), &BTreeMap::new());
    succeed(&pacer, 40).await;
    let ticket = pacer.turn(CallKind::Pin).await;
    refused(&pacer, ticket, 1);
    assert_eq!(pacer.rate(), Some(20.0));
    let mut seen = vec![20.0];
    for _ in 0..600 {
        let ticket = pacer.turn(CallKind::Pin).await;
        ok(&pacer, ticket);
        let rate = pacer.rate().unwrap();
        if seen.last() != Some(&rate) {
            seen.push(rate);
        }
    }
    assert_eq!(seen.last(), Some(&40.0), "back at the limit: {seen:?}");
    assert!(
        seen.windows(2)
            .all(|w| w[1] > w[0] && w[1] <= w[0] * 1.05 + 1e-9),
        "step by step, a twentieth at a time above the threshold: {seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_pause_calls_resume_one_at_a_time() {
    let pacer = Arc::new(Pacer::new(
        Some(limit(100, Per::Second, 1)),
        &BTreeMap::new(),
    ));
    succeed(&pacer, 100).await;
    let ticket = pacer.turn(CallKind::Pin).await;
    refused(&pacer, ticket, 1);
    let resumed_at = Instant::now() + Duration::from_secs(1);
    // 32 calls waiting out the pause.
    let sent = Arc::new(Mutex::new(Vec::new()));
    let waiting: Vec<_> = (0..32)
        .map(|_| {
            let (pacer, sent) = (pacer.clone(), sent.clone());
            tokio::spawn(async move {
                pacer.turn(CallKind::Pin).await;
                sent.lock().unwrap().push(Instant::now());
            })
        })
        .collect();
    for task in waiting {
        task.await.unwrap();
    }
    let mut sent = sent.lock().unwrap().clone();
    sent.sort();
    assert_eq!(sent[0], resumed_at);
    let at_once = sent.iter().filter(|t| **t == resumed_at).count();
    assert_eq!(at_once, 1, "one call when the pause ends, not {at_once}");
    for pair in sent.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::from_millis(20), "50 a second");
    }
}

#[tokio::test(start_paused = true)]
async fn a_cut_voids_the_slots_reserved_before_it() {
    // 16 calls hold slots at 10 a second; a 429 comes: none of them goes
    // before the pause ends, and they go at the new pace.
    let pacer = Arc::new(Pacer::new(
        Some(limit(10, Per::Second, 1)),
        &BTreeMap::new(),
    ));
    succeed(&pacer, 10).await;
    let early = Arc::new(AtomicUsize::new(0));
    let refused_at = Instant::now();
    let ticket = pacer.turn(CallKind::Pin).await;
    let waiting: Vec<_> = (0..16)
        .map(|_| {
            let (pacer, early) = (pacer.clone(), early.clone());
            tokio::spawn(async move {
                pacer.turn(CallKind::Pin).await;
                if refused_at.elapsed() < Duration::from_secs(3) {
                    early.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    tokio::task::yield_now().await;
    refused(&pacer, ticket, 3);
    for task in waiting {
        task.await.unwrap();
    }
    assert_eq!(early.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_pauses_until_its_reset() {
    let pacer = Pacer::unlimited();
    let left = headers(&[("x-ratelimit-remaining", "3"), ("x-ratelimit-reset", "10")]);
    let ticket = pacer.turn(CallKind::Pin).await;
    pacer.observe(ticket, StatusCode::OK, &left, None);
    let start = Instant::now();
    let ticket = pacer.turn(CallKind::Pin).await;
    assert_eq!(start.elapsed(), Duration::ZERO, "calls are left");
    let spent = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "10")]);
    pacer.observe(ticket, StatusCode::OK, &spent, None);
    let ticket = pacer.turn(CallKind::Pin).await;
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    // The IETF draft's form says the same.
    let spent = headers(&[("ratelimit", r#""default";r=0;t=4"#)]);
    pacer.observe(ticket, StatusCode::OK, &spent, None);
    let start = Instant::now();
    let ticket = pacer.turn(CallKind::Pin).await;
    assert_eq!(start.elapsed(), Duration::from_secs(4));
    // An epoch reset, as some services send it, is read too.
    let epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 5;
    let mut said = headers(&[("x-ratelimit-remaining", "0")]);
    said.insert("x-ratelimit-reset", epoch.to_string().parse().unwrap());
    pacer.observe(ticket, StatusCode::OK, &said, None);
    let start = Instant::now();
    pacer.turn(CallKind::Pin).await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited <= Duration::from_secs(6),
        "{waited:?}"
    );
    assert_eq!(pacer.rate(), None, "a spent budget is no cut");
}

#[test]
fn the_services_words_are_read_in_each_form() {
    let now = SystemTime::now();
    let read = |pairs: &[(&'static str, &str)]| ServiceWord::read(&headers(pairs), now);
    let word = read(&[(
        "ratelimit-policy",
        r#""burst";q=100;w=10, "day";q=1000;w=86400"#,
    )]);
    assert_eq!(word.quota, Some(10.0), "a day's budget is no pace");
    let word = read(&[("ratelimit-policy", r#""a";q=100;w=10, "b";q=30;w=60"#)]);
    assert_eq!(word.quota, Some(0.5), "the lowest rate");
    assert_eq!(read(&[("ratelimit-policy", "60;w=60")]).quota, Some(1.0));
    assert_eq!(
        read(&[("ratelimit-policy", r#""p";q=5"#)]).quota,
        None,
        "no window"
    );
    let word = read(&[("ratelimit", "limit=10, remaining=0, reset=7")]);
    assert!(word.spent);
    assert_eq!(word.reset, Some(Duration::from_secs(7)));
    let word = read(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "2")]);
    assert!(word.spent);
    assert_eq!(word.reset, Some(Duration::from_secs(2)));
    let word = read(&[("x-ratelimit-limit", "5"), ("x-ratelimit-remaining", "4")]);
    assert_eq!(word, ServiceWord::default(), "a limit alone says no rate");
}

#[tokio::test(start_paused = true)]
async fn a_published_quota_caps_the_pace() {
    let pacer = Pacer::new(Some(limit(100, Per::Second, 1)), &BTreeMap::new());
    let ticket = pacer.turn(CallKind::Pin).await;
    let policy = headers(&[("ratelimit-policy", r#""default";q=120;w=60"#)]);
    pacer.observe(ticket, StatusCode::OK, &policy, None);
    assert_eq!(pacer.rate(), Some(2.0));
    succeed(&pacer, 50).await;
    assert_eq!(pacer.rate(), Some(2.0), "never raised above it");
}

#[test]
fn broken_headers_cannot_stop_the_run_for_long() {
    assert!(until_reset(-5.0, SystemTime::now()).is_zero());
    let pacer = Pacer::unlimited();
    let ticket = Ticket { cut: 0 };
    for reset in ["1e30", "99999999999999", "-3", "soon"] {
        let said = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", reset)]);
        pacer.observe(ticket, StatusCode::OK, &said, None);
        if let Some(until) = pacer.pace().paused_until {
            assert!(until <= Instant::now() + MAX_PAUSE, "{reset}");
        }
    }
    pacer.observe(
        ticket,
        StatusCode::TOO_MANY_REQUESTS,
        &headers(&[("retry-after", "999999999")]),
        Some(Duration::from_secs(999_999_999)),
    );
    let paused = pacer.pace().paused_until.unwrap();
    assert!(paused <= Instant::now() + MAX_PAUSE);
    assert!(pacer.rate().unwrap() >= SLOWEST / 60.0);
}

#[tokio::test(start_paused = true)]
async fn a_429_without_a_time_pauses_longer_each_time_in_a_row() {
    let pacer = Pacer::unlimited();
    let ticket = pacer.turn(CallKind::Pin).await;
    for _ in 0..3 {
        pacer.observe(
            ticket,
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            None,
        );
    }
    let start = Instant::now();
    pacer.turn(CallKind::Pin).await;
    assert_eq!(start.elapsed(), Duration::from_secs(4), "1, 2, then 4 s");
}

#[test]
fn a_registry_keeps_one_pacer_per_provider_until_its_limits_change() {
    let pacers = Pacers::default();
    let none = BTreeMap::new();
    let a = pacers.get("aioz", Some(limit(180, Per::Minute, 1)), &none);
    let again = pacers.get("aioz", Some(limit(180, Per::Minute, 1)), &none);
    assert!(Arc::ptr_eq(&a, &again), "shared across reconciles");
    let other = pacers.get("arkive", Some(limit(180, Per::Minute, 1)), &none);
    assert!(!Arc::ptr_eq(&a, &other));
    let changed = pacers.get("aioz", Some(limit(60, Per::Minute, 1)), &none);
    assert!(!Arc::ptr_eq(&a, &changed), "a new limit, a new pacer");
    assert_eq!(pacers.rates()["aioz"], 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_429_never_raises_the_pace() {
    // Retry-After's floor is above half of a slow limit: the pace stays.
    let pacer = Pacer::new(Some(limit(6, Per::Minute, 1)), &BTreeMap::new());
    let ticket = pacer.turn(CallKind::Pin).await;
    refused(&pacer, ticket, 1);
    assert!(pacer.rate().unwrap() <= 0.1, "{:?}", pacer.rate());
}

#[tokio::test(start_paused = true)]
async fn after_a_pause_the_second_before_it_still_counts() {
    // The second cut comes just after the pause: the calls accepted before
    // it are still the service's word, and the pace halves, not collapses.
    let pacer = Pacer::new(Some(limit(100, Per::Second, 1)), &BTreeMap::new());
    succeed(&pacer, 100).await;
    let ticket = pacer.turn(CallKind::Pin).await;
    refused(&pacer, ticket, 1);
    assert_eq!(pacer.rate(), Some(50.0));
    succeed(&pacer, 3).await;
    let ticket = pacer.turn(CallKind::Pin).await;
    refused(&pacer, ticket, 1);
    assert_eq!(pacer.rate(), Some(25.0));
}

#[tokio::test(start_paused = true)]
async fn an_unpaced_provider_refused_at_once_goes_one_call_a_pause() {
    let pacer = Pacer::unlimited();
    let ticket = pacer.turn(CallKind::Pin).await;
    pacer.observe(
        ticket,
        StatusCode::TOO_MANY_REQUESTS,
        &HeaderMap::new(),
        None,
    );
    assert_eq!(
        pacer.rate(),
        Some(1.0),
        "one call a second, the pause taken"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rise_brings_the_next_slot_forward() {
    let pacer = Pacer::new(Some(limit(10, Per::Second, 1)), &BTreeMap::new());
    succeed(&pacer, 10).await;
    let ticket = pacer.turn(CallKind::Pin).await;
    refused(&pacer, ticket, 1);
    assert_eq!(pacer.rate(), Some(5.0));
    let mut sent = Vec::new();
    for _ in 0..6 {
        let ticket = pacer.turn(CallKind::Pin).await;
        sent.push(Instant::now());
        ok(&pacer, ticket);
    }
    // The fifth success raised the pace: the sixth call comes at it.
    assert_eq!(pacer.rate(), Some(5.25));
    assert_eq!(sent[4] - sent[3], Duration::from_millis(200));
    let gap = sent[5] - sent[4];
    assert!(gap < Duration::from_millis(195), "{gap:?}");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_hands_its_kinds_slot_back() {
    let lists = BTreeMap::from([(CallKind::List, limit(1, Per::Second, 1))]);
    let pacer = Pacer::new(None, &lists);
    pacer.turn(CallKind::List).await;
    // Five listings wait for their slots, and are dropped (a stopped run).
    for _ in 0..5 {
        let waiting = pacer.turn(CallKind::List);
        assert!(
            tokio::time::timeout(Duration::from_millis(10), waiting)
                .await
                .is_err()
        );
    }
    let start = Instant::now();
    pacer.turn(CallKind::List).await;
    assert!(
        start.elapsed() <= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}
