//! CIDs as written and in canonical form.

use std::fmt;

use cid::Cid;

/// A CID that parsed, kept both as written and in canonical CIDv1 form.
///
/// Comparisons use the canonical form, so `Qm…` and the `bafy…` of the
/// same content are one pin; providers get the CID as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentId {
    written: String,
    canonical: CanonicalCid,
    /// Whether `written` is the canonical text itself.
    written_canonically: bool,
}

impl ContentId {
    /// Parses a CID, explaining what is wrong when it does not parse.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
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
        let v1 = if cid.version() == cid::Version::V0 {
            cid.into_v1()
                .map_err(|e| format!("invalid CID {text:?}: {e}"))?
        } else {
            cid
        };
        let canonical = CanonicalCid::of(&v1);
        // Compared digit by digit: nothing parsed again or allocated.
        let written_canonically = canonical == *text;
        Ok(Self {
            written: text.to_owned(),
            canonical,
            written_canonically,
        })
    }

    /// The CID as the manifest wrote it.
    #[cfg(test)]
    pub(crate) fn written(&self) -> &str {
        &self.written
    }

    /// The CIDv1 base32 form used as the identity of a pin.
    pub(crate) fn canonical(&self) -> &CanonicalCid {
        &self.canonical
    }

    /// The CID as written, where that is not its canonical text.
    pub(crate) fn written_if_not_canonical(&self) -> Option<&str> {
        (!self.written_canonically).then_some(self.written.as_str())
    }
}

/// A CID in its canonical CIDv1 form, kept as its bytes: 36 bytes instead
/// of a 59-character string, held inline, with no allocation of its own for
/// the usual sizes. It orders, prints and serialises as its text (`b` and
/// base32), so state files and plans keep their order.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct CanonicalCid(CidBytes);

/// Inline up to [`INLINE`] bytes (a CIDv1 of a 32-byte digest is 36).
#[derive(Clone, PartialEq, Eq, Hash)]
enum CidBytes {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

const INLINE: usize = 38;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

impl CanonicalCid {
    fn from_bytes(bytes: &[u8]) -> Self {
        Self(match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE => {
                let mut inline = [0; INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                CidBytes::Inline { len, bytes: inline }
            }
            _ => CidBytes::Heap(bytes.into()),
        })
    }

    fn of(cid: &Cid) -> Self {
        Self::from_bytes(&cid.to_bytes())
    }

    /// Reads the canonical text (as state files and saved plans hold it):
    /// `b`, then lowercase base32 without padding, of the bytes of a CIDv1.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a CID in canonical form (CIDv1, base32)");
        let digits = text.strip_prefix('b').ok_or_else(bad)?.as_bytes();
        let mut bytes = Vec::with_capacity(digits.len() * 5 / 8);
        let (mut acc, mut bits) = (0u32, 0u32);
        for &c in digits {
            let value = match c {
                b'a'..=b'z' => c - b'a',
                b'2'..=b'7' => c - b'2' + 26,
                _ => return Err(bad()),
            };
            acc = (acc << 5) | u32::from(value);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        // What is left must be padding: fewer than 5 bits, all zero, or the
        // text is not the canonical spelling of these bytes.
        if bits >= 5 || acc != 0 {
            return Err(bad());
        }
        match Cid::try_from(bytes.as_slice()) {
            Ok(cid) if cid.version() == cid::Version::V1 => Ok(Self::from_bytes(&bytes)),
            _ => Err(bad()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match &self.0 {
            CidBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            CidBytes::Heap(bytes) => bytes,
        }
    }

    /// Number of base32 digits after the `b`.
    fn digits(&self) -> usize {
        (self.bytes().len() * 8).div_ceil(5)
    }

    /// The `g`-th base32 digit's value (the last one zero-padded), if any.
    fn digit(&self, g: usize) -> Option<u8> {
        if g >= self.digits() {
            return None;
        }
        let bytes = self.bytes();
        let (byte, offset) = (g * 5 / 8, g * 5 % 8);
        let pair = u16::from(bytes[byte]) << 8 | u16::from(*bytes.get(byte + 1).unwrap_or(&0));
        Some(((pair >> (11 - offset)) & 0x1f) as u8)
    }

    /// Every base32 digit's value in order (the last one zero-padded), in
    /// one pass over the bytes: [`Self::digit`] finds one digit, this is
    /// for reading them all (the text, comparing with a text, sort keys).
    fn digit_values(&self) -> impl Iterator<Item = u8> + '_ {
        let mut bytes = self.bytes().iter();
        let (mut acc, mut bits) = (0u32, 0u32);
        (0..self.digits()).map(move |_| {
            if bits < 5 {
                acc = (acc << 8) | u32::from(bytes.next().copied().unwrap_or(0));
                bits += 8;
            }
            bits -= 5;
            let value = (acc >> bits) & 0x1f;
            acc &= (1 << bits) - 1;
            value as u8
        })
    }

    /// The first 37 digits as two numbers, for sorting many CIDs by
    /// fixed-size keys: where two CIDs' numbers differ, they order as the
    /// CIDs do (a missing digit counts as the lowest, which ties with a
    /// real one only where the full comparison then decides).
    pub(crate) fn sort_prefix(&self) -> (u128, u64) {
        let mut ranks = self
            .digit_values()
            .map(text_rank)
            .chain(std::iter::repeat(0));
        let mut next = || ranks.next().expect("endless");
        let head = (0..25).fold(0u128, |acc, _| acc << 5 | u128::from(next()));
        let tail = (25..37).fold(0u64, |acc, _| acc << 5 | u64::from(next()));
        (head, tail)
    }
}

#[cfg(test)]
impl CanonicalCid {
    /// A valid CIDv1 (raw, sha2-256) whose digest is `seed`'s first 32
    /// bytes, zero-padded: distinct seeds, distinct CIDs.
    pub(crate) fn for_test(seed: &str) -> Self {
        let mut digest = [0u8; 32];
        let n = seed.len().min(32);
        digest[..n].copy_from_slice(&seed.as_bytes()[..n]);
        let hash = cid::multihash::Multihash::<64>::wrap(0x12, &digest).expect("32 bytes fit");
        Self::of(&Cid::new_v1(0x55, hash))
    }

    /// Any bytes, a CID or not: for testing the order of the text.
    pub(crate) fn from_test_bytes(bytes: &[u8]) -> Self {
        Self::from_bytes(bytes)
    }
}

/// Tests name pins by short stand-ins ("bafy1"): those that are not CIDs
/// become [`CanonicalCid::for_test`] of themselves.
#[cfg(test)]
impl From<&str> for CanonicalCid {
    fn from(text: &str) -> Self {
        Self::parse(text).unwrap_or_else(|_| Self::for_test(text))
    }
}

/// Where a base32 digit's character sorts: `2`..`7` come before `a`..`z`.
fn text_rank(digit: u8) -> u8 {
    if digit < 26 { digit + 6 } else { digit - 26 }
}

impl Ord for CanonicalCid {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let (a, b) = (self.bytes(), other.bytes());
        // Digits before the one holding the first differing bit are equal.
        let first_bit = match a.iter().zip(b).position(|(x, y)| x != y) {
            Some(i) => i * 8 + (a[i] ^ b[i]).leading_zeros() as usize,
            None if a.len() == b.len() => return Ordering::Equal,
            None => a.len().min(b.len()) * 8,
        };
        let mut g = first_bit / 5;
        loop {
            match (self.digit(g), other.digit(g)) {
                (Some(x), Some(y)) if x == y => g += 1,
                (Some(x), Some(y)) => return text_rank(x).cmp(&text_rank(y)),
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (None, None) => return Ordering::Equal,
            }
        }
    }
}

impl PartialOrd for CanonicalCid {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for CanonicalCid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // On the stack for the usual sizes: a state of 2,000,000 pins
        // writes as many.
        let mut buffer = [0u8; 64];
        let mut heap = Vec::new();
        let text: &mut [u8] = if self.digits() < buffer.len() {
            &mut buffer[..1 + self.digits()]
        } else {
            heap.resize(1 + self.digits(), 0);
            &mut heap
        };
        text[0] = b'b';
        for (c, d) in text[1..].iter_mut().zip(self.digit_values()) {
            *c = BASE32[usize::from(d)];
        }
        f.pad(std::str::from_utf8(text).expect("base32 is ASCII"))
    }
}

impl fmt::Debug for CanonicalCid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Whether `text` is this CID's canonical text, without making it.
impl PartialEq<str> for CanonicalCid {
    fn eq(&self, text: &str) -> bool {
        let Some(digits) = text.strip_prefix('b') else {
            return false;
        };
        digits.len() == self.digits()
            && digits
                .bytes()
                .zip(self.digit_values())
                .all(|(c, d)| BASE32[usize::from(d)] == c)
    }
}

impl PartialEq<&str> for CanonicalCid {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl serde::Serialize for CanonicalCid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CanonicalCid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = CanonicalCid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CID in canonical form (CIDv1, base32)")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<CanonicalCid, E> {
                CanonicalCid::parse(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Text)
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
        let v1 = ContentId::parse(&v0.canonical().to_string()).unwrap();
        assert!(v0.canonical().to_string().starts_with("bafy"));
        assert_eq!(v0.canonical(), v1.canonical());
        assert_eq!(v0.written(), V0);
    }

    #[test]
    fn v1_in_another_base_is_canonicalised_to_base32() {
        let v1 = ContentId::parse(V0).unwrap();
        let cid = Cid::try_from(v1.canonical().to_string()).unwrap();
        let b58 = cid
            .to_string_of_base(cid::multibase::Base::Base58Btc)
            .unwrap();
        assert_eq!(ContentId::parse(&b58).unwrap().canonical(), v1.canonical());
    }

    #[test]
    fn canonical_cids_print_parse_and_order_as_their_text() {
        let v0 = ContentId::parse(V0).unwrap();
        let text = v0.canonical().to_string();
        assert_eq!(
            text,
            Cid::try_from(V0).unwrap().into_v1().unwrap().to_string()
        );
        assert_eq!(CanonicalCid::parse(&text).unwrap(), *v0.canonical());
        assert!(*v0.canonical() == *text.as_str());
        assert!(v0.written_if_not_canonical() == Some(V0));
        assert_eq!(
            ContentId::parse(&text).unwrap().written_if_not_canonical(),
            None
        );
        assert_eq!(format!("{:>70}|", v0.canonical()), format!("{text:>70}|"));
        // Random bytes, many sharing prefixes or ending early.
        let mut rng = fastrand::Rng::with_seed(11);
        let cids: Vec<CanonicalCid> = (0..3_000)
            .map(|_| {
                let len = rng.usize(0..45);
                let bytes: Vec<u8> = (0..len)
                    .map(|i| {
                        if i < rng.usize(0..6) {
                            0x01
                        } else {
                            [0, 1, 0x55, 0xff, rng.u8(..)][rng.usize(..5)]
                        }
                    })
                    .collect();
                CanonicalCid::from_test_bytes(&bytes)
            })
            .collect();
        for cid in &cids {
            let text = cid::multibase::encode(cid::multibase::Base::Base32Lower, cid.bytes());
            assert_eq!(cid.to_string(), text);
            assert!(*cid == *text.as_str(), "{text}");
            assert!(*cid != *format!("{text}a").as_str(), "{text}");
        }
        for pair in cids.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert_eq!(a.cmp(b), a.to_string().cmp(&b.to_string()), "{a} {b}");
            let (ka, kb) = (a.sort_prefix(), b.sort_prefix());
            if ka != kb {
                assert_eq!(ka.cmp(&kb), a.cmp(b), "sort keys of {a} {b}");
            }
        }
        let mut by_ord = cids.clone();
        by_ord.sort();
        let mut by_text: Vec<String> = cids.iter().map(ToString::to_string).collect();
        by_text.sort();
        assert_eq!(
            by_ord.iter().map(ToString::to_string).collect::<Vec<_>>(),
            by_text
        );
    }

    #[test]
    fn only_canonical_text_parses_as_a_canonical_cid() {
        let text = ContentId::parse(V0).unwrap().canonical().to_string();
        for bad in [
            "",
            "b",
            V0,
            &text.to_uppercase(),
            &text[..text.len() - 1],
            &format!("{text}a"),
            "bafy1",
            // A CIDv0's bytes in base32 are not a CIDv1.
            "bciqftfeehedf6klbt32bfaglxezl4uwfnwm4lftlmxqbcerz6cmlx3y",
        ] {
            assert!(CanonicalCid::parse(bad).is_err(), "{bad:?}");
        }
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
