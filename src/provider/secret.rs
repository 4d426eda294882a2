//! A credential value that cannot be printed by accident.

use std::fmt;

use reqwest::header::HeaderValue;

/// An API key or secret, held as the header value it is sent in. `Debug`
/// prints it redacted and there is no `Display`, so it cannot reach output,
/// logs or errors through formatting; the header value is marked sensitive,
/// so the HTTP stack leaves it out of its own debug output too.
#[derive(Clone)]
pub(crate) struct Secret(HeaderValue, std::sync::Arc<[Vec<u8>]>);

impl Secret {
    /// `None` when `value` cannot travel in an HTTP header (a control
    /// character or a non-ASCII one): better refused before any call than
    /// failed on every call.
    pub(crate) fn new(value: &str) -> Option<Self> {
        // HTTP allows bytes above 0x7f in a header, but no API key has them:
        // such a value is a paste error, and would go out in Latin-1.
        value.is_ascii().then(|| Self::header(value)).flatten()
    }

    /// The same secret after `prefix` (as in `Bearer <key>`); `None` if the
    /// prefix is not header-safe.
    pub(crate) fn prefixed(&self, prefix: &str) -> Option<Self> {
        let key = self.0.to_str().ok()?;
        Self::header(&format!("{prefix}{key}"))
    }

    /// Basic auth's pair, encoded: the header value (`Basic <pair>`) and
    /// the bare pair, which an echo could show alone. `None` if the user
    /// name cannot travel in a header.
    pub(crate) fn basic(username: &str, password: &Self) -> Option<(Self, Self)> {
        use base64::Engine as _;
        let password = password.0.to_str().ok()?;
        if !username.is_ascii() || username.contains(':') {
            return None;
        }
        let pair =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        let bare = Self::header(&pair)?;
        Some((bare.prefixed("Basic ")?, bare))
    }

    fn header(text: &str) -> Option<Self> {
        let mut value = HeaderValue::from_str(text).ok()?;
        value.set_sensitive(true);
        Some(Self(value, redacted_forms(text).into()))
    }

    /// The value, for the one place that needs it: a request header. Built
    /// once, cloned per call (a reference count, not a copy).
    pub(crate) fn header_value(&self) -> HeaderValue {
        self.0.clone()
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

/// Keys at least this long are found wherever they occur in a text; a
/// shorter one only where it stands as a word of its own (see
/// [`Secret::find_in`]).
const FOUND_ANYWHERE: usize = 8;

impl Secret {
    /// The byte ranges of `text` where this secret occurs: its value as
    /// written, or as a JSON string holds it (some encoders write `/` as
    /// `\/`). A key of [`FOUND_ANYWHERE`] characters or more is found
    /// anywhere; a shorter one (`k`, `s`, `ok`) occurs inside ordinary
    /// words (`ok`, `false`) and ids, so it is found only where it is not
    /// part of a longer run of letters and digits, as an echoed header
    /// value is (`x-api-key: k`).
    fn find_in<'t>(&'t self, text: &'t str) -> impl Iterator<Item = std::ops::Range<usize>> + 't {
        let bytes = text.as_bytes();
        let alnum = move |i: usize| bytes.get(i).is_some_and(u8::is_ascii_alphanumeric);
        self.1
            .iter()
            .filter(move |form| !form.is_empty() && form.len() <= bytes.len())
            .flat_map(move |form| {
                let whole_word = form.len() < FOUND_ANYWHERE;
                let first = form[0].is_ascii_alphanumeric();
                let last = form[form.len() - 1].is_ascii_alphanumeric();
                (0..=bytes.len() - form.len())
                    .map(move |start| start..start + form.len())
                    .filter(move |at| {
                        bytes[at.clone()] == form[..]
                            && !(whole_word
                                && ((first && at.start > 0 && alnum(at.start - 1))
                                    || (last && alnum(at.end))))
                    })
            })
    }
}

/// The credentials one provider is called with: what must never be shown
/// or stored, whatever its answers echo. Shared by its clones: a provider
/// that comes by a credential later (an ipfs-cluster JWT) adds it, and the
/// redaction of its answers sees it from then on.
#[derive(Clone, Default)]
pub(crate) struct Secrets(std::sync::Arc<std::sync::RwLock<Vec<Secret>>>);

impl Secrets {
    pub(crate) fn new(secrets: impl IntoIterator<Item = Secret>) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(
            secrets.into_iter().collect(),
        )))
    }

    /// Redacts `secret` too, from now on.
    pub(crate) fn add(&self, secret: Secret) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(secret);
    }

    fn all(&self) -> std::sync::RwLockReadGuard<'_, Vec<Secret>> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether any of the secrets occurs in `text`.
    pub(crate) fn occur_in(&self, text: &str) -> bool {
        self.all().iter().any(|s| s.find_in(text).next().is_some())
    }

    /// Whether any of the secrets occurs in `text`, whatever the case of
    /// either (for text a parser lowercased, as a URL's host).
    pub(crate) fn occur_in_any_case(&self, text: &str) -> bool {
        let text = text.to_ascii_lowercase();
        self.all().iter().any(|s| {
            s.0.to_str()
                .ok()
                .and_then(|value| Secret::new(&value.to_ascii_lowercase()))
                .is_some_and(|lower| lower.find_in(&text).next().is_some())
        })
    }

    /// `text` with every occurrence of a secret replaced by `<redacted>`.
    pub(crate) fn redact(&self, text: &str) -> String {
        let all = self.all();
        let mut found: Vec<std::ops::Range<usize>> =
            all.iter().flat_map(|s| s.find_in(text)).collect();
        if found.is_empty() {
            return text.to_owned();
        }
        // Overlapping finds (a key inside another's JSON form) merge.
        found.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for range in found {
            if range.end <= at {
                continue;
            }
            // Secrets are ASCII, so these are character boundaries.
            out.push_str(&text[at..range.start.max(at)]);
            out.push_str("<redacted>");
            at = range.end;
        }
        out.push_str(&text[at..]);
        out
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} redacted)", self.all().len())
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

    fn secrets(keys: &[&str]) -> Secrets {
        Secrets::new(keys.iter().map(|k| Secret::new(k).unwrap()))
    }

    #[test]
    fn redact_replaces_the_value_and_its_json_escaped_forms() {
        let s = secrets(&[r#"k/ey"1-long"#]);
        let body =
            r#"{"message": "headers: x-api-key: k/ey\"1-long, again k\/ey\"1-long; k/ey"1-long"}"#;
        assert_eq!(
            s.redact(body),
            r#"{"message": "headers: x-api-key: <redacted>, again <redacted>; <redacted>"}"#
        );
        assert_eq!(s.redact("nothing here"), "nothing here");
    }

    #[test]
    fn a_long_key_is_found_anywhere() {
        let s = secrets(&["sk-live-0123"]);
        assert_eq!(s.redact("Bearersk-live-0123x"), "Bearer<redacted>x");
        assert!(s.occur_in("idsk-live-0123"));
    }

    #[test]
    fn a_short_key_is_found_only_as_a_word_of_its_own() {
        let s = secrets(&["s", "ok"]);
        // Inside words and ids it is left alone...
        for text in [
            r#"{"okay":false,"status":"success"}"#,
            "3fa85f64-okay",
            "tokens",
        ] {
            assert_eq!(s.redact(text), text);
            assert!(!s.occur_in(text), "{text}");
        }
        // ...but an echoed header value is a word of its own.
        assert_eq!(
            s.redact(r#"pinning_api_key: s, x-api-key: ok; "s""#),
            r#"pinning_api_key: <redacted>, x-api-key: <redacted>; "<redacted>""#
        );
        assert!(s.occur_in("id-s"));
        assert!(s.occur_in("ok"));
    }

    #[test]
    fn overlapping_keys_are_redacted_once() {
        let s = secrets(&["abcdefgh-1", "abcdefgh-12"]);
        assert_eq!(s.redact("[abcdefgh-12]"), "[<redacted>]");
        assert_eq!(s.redact("é abcdefgh-1 é"), "é <redacted> é");
    }

    #[test]
    fn values_a_header_cannot_carry_are_refused() {
        assert!(Secret::new("key\nInjected: yes").is_none());
        assert!(Secret::new("clé").is_none());
        assert!(Secret::new("key\0").is_none());
    }
}
