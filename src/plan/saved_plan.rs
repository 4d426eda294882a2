//! Plans saved by `plan --out` and applied by `apply PLAN`.
//!
//! A saved plan is input like any other: it may have been edited, truncated
//! or written by something else. It names the endpoints the keys are sent
//! to, so it is checked by the rules a manifest is checked by before
//! anything connects, and it is refused whole with every problem named.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context as _, bail};

use super::{Action, PLAN_FORMAT_VERSION, Plan, Summary};
use crate::file_io::{self, Bounded};
use crate::manifest::{ContentId, MAX_NAME_CHARS, check_label, is_valid_name};
use crate::state::State;

/// Saved plans larger than this are refused before they are read: a plan of
/// 250,000 changes is about 100 MiB.
const MAX_PLAN_BYTES: u64 = 256 * 1024 * 1024;

/// Writes `plan` to `path` atomically.
pub(crate) fn save(plan: &Plan, path: &Path) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(plan)?;
    bytes.push(b'\n');
    file_io::replace(path, &bytes, None).context("save plan")?;
    Ok(())
}

/// Reads and checks a saved plan.
pub(crate) fn load(path: &Path) -> anyhow::Result<Plan> {
    let shown = path.display();
    let bytes = read_bounded(path).with_context(|| format!("read plan {shown}"))?;
    decode(&bytes).with_context(|| format!("plan {shown} was refused; nothing was changed"))
}

fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    match file_io::read_bounded(path, MAX_PLAN_BYTES)? {
        Bounded::Read(bytes, _) => Ok(bytes),
        Bounded::TooLarge(size) => bail!(
            "it is {size} bytes or more; the limit is {} MiB",
            MAX_PLAN_BYTES / (1024 * 1024)
        ),
    }
}

/// Refuses a plan made against another state than `state`.
pub(crate) fn check_current(plan: &Plan, state: &State, path: &Path) -> anyhow::Result<()> {
    if plan.state.lineage != state.lineage || plan.state.serial != state.serial {
        bail!(
            "the state has changed since {} was made (plan made at state serial {} of lineage {}, \
             the state is now at serial {} of lineage {}); run `pinsync plan --out` again",
            path.display(),
            plan.state.serial,
            plan.state.lineage,
            state.serial,
            state.lineage
        );
    }
    Ok(())
}

/// Refuses a plan whose unpins and re-pins name pins the state does not
/// hold as the plan says: their pin ids drive DELETE calls, so they must be
/// the state's, not an edited file's.
pub(crate) fn check_pins_against_state(
    plan: &Plan,
    state: &State,
    path: &Path,
) -> anyhow::Result<()> {
    for (i, change) in plan.changes.iter().enumerate() {
        // Unpins, re-pins and replaces name a request to call by its id.
        let by_id = match change.action {
            Action::Unpin | Action::Repin => true,
            Action::Update => change.pin_id.is_some(),
            Action::Pin | Action::Orphan => false,
        };
        if !by_id {
            continue;
        }
        let recorded = state.pins.get(&change.key());
        let id_matches = match (change.action, recorded) {
            (_, None) => false,
            // A re-pin carries the id only of a failed request.
            (Action::Repin, Some(r)) => {
                change.pin_id.is_none() || change.pin_id.as_deref() == r.pin_id.as_deref()
            }
            (_, Some(r)) => change.pin_id.as_deref() == r.pin_id.as_deref(),
        };
        if !id_matches {
            bail!(
                "plan {} was refused: change {} ({} {}) does not match the pin the state records; run `pinsync plan --out` again",
                path.display(),
                i + 1,
                change.target,
                change.cid
            );
        }
    }
    Ok(())
}

/// Parses and checks plan bytes; the error lists every problem found.
pub fn decode(bytes: &[u8]) -> anyhow::Result<Plan> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        format_version: u32,
    }
    let version: Versioned =
        serde_json::from_slice(bytes).context("it is not a plan saved by `pinsync plan --out`")?;
    if version.format_version != PLAN_FORMAT_VERSION {
        bail!(
            "it has format version {}; this pinsync reads version {PLAN_FORMAT_VERSION}: run `pinsync plan --out` again",
            version.format_version
        );
    }
    let mut plan: Plan =
        serde_json::from_slice(bytes).context("it does not have the shape of a plan")?;
    let problems = problems(&plan);
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    // Derived, so worked out again rather than trusted.
    plan.pace = super::pace(&plan);
    Ok(plan)
}

/// Everything the manifest's validation would refuse in this plan, and
/// what only a plan can get wrong (a change naming an undeclared provider,
/// a summary that does not count its changes).
fn problems(plan: &Plan) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, config) in &plan.providers {
        if !is_valid_name(name) {
            problems.push(format!(
                "provider name {name:?} may hold only letters, digits, '-' and '_'"
            ));
        }
        for p in config.problems() {
            problems.push(format!("provider {name:?}: {p}"));
        }
    }
    let mut keys = BTreeSet::new();
    let mut counted = Summary {
        unchanged: plan.summary.unchanged,
        ..Summary::default()
    };
    let mut seen_unpin = false;
    for (i, change) in plan.changes.iter().enumerate() {
        let at = format!("change {}", i + 1);
        let target = &change.target;
        match plan.providers.get(target.provider.as_str()) {
            None => problems.push(format!(
                "{at}: provider {:?} is not declared in the plan",
                target.provider
            )),
            Some(config) => match &target.cluster {
                Some(cluster) if !config.kind.has_clusters() => problems.push(format!(
                    "{at}: provider {:?} (type {}) has no clusters, but the change names {cluster:?}",
                    target.provider, config.kind
                )),
                Some(cluster) if !is_valid_name(cluster) => {
                    problems.push(format!("{at}: invalid cluster name {cluster:?}"));
                }
                _ if change.labels.replication.is_some()
                    && !config.kind.capabilities().replication =>
                {
                    problems.push(format!(
                        "{at}: provider {:?} (type {}) pins on one node, but the change names a replication",
                        target.provider, config.kind
                    ));
                }
                _ => {}
            },
        }
        match ContentId::parse(&change.cid) {
            Err(e) => problems.push(format!("{at}: {e}")),
            Ok(cid) if *cid.canonical() != change.canonical_cid => problems.push(format!(
                "{at}: canonical_cid {:?} is not the canonical form of {:?}",
                change.canonical_cid, change.cid
            )),
            Ok(_) => {}
        }
        let previous = change.previous.iter().map(|p| &p.labels);
        for labels in std::iter::once(&change.labels).chain(previous) {
            problems.extend(labels.problems().into_iter().map(|p| format!("{at}: {p}")));
        }
        for p in crate::manifest::origin_problems(&change.origins) {
            problems.push(format!("{at}: {p}"));
        }
        if !keys.insert(change.key()) {
            problems.push(format!(
                "{at}: {} {:?} is changed twice",
                target, change.cid
            ));
        }
        for text in change.pin_id.iter().chain(&change.reason) {
            if let Err(e) = check_label(text, "pin id or reason", MAX_NAME_CHARS) {
                problems.push(format!("{at}: {e}"));
            }
        }
        for to in &change.moved_to {
            if !plan.providers.contains_key(to.provider.as_str())
                || !to.cluster.as_deref().is_none_or(is_valid_name)
            {
                problems.push(format!("{at}: moved_to names an unknown target {to:?}"));
            }
        }
        match change.action {
            Action::Pin => counted.pin += 1,
            Action::Repin => counted.repin += 1,
            Action::Update => counted.update += 1,
            Action::Orphan => counted.orphan += 1,
            Action::Unpin => {
                counted.unpin += 1;
                let by_id = plan
                    .providers
                    .get(target.provider.as_str())
                    .filter(|c| c.kind.capabilities().unpins_by_pin_id());
                if let (Some(config), None) = (by_id, &change.pin_id) {
                    problems.push(format!(
                        "{at}: an unpin on {} needs the pin's id",
                        config.kind
                    ));
                }
            }
        }
        // Unpins come after every pin, so a move's new pin lands first.
        if change.action == Action::Unpin {
            seen_unpin = true;
        } else if seen_unpin && matches!(change.action, Action::Pin | Action::Repin) {
            problems.push(format!("{at}: a pin after an unpin; unpins come last"));
        }
    }
    if counted != plan.summary {
        problems.push(format!(
            "its summary ({} to pin, {} to update, {} to unpin, {} no longer managed) does not count its changes ({}, {}, {}, {})",
            plan.summary.pin,
            plan.summary.update,
            plan.summary.unpin,
            plan.summary.orphan,
            counted.pin,
            counted.update,
            counted.unpin,
            counted.orphan
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Value, json};

    use super::*;
    use crate::state::State;

    /// A good plan as saved JSON: one pin on each provider, one rename.
    fn saved() -> Value {
        let text = "version: 1\nproviders:\n  aioz:\n    type: aioz\n    api_key: ${K}\n    secret_key: ${S}\n  arkive:\n    type: pinarkive\n    api_key: ${P}\n    base_url: http://127.0.0.1:8917\npins:\n  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG\n    name: home\n    to: [aioz, arkive/cl0-global]\n    meta: {team: web}\n";
        let m = crate::manifest::parse(Path::new("pins.yaml"), text.as_bytes()).unwrap();
        serde_json::to_value(crate::plan::plan(&m, &State::new(), Default::default())).unwrap()
    }

    fn refused(plan: &Value) -> String {
        match decode(&serde_json::to_vec(plan).unwrap()) {
            Ok(_) => panic!("accepted: {plan:#}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn a_saved_plan_decodes_to_the_plan_that_was_saved() {
        let plan = saved();
        let back = decode(&serde_json::to_vec(&plan).unwrap()).unwrap();
        assert_eq!(serde_json::to_value(back).unwrap(), plan);
    }

    #[test]
    fn edits_the_manifest_would_refuse_are_refused() {
        type Edit = fn(&mut Value);
        let cases: &[(&str, Edit)] = &[
            ("plain http to a host that is not loopback", |p| {
                p["providers"]["arkive"]["base_url"] = json!("http://keys.example.com");
            }),
            ("must be https:// (found data://)", |p| {
                p["providers"]["arkive"]["base_url"] = json!("data:x");
            }),
            ("must be https:// (found file://)", |p| {
                p["providers"]["aioz"]["base_url"] = json!("file:///etc");
            }),
            ("contains a control character", |p| {
                p["providers"]["aioz"]["base_url"] = json!("https://a.example\n.com");
            }),
            ("missing field `secret_key`", |p| {
                p["providers"]["aioz"]["settings"]
                    .as_object_mut()
                    .unwrap()
                    .remove("secret_key");
            }),
            ("`secret_key` is not used by provider type pinarkive", |p| {
                p["providers"]["arkive"]["settings"]["secret_key"] =
                    json!({"secret": {"var": "S"}});
            }),
            ("not a valid environment variable name", |p| {
                p["providers"]["aioz"]["settings"]["api_key"] =
                    json!({"secret": {"var": "sk-live-0123"}});
            }),
            ("does not have the shape of a plan", |p| {
                p["providers"]["aioz"]["type"] = json!("ftp");
            }),
            ("`auth` is not used by provider type aioz", |p| {
                p["providers"]["aioz"]["settings"]["auth"] = json!({"text": "bearer"});
            }),
            ("is not a multiaddr", |p| {
                p["changes"][0]["origins"] = json!(["https://evil.example"]);
            }),
            (
                "`take_over_unmarked` is not used by provider type aioz",
                |p| {
                    p["providers"]["aioz"]["settings"]["take_over_unmarked"] =
                        json!({"flag": true});
                },
            ),
            ("provider \"nowhere\" is not declared", |p| {
                p["changes"][0]["provider"] = json!("nowhere");
            }),
            ("has no clusters", |p| {
                p["changes"][0]["cluster"] = json!("cl0-global");
            }),
            ("invalid cluster name", |p| {
                p["changes"][1]["cluster"] = json!("../x");
            }),
            ("write the CID alone", |p| {
                p["changes"][0]["cid"] =
                    json!("/ipfs/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG");
            }),
            ("is not the canonical form", |p| {
                p["changes"][0]["canonical_cid"] =
                    json!("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi");
            }),
            ("name contains a control character", |p| {
                p["changes"][0]["name"] = json!("home\u{1b}[2J");
            }),
            ("meta value is 1025 characters long", |p| {
                p["changes"][0]["meta"]["team"] = json!("x".repeat(1025));
            }),
            ("is changed twice", |p| {
                let first = p["changes"][0].clone();
                p["changes"].as_array_mut().unwrap().push(first);
                p["summary"]["pin"] = json!(3);
            }),
            ("does not count its changes", |p| {
                p["summary"]["pin"] = json!(0);
            }),
            ("format version 7", |p| p["format_version"] = json!(7)),
            (
                "format version 1; this pinsync reads version 4: run `pinsync plan --out` again",
                |p| {
                    p["format_version"] = json!(1);
                },
            ),
            ("a pin after an unpin", |p| {
                p["changes"][0]["action"] = json!("unpin");
                p["changes"][0]["pin_id"] = json!("id-1");
                p["summary"]["pin"] = json!(1);
                p["summary"]["unpin"] = json!(1);
            }),
            ("an unpin on aioz needs the pin's id", |p| {
                p["changes"][1]["action"] = json!("unpin");
                p["changes"][0]["action"] = json!("unpin");
                p["summary"]["pin"] = json!(0);
                p["summary"]["unpin"] = json!(2);
            }),
            ("not a plan saved by", |p| *p = json!([1, 2])),
        ];
        for (expected, edit) in cases {
            let mut plan = saved();
            edit(&mut plan);
            let err = refused(&plan);
            assert!(err.contains(expected), "{expected:?} not in: {err}");
            assert!(
                !err.contains("sk-live-0123"),
                "a key pasted as a name is not echoed: {err}"
            );
        }
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let mut plan = saved();
        plan["providers"]["arkive"]["base_url"] = json!("http://keys.example.com");
        plan["changes"][0]["cid"] = json!("nonsense");
        let err = refused(&plan);
        assert!(
            err.contains("plain http") && err.contains("change 1"),
            "{err}"
        );
    }

    /// Mutated plans must be refused or accepted, never panic, and an
    /// accepted one must connect and render without panicking.
    #[test]
    fn mutated_plans_never_panic() {
        let good = serde_json::to_vec_pretty(&saved()).unwrap();
        let interesting: &[&[u8]] = &[
            b"\"",
            b"{",
            b"}",
            b"[",
            b"]",
            b":",
            b",",
            b"null",
            b"\"data:x\"",
            b"\"http://x\"",
            b"\"https://\"",
            b"0",
            b"-1",
            b"18446744073709551616",
            b"\\u0000",
            b"\xff",
        ];
        let mut rng = fastrand::Rng::with_seed(10);
        let mut accepted = 0;
        for _ in 0..5_000 {
            let mut bytes = good.clone();
            for _ in 0..rng.usize(1..=3) {
                let at = rng.usize(0..=bytes.len());
                match rng.u8(0..3) {
                    0 => {
                        let end = (at + rng.usize(1..12)).min(bytes.len());
                        bytes.drain(at..end);
                    }
                    1 => {
                        let piece = interesting[rng.usize(0..interesting.len())];
                        bytes.splice(at..at, piece.iter().copied());
                    }
                    _ if !bytes.is_empty() => {
                        let i = rng.usize(0..bytes.len());
                        bytes[i] = rng.u8(..);
                    }
                    _ => {}
                }
            }
            if let Ok(plan) = decode(&bytes) {
                accepted += 1;
                let _ = crate::cli::render::plan(&plan, crate::cli::render::Palette::plain());
                let _ = crate::provider::connect(
                    &plan.providers,
                    &crate::apply::providers_used(&plan),
                    |_| Some("key".into()),
                    crate::provider::HttpSettings::default(),
                );
            }
        }
        assert!(accepted > 0, "some mutations (in names, say) stay valid");
    }

    #[test]
    fn unpins_and_re_pins_must_name_the_pins_the_state_records() {
        use crate::manifest::{Labels, PinKey, Target};
        use crate::state::{PinRecord, PinStatus, StoredPin};
        let cid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
        let key = PinKey {
            target: Target {
                provider: "aioz".into(),
                cluster: None,
            },
            cid: cid.into(),
        };
        let mut state = State::new();
        state.record(StoredPin {
            key: key.clone(),
            record: PinRecord {
                cid_as_pinned: None,
                labels: Labels {
                    name: None,
                    meta: Default::default(),
                    replication: None,
                },
                pin_id: Some("real-id".into()),
                pinned_at: "t".into(),
                status: PinStatus::Managed,
                observed: None,
                foreign: false,
            },
        });
        let text = "version: 1\nproviders:\n  aioz:\n    type: aioz\n    api_key: ${K}\n    secret_key: ${S}\nprune: true\npins: []\n";
        let m = crate::manifest::parse(Path::new("pins.yaml"), text.as_bytes()).unwrap();
        let mut plan = crate::plan::plan(&m, &state, Default::default());
        assert_eq!(plan.summary.unpin, 1);
        let path = Path::new("p.plan");
        assert!(check_pins_against_state(&plan, &state, path).is_ok());
        plan.changes[0].pin_id = Some("someone-elses-id".into());
        let err = check_pins_against_state(&plan, &state, path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not match the pin the state records"),
            "{err}"
        );
        state.pins.clear();
        assert!(
            check_pins_against_state(&plan, &state, path).is_err(),
            "a pin the state lacks"
        );
    }
}
