//! The plan as Markdown, for a pull request's comment.

use super::*;

/// The plan as Markdown, for a pull-request comment: the counts, a table of
/// the changes with full CIDs, endpoints that are not the built-in ones,
/// and any safety guard that would refuse it. No colour.
pub(crate) fn markdown(plan: &Plan, refused: &[String]) -> String {
    let mut out = String::from("### pinsync plan\n\n");
    let s = &plan.summary;
    if !s.has_changes() {
        let _ = writeln!(
            out,
            "No changes: {} pin{} match the manifest.",
            s.unchanged,
            plural(s.unchanged)
        );
        return out;
    }
    let _ = writeln!(
        out,
        "**{} to pin, {} to re-pin, {} to update, {} to unpin, {} no longer managed, {} unchanged**\n",
        s.pin, s.repin, s.update, s.unpin, s.orphan, s.unchanged
    );
    for message in refused {
        let _ = writeln!(
            out,
            "> **Refused by a safety guard:** {}\n",
            md_text(message)
        );
    }
    out.push_str("| | target | CID | name | note |\n|---|---|---|---|---|\n");
    for c in &plan.changes {
        let (sign, note) = match c.action {
            Action::Pin => ("+", String::new()),
            Action::Repin => (
                "!",
                format!("re-pin: {}", c.reason.as_deref().unwrap_or("drift")),
            ),
            Action::Update => ("~", update_note(c)),
            Action::Orphan => (
                "-",
                match &c.reason {
                    Some(r) => format!("no longer in the manifest; cannot unpin: {r}"),
                    None => "no longer in the manifest; not unpinned".into(),
                },
            ),
            Action::Unpin if c.moved_to.is_empty() => ("-", "unpin".into()),
            Action::Unpin => {
                let to: Vec<String> = c.moved_to.iter().map(ToString::to_string).collect();
                (
                    "-",
                    format!("unpin once pinned on {}: moved", to.join(", ")),
                )
            }
        };
        let _ = writeln!(
            out,
            "| {sign} | {} | `{}` | {} | {} |",
            md_text(&c.target.to_string()),
            c.cid,
            md_text(c.labels.name.as_deref().unwrap_or("")),
            md_text(&note)
        );
    }
    if !plan.pace.is_empty() {
        out.push('\n');
        for (name, pace) in &plan.pace {
            let _ = writeln!(out, "- `{name}`: {}", md_text(&pace_note(pace)));
        }
    }
    for (name, reached) in endpoints(plan) {
        // A provider name is letters, digits, '-' and '_': safe in code.
        let _ = writeln!(out, "\nProvider `{name}` {}", md_text(&reached));
    }
    out
}

/// Text safe in a Markdown table cell: the characters Markdown and HTML
/// give meaning to are escaped, so a pin's name cannot break the table or
/// inject a link.
fn md_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
