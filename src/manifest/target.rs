//! Where a pin goes, and the identity of one managed pin.

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

/// A provider, and for providers that have them, a cluster on it.
///
/// Written `provider` or `provider/cluster` in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Target {
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

impl Target {
    /// Splits `provider` or `provider/cluster`; checks only the shape.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (provider, cluster) = match text.split_once('/') {
            Some((p, c)) => (p, Some(c)),
            None => (text, None),
        };
        if provider.is_empty() {
            return Err(format!("target {text:?} names no provider"));
        }
        match cluster {
            Some("") => Err(format!(
                "target {text:?} has an empty cluster; write \"{provider}\" or \"{provider}/CLUSTER\""
            )),
            Some(c) if c.contains('/') => Err(format!(
                "target {text:?} has more than one '/'; write \"provider\" or \"provider/cluster\""
            )),
            _ => Ok(Self {
                provider: provider.to_owned(),
                cluster: cluster.map(str::to_owned),
            }),
        }
    }
}

/// Whether `name` may name a provider or a cluster: letters, digits, '-'
/// and '_', at least one.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Target {
    /// The width of `provider` or `provider/cluster` in characters, as
    /// `{:<width$}` counts them, without formatting it.
    pub fn display_width(&self) -> usize {
        self.provider.chars().count() + self.cluster.as_ref().map_or(0, |c| c.chars().count() + 1)
    }
}

/// Honours width, fill and alignment (`{target:<20}`), as `str` does, so
/// columns of targets need no string per target.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pad = f
            .width()
            .map_or(0, |w| w.saturating_sub(self.display_width()));
        let (before, after) = match f.align() {
            Some(fmt::Alignment::Right) => (pad, 0),
            Some(fmt::Alignment::Center) => (pad / 2, pad - pad / 2),
            Some(fmt::Alignment::Left) | None => (0, pad),
        };
        let fill = f.fill();
        for _ in 0..before {
            f.write_char(fill)?;
        }
        f.write_str(&self.provider)?;
        if let Some(c) = &self.cluster {
            f.write_char('/')?;
            f.write_str(c)?;
        }
        for _ in 0..after {
            f.write_char(fill)?;
        }
        Ok(())
    }
}

/// The unit pinsync manages: one canonical CID on one target.
///
/// Ordered by target, then CID, so plans and state files are stable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PinKey {
    #[serde(flatten)]
    pub target: Target,
    /// Canonical CIDv1 form (see [`super::ContentId`]).
    pub cid: String,
}

impl fmt::Display for PinKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.target, self.cid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_shapes() {
        assert_eq!(Target::parse("aioz").unwrap().to_string(), "aioz");
        let t = Target::parse("arkive/cl0-global").unwrap();
        assert_eq!(t.provider, "arkive");
        assert_eq!(t.cluster.as_deref(), Some("cl0-global"));
        assert_eq!(t.to_string(), "arkive/cl0-global");
    }

    #[test]
    fn pads_as_a_string_does() {
        for text in ["aioz", "arkive/cl0-global", "née/zone-é"] {
            let t = Target::parse(text).unwrap();
            assert_eq!(t.display_width(), text.chars().count(), "{text}");
            for width in [0, 4, 12, 25] {
                assert_eq!(format!("{t:<width$}|"), format!("{text:<width$}|"));
                assert_eq!(format!("{t:width$}|"), format!("{text:width$}|"));
                assert_eq!(format!("{t:>width$}|"), format!("{text:>width$}|"));
                assert_eq!(format!("{t:*^width$}|"), format!("{text:*^width$}|"));
            }
        }
    }

    #[test]
    fn rejects_malformed_shapes() {
        for bad in ["", "/x", "a/", "a/b/c"] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
    }
}
