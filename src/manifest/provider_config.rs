//! How to reach one pinning service, as the manifest declares it.
//!
//! Credentials are held as references to environment variables, never as
//! values: this type is printed in plans and saved in plan files.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The pinning services pinsync speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// AIOZ W3IPFS pinning API (`pinByHash`).
    Aioz,
    /// Pinarkive API v3.
    Pinarkive,
}

impl ProviderKind {
    /// Names accepted in `type:`.
    pub const NAMES: &'static [&'static str] = &["aioz", "pinarkive"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "aioz" => Some(Self::Aioz),
            "pinarkive" => Some(Self::Pinarkive),
            _ => None,
        }
    }

    /// The public endpoint used when the manifest gives no `base_url`.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::Aioz => "https://api-ipfs.attoaioz.cyou",
            Self::Pinarkive => "https://api.pinarkive.com",
        }
    }

    /// Whether pins on this service can name a cluster.
    pub fn has_clusters(self) -> bool {
        matches!(self, Self::Pinarkive)
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Aioz => "aioz",
            Self::Pinarkive => "pinarkive",
        })
    }
}

/// How Pinarkive receives the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthStyle {
    /// `X-API-Key: KEY` (the default).
    #[default]
    Header,
    /// `Authorization: Bearer KEY`.
    Bearer,
}

/// A credential given as `${VAR}`: the name of an environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    pub var: String,
}

impl SecretRef {
    /// Parses `${NAME}`; a literal value is refused so keys stay out of git.
    pub fn parse(text: &str) -> Result<Self, String> {
        let var = text
            .strip_prefix("${")
            .and_then(|rest| rest.strip_suffix('}'))
            .ok_or_else(|| {
                "credentials must name an environment variable, like ${MY_API_KEY}; \
                 do not write keys into the manifest"
                    .to_string()
            })?;
        let valid = !var.is_empty()
            && !var.starts_with(|c: char| c.is_ascii_digit())
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "${{{var}}} is not a valid environment variable name (letters, digits and _)"
            ));
        }
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
pub struct ProviderConfig {
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    /// Endpoint without a trailing slash.
    pub base_url: String,
    pub api_key: SecretRef,
    /// AIOZ only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<SecretRef>,
    /// Pinarkive only.
    #[serde(default)]
    pub auth: AuthStyle,
}

impl ProviderConfig {
    /// Every environment variable this provider needs at apply time.
    pub fn secret_refs(&self) -> impl Iterator<Item = &SecretRef> {
        std::iter::once(&self.api_key).chain(self.secret_key.as_ref())
    }
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
        let err = SecretRef::parse("sk-live-123456").unwrap_err();
        assert!(!err.contains("sk-live-123456"), "{err}");
    }
}
