//! `pinsync state ...`: list, restore, the PostgreSQL lease, migrate, push
//! and pull.

use std::process::ExitCode;

use crate::cli::args::{
    LockBreakArgs, StateArg, StateCopyArgs, StateListArgs, StateOnlyArgs, StateRestoreArgs,
};
use crate::cli::{print, render};
use crate::ops;
use crate::state::StateStore as _;
use crate::state::StoredPin;

pub(crate) fn state_list(args: &StateListArgs) -> anyhow::Result<ExitCode> {
    let state = args.state.store(&args.manifest.file)?.load()?;
    if args.json {
        let pins: Vec<StoredPin> = state
            .pins
            .iter()
            .map(|(key, record)| StoredPin {
                key: key.clone(),
                record: record.clone(),
            })
            .collect();
        let doc = serde_json::json!({
            "lineage": state.lineage,
            "serial": state.serial,
            "pins": pins,
        });
        print(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
    } else if state.pins.is_empty() {
        print("The state holds no pins.\n")?;
    } else {
        print(&render::state_list(&state))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn lock_status(args: &StateOnlyArgs) -> anyhow::Result<ExitCode> {
    let store = args
        .state
        .location(&args.manifest.file)?
        .postgres("state lock status")?;
    match store.lease()? {
        None => print(&format!("{}: no lease is held.\n", store.describe()))?,
        Some(l) => print(&format!(
            "{}: {} by {}, taken {} ({:.0} s ago), {} {}.\n",
            store.describe(),
            if l.expired {
                "lease expired, was held"
            } else {
                "lease held"
            },
            l.holder,
            l.acquired_at,
            l.age,
            if l.expired { "expired" } else { "expires" },
            l.expires_at
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn lock_break(args: &LockBreakArgs) -> anyhow::Result<ExitCode> {
    let store = args
        .state
        .location(&args.manifest.file)?
        .postgres("state lock break")?;
    match store.break_lease(args.if_older_than)? {
        Some(l) => print(&format!(
            "Broke the lease held by {} since {}.\n",
            l.holder, l.acquired_at
        ))?,
        None => {
            print(&format!(
                "No lease older than {} on {}; nothing was broken.\n",
                humantime::format_duration(args.if_older_than),
                store.describe()
            ))?;
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn state_migrate(args: &StateOnlyArgs) -> anyhow::Result<ExitCode> {
    let store = args
        .state
        .location(&args.manifest.file)?
        .postgres("state migrate")?;
    let version = store.migrate()?;
    print(&format!(
        "{}: the schema is at version {version}.\n",
        store.describe()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `state push --to` / `state pull --from`: the whole state, its lineage
/// and serial kept, under both stores' locks.
pub(crate) fn state_copy(args: &StateCopyArgs) -> anyhow::Result<ExitCode> {
    let here = args.state.store(&args.manifest.file)?;
    let other_arg = StateArg {
        state: args.to.clone().or_else(|| args.from.clone()),
    };
    let other = other_arg.store(&args.manifest.file)?;
    let (from, to) = if args.to.is_some() {
        (here.as_ref(), other.as_ref())
    } else {
        (other.as_ref(), here.as_ref())
    };
    let copied = ops::state::copy(from, to, args.lock_timeout)?;
    print(&format!(
        "Copied {} pins (serial {}) from {} to {}.\n",
        copied.pins,
        copied.serial,
        from.describe(),
        to.describe()
    ))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn state_restore(args: &StateRestoreArgs) -> anyhow::Result<ExitCode> {
    let location = args.state.location(&args.manifest.file)?;
    let restored = ops::state::restore(location, args.from.as_deref(), args.lock_timeout)?;
    let mut text = format!(
        "Restored {} from {}: {} pins, serial {}.\n",
        restored.file.display(),
        restored.from.display(),
        restored.state.pins,
        restored.state.serial
    );
    for aside in &restored.state.moved_aside {
        text.push_str(&format!("Kept the replaced file as {}.\n", aside.display()));
    }
    text.push_str("Run `pinsync plan` to see what differs from the manifest; pins made since the backup show as `+` and apply records them again (the provider answers \"already pinned\").\n");
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}
