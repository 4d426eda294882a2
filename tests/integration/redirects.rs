//! A provider that redirects a call to another origin: pinsync follows no
//! redirect, so no key reaches the other host, whatever the provider type
//! and whatever the call; the command fails naming the redirect, and the
//! redirected call records nothing.

use serde_json::{Value, json};

use crate::support::*;

/// What a case does before the redirect is armed, and the command that
/// meets it.
struct Case {
    what: &'static str,
    /// Pins of the manifest for the setup run.
    before: String,
    /// Pins of the manifest for the redirected run (`None`: the same).
    after: Option<String>,
    /// Run (`apply --auto-approve`) before the redirect is armed.
    setup: bool,
    /// Remove the state after the setup run, so the command starts afresh.
    forget_state: bool,
    /// `fail_next`'s `on`: the call to redirect.
    on: &'static str,
    command: &'static [&'static str],
}

fn case(
    what: &'static str,
    pins: String,
    on: &'static str,
    command: &'static [&'static str],
) -> Case {
    Case {
        what,
        before: pins,
        after: None,
        setup: false,
        forget_state: false,
        on,
        command,
    }
}

const APPLY: &[&str] = &["apply", "--auto-approve"];
const PRUNE: &[&str] = &["apply", "--auto-approve", "--prune"];
const WAIT: &[&str] = &["apply", "--auto-approve", "--wait", "--wait-timeout", "20s"];
const REFRESH: &[&str] = &["refresh"];
const IMPORT: &[&str] = &["import"];

/// The cases every provider type has: pin, unpin, the status calls of a
/// wait, and the listings of refresh and import.
fn cases(provider: &'static str, calls: [&'static str; 4]) -> Vec<Case> {
    let [pin_call, unpin_call, status_call, list_call] = calls;
    let one = pin(CID_A, "site", &[provider]);
    let two = one.clone() + &pin(CID_B, "docs", &[provider]);
    vec![
        case("pin", one.clone(), pin_call, APPLY),
        Case {
            setup: true,
            after: Some(one.clone()),
            ..case("unpin", two, unpin_call, PRUNE)
        },
        case("status (apply --wait)", one.clone(), status_call, WAIT),
        Case {
            setup: true,
            ..case("list (refresh)", one.clone(), list_call, REFRESH)
        },
        Case {
            setup: true,
            forget_state: true,
            ..case("list (import)", one, list_call, IMPORT)
        },
    ]
}

fn run_cases(provider: &str, cases: Vec<Case>) {
    for case in cases {
        let emu = Emulator::start();
        let recorder = Recorder::start();
        let p = Project::new(&emu, &case.before);
        if case.setup {
            let r = p.run(APPLY);
            assert_eq!(r.code, 0, "{provider} {}: setup: {r:?}", case.what);
        }
        if case.forget_state {
            std::fs::remove_file(p.state_path()).unwrap();
        }
        if let Some(after) = &case.after {
            p.write_manifest(&emu, after);
        }
        let state_before = std::fs::read(p.state_path()).ok();
        emu.faults(json!({"fail_next": [{"on": case.on, "redirect": recorder.origin}]}));
        let r = p.run(case.command);
        let what = format!("{provider} {} ({})", case.what, case.on);

        let redirected = emu
            .requests()
            .iter()
            .filter(|r| r["fault"] == "fail_next:redirect")
            .count();
        assert_eq!(redirected, 1, "{what}: the call was redirected once: {r:?}");
        assert_eq!(r.code, 1, "{what}: {r:?}");
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(
            said.contains(&format!("HTTP 307: redirected to {}", recorder.origin))
                && said.contains("base_url"),
            "{what}: the error names the redirect: {r:?}"
        );
        assert_no_secret(&what, &said);
        assert!(
            recorder.received().is_empty(),
            "{what}: a request reached the other origin: {:?}",
            recorder.received()
        );
        // The redirected call recorded nothing: the state is as it was
        // before the command, or holds no pin when there was none.
        match (&state_before, std::fs::read(p.state_path()).ok()) {
            (Some(before), Some(after)) if case.command != WAIT => {
                let pins = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap()["pins"].clone();
                assert_eq!(pins(before), pins(&after), "{what}: the state changed");
            }
            (_, Some(after)) if case.command == WAIT => {
                // The pin call landed and is recorded; the redirected
                // status call left no status on it.
                let pins = serde_json::from_slice::<Value>(&after).unwrap()["pins"].clone();
                let pins = pins.as_array().unwrap();
                assert_eq!(pins.len(), 1, "{what}: {pins:?}");
                assert!(pins[0].get("observed").is_none(), "{what}: {pins:?}");
            }
            (_, Some(after)) => {
                let pins = serde_json::from_slice::<Value>(&after).unwrap()["pins"].clone();
                assert_eq!(pins, json!([]), "{what}: a pin was recorded");
            }
            (_, None) => {}
        }
    }
}

#[test]
fn the_recorder_records_what_reaches_it() {
    // The control for the tests below: a request that does reach the
    // other origin is seen, key and all.
    let recorder = Recorder::start();
    let _ = ureq::post(&format!("{}/api/pinning/pinByHash", recorder.origin))
        .set("pinning_api_key", AIOZ_KEY)
        .send_string("{}");
    let received = recorder.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(received[0].contains(AIOZ_KEY), "{received:?}");
}

#[test]
fn aioz_calls_are_never_followed_to_another_origin() {
    run_cases(
        "aioz",
        cases(
            "aioz",
            [
                "POST /api/pinning/pinByHash",
                "DELETE /api/pinning/unpin/*",
                "GET /api/pinning/*",
                "GET /api/pinning/pins/",
            ],
        ),
    );
}

#[test]
fn pinarkive_calls_are_never_followed_to_another_origin() {
    run_cases(
        "pinarkive",
        cases(
            "arkive",
            [
                "POST /api/v3/files/pin/*",
                "DELETE /api/v3/files/remove/*",
                "GET /api/v3/status/*",
                "GET /api/v3/users/me/uploads",
            ],
        ),
    );
}

#[test]
fn pinning_service_calls_are_never_followed_to_another_origin() {
    let one = pin(CID_A, "site", &["psa"]);
    let renamed = pin(CID_A, "site-v2", &["psa"]);
    let mut all = cases(
        "psa",
        [
            "POST /psa/pins",
            "DELETE /psa/pins/*",
            "GET /psa/pins/*",
            "GET /psa/pins",
        ],
    );
    // The lookup before an add, the read before a removal or a replace, and
    // the replace itself.
    all.push(case(
        "lookup before add",
        one.clone(),
        "GET /psa/pins",
        APPLY,
    ));
    all.push(Case {
        setup: true,
        after: Some(renamed.clone()),
        ..case("read before replace", one.clone(), "GET /psa/pins/*", APPLY)
    });
    all.push(Case {
        setup: true,
        after: Some(renamed),
        ..case("replace", one, "POST /psa/pins/*", APPLY)
    });
    run_cases("pinning-service", all);
}
