//! CIDs as written and in canonical form.

use std::fmt;

use cid::Cid;

/// A CID that parsed, kept both as written and in canonical CIDv1 form.
///
/// Comparisons use the canonical form, so `Qm…` and the `bafy…` of the
/// same content are one pin; providers get the CID as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentId {
    written: String,
    canonical: String,
}

impl ContentId {
    /// Parses a CID, explaining what is wrong when it does not parse.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("empty CID".into());
        }
        if let Some(bad) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "invalid CID {text:?}: unexpected character {bad:?}"
            ));
        }
        // `Cid::try_from` takes whatever follows "/ipfs/", so a gateway URL
        // would pass and then be sent to providers as the CID.
        if text.contains('/') {
            return Err(format!(
                "invalid CID {text:?}: write the CID alone, not a path or URL"
            ));
        }
        let cid = Cid::try_from(text)
            .map_err(|e| format!("invalid CID {text:?}: {}", explain(text, &e)))?;
        let canonical = if cid.version() == cid::Version::V0 {
            cid.into_v1()
                .map_err(|e| format!("invalid CID {text:?}: {e}"))?
                .to_string()
        } else {
            // `to_string` on a v1 CID is its base32 form, whatever base it was written in.
            cid.to_string()
        };
        Ok(Self {
            written: text.to_owned(),
            canonical,
        })
    }

    /// The CID as the manifest wrote it.
    pub fn written(&self) -> &str {
        &self.written
    }

    /// The CIDv1 base32 form used as the identity of a pin.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

fn explain(text: &str, e: &cid::Error) -> String {
    use cid::Error as E;
    use cid::multibase::{Base, Error as BaseError};
    match e {
        E::UnknownCodec => "unknown codec".into(),
        E::InputTooShort => "too short".into(),
        // The cid crate folds text and hash errors into one; tell them apart.
        E::ParsingError if text.starts_with("Qm") && text.chars().count() != 46 => {
            format!(
                "a CIDv0 (Qm…) is 46 characters, this one is {}",
                text.chars().count()
            )
        }
        E::ParsingError => {
            let decoded = if text.starts_with("Qm") {
                Base::Base58Btc.decode(text).map(drop)
            } else {
                cid::multibase::decode(text).map(drop)
            };
            match decoded {
                Err(BaseError::UnknownBase(c)) => format!("unknown multibase prefix {c:?}"),
                Err(BaseError::InvalidBaseString) => {
                    match Base::from_code(text.chars().next().unwrap_or('?')) {
                        Ok(base) => format!(
                            "characters that are not valid {base:?} after the multibase prefix"
                        ),
                        Err(_) => "characters that are not valid base58btc".into(),
                    }
                }
                Ok(()) => "the multihash is truncated or malformed".into(),
            }
        }
        E::InvalidCidVersion => "unsupported CID version".into(),
        E::InvalidCidV0Codec => "a CIDv0 must use the dag-pb codec".into(),
        E::InvalidCidV0Multihash => "a CIDv0 must be a sha2-256 multihash of 32 bytes".into(),
        E::InvalidCidV0Base => "a CIDv0 must be written in base58btc (Qm…)".into(),
        E::VarIntDecodeError => "bad varint in the CID bytes".into(),
        E::Io(_) => "truncated CID bytes".into(),
        E::InvalidExplicitCidV0 => "explicit CIDv0 is not allowed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V0: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";

    #[test]
    fn v0_and_v1_of_the_same_content_share_a_canonical_form() {
        let v0 = ContentId::parse(V0).unwrap();
        let v1 = ContentId::parse(v0.canonical()).unwrap();
        assert!(v0.canonical().starts_with("bafy"));
        assert_eq!(v0.canonical(), v1.canonical());
        assert_eq!(v0.written(), V0);
    }

    #[test]
    fn v1_in_another_base_is_canonicalised_to_base32() {
        let v1 = ContentId::parse(V0).unwrap();
        let cid = Cid::try_from(v1.canonical()).unwrap();
        let b58 = cid
            .to_string_of_base(cid::multibase::Base::Base58Btc)
            .unwrap();
        assert_eq!(ContentId::parse(&b58).unwrap().canonical(), v1.canonical());
    }

    #[test]
    fn rejects_with_a_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("Qm123", "CID"),
            ("bafy not", "unexpected character"),
            ("zzzz", "invalid CID"),
        ] {
            let err = ContentId::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
