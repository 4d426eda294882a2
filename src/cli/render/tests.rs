//! Rendering, checked against snapshots and by hand.
use std::collections::BTreeMap;

use super::*;

#[test]
fn a_pace_reads_per_second_or_per_minute() {
    assert_eq!(rate(20.0), "20/s");
    assert_eq!(rate(12.65625), "12.7/s");
    assert_eq!(rate(0.5), "30/min");
    assert_eq!(rate(1.0 / 60.0), "1/min");
}
use crate::manifest::{Labels, Target};
use crate::plan::{PLAN_FORMAT_VERSION, Previous, StateRef, Summary};

fn change(action: Action, cluster: Option<&str>, cid: &str, name: Option<&str>) -> Change {
    Change {
        action,
        target: Target {
            provider: "arkive".into(),
            cluster: cluster.map(Into::into),
        },
        cid: cid.into(),
        canonical_cid: cid.into(),
        labels: Labels {
            name: name.map(Into::into),
            meta: Default::default(),
            replication: None,
        },
        origins: Vec::new(),
        previous: None,
        pin_id: None,
        moved_to: Vec::new(),
        reason: None,
    }
}

#[test]
fn each_action_is_one_aligned_line_then_the_summary() {
    let mut renamed = change(Action::Update, None, "bafyc", Some("new"));
    renamed.previous = Some(Previous {
        labels: Labels {
            name: Some("old".into()),
            meta: Default::default(),
            replication: None,
        },
        status: PinStatus::Orphaned,
    });
    let plan = Plan {
        format_version: PLAN_FORMAT_VERSION,
        state: StateRef {
            lineage: String::new(),
            serial: 0,
        },
        providers: BTreeMap::new(),
        changes: vec![
            change(Action::Pin, Some("cl0-global"), "bafya", Some("home")),
            change(Action::Orphan, None, "bafyb", None),
            renamed,
        ],
        summary: Summary {
            pin: 1,
            update: 1,
            orphan: 1,
            unpin: 0,
            repin: 0,
            unchanged: 4,
        },
        pace: BTreeMap::new(),
    };
    assert_eq!(
        super::plan(&plan, Palette::plain()),
        "pinsync will make these changes:\n\n  \
         + arkive/cl0-global  bafya  \"home\"\n  \
         - arkive             bafyb  (no longer in the manifest; not unpinned)\n  \
         ~ arkive             bafyc  back in the manifest, name \"old\" -> \"new\"\n\
         \nPlan: 1 to pin, 1 to update, 1 no longer managed, 4 unchanged.\n\
         Pins no longer in the manifest stay pinned on the provider; the state keeps them as orphaned.\n"
    );
}

#[test]
fn the_markdown_plan_is_a_table_with_full_cids_and_the_guards() {
    let mut renamed = change(Action::Update, None, "bafyc", Some("new"));
    renamed.previous = Some(Previous {
        labels: Labels {
            name: Some("old".into()),
            meta: Default::default(),
            replication: None,
        },
        status: PinStatus::Managed,
    });
    let mut repin = change(Action::Repin, None, "bafyd", Some("lost"));
    repin.reason = Some("the provider no longer holds it (checked 2026-12-01T00:00:00Z)".into());
    let mut moved = change(Action::Unpin, Some("cl1-eu"), "bafye", None);
    moved.moved_to = vec![Target {
        provider: "arkive".into(),
        cluster: Some("cl0-global".into()),
    }];
    let plan = Plan {
        format_version: PLAN_FORMAT_VERSION,
        state: StateRef {
            lineage: String::new(),
            serial: 0,
        },
        providers: BTreeMap::new(),
        changes: vec![
            change(
                Action::Pin,
                Some("cl0-global"),
                "bafye",
                Some("a | b <script>"),
            ),
            repin,
            renamed,
            change(Action::Orphan, None, "bafyf", None),
            change(Action::Unpin, None, "bafyg", Some("gone")),
            moved,
        ],
        summary: Summary {
            pin: 1,
            repin: 1,
            update: 1,
            orphan: 1,
            unpin: 2,
            unchanged: 4,
        },
        pace: BTreeMap::from([(
            "arkive".to_string(),
            crate::plan::Pace {
                calls: 2000,
                rate_limit: Some("100/min (bursts of 10)".into()),
                seconds: Some(1194),
            },
        )]),
    };
    let refused = ["this plan would unpin 2 of the 3 pins on arkive; pass it with --max-unpins 2 (or more), or --force-unpins".to_string()];
    let text = super::markdown(&plan, &refused);
    assert!(!text.contains('\u{1b}'), "no colour");
    insta::assert_snapshot!(text);
}
