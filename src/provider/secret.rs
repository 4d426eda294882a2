//! A credential value that cannot be printed by accident.

use std::fmt;

use reqwest::header::HeaderValue;

/// An API key or secret, held as the header value it is sent in. `Debug`
/// prints it redacted and there is no `Display`, so it cannot reach output,
/// logs or errors through formatting; the header value is marked sensitive,
/// so the HTTP stack leaves it out of its own debug output too.
#[derive(Clone)]
pub struct Secret(HeaderValue);

impl Secret {
    /// `None` when `value` cannot travel in an HTTP header (a control
    /// character or a non-ASCII one): better refused before any call than
    /// failed on every call.
    pub fn new(value: &str) -> Option<Self> {
        // HTTP allows bytes above 0x7f in a header, but no API key has them:
        // such a value is a paste error, and would go out in Latin-1.
        value.is_ascii().then(|| Self::header(value)).flatten()
    }

    /// The same secret after `prefix` (as in `Bearer <key>`); `None` if the
    /// prefix is not header-safe.
    pub fn prefixed(&self, prefix: &str) -> Option<Self> {
        let key = self.0.to_str().ok()?;
        Self::header(&format!("{prefix}{key}"))
    }

    fn header(text: &str) -> Option<Self> {
        let mut value = HeaderValue::from_str(text).ok()?;
        value.set_sensitive(true);
        Some(Self(value))
    }

    /// The value, for the one place that needs it: a request header. Built
    /// once, cloned per call (a reference count, not a copy).
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_the_header_is_sensitive() {
        let s = Secret::new("sk-very-secret").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert!(!format!("{:#?}", Some(&s)).contains("sk-very"));
        let header = s.prefixed("Bearer ").unwrap().header_value();
        assert_eq!(header.as_bytes(), b"Bearer sk-very-secret");
        assert!(header.is_sensitive());
        assert_eq!(format!("{header:?}"), "Sensitive");
    }

    #[test]
    fn values_a_header_cannot_carry_are_refused() {
        assert!(Secret::new("key\nInjected: yes").is_none());
        assert!(Secret::new("clé").is_none());
        assert!(Secret::new("key\0").is_none());
    }
}
