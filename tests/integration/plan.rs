//! `pinsync plan`: output, exit codes, JSON, saved plans; no network, no
//! credentials.

use serde_json::Value;

use crate::support::*;

#[test]
fn plan_lists_each_change_and_a_summary_without_network_or_credentials() {
    let emu = Emulator::start();
    let p = Project::new(
        &emu,
        &(pin(CID_A, "homepage", &["aioz", "arkive/cl0-global"]) + &pin(CID_B, "docs", &[])),
    );
    let mut cmd = p.command(&["plan"]);
    cmd.env_remove("AIOZ_PINNING_API_KEY")
        .env_remove("AIOZ_PINNING_SECRET_KEY")
        .env_remove("PINARKIVE_API_KEY");
    let run = cmd.run();
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('+'))
        .collect();
    assert_eq!(lines.len(), 3, "{run:?}");
    assert!(
        lines.iter().any(|l| l.contains("arkive/cl0-global")
            && l.contains(CID_A)
            && l.contains("homepage"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("aioz") && l.contains(CID_B) && l.contains("docs"))
    );
    assert!(
        run.stdout
            .contains("Plan: 3 to pin, 0 to update, 0 no longer managed, 0 unchanged."),
        "{run:?}"
    );
    assert!(
        !run.stdout.contains('\u{1b}'),
        "no colour without a terminal"
    );
    assert!(emu.requests().is_empty(), "plan made a network call");
    assert!(!p.state_path().exists(), "plan wrote a state file");
}

#[test]
fn detailed_exitcode_is_2_with_changes_and_0_without() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let run = p.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = p.run(&["plan"]);
    assert_eq!(
        run.code, 0,
        "without the flag changes are not an error: {run:?}"
    );
    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = p.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("No changes. 1 pin match"), "{run:?}");
    std::fs::write(p.manifest(), "version: 1\npins: [").unwrap();
    assert_eq!(p.run(&["plan", "--detailed-exitcode"]).code, 1);
}

#[test]
fn json_plan_is_machine_readable_and_carries_no_secret() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "home", &["aioz", "arkive/cl1-eu"]));
    let run = p.run(&["plan", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let plan: Value = serde_json::from_str(&run.stdout).expect("stdout is JSON only");
    assert_eq!(plan["format_version"], 4);
    assert_eq!(plan["guards"], serde_json::json!([]));
    assert_eq!(plan["summary"]["pin"], 2);
    let changes = plan["changes"].as_array().unwrap();
    let eu = changes.iter().find(|c| c["cluster"] == "cl1-eu").unwrap();
    assert_eq!(eu["action"], "pin");
    assert_eq!(eu["provider"], "arkive");
    assert_eq!(eu["cid"], CID_A);
    assert_eq!(eu["name"], "home");
    assert!(eu["canonical_cid"].as_str().unwrap().starts_with("bafy"));
    assert_eq!(
        plan["providers"]["aioz"]["settings"]["api_key"]["secret"]["var"],
        "AIOZ_PINNING_API_KEY"
    );
    assert_no_secret("plan --json", &run.stdout);
}

#[test]
fn orphans_and_renames_are_shown_and_recorded_without_calls() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &[])));
    assert_eq!(p.run(&["apply", "--auto-approve"]).code, 0);
    let calls = emu.pin_calls();
    p.write_manifest(&emu, &pin(CID_B, "b-renamed", &[]));
    let run = p.run(&["plan"]);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.trim_start().starts_with('-') && l.contains(CID_A)),
        "{run:?}"
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.trim_start().starts_with('~') && l.contains(r#"name "b" -> "b-renamed""#)),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("0 to pin, 1 to update, 1 no longer managed, 0 unchanged"),
        "{run:?}"
    );

    let run = p.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        emu.pin_calls(),
        calls,
        "renames and orphans make no provider call"
    );
    assert_eq!(emu.pins().len(), 2, "the orphan stays pinned");
    let state = p.state();
    let pins = state["pins"].as_array().unwrap();
    let a = pins.iter().find(|x| x["cid_as_pinned"] == CID_A).unwrap();
    assert_eq!(a["status"], "orphaned");
    let b = pins.iter().find(|x| x["cid"] == CID_B).unwrap();
    assert_eq!(b["name"], "b-renamed");
    assert!(
        b["pin_id"].is_string(),
        "a rename keeps the provider's pin id"
    );
    assert_eq!(p.run(&["plan", "--detailed-exitcode"]).code, 0);
}

#[test]
fn unreadable_state_is_an_error_naming_the_file_and_is_left_untouched() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &[]));
    let garbage = b"{\"format_version\": 1, \"pins\": [tru";
    std::fs::write(p.state_path(), garbage).unwrap();
    for args in [
        &["plan"][..],
        &["apply", "--auto-approve"],
        &["state", "list"],
    ] {
        let run = p.run(args);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(run.stderr.contains("pins.state.json"), "{run:?}");
        assert!(run.stderr.contains("cannot be read"), "{run:?}");
        assert_eq!(std::fs::read(p.state_path()).unwrap(), garbage);
    }
    assert!(emu.requests().is_empty());
}

/// A saved plan is input: edited to send the keys elsewhere, or to hold
/// what the manifest would refuse, it is refused naming the file, exit 1,
/// no call made, no panic.
#[test]
fn an_edited_saved_plan_is_refused_before_any_call() {
    let emu = Emulator::start();
    let p = Project::new(
        &emu,
        &(pin(CID_A, "a", &[]) + &pin(CID_B, "b", &["arkive/cl1-eu"])),
    );
    let run = p.run(&["plan", "--out", "good.plan"]);
    assert_eq!(run.code, 0, "{run:?}");
    let good: Value = serde_json::from_slice(&std::fs::read(p.path("good.plan")).unwrap()).unwrap();
    // 0.0.0.0 is not loopback to the endpoint rules, but a connection to it
    // reaches this machine, so a plan that got through would show up in the
    // emulator's request log rather than leave the machine.
    let port = emu.url.rsplit(':').next().unwrap();
    let elsewhere = format!("http://0.0.0.0:{port}");
    type Edit = Box<dyn Fn(&mut Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "plain http to a host that is not loopback",
            Box::new(move |v: &mut Value| {
                v["providers"]["aioz"]["base_url"] = elsewhere.clone().into();
                v["providers"]["arkive"]["base_url"] = elsewhere.clone().into();
            }),
        ),
        (
            "missing field `secret_key`",
            Box::new(|v: &mut Value| {
                v["providers"]["aioz"]["settings"]
                    .as_object_mut()
                    .unwrap()
                    .remove("secret_key");
            }),
        ),
        (
            "must be https:// (found data://)",
            Box::new(|v: &mut Value| {
                v["providers"]["arkive"]["base_url"] = "data:x".into();
            }),
        ),
        (
            "not a valid environment variable name",
            Box::new(|v: &mut Value| {
                v["providers"]["aioz"]["settings"]["api_key"] =
                    serde_json::json!({"secret": {"var": "literal-key"}});
            }),
        ),
        (
            "has no clusters",
            Box::new(|v: &mut Value| {
                v["changes"][0]["cluster"] = "cl1-eu".into();
            }),
        ),
    ];
    for (expected, edit) in &edits {
        let mut plan = good.clone();
        edit(&mut plan);
        std::fs::write(p.path("edited.plan"), serde_json::to_vec(&plan).unwrap()).unwrap();
        let mut cmd = p.command(&["apply", "edited.plan"]);
        cmd.env("RUST_BACKTRACE", "1");
        let run = cmd.run();
        assert_eq!(run.code, 1, "{expected}: {run:?}");
        assert!(
            run.stderr.contains("plan edited.plan was refused") && run.stderr.contains(expected),
            "{expected}: {run:?}"
        );
        assert!(!run.stderr.contains("panicked"), "{expected}: {run:?}");
    }
    // A plan with no end is read up to its limit, not to the end.
    let run = p.run(&["apply", "/dev/zero"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("read plan /dev/zero") && run.stderr.contains("the limit is 256 MiB"),
        "{run:?}"
    );
    assert!(emu.requests().is_empty(), "no call: {:?}", emu.requests());
    assert!(!p.state_path().exists());
    // The plan as saved still applies.
    let run = p.run(&["apply", "good.plan"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(emu.pin_calls(), 2);
}

/// The reviewer sees where the keys will go when it is not the service's
/// own endpoint.
#[test]
fn the_plan_shows_each_endpoint_that_is_not_the_default() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "a", &["aioz", "arkive"]));
    let run = p.run(&["plan"]);
    for line in [
        format!(
            "Provider `aioz` is reached at {}, not the built-in https://api-ipfs.attoaioz.cyou.",
            emu.url
        ),
        format!(
            "Provider `arkive` is reached at {}, not the built-in https://api.pinarkive.com.",
            emu.url
        ),
    ] {
        assert!(run.stdout.contains(&line), "{line}\n{run:?}");
    }
}

#[test]
fn the_markdown_plan_is_for_a_pull_request_comment() {
    let emu = Emulator::start();
    let p = Project::new(&emu, &pin(CID_A, "home", &["aioz"]));
    let mut cmd = p.command(&["plan", "--format", "markdown", "--detailed-exitcode"]);
    cmd.env("TERM", "xterm");
    let run = cmd.run();
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.starts_with("### pinsync plan\n"), "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("| + | aioz | `{CID_A}` | home |  |")),
        "{run:?}"
    );
    assert!(!run.stdout.contains('\u{1b}'));
    let run = p.run(&["plan", "--format", "markdown", "--json"]);
    assert_eq!(run.code, 1, "--json and --format conflict: {run:?}");
}
