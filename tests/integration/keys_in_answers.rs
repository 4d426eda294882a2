//! Keys that also occur in the providers' answers, as a one-letter key
//! occurs in `false` or a key `requestid` in every Pinning Service answer:
//! the answers are read as sent, so the whole apply, refresh and import
//! path works, and still no key is shown or stored where a provider echoes
//! it back.

use serde_json::json;

use crate::support::*;

/// Where `key` occurs in `text` as a word of its own (not inside a longer
/// run of letters and digits), as an echoed header value would.
fn occurs_as_word(text: &str, key: &str) -> Option<String> {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text.match_indices(key).find_map(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + key.len()..].chars().next();
        (!alnum(before) && !alnum(after)).then(|| {
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(40)
                .map_or(0, |(i, _)| i);
            let to = (at + key.len() + 40).min(text.len());
            text.get(from..to).unwrap_or(text).to_owned()
        })
    })
}

fn assert_no_key(keys: &Keys, what: &str, text: &str) {
    for key in keys.all() {
        if let Some(around) = occurs_as_word(text, key) {
            panic!("key {key:?} shown in {what}: ...{around}...\n{text}");
        }
    }
}

fn whole_path(keys: Keys) {
    let emu = Emulator::start_with_keys(&keys, &[]);
    let everywhere = ["aioz", "arkive", "psa"];
    let p = Project::new(
        &emu,
        &(pin(CID_A, "site", &everywhere) + &pin(CID_B, "docs", &everywhere)),
    );
    let run = |args: &[&str]| p.command(args).envs(keys.env()).run();
    let mut said = String::new();

    let r = run(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "apply: {r:?}");
    assert_eq!(emu.pins().len(), 6, "{r:?}");
    said += &(r.stdout + &r.stderr);

    let r = run(&["refresh"]);
    assert_eq!(r.code, 0, "refresh: {r:?}");
    let statuses: Vec<String> = p
        .listed_pins()
        .iter()
        .map(|pin| format!("{} {}", pin["target"], pin["provider_status"]))
        .collect();
    assert_eq!(statuses.len(), 6, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| s.ends_with(r#""pinned""#)),
        "{statuses:?}"
    );
    said += &(r.stdout + &r.stderr);

    // Import adopts all six again, with their ids, from the listings.
    let recorded = p.state()["pins"].clone();
    std::fs::remove_file(p.state_path()).unwrap();
    let r = run(&["import"]);
    assert_eq!(r.code, 0, "import: {r:?}");
    let imported = p.state()["pins"].clone();
    assert_eq!(imported.as_array().unwrap().len(), 6, "{imported}");
    let ids = |pins: &serde_json::Value| {
        let mut ids: Vec<String> = pins
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["pin_id"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&imported), ids(&recorded), "the same ids, unchanged");
    said += &(r.stdout + &r.stderr);

    // A service that echoes the request's headers in an error: the keys
    // are redacted from what is shown, and the next apply goes through.
    p.write_manifest(
        &emu,
        &(pin(CID_A, "site", &everywhere)
            + &pin(CID_B, "docs", &everywhere)
            + &pin(CID_C, "more", &everywhere)),
    );
    emu.faults(json!({"fail_next": [
        {"on": "POST /api/pinning/pinByHash", "echo_headers": true},
        {"on": "POST /api/v3/files/pin/*", "echo_headers": true},
        {"on": "POST /psa/pins", "echo_headers": true},
    ]}));
    let r = run(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 1, "{r:?}");
    let echoed = r.stdout.clone() + &r.stderr;
    for header in [
        "pinning_api_key: <redacted>",
        "x-api-key: <redacted>",
        "authorization: Bearer <redacted>",
    ] {
        assert!(echoed.contains(header), "{header} in {echoed}");
    }
    said += &echoed;
    let r = run(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(emu.pins().len(), 9);
    said += &(r.stdout + &r.stderr);

    assert_no_key(&keys, "the output", &said);
    for (path, text) in p.all_files() {
        assert_no_key(&keys, &path.display().to_string(), &text);
    }
}

#[test]
fn keys_of_one_and_two_characters_work_and_are_never_shown() {
    whole_path(Keys {
        aioz_key: "e",
        aioz_secret: "k",
        arkive_key: "j",
        psa_token: "pi",
    });
}

#[test]
fn keys_that_are_words_of_the_answers_work_and_are_never_shown() {
    // `success` and `RETRIEVAL` are AIOZ's statuses, `uploads` names
    // Pinarkive's listing, `requestid` is in every Pinning Service answer.
    whole_path(Keys {
        aioz_key: "success",
        aioz_secret: "RETRIEVAL",
        arkive_key: "uploads",
        psa_token: "requestid",
    });
}
