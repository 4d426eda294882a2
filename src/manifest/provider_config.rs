//! How to reach one pinning service, as the manifest declares it.
//!
//! Credentials are held as references to environment variables, never as
//! values: this type is printed in plans and saved in plan files.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::provider::registry::TYPES;
use crate::provider::{Capabilities, ProviderType};

/// A provider type, as `type:` names it: one of the registry's
/// [`ProviderType`]s. Everything that differs between types is asked of it,
/// never decided by matching on its name.
#[derive(Clone, Copy)]
pub(crate) struct ProviderKind(&'static ProviderType);

impl ProviderKind {
    /// The type named `name` in `type:`.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        ProviderType::named(name).map(Self)
    }

    /// Every type, in the order `type:` lists them.
    pub(crate) fn all() -> impl Iterator<Item = Self> {
        TYPES.iter().map(|t| Self(t))
    }

    /// The names accepted in `type:`.
    pub(crate) fn names() -> Vec<&'static str> {
        TYPES.iter().map(|t| t.name).collect()
    }

    /// What this type is and can do.
    pub(crate) fn provider_type(self) -> &'static ProviderType {
        self.0
    }

    /// What this type's API can do.
    pub(crate) fn capabilities(self) -> Capabilities {
        self.0.capabilities
    }

    /// The public endpoint used when the manifest gives no `base_url`.
    pub(crate) fn default_base_url(self) -> Option<&'static str> {
        self.0.default_base_url
    }

    /// The published limit pinsync paces itself at when the manifest says
    /// nothing.
    pub(crate) fn default_rate_limit(self) -> Option<RateLimit> {
        self.0.default_rate_limit
    }

    /// Whether pins on this service can name a cluster.
    pub(crate) fn has_clusters(self) -> bool {
        self.0.capabilities.clusters
    }
}

impl PartialEq for ProviderKind {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ProviderKind {}

impl fmt::Debug for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Serialize for ProviderKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name)
    }
}

impl<'de> Deserialize<'de> for ProviderKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown provider type {name:?}; expected one of: {}",
                Self::names().join(", ")
            ))
        })
    }
}

/// A rate limit: `calls` per `per`, in bursts of up to `burst` calls
/// (`180/min`, or `{rate: 100/min, burst: 10}` in the manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimit {
    pub(crate) calls: u32,
    pub(crate) per: Per,
    pub(crate) burst: u32,
}

/// The time a rate limit counts calls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Per {
    #[serde(rename = "s")]
    Second,
    #[serde(rename = "min")]
    Minute,
    #[serde(rename = "h")]
    Hour,
}

impl Per {
    pub(crate) fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Second => "s",
            Self::Minute => "min",
            Self::Hour => "h",
        }
    }
}

/// Most calls a limit may name per unit: beyond it, pacing is moot.
const MAX_RATE_CALLS: u32 = 1_000_000;

impl RateLimit {
    /// Parses `N/s`, `N/min` or `N/h` (with a burst of 1).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let invalid =
            || format!("rate limit {text:?} is not N/s, N/min or N/h (like 180/min), or `none`");
        let (calls, per) = text.trim().split_once('/').ok_or_else(invalid)?;
        let calls: u32 = calls.trim().parse().map_err(|_| invalid())?;
        let per = match per.trim() {
            "s" | "sec" | "second" => Per::Second,
            "m" | "min" | "minute" => Per::Minute,
            "h" | "hour" => Per::Hour,
            _ => return Err(invalid()),
        };
        let limit = Self {
            calls,
            per,
            burst: 1,
        };
        limit.check()?;
        Ok(limit)
    }

    /// What is wrong with a limit read from elsewhere (a saved plan).
    pub(crate) fn check(&self) -> Result<(), String> {
        if !(1..=MAX_RATE_CALLS).contains(&self.calls) {
            return Err(format!(
                "a rate limit must allow from 1 to {MAX_RATE_CALLS} calls per unit"
            ));
        }
        if !(1..=MAX_RATE_CALLS).contains(&self.burst) {
            return Err(format!("`burst` must be from 1 to {MAX_RATE_CALLS}"));
        }
        Ok(())
    }

    /// The time between calls at the steady rate.
    pub(crate) fn period(&self) -> std::time::Duration {
        self.per.duration() / self.calls
    }

    /// How long `calls` calls take at this limit, the first burst free.
    pub(crate) fn time_for(&self, calls: u64) -> std::time::Duration {
        let paced = calls.saturating_sub(u64::from(self.burst));
        self.period()
            .checked_mul(u32::try_from(paced).unwrap_or(u32::MAX))
            .unwrap_or(std::time::Duration::MAX)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.calls, self.per.name())?;
        if self.burst > 1 {
            write!(f, " (bursts of {})", self.burst)?;
        }
        Ok(())
    }
}

/// The kinds of call a service may limit apart (`rate_limits:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CallKind {
    /// Adding or replacing a pin.
    Pin,
    /// Removing one.
    Unpin,
    /// Listing or looking up pins (a Pinning Service's lookups are lists).
    List,
    /// Reading one pin's status.
    Status,
}

impl CallKind {
    pub(crate) const NAMES: &'static [&'static str] = &["pin", "unpin", "list", "status"];

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "pin" => Some(Self::Pin),
            "unpin" => Some(Self::Unpin),
            "list" => Some(Self::List),
            "status" => Some(Self::Status),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pin => "pin",
            Self::Unpin => "unpin",
            Self::List => "list",
            Self::Status => "status",
        }
    }
}

/// The values of a provider's own fields (those its type declares), by
/// field name: the type's module reads the ones it declared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Settings(BTreeMap<String, Setting>);

/// The value of one of a type's own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Setting {
    /// A credential, as `${VAR}`.
    Secret(SecretRef),
    /// One of a choice's words, or free text.
    Text(String),
    Flag(bool),
    /// A time, in whole seconds.
    Seconds(u64),
    /// How many peers pin each CID.
    Replication(super::Replication),
}

impl Settings {
    pub(crate) fn insert(&mut self, field: &str, value: Setting) {
        self.0.insert(field.to_owned(), value);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every field set, with its value.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Setting)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub(crate) fn contains(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// The credential in `field`, if it is set.
    pub(crate) fn secret(&self, field: &str) -> Option<&SecretRef> {
        match self.0.get(field) {
            Some(Setting::Secret(r)) => Some(r),
            _ => None,
        }
    }

    /// The text (or chosen word) in `field`, if it is set.
    pub(crate) fn text(&self, field: &str) -> Option<&str> {
        match self.0.get(field) {
            Some(Setting::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// Whether the flag `field` is set `true`.
    pub(crate) fn flag(&self, field: &str) -> bool {
        matches!(self.0.get(field), Some(Setting::Flag(true)))
    }

    /// The replication in `field`, if it is set.
    pub(crate) fn replication(&self, field: &str) -> Option<super::Replication> {
        match self.0.get(field) {
            Some(Setting::Replication(r)) => Some(*r),
            _ => None,
        }
    }

    /// The time in `field`, if it is set.
    pub(crate) fn duration(&self, field: &str) -> Option<std::time::Duration> {
        match self.0.get(field) {
            Some(Setting::Seconds(s)) => Some(std::time::Duration::from_secs(*s)),
            _ => None,
        }
    }
}

/// A credential given as `${VAR}`: the name of an environment variable.
/// Deserialising (a saved plan) checks the name as the manifest does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSecretRef")]
pub(crate) struct SecretRef {
    pub(crate) var: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretRef {
    var: String,
}

impl TryFrom<RawSecretRef> for SecretRef {
    type Error = String;
    fn try_from(raw: RawSecretRef) -> Result<Self, String> {
        check_var_name(&raw.var)?;
        Ok(Self { var: raw.var })
    }
}

fn check_var_name(var: &str) -> Result<(), String> {
    let valid = !var.is_empty()
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        // Not echoed: what sits between the braces may be a pasted key.
        Err(
            "the name inside ${...} is not a valid environment variable name \
             (letters, digits and _, not starting with a digit)"
                .into(),
        )
    }
}

impl SecretRef {
    /// Parses `${NAME}`; a literal value is refused so keys stay out of git.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let var = text
            .strip_prefix("${")
            .and_then(|rest| rest.strip_suffix('}'))
            .ok_or_else(|| {
                "credentials must name an environment variable, like ${MY_API_KEY}; \
                 do not write keys into the manifest"
                    .to_string()
            })?;
        check_var_name(var)?;
        Ok(Self {
            var: var.to_owned(),
        })
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}}}", self.var)
    }
}

/// One provider entry of the manifest, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderConfig {
    #[serde(rename = "type")]
    pub(crate) kind: ProviderKind,
    /// Endpoint without a trailing slash.
    pub(crate) base_url: String,
    /// The type's own fields: its credentials and options.
    #[serde(default, skip_serializing_if = "Settings::is_empty")]
    pub(crate) settings: Settings,
    /// Plain `http://` to a host that is not loopback was asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) allow_insecure_http: bool,
    /// When a plan unpins too much of one of its targets.
    #[serde(default, skip_serializing_if = "UnpinGuard::is_default")]
    pub(crate) unpin_guard: UnpinGuard,
    /// On a type that marks its pins: the mark on the pins this manifest
    /// makes (the manifest's `identity`); only those are removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) identity: Option<String>,
    /// The limit every call to this provider is paced at: the manifest's
    /// `rate_limit`, else the type's published one; `None` paces nothing
    /// (`rate_limit: none`, or a `pinning-service` that sets none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rate_limit: Option<RateLimit>,
    /// Limits on one kind of call, on top of `rate_limit` (Pinata allows 30
    /// lists a minute of its 180 calls).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) rate_limits: BTreeMap<CallKind, RateLimit>,
}

/// A plan that unpins more than `count` of a target's pins *and* more than
/// `percent` of them is refused unless `--max-unpins` or `--force-unpins`
/// allows it (octoDNS's delete threshold): a bad merge must not wipe an
/// archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnpinGuard {
    pub(crate) count: u32,
    pub(crate) percent: u32,
}

impl Default for UnpinGuard {
    fn default() -> Self {
        Self {
            count: 10,
            percent: 25,
        }
    }
}

impl UnpinGuard {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl ProviderConfig {
    /// What is wrong with a config that did not come from a validated
    /// manifest (a saved plan): the same rules the manifest's walk applies,
    /// field by field, so nothing reaches `connect` that it would refuse.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = check_base_url(&self.base_url, self.allow_insecure_http) {
            problems.push(e);
        }
        problems.extend(self.kind.provider_type().problems(&self.settings));
        if self.unpin_guard.percent > 100 {
            problems.push("`unpin_guard.percent` must be from 0 to 100".into());
        }
        for limit in self.rate_limit.iter().chain(self.rate_limits.values()) {
            if let Err(e) = limit.check() {
                problems.push(e);
            }
        }
        problems
    }

    /// Whether the endpoint is the service's own public one.
    pub(crate) fn is_default_endpoint(&self) -> bool {
        Some(self.base_url.as_str()) == self.kind.default_base_url()
    }

    /// Every environment variable this provider needs at apply time.
    pub(crate) fn secret_refs(&self) -> impl Iterator<Item = &SecretRef> {
        self.settings.iter().filter_map(|(_, v)| match v {
            Setting::Secret(r) => Some(r),
            _ => None,
        })
    }
}

/// Checks an endpoint: HTTPS, or plain HTTP to loopback, or to anywhere
/// with an explicit opt-in; returns it without a trailing slash.
pub(crate) fn check_base_url(text: &str, allow_insecure: bool) -> Result<String, String> {
    // The URL parser drops tabs and newlines; the text is printed as written.
    if text.chars().any(char::is_control) {
        return Err(format!("base_url {text:?} contains a control character"));
    }
    let url = reqwest::Url::parse(text).map_err(|e| format!("invalid base_url {text:?}: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "base_url {text:?} must not have a query or fragment"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "base_url must not carry credentials; name them in the provider's credential fields"
                .into(),
        );
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if !loopback && !allow_insecure {
                return Err(format!(
                    "base_url {text:?} uses plain http to a host that is not loopback; \
                     use https, or set `allow_insecure_http: true` to send keys unencrypted"
                ));
            }
        }
        other => return Err(format!("base_url must be https:// (found {other}://)")),
    }
    Ok(text.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_refs_must_be_variables() {
        assert_eq!(SecretRef::parse("${AIOZ_KEY}").unwrap().var, "AIOZ_KEY");
        for bad in ["literal-key", "${}", "${1X}", "${A-B}", "$AIOZ", "pre${A}"] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_ref_error_does_not_echo_a_literal_key() {
        for text in ["sk-live-123456", "${sk-live-123456}"] {
            let err = SecretRef::parse(text).unwrap_err();
            assert!(!err.contains("sk-live-123456"), "{err}");
        }
    }
}
