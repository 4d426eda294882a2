//! `notify:`: webhooks called on the events a person must act on.

/// An event a webhook may be called on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum NotifyEvent {
    /// Pins the providers lost or failed, found by a refresh.
    Drift,
    /// An apply ended with pins failed, or could not run.
    ApplyFailed,
    /// A safety guard refused the plan's unpins (exit 3).
    Blocked,
    /// `watch` lost the PostgreSQL state's lease, and stopped.
    LeaseLost,
    /// A reconcile succeeded after one that did not.
    Recovered,
}

impl NotifyEvent {
    pub(crate) const ALL: [Self; 5] = [
        Self::Drift,
        Self::ApplyFailed,
        Self::Blocked,
        Self::LeaseLost,
        Self::Recovered,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Drift => "drift",
            Self::ApplyFailed => "apply_failed",
            Self::Blocked => "blocked",
            Self::LeaseLost => "lease_lost",
            Self::Recovered => "recovered",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// What a webhook is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotifyFormat {
    /// pinsync's versioned JSON (`version: 1`).
    Json,
    /// `{"text": …}`, which Slack's incoming webhooks (and Mattermost's,
    /// and Discord's `/slack` endpoint) take.
    Slack,
}

/// A string with `${VAR}` in it, each filled from the environment when the
/// webhook is called: a URL's token, a header's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    written: String,
}

impl Template {
    /// Checks every `${…}` names a variable (`$` alone stays as it is).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let template = Self {
            written: text.to_owned(),
        };
        template.pieces()?;
        Ok(template)
    }

    /// As written, `${VAR}` and all: what messages show.
    pub(crate) fn as_written(&self) -> &str {
        &self.written
    }

    /// The variables it names.
    pub(crate) fn vars(&self) -> Vec<&str> {
        self.pieces()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| match p {
                Piece::Var(v) => Some(v),
                Piece::Text(_) => None,
            })
            .collect()
    }

    /// Filled from `lookup`: the text, or the variable that is not set.
    pub(crate) fn fill(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::new();
        for piece in self.pieces()? {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => out.push_str(&lookup(v).filter(|s| !s.is_empty()).ok_or(v)?),
            }
        }
        Ok(out)
    }

    fn pieces(&self) -> Result<Vec<Piece<'_>>, String> {
        let mut pieces = Vec::new();
        let mut rest = self.written.as_str();
        while let Some(start) = rest.find("${") {
            pieces.push(Piece::Text(&rest[..start]));
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("`${{` without its `}}` in {:?}", self.written))?;
            let name = &after[..end];
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "`${{{name}}}` is not an environment variable's name (letters, digits and '_')"
                ));
            }
            pieces.push(Piece::Var(name));
            rest = &after[end + 1..];
        }
        pieces.push(Piece::Text(rest));
        Ok(pieces)
    }
}

enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// One webhook of `notify:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotifyHook {
    pub(crate) url: Template,
    pub(crate) format: NotifyFormat,
    pub(crate) headers: Vec<(String, Template)>,
    /// The events it is called on (every one, unless `events:` says).
    pub(crate) events: Vec<NotifyEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_fills_its_variables_and_refuses_bad_names() {
        let t = Template::parse("https://h.example/hook/${TEAM_ID}?t=${HOOK_TOKEN}&a=$b").unwrap();
        assert_eq!(t.vars(), ["TEAM_ID", "HOOK_TOKEN"]);
        let filled = t.fill(|v| Some(format!("<{v}>"))).unwrap();
        assert_eq!(
            filled,
            "https://h.example/hook/<TEAM_ID>?t=<HOOK_TOKEN>&a=$b"
        );
        assert_eq!(t.fill(|_| None), Err("TEAM_ID".into()));
        assert!(Template::parse("${1X}").is_err());
        assert!(Template::parse("${OPEN").is_err());
        assert!(Template::parse("${}").is_err());
    }
}
