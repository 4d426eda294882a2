//! Where a pin goes, and the identity of one managed pin.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use super::CanonicalCid;

/// A provider, and for providers that have them, a cluster on it.
///
/// Written `provider` or `provider/cluster` in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Target {
    pub(crate) provider: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cluster: Option<Name>,
}

/// A provider's or a cluster's name, interned: a manifest of a million
/// pins names a handful of targets, and each pin holds only pointers to
/// their one copy. A thin pointer (to the interned `&str`), so that a
/// target is two words: at two million keys each word is 16 MB.
///
/// Two names are equal when they are the same copy: a plan compares the
/// targets of millions of keys, nearly all equal.
#[derive(Clone, Copy, Eq)]
pub(crate) struct Name(&'static &'static str);

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self == other {
            std::cmp::Ordering::Equal
        } else {
            self.0.cmp(other.0)
        }
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Name {
    /// The one copy of `text`, made the first time it is seen. Names are
    /// few (a manifest's targets, a state's), so keeping each for the
    /// life of the process costs nothing.
    pub(crate) fn new(text: &str) -> Self {
        type Interned = &'static &'static str;
        thread_local! {
            static SEEN: std::cell::RefCell<Vec<Interned>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        static ALL: std::sync::Mutex<BTreeMap<&'static str, Interned>> =
            std::sync::Mutex::new(BTreeMap::new());
        if let Some(name) = SEEN.with_borrow(|seen| seen.iter().find(|s| ***s == text).copied()) {
            return Self(name);
        }
        let name = {
            let mut all = ALL
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match all.get(text) {
                Some(name) => *name,
                None => {
                    let text: &'static str = Box::leak(text.into());
                    let name: Interned = Box::leak(Box::new(text));
                    all.insert(name, name);
                    name
                }
            }
        };
        // A hostile state could name millions: only the first few are
        // looked up without the lock.
        SEEN.with_borrow_mut(|seen| {
            if seen.len() < 32 {
                seen.push(name);
            }
        });
        Self(name)
    }

    pub(crate) fn as_str(&self) -> &'static str {
        self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<&String> for Name {
    fn from(text: &String) -> Self {
        Self::new(text)
    }
}

impl From<String> for Name {
    fn from(text: String) -> Self {
        Self::new(&text)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        *self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.0 == other
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Name, E> {
                Ok(Name::new(text))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

impl Target {
    /// Splits `provider` or `provider/cluster`; checks only the shape.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
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
                provider: Name::new(provider),
                cluster: cluster.map(Name::new),
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
    pub(crate) fn display_width(&self) -> usize {
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
pub(crate) struct PinKey {
    #[serde(flatten)]
    pub(crate) target: Target,
    /// Canonical CIDv1 form (see [`super::ContentId`]).
    pub(crate) cid: CanonicalCid,
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
