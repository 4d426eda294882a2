//! Moving pins off a closing service, the README's whole path: `import`
//! from the old service, change `to:`, `apply --prune` (make-before-break:
//! nothing unpinned before its new pin is pinned), `refresh` to confirm.
//! From a Pinning Service to Pinata, and from AIOZ to QuickNode.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::*;

const PINATA_JWT: &str = "pinataJWT-8f7e6d5c-SECRET";
const QUICKNODE_KEY: &str = "quicknodeKEY-1f2e3d4c-SECRET";
/// How long the new service takes to pin each CID.
const PINNING_MS: u64 = 1500;

fn run(p: &Project, args: &[&str]) -> Run {
    let run = p
        .command(args)
        .env("PINATA_JWT", PINATA_JWT)
        .env("QUICKNODE_API_KEY", QUICKNODE_KEY)
        .run();
    for text in [&run.stdout, &run.stderr] {
        assert_no_secret("output", text);
        assert!(!text.contains(PINATA_JWT) && !text.contains(QUICKNODE_KEY));
    }
    run
}

fn write(p: &Project, providers: &str, to: &str, pins: &str) {
    let text = format!(
        "version: 1\nidentity: site\nproviders:\n{providers}defaults:\n  to: [{to}]\npins:\n{pins}"
    );
    std::fs::write(p.manifest(), text).unwrap();
}

fn project() -> Project {
    Project {
        dir: tempfile::tempdir().unwrap(),
        state_url: None,
    }
}

/// When each CID's first request of `method` to `provider` arrived, by
/// canonical CID, from the path (`id_to_cid` maps ids in paths) or the body.
fn first_arrivals(
    emu: &Emulator,
    provider: &str,
    method: &str,
    cid_of: impl Fn(&Value) -> Option<String>,
) -> BTreeMap<String, u64> {
    let mut first = BTreeMap::new();
    for r in requests_to(emu, provider) {
        if r["method"] != method || r["status"].as_u64().is_none_or(|s| s >= 300) {
            continue;
        }
        if let Some(cid) = cid_of(&r) {
            first
                .entry(cid)
                .or_insert(r["received_ms"].as_u64().unwrap());
        }
    }
    first
}

/// Each old pin was removed only once its new pin had been pinned for
/// the new service's pinning time at least.
fn assert_made_before_broken(pinned: &BTreeMap<String, u64>, removed: &BTreeMap<String, u64>) {
    assert_eq!(
        pinned.keys().collect::<Vec<_>>(),
        removed.keys().collect::<Vec<_>>(),
        "each CID pinned anew and removed from the old service"
    );
    for (cid, at) in removed {
        let pinned_at = pinned[cid];
        assert!(
            *at >= pinned_at + PINNING_MS - 100,
            "{cid} was removed at {at} ms, before its new pin (asked at {pinned_at} ms) could be pinned"
        );
    }
}

fn body_cid(r: &Value) -> Option<String> {
    r["body"]["cid"].as_str().map(str::to_owned)
}

#[test]
fn pins_move_from_a_pinning_service_to_pinata() {
    let emu = Emulator::start_with(&[
        "--pinata-jwt",
        PINATA_JWT,
        "--pinata-pinning-ms",
        &PINNING_MS.to_string(),
    ]);
    // The old service holds the team's requests, made by an earlier pinsync.
    let cids = [CID_A, CID_B, CID_C];
    let ids = emu.psa_add_by_hand(json!(
        cids.iter()
            .enumerate()
            .map(|(i, c)| json!({"cid": c, "name": format!("p{i}"), "meta": {"pinsync": "site"}}))
            .collect::<Vec<_>>()
    ));
    let providers = format!(
        "  old:
    type: pinning-service
    token: ${{PSA_TOKEN}}
    base_url: {url}/psa
    rate_limit: 180/min
  new:
    type: pinata
    jwt: ${{PINATA_JWT}}
    base_url: {url}
",
        url = emu.url
    );
    let pins: String = cids
        .iter()
        .enumerate()
        .map(|(i, c)| pin(c, &format!("p{i}"), &[]))
        .collect();
    let p = project();

    // 1. Import from the old service.
    write(&p, &providers, "old", &pins);
    let imported = run(&p, &["import"]);
    assert_eq!(imported.code, 0, "{imported:?}");
    let recorded: Vec<String> = p.state()["pins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pin_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recorded.len(), 3);
    assert!(recorded.iter().all(|id| ids.contains(id)), "{recorded:?}");
    assert_eq!(run(&p, &["plan", "--detailed-exitcode"]).code, 0);

    // 2. Change `to:`; the plan's time covers both services' limits.
    write(&p, &providers, "new", &pins);
    let plan = run(&p, &["plan", "--prune"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains("at 180/min"), "{plan:?}");
    assert!(plan.stdout.contains("at 60/min"), "{plan:?}");

    // 3. apply --prune: make-before-break.
    let applied = run(&p, &["apply", "--auto-approve", "--prune"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    let id_to_cid: BTreeMap<String, String> = ids
        .iter()
        .cloned()
        .zip(cids.iter().map(|c| (*c).to_owned()))
        .collect();
    let pinned = first_arrivals(&emu, "pinata", "POST", body_cid);
    let removed = first_arrivals(&emu, "psa", "DELETE", |r| {
        let id = r["path"].as_str()?.rsplit('/').next()?;
        id_to_cid.get(id).cloned()
    });
    assert_made_before_broken(&pinned, &removed);
    assert!(emu.psa_requests().is_empty());

    // 4. Refresh confirms the new service holds every pin.
    let refreshed = run(&p, &["refresh"]);
    assert_eq!(refreshed.code, 0, "{refreshed:?}");
    let state = p.state();
    let records = state["pins"].as_array().unwrap();
    assert_eq!(records.len(), 3, "{state}");
    for r in records {
        assert_eq!(r["provider"], "new");
        assert_eq!(r["provider_status"], "pinned", "{state}");
    }
    assert_eq!(run(&p, &["plan", "--detailed-exitcode", "--prune"]).code, 0);
}

#[test]
fn pins_move_from_aioz_to_quicknode() {
    let emu = Emulator::start_with(&[
        "--quicknode-api-key",
        QUICKNODE_KEY,
        "--quicknode-pinning-ms",
        &PINNING_MS.to_string(),
    ]);
    let providers = format!(
        "  old:
    type: aioz
    api_key: ${{AIOZ_PINNING_API_KEY}}
    secret_key: ${{AIOZ_PINNING_SECRET_KEY}}
    base_url: {url}
  new:
    type: quicknode
    api_key: ${{QUICKNODE_API_KEY}}
    base_url: {url}
",
        url = emu.url
    );
    let cids = [CID_A, CID_B, CID_C];
    let pins: String = cids
        .iter()
        .enumerate()
        .map(|(i, c)| pin(c, &format!("p{i}"), &[]))
        .collect();
    let p = project();
    // Pins on AIOZ that the state does not know (another machine's).
    write(&p, &providers, "old", &pins);
    assert_eq!(run(&p, &["apply", "--auto-approve"]).code, 0);
    std::fs::remove_file(p.state_path()).unwrap();

    // 1. Import.
    let imported = run(&p, &["import"]);
    assert_eq!(imported.code, 0, "{imported:?}");
    let aioz_ids: BTreeMap<String, String> = emu
        .pins()
        .iter()
        .filter(|h| h["provider"] == "aioz")
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_owned(),
                h["cid"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let state = p.state();
    let recorded = state["pins"].as_array().unwrap();
    assert_eq!(recorded.len(), 3);
    assert!(
        recorded
            .iter()
            .all(|r| aioz_ids.contains_key(r["pin_id"].as_str().unwrap())),
        "{state}"
    );

    // 2. Change `to:`.
    write(&p, &providers, "new", &pins);
    let plan = run(&p, &["plan", "--prune"]);
    assert!(plan.stdout.contains("at 180/min"), "AIOZ's limit: {plan:?}");
    assert!(plan.stdout.contains("new: "), "{plan:?}");

    // 3. apply --prune.
    let applied = run(&p, &["apply", "--auto-approve", "--prune"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    let pinned = first_arrivals(&emu, "quicknode", "POST", body_cid);
    let removed = first_arrivals(&emu, "aioz", "DELETE", |r| {
        let id = r["path"].as_str()?.rsplit('/').next()?;
        aioz_ids.get(id).cloned()
    });
    assert_made_before_broken(&pinned, &removed);
    assert!(emu.pins().iter().all(|h| h["provider"] != "aioz"));

    // 4. Refresh.
    let refreshed = run(&p, &["refresh"]);
    assert_eq!(refreshed.code, 0, "{refreshed:?}");
    let state = p.state();
    for r in state["pins"].as_array().unwrap() {
        assert_eq!(r["provider"], "new");
        assert_eq!(r["provider_status"], "pinned", "{state}");
    }
}
