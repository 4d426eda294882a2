//! A credential value that cannot be printed by accident.

use std::fmt;

use reqwest::header::HeaderValue;

/// An API key or secret, held as the header value it is sent in. `Debug`
/// prints it redacted and there is no `Display`, so it cannot reach output,
/// logs or errors through formatting; the header value is marked sensitive,
/// so the HTTP stack leaves it out of its own debug output too.
#[derive(Clone)]
pub struct Secret(HeaderValue, std::sync::Arc<[Vec<u8>]>);

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
        Some(Self(value, redacted_forms(text).into()))
    }

    /// The value, for the one place that needs it: a request header. Built
    /// once, cloned per call (a reference count, not a copy).
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl Secret {
    /// Replaces this secret in `text` (a provider's answer) with
    /// `<redacted>`: a provider, or a proxy in front of it, may echo the
    /// request's headers in an error. The JSON-escaped forms are replaced
    /// too, since answers are JSON and some encoders write `/` as `\/`.
    pub(crate) fn redact(&self, text: &mut Vec<u8>) {
        for form in self.1.iter() {
            replace_all(text, form, b"<redacted>");
        }
    }
}

/// The value as written, and as a JSON string holds it (built once, not
/// per answer).
fn redacted_forms(value: &str) -> Vec<Vec<u8>> {
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json
        .get(1..json.len().saturating_sub(1))
        .unwrap_or_default();
    let mut forms = vec![
        value.as_bytes().to_vec(),
        json.as_bytes().to_vec(),
        json.replace('/', "\\/").into_bytes(),
    ];
    forms.sort();
    forms.dedup();
    forms
}

fn replace_all(text: &mut Vec<u8>, needle: &[u8], with: &[u8]) {
    if needle.is_empty() || text.len() < needle.len() {
        return;
    }
    let Some(first) = text.windows(needle.len()).position(|w| w == needle) else {
        return;
    };
    let mut out = Vec::with_capacity(text.len());
    out.extend_from_slice(&text[..first]);
    let mut rest = &text[first..];
    while !rest.is_empty() {
        if rest.starts_with(needle) {
            out.extend_from_slice(with);
            rest = &rest[needle.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    *text = out;
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
    fn redact_replaces_the_value_and_its_json_escaped_forms() {
        let s = Secret::new(r#"k/ey"1"#).unwrap();
        let mut body =
            br#"{"message": "headers: x-api-key: k/ey\"1, again k\/ey\"1; k/ey"1"}"#.to_vec();
        s.redact(&mut body);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"message": "headers: x-api-key: <redacted>, again <redacted>; <redacted>"}"#
        );
        let mut clean = b"nothing here".to_vec();
        s.redact(&mut clean);
        assert_eq!(clean, b"nothing here");
    }

    #[test]
    fn values_a_header_cannot_carry_are_refused() {
        assert!(Secret::new("key\nInjected: yes").is_none());
        assert!(Secret::new("clé").is_none());
        assert!(Secret::new("key\0").is_none());
    }
}
