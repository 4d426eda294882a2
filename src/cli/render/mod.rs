//! Human-readable text for plans, apply reports and the state.
//!
//! Pure functions from values to strings, so tests can check them and the
//! colour decision is made once, by the caller.

use std::fmt::Write as _;

use console::Style;

use crate::apply::Report;
use crate::plan::{Action, Change, Plan};
use crate::state::{PinStatus, State};

/// Colours for a stream, or none.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    color: bool,
}

impl Palette {
    /// Colour only on a terminal, and never when `NO_COLOR` is set
    /// (<https://no-color.org>) or the terminal is dumb.
    pub(crate) fn for_stream(is_terminal: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Self {
            color: is_terminal && !no_color && !dumb,
        }
    }

    pub fn plain() -> Self {
        Self { color: false }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        style.force_styling(self.color).apply_to(text).to_string()
    }

    pub(crate) fn green(&self, text: &str) -> String {
        self.paint(Style::new().green(), text)
    }

    pub(crate) fn yellow(&self, text: &str) -> String {
        self.paint(Style::new().yellow(), text)
    }

    pub(crate) fn red(&self, text: &str) -> String {
        self.paint(Style::new().red(), text)
    }

    pub(crate) fn bold(&self, text: &str) -> String {
        self.paint(Style::new().bold(), text)
    }
}

/// The plan as people read it: one line per change, then a summary.
pub fn plan(plan: &Plan, p: Palette) -> String {
    let mut out = String::new();
    if !plan.summary.has_changes() {
        let _ = writeln!(
            out,
            "No changes. {} pin{} match the manifest.",
            plan.summary.unchanged,
            plural(plan.summary.unchanged)
        );
        return out;
    }
    let width = plan
        .changes
        .iter()
        .map(|c| c.target.display_width())
        .max()
        .unwrap_or(0);
    // About a hundred bytes a line: one allocation for 100,000 lines
    // rather than a string per line and a copy at each doubling.
    out.reserve(plan.changes.len() * (width + 100));
    let _ = writeln!(out, "pinsync will make these changes:\n");
    let signs = Signs {
        pin: p.green("+"),
        update: p.yellow("~"),
        orphan: p.red("-"),
        repin: p.yellow("!"),
    };
    for change in &plan.changes {
        write_change_line(&mut out, change, width, &signs);
        out.push('\n');
    }
    let s = &plan.summary;
    let unpin = if s.unpin > 0 {
        format!("{} to unpin, ", s.unpin)
    } else {
        String::new()
    };
    let repin = if s.repin > 0 {
        format!("{} to re-pin, ", s.repin)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "\n{} {} to pin, {repin}{} to update, {unpin}{} no longer managed, {} unchanged.",
        p.bold("Plan:"),
        s.pin,
        s.update,
        s.orphan,
        s.unchanged
    );
    if s.orphan > 0 {
        let _ = writeln!(
            out,
            "Pins no longer in the manifest stay pinned on the provider; the state keeps them as orphaned."
        );
    }
    for (name, pace) in &plan.pace {
        let _ = writeln!(out, "{name}: {}", pace_note(pace));
    }
    for (name, reached) in endpoints(plan) {
        let _ = writeln!(out, "Provider `{name}` {reached}");
    }
    out
}

/// `failed` for a pin, `failed to unpin` for an unpin.
pub(super) fn failed_word(change: &Change) -> &'static str {
    if change.action == crate::plan::Action::Unpin {
        "failed to unpin"
    } else {
        "failed"
    }
}

/// `2,000 calls, about 11 min at 180/min, longer if ...`: pinsync slows
/// down to what a service enforces, which may be less than the manifest
/// says.
fn pace_note(pace: &crate::plan::Pace) -> String {
    let calls = format!(
        "{} call{}",
        grouped(pace.calls),
        plural(usize::try_from(pace.calls).unwrap_or(usize::MAX))
    );
    match (pace.duration(), &pace.rate_limit) {
        (Some(time), Some(limit)) => format!(
            "{calls}, about {} at {limit}, longer if the service allows less",
            about(time)
        ),
        (Some(time), None) => format!(
            "{calls}, about {} at its limits, longer if the service allows less",
            about(time)
        ),
        (None, _) => format!("{calls} (no rate limit set)"),
    }
}

/// A pace in calls a second, as a person reads it: `12.5/s`, `30/min`.
pub(super) fn rate(per_second: f64) -> String {
    let trim = |n: f64| {
        let text = format!("{n:.1}");
        text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
    };
    if per_second >= 1.0 {
        format!("{}/s", trim(per_second))
    } else {
        format!("{}/min", trim(per_second * 60.0))
    }
}

/// A duration to the unit a person plans by: `40 s`, `11 min`, `2 h 5 min`.
fn about(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "a moment".into(),
        1..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", (s + 30) / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// `12,345`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The coloured (or plain) sign of each action, painted once per plan.
struct Signs {
    pin: String,
    update: String,
    orphan: String,
    repin: String,
}

/// One change as a line of the plan, appended to `out` without its newline.
fn write_change_line(out: &mut String, c: &Change, width: usize, signs: &Signs) {
    let sign = match c.action {
        Action::Pin => &signs.pin,
        Action::Update => &signs.update,
        Action::Orphan | Action::Unpin => &signs.orphan,
        Action::Repin => &signs.repin,
    };
    let _ = write!(out, "  {sign} {:<width$}  {}", c.target, c.cid);
    if let Some(name) = c
        .labels
        .name
        .as_ref()
        .filter(|_| c.action != Action::Update)
    {
        let _ = write!(out, "  {name:?}");
    }
    match c.action {
        Action::Pin => {}
        Action::Orphan => match &c.reason {
            Some(reason) => {
                let _ = write!(out, "  (no longer in the manifest; cannot unpin: {reason})");
            }
            None => out.push_str("  (no longer in the manifest; not unpinned)"),
        },
        Action::Repin => {
            let _ = write!(
                out,
                "  (re-pin: {})",
                c.reason.as_deref().unwrap_or("drift")
            );
        }
        Action::Unpin if c.moved_to.is_empty() => out.push_str("  (unpin)"),
        Action::Unpin => {
            let to: Vec<String> = c.moved_to.iter().map(ToString::to_string).collect();
            let _ = write!(out, "  (unpin once pinned on {}: moved)", to.join(", "));
        }
        Action::Update => {
            let _ = write!(out, "  {}", update_note(c));
        }
    }
}

fn quoted(name: Option<&str>) -> String {
    name.map_or_else(|| "(none)".into(), |n| format!("{n:?}"))
}

/// What a refresh found: a line per provider, and one per provider that
/// could not be listed.
/// What an import found, a line a provider.
pub(super) fn imported(outcome: &crate::ops::ImportOutcome) -> String {
    let mut text = String::new();
    for (name, imported) in &outcome.providers {
        match imported {
            Err(e) => text.push_str(&format!("{name}: could not be listed ({e})\n")),
            Ok(p) => text.push_str(&format!(
                "{name}: {} listed in {} call{}: {} adopted, {} failed there (apply pins them), {} not in the manifest\n",
                p.listed,
                p.calls,
                if p.calls == 1 { "" } else { "s" },
                p.found.adopted,
                p.found.failed,
                p.found.unmanaged.len()
            )),
        }
    }
    text
}

pub(crate) fn refresh(r: &crate::refresh::RefreshReport) -> String {
    let mut out = String::new();
    for (name, found) in &r.providers {
        let checked: usize = found.statuses.values().sum();
        let statuses: Vec<String> = found
            .statuses
            .iter()
            .map(|(status, n)| format!("{n} {}", status.as_str()))
            .collect();
        let _ = writeln!(
            out,
            "{name}: {checked} pin{} checked in {} call{} ({} listed): {}",
            plural(checked),
            found.calls,
            plural(found.calls),
            found.listed,
            if statuses.is_empty() {
                "none recorded".to_string()
            } else {
                statuses.join(", ")
            }
        );
    }
    for (name, error) in &r.errors {
        let _ = writeln!(
            out,
            "{name}: could not be listed ({error}); its pins keep what was known"
        );
    }
    let drift: usize = r
        .providers
        .values()
        .map(crate::refresh::ProviderRefresh::drift)
        .sum();
    if drift > 0 {
        let _ = writeln!(
            out,
            "{drift} pin{} lost or failed on the provider: the plan re-pins {} (`!`).",
            plural(drift),
            if drift == 1 { "it" } else { "them" }
        );
    }
    out
}

/// Each provider the plan calls at an endpoint other than its built-in
/// one, with where: the keys go there, so a reviewer must see it (a saved
/// plan or a manifest edit pointing a provider elsewhere shows here).
fn endpoints(plan: &Plan) -> Vec<(String, String)> {
    crate::apply::providers_used(plan)
        .into_iter()
        .filter_map(|name| {
            let config = plan.providers.get(&name)?;
            if config.is_default_endpoint() {
                return None;
            }
            let built_in = config
                .kind
                .default_base_url()
                .map_or_else(String::new, |d| format!(", not the built-in {d}"));
            let insecure = if config.allow_insecure_http && config.base_url.starts_with("http:") {
                " (plain http allowed: keys travel unencrypted)"
            } else {
                ""
            };
            let reached = format!("is reached at {}{built_in}{insecure}.", config.base_url);
            Some((name, reached))
        })
        .collect()
}

/// What a `~` changes, in words.
fn update_note(c: &Change) -> String {
    let mut what = Vec::new();
    if let Some(prev) = &c.previous {
        if prev.status == PinStatus::Orphaned {
            what.push("back in the manifest".to_string());
        }
        if prev.labels.name != c.labels.name {
            what.push(format!(
                "name {} -> {}",
                quoted(prev.labels.name.as_deref()),
                quoted(c.labels.name.as_deref())
            ));
        }
        if prev.labels.meta != c.labels.meta {
            what.push(format!(
                "meta {:?} -> {:?}",
                prev.labels.meta, c.labels.meta
            ));
        }
        if prev.labels.replication != c.labels.replication {
            let peers = |r: Option<crate::manifest::Replication>| {
                r.map_or_else(|| "the cluster's".to_owned(), |r| r.to_string())
            };
            what.push(format!(
                "replication {} -> {}",
                peers(prev.labels.replication),
                peers(c.labels.replication)
            ));
        }
    }
    what.extend(c.reason.clone());
    what.join(", ")
}

/// How `apply --wait` ended: each pin that failed or did not make it in
/// time, then the count.
pub(crate) fn waited(w: &crate::wait::Waited, timeout: std::time::Duration, p: Palette) -> String {
    let mut out = String::new();
    for (key, detail) in &w.failed {
        let why = detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} {key}: the provider reports it failed or lost{why}",
            p.red("failed:")
        );
    }
    for (key, last) in &w.timed_out {
        let _ = writeln!(
            out,
            "{} {key}: still {last} after {}",
            p.red("timed out:"),
            humantime::format_duration(timeout)
        );
    }
    let _ = writeln!(
        out,
        "Waited: {} pinned, {} failed, {} timed out ({} status call{}).",
        w.pinned.len(),
        w.failed.len(),
        w.timed_out.len(),
        w.calls,
        plural(w.calls)
    );
    out
}

/// The safety guards a plan trips, one line each; empty when none.
pub(crate) fn guards(refused: &[String], p: Palette) -> String {
    let mut out = String::new();
    for message in refused {
        let _ = writeln!(out, "\n{} {message}", p.red("Refused by a safety guard:"));
    }
    out
}

/// The closing summary of an apply, with each failure and its reason, and
/// one line for each provider whose remaining pins were not attempted.
pub(crate) fn report(r: &Report, p: Palette) -> String {
    let mut out = String::new();
    for f in &r.failed {
        let _ = writeln!(
            out,
            "{} {} {}: {}",
            p.red(&format!("{}:", failed_word(&f.change))),
            f.change.target,
            f.change.cid,
            crate::apply::failure_reason(&f.error, f.attempts)
        );
    }
    for k in &r.kept {
        let _ = writeln!(
            out,
            "{} {} {}: {}",
            p.yellow("kept:"),
            k.change.target,
            k.change.cid,
            k.reason
        );
    }
    for (provider, n) in &r.not_attempted {
        let _ = writeln!(out, "{} {}", p.red("not attempted:"), n.describe(provider));
    }
    let already = if r.already_pinned > 0 {
        format!(" ({} already pinned)", r.already_pinned)
    } else {
        String::new()
    };
    let head = if r.succeeded() {
        p.green("Apply complete:")
    } else if r.interrupted {
        p.red("Apply interrupted:")
    } else {
        p.red("Apply finished with failures:")
    };
    let unpinned = if r.unpinned > 0 {
        format!("{} unpinned, ", r.unpinned)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "{head} {} pinned{already}, {} updated, {unpinned}{} no longer managed, {} failed, {} unchanged",
        r.pinned,
        r.updated,
        r.orphaned,
        r.failed.len(),
        r.unchanged
    );
    let skipped: usize = r.not_attempted.values().map(|n| n.pins).sum();
    if skipped > 0 {
        let _ = write!(out, ", {skipped} not attempted");
    }
    if r.not_started > 0 {
        let _ = write!(out, ", {} not started", r.not_started);
    }
    out.push_str(".\n");
    out
}

/// One line per recorded pin.
pub(crate) fn state_list(state: &State) -> String {
    let rows: Vec<[String; 5]> = state
        .pins
        .iter()
        .map(|(key, r)| {
            [
                key.target.to_string(),
                r.sent_cid(key).into_owned(),
                r.labels.name.as_deref().unwrap_or("-").to_owned(),
                r.pin_id.as_deref().unwrap_or("-").to_owned(),
                match r.status {
                    PinStatus::Managed => "managed".into(),
                    PinStatus::Orphaned => "orphaned".into(),
                },
            ]
        })
        .collect();
    let header = ["TARGET", "CID", "NAME", "PIN ID", "STATUS"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// What `pinsync init` did, and what to do next. `file_flag` is how the
/// next commands name the manifest (empty for the default `pins.yaml`).
pub(crate) fn initialized(
    done: &crate::init::Initialized,
    kind: crate::manifest::ProviderKind,
    file_flag: &str,
) -> String {
    use crate::init::GitignoreChange;
    let mut out = format!(
        "Wrote {}: provider `{}` (type {kind}) and an example pin.\n",
        done.manifest.display(),
        done.provider
    );
    let gitignore = done.gitignore.display();
    let lines = match &done.gitignore_change {
        GitignoreChange::Appended(lines) => {
            let _ = writeln!(
                out,
                "Appended to {gitignore} the lines for the state's companion files:"
            );
            lines.as_slice()
        }
        GitignoreChange::AlreadyThere => {
            let _ = writeln!(
                out,
                "{gitignore} already ignores the state's companion files."
            );
            &[]
        }
        GitignoreChange::Missing(lines) => {
            let _ = writeln!(
                out,
                "There is no {gitignore}; these lines keep the state's companion files out of git:"
            );
            lines.as_slice()
        }
    };
    for line in lines {
        let _ = writeln!(out, "  {line}");
    }
    let variables: Vec<String> = done.variables.iter().map(|v| format!("${v}")).collect();
    let _ = writeln!(
        out,
        "Next: put your CIDs under `pins:`, then run `pinsync validate{file_flag}` and \
         `pinsync plan{file_flag}`; `pinsync apply{file_flag}` reads {} from the environment.",
        variables.join(" and ")
    );
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

mod markdown;
pub(crate) use markdown::markdown;

#[cfg(test)]
mod tests;
