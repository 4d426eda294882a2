//! Table-driven tests of [`crate::manifest::parse`].
//!
//! Bad manifests: every problem is reported (not just the first), each at
//! its exact line and column, with a message that says what is wrong.
//! Good manifests: the model that comes out (providers with defaults and
//! overrides, pins keyed by target and canonical CID, `defaults.to`, the CID
//! as written, labels). CIDv0/CIDv1 pairs are computed with the `cid` crate.

use std::collections::BTreeMap;
use std::path::Path;

use super::{
    DesiredPin, Diagnostics, Labels, Manifest, PinKey, ProviderConfig, ProviderKind, SecretRef,
    Setting, Settings, Target, parse,
};

/// A CIDv0 (`Qm…`).
const V0: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
/// A CIDv1 of other content.
const OTHER: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

/// The CIDv1 (base32) of the same content as `v0`, computed by the `cid` crate.
fn v1_of(v0: &str) -> String {
    let cid = cid::Cid::try_from(v0).expect("test CID parses");
    assert_eq!(cid.version(), cid::Version::V0, "{v0} is a CIDv0");
    cid.into_v1().expect("v0 converts to v1").to_string()
}

/// Joins lines, so that a line's number is its index + 1; `@V1@` stands
/// for the CIDv1 of [`V0`].
fn yaml(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text.replace("@V1@", &v1_of(V0))
}

fn parse_text(text: &str) -> Result<Manifest, Diagnostics> {
    parse(Path::new("pins.yaml"), text.as_bytes())
}

fn ok(text: &str) -> Manifest {
    parse_text(text).unwrap_or_else(|d| panic!("refused:\n{text}\n{d}"))
}

/// Checks that the problems are exactly `expected` (line, column, a part
/// of the message), in file order; says what differs.
fn check_problems(
    name: &str,
    bytes: &[u8],
    expected: &[(usize, usize, &str)],
) -> Result<(), String> {
    let problems = match parse(Path::new("pins.yaml"), bytes) {
        Ok(_) => return Err(format!("{name}: accepted")),
        Err(d) => d.0,
    };
    let got: Vec<String> = problems
        .iter()
        .map(|d| format!("{}:{}: {}", d.position.line, d.position.column, d.message))
        .collect();
    let matches = problems.len() == expected.len()
        && problems
            .iter()
            .zip(expected)
            .all(|(d, &(line, column, fragment))| {
                d.position.line == line
                    && d.position.column == column
                    && d.message.contains(fragment)
                    && d.file == Path::new("pins.yaml")
            });
    if matches {
        Ok(())
    } else {
        Err(format!("{name}: expected {expected:#?}\ngot {got:#?}"))
    }
}

fn assert_problems(name: &str, bytes: &[u8], expected: &[(usize, usize, &str)]) {
    if let Err(e) = check_problems(name, bytes, expected) {
        panic!("{e}");
    }
}

type Case = (
    &'static str,
    &'static [&'static str],
    &'static [(usize, usize, &'static str)],
);

/// Manifests that must be refused, with every problem they hold.
const BAD: &[Case] = &[
    // --- the document as a whole ---
    ("empty file", &[""], &[(1, 1, "the manifest is empty")]),
    (
        "only a comment",
        &["# nothing here yet"],
        &[(1, 1, "the manifest is empty")],
    ),
    (
        "top-level list",
        &["- version: 1"],
        &[(1, 1, "the manifest must be a mapping")],
    ),
    (
        "top-level scalar",
        &["hello"],
        &[(1, 1, "the manifest must be a mapping")],
    ),
    (
        "tab indentation",
        &["version: 1", "providers:", "\tarkive: {}", "pins: []"],
        &[(3, 1, "tabs disallowed")],
    ),
    (
        "unclosed quote",
        &[
            "version: 1",
            "providers: {}",
            "pins:",
            "  - cid: \"QmX",
            "    to: [a]",
        ],
        &[(4, 10, "YAML syntax error")],
    ),
    (
        "unclosed bracket",
        &[
            "version: 1",
            "providers: {}",
            "pins: [",
            "  {cid: a}",
            "other: 1",
        ],
        &[(
            5,
            1,
            "YAML syntax error: invalid indentation in flow construct",
        )],
    ),
    (
        "unknown top-level key",
        &["version: 1", "providers: {}", "pins: []", "color: red"],
        &[(
            4,
            1,
            "unknown field `color` in the manifest; expected one of: version",
        )],
    ),
    (
        "missing version, reported at the first key",
        &["providers: {}", "pins: []"],
        &[(1, 1, "missing field `version` in the manifest")],
    ),
    (
        "all three top-level fields missing",
        &["defaults: {}"],
        &[
            (1, 1, "missing field `version`"),
            (1, 1, "missing field `providers`"),
            (1, 1, "missing field `pins`"),
        ],
    ),
    (
        "version 2",
        &["version: 2", "providers: {}", "pins: []"],
        &[(1, 10, "unsupported manifest version \"2\"")],
    ),
    (
        "version is a list",
        &["version: [1]", "providers: {}", "pins: []"],
        &[(1, 10, "`version` must be a string, found a list")],
    ),
    (
        "wrong container types",
        &["version: 1", "providers: []", "defaults: [a]", "pins: {}"],
        &[
            (2, 12, "`providers` must be a mapping, found a list"),
            (3, 11, "`defaults` must be a mapping, found a list"),
            (4, 7, "`pins` must be a list, found a mapping"),
        ],
    ),
    (
        "block mapping where a list belongs, reported at its first key",
        &[
            "version: 1",
            "providers: {}",
            "pins:",
            "  cid: x",
            "  to: [a]",
        ],
        &[(4, 3, "`pins` must be a list, found a mapping")],
    ),
    (
        "duplicate top-level key",
        &["version: 1", "providers: {}", "pins: []", "version: 1"],
        &[(4, 1, "duplicate key \"version\" (first at line 1)")],
    ),
    (
        "duplicate key in a flow mapping",
        &["version: 1", "providers: {}", "pins: [{cid: a, cid: b}]"],
        &[(3, 17, "duplicate key \"cid\" (first at line 3)")],
    ),
    (
        "anchor on a block mapping, reported at the `&`",
        &[
            "version: 1",
            "providers:",
            "  arkive: &p",
            "    type: pinarkive",
            "pins: []",
        ],
        &[(3, 11, "anchors and aliases are not supported")],
    ),
    (
        "anchor on a scalar",
        &["version: &v 1", "providers: {}", "pins: []"],
        &[(1, 10, "anchors and aliases are not supported")],
    ),
    (
        "alias",
        &["version: 1", "providers: {}", "pins: [*x]"],
        &[(3, 8, "anchors and aliases are not supported")],
    ),
    (
        "tag",
        &["version: !!str 1", "providers: {}", "pins: []"],
        &[(1, 10, "tags are not supported")],
    ),
    (
        "control character in the raw text, even in a comment",
        &["version: 1", "providers: {}", "pins: [] # \u{1} \u{7f}"],
        &[
            (3, 12, "control character '\\u{1}'"),
            (3, 14, "control character '\\u{7f}'"),
        ],
    ),
    (
        "NUL: the loader would stop reading there",
        &[
            "version: 1",
            "providers: {}",
            "pins: []",
            "# \0",
            "color: red",
        ],
        &[(4, 3, "control character '\\0'")],
    ),
    (
        "a second document would be ignored",
        &[
            "version: 1",
            "providers: {}",
            "pins: []",
            "---",
            "version: 2",
        ],
        &[(
            5,
            1,
            "only one YAML document is read, and this follows its end at line 4",
        )],
    ),
    (
        "text after the end-of-document marker",
        &[
            "version: 1",
            "providers: {}",
            "pins: []",
            "...",
            "color: red",
        ],
        &[(5, 1, "follows its end at line 4")],
    ),
    // --- providers ---
    (
        "provider without a type, block and flow",
        &[
            "version: 1",
            "providers:",
            "  arkive:",
            "    api_key: ${ARKIVE_KEY}",
            "  other: {api_key: \"${K}\"}",
            "pins: []",
        ],
        &[
            (4, 5, "missing field `type` in provider `arkive`"),
            (5, 10, "missing field `type` in provider `other`"),
        ],
    ),
    (
        "unknown provider type",
        &[
            "version: 1",
            "providers:",
            "  p:",
            "    type: nft",
            "pins: []",
        ],
        &[(
            4,
            11,
            "unknown provider type \"nft\"; expected one of: aioz, pinarkive",
        )],
    ),
    (
        "aioz without a secret key",
        &[
            "version: 1",
            "providers:",
            "  aioz:",
            "    type: aioz",
            "    api_key: ${AIOZ_KEY}",
            "pins: []",
        ],
        &[(4, 5, "provider `aioz`: missing field `secret_key`")],
    ),
    (
        "literal credentials and bad variable names",
        &[
            "version: 1",
            "providers:",
            "  aioz:",
            "    type: aioz",
            "    api_key: sk-live-123456",
            "    secret_key: ${1BAD}",
            "  arkive:",
            "    type: pinarkive",
            "    api_key: $ARKIVE_KEY",
            "pins: []",
        ],
        &[
            (5, 14, "credentials must name an environment variable"),
            (6, 17, "not a valid environment variable name"),
            (9, 14, "credentials must name an environment variable"),
        ],
    ),
    (
        "fields that do not belong to the provider type, unknown fields",
        &[
            "version: 1",
            "providers:",
            "  arkive:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "    secret_key: ${S}",
            "    auth: token",
            "    region: eu",
            "  aioz:",
            "    type: aioz",
            "    api_key: ${K}",
            "    secret_key: ${S}",
            "    auth: bearer",
            "    take_over_unmarked: true",
            "pins: []",
        ],
        &[
            (
                6,
                17,
                "provider `arkive`: `secret_key` is not used by provider type pinarkive",
            ),
            (7, 11, "unknown auth \"token\""),
            (8, 5, "unknown field `region` in provider `arkive`"),
            (
                13,
                11,
                "provider `aioz`: `auth` is not used by provider type aioz",
            ),
            (
                14,
                25,
                "provider `aioz`: `take_over_unmarked` is not used by provider type aioz",
            ),
        ],
    ),
    (
        "origins that are not multiaddrs, too many of them, or not a list",
        &[
            "version: 1",
            "providers:",
            "  psa:",
            "    type: pinning-service",
            "    base_url: https://psa.example",
            "    token: ${T}",
            "defaults:",
            "  to: [psa]",
            "pins:",
            "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "    origins: [/dnsaddr/node.example/p2p/12D3KooW, 'https://node.example', '/ip4/1.2.3.4 /tcp/1']",
            "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "    origins: /dnsaddr/node.example",
            "  - cid: Qmc1135ziMvmFG534i75E8HpJoLqzLzgKBxfjBV9cBsMAs",
            "    origins: [/a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a]",
        ],
        &[
            (11, 51, "origin \"https://node.example\" is not a multiaddr"),
            (11, 75, "origin \"/ip4/1.2.3.4 /tcp/1\" is not a multiaddr"),
            (13, 14, "`origins` must be a list"),
            (15, 14, "21 origins given; the limit is 20"),
        ],
    ),
    (
        "rate limits that do not parse",
        &[
            "version: 1",
            "providers:",
            "  a:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "    rate_limit: fast",
            "  b:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "    rate_limit: {rate: 0/s, burst: 2}",
            "  c:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "    rate_limit: {rate: 10/s, burst: 0}",
            "    rate_limits: {lists: 30/min, pin: {burst: 3}}",
            "pins: []",
        ],
        &[
            (6, 17, "rate limit \"fast\" is not N/s, N/min or N/h"),
            (10, 24, "a rate limit must allow from 1 to"),
            (14, 37, "`burst` must be a whole number of calls, 1 or more"),
            (15, 19, "unknown kind of call \"lists\""),
            (15, 39, "missing field `rate`"),
        ],
    ),
    (
        "plain http to a non-loopback host",
        &[
            "version: 1",
            "providers:",
            "  arkive:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "    base_url: http://pin.example.com/",
            "pins: []",
        ],
        &[(6, 15, "uses plain http to a host that is not loopback")],
    ),
    (
        "other base_url problems",
        &[
            "version: 1",
            "providers:",
            "  a:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "    base_url: ftp://pin.example.com",
            "  b:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "    base_url: https://user:pw@pin.example.com",
            "  c:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "    base_url: https://pin.example.com/?x=1",
            "  d:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "    base_url: not a url",
            "    allow_insecure_http: maybe",
            "pins: []",
        ],
        &[
            (6, 15, "base_url must be https:// (found ftp://)"),
            (10, 15, "base_url must not carry credentials"),
            (14, 15, "must not have a query or fragment"),
            (18, 15, "invalid base_url \"not a url\""),
            (19, 26, "`allow_insecure_http` must be true or false"),
        ],
    ),
    (
        "a bad field does not stop the checks of the fields after it",
        &[
            "version: 1",
            "providers:",
            "  arkive:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "    auth: [bearer]",
            "    base_url: http://pin.example.com",
            "pins: []",
        ],
        &[
            (6, 11, "`auth` must be a string, found a list"),
            (7, 15, "uses plain http"),
        ],
    ),
    (
        "bad provider name",
        &[
            "version: 1",
            "providers:",
            "  \"a b\":",
            "    type: pinarkive",
            "    api_key: ${K}",
            "pins: []",
        ],
        &[(3, 3, "provider name \"a b\" may hold only letters, digits")],
    ),
    // --- targets ---
    (
        "unknown provider, cluster on aioz, malformed and repeated targets",
        &[
            "version: 1",
            "providers:",
            "  aioz:",
            "    type: aioz",
            "    api_key: ${K}",
            "    secret_key: ${S}",
            "  arkive:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "pins:",
            "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "    to: [nowhere, aioz/cl0, arkive/a/b, arkive/, arkive/c.1, aioz, aioz]",
        ],
        &[
            (
                12,
                10,
                "unknown provider `nowhere` in target \"nowhere\"; declared providers: aioz, arkive",
            ),
            (
                12,
                19,
                "provider `aioz` (type aioz) has no clusters; write \"aioz\" instead of \"aioz/cl0\"",
            ),
            (12, 29, "has more than one '/'"),
            (12, 41, "has an empty cluster"),
            (12, 50, "invalid cluster name \"c.1\""),
            (12, 68, "target aioz is listed twice (first at line 12)"),
        ],
    ),
    (
        "`to` as a string, an empty `to`, a target that is a list",
        &[
            "version: 1",
            "providers:",
            "  aioz:",
            "    type: aioz",
            "    api_key: ${K}",
            "    secret_key: ${S}",
            "pins:",
            "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "    to: aioz",
            "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "    to: []",
            "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "    to: [[aioz]]",
        ],
        &[
            (9, 9, "`to` must be a list, found a scalar"),
            (11, 9, "`to` is empty"),
            (13, 10, "a target must be a string, found a list"),
        ],
    ),
    (
        "a provider with problems of its own is still declared for targets",
        &[
            "version: 1",
            "providers:",
            "  aioz:",
            "    type: aioz",
            "    api_key: literal",
            "    secret_key: ${S}",
            "pins:",
            "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "    to: [aioz, aioz/cl0]",
        ],
        &[
            (5, 14, "credentials must name an environment variable"),
            (9, 16, "provider `aioz` (type aioz) has no clusters"),
        ],
    ),
    (
        "a pin with no targets and no defaults",
        &[
            "version: 1",
            "providers: {}",
            "pins:",
            "  - name: a",
            "    cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        ],
        &[(
            4,
            5,
            "this pin names no targets: give it `to:` or set `defaults.to`",
        )],
    ),
    (
        "defaults: unknown key and unknown provider",
        &[
            "version: 1",
            "providers: {}",
            "defaults:",
            "  to: [aioz]",
            "  name: x",
            "pins: []",
        ],
        &[
            (
                4,
                8,
                "unknown provider `aioz` in target \"aioz\"; declared providers: none",
            ),
            (
                5,
                3,
                "unknown field `name` in `defaults`; expected one of: to",
            ),
        ],
    ),
    // --- pins ---
    (
        "the same CID twice on one target: as written, and as v0 then v1",
        &[
            "version: 1",
            "providers:",
            "  arkive:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "defaults:",
            "  to: [arkive]",
            "pins:",
            "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "  - to: [arkive]",
            "    cid: @V1@",
        ],
        &[
            (
                11,
                10,
                "CID bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi is already pinned to arkive at pins.yaml:10:10",
            ),
            (
                13,
                10,
                "is already pinned to arkive at pins.yaml:9:10 (written there as QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG, the same content)",
            ),
        ],
    ),
    (
        "invalid CIDs say why",
        &[
            "version: 1",
            "providers:",
            "  arkive:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "defaults:",
            "  to: [arkive]",
            "pins:",
            "  - cid: xafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclg",
            "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbd",
            "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPb0G",
            "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbz1",
            "  - cid: https://ipfs.io/ipfs/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "  - cid: \"Qm Yw\"",
            "  - cid: b",
            "  - cid: [Qm]",
        ],
        &[
            (9, 10, "unknown multibase prefix 'x'"),
            (10, 10, "the multihash is truncated or malformed"),
            (11, 10, "a CIDv0 (Qm…) is 46 characters, this one is 45"),
            (12, 10, "not valid base58btc"),
            (13, 10, "not valid Base32Lower"),
            (14, 10, "write the CID alone, not a path or URL"),
            (15, 10, "unexpected character ' '"),
            (16, 10, "invalid CID \"b\": too short"),
            (17, 10, "`cid` must be a string, found a list"),
        ],
    ),
    (
        "pins of the wrong shape, missing and unknown fields",
        &[
            "version: 1",
            "providers:",
            "  arkive:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "defaults:",
            "  to: [arkive]",
            "pins:",
            "  - QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "  - name: no cid",
            "  -   cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "      tags: [a]",
            "  - {name: flow}",
            "  - ~",
        ],
        &[
            (9, 5, "a pin must be a mapping, found a scalar"),
            (10, 5, "missing field `cid` in a pin"),
            (
                12,
                7,
                "unknown field `tags` in a pin; expected one of: cid, name, to, meta",
            ),
            (13, 5, "missing field `cid` in a pin"),
            (14, 5, "a pin must be a mapping, found nothing"),
        ],
    ),
    (
        "names: control character, too long, wrong type",
        &[
            "version: 1",
            "providers:",
            "  arkive:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "defaults:",
            "  to: [arkive]",
            "pins:",
            "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "    name: \"tab\\there\"",
            "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "    name: [a, b]",
            "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "    to: []",
            "    name: \"\\e\"",
        ],
        &[
            (10, 11, "name contains a control character"),
            (12, 11, "`name` must be a string, found a list"),
            (14, 9, "`to` is empty"),
            (15, 11, "name contains a control character"),
        ],
    ),
    (
        "meta: a list, a nested mapping, a list value, a duplicate key",
        &[
            "version: 1",
            "providers:",
            "  arkive:",
            "    type: pinarkive",
            "    api_key: ${K}",
            "defaults:",
            "  to: [arkive]",
            "pins:",
            "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "    meta: [team, web]",
            "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "    meta:",
            "      team: {name: web}",
            "      tags: [a]",
            "      \"bell\\a\": x",
        ],
        &[
            (10, 11, "`meta` must be a mapping, found a list"),
            (13, 13, "a meta value must be a string, found a mapping"),
            (14, 13, "a meta value must be a string, found a list"),
            (15, 7, "meta key contains a control character"),
        ],
    ),
    (
        "every problem of a manifest, in file order",
        &[
            "version: 3",
            "providers:",
            "  aioz:",
            "    type: aioz",
            "    api_key: hunter2",
            "  arkive:",
            "    type: pinarkive",
            "    api_key: ${ARKIVE_KEY}",
            "    base_url: http://pins.example.org",
            "pins:",
            "  - cid: Qm123",
            "    to: [aioz/eu, ghost]",
            "    meta: {a: [1]}",
            "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "    to: [arkive]",
            "  - cid: @V1@",
            "    to: [arkive]",
            "extra: true",
        ],
        &[
            (1, 10, "unsupported manifest version \"3\""),
            (4, 5, "missing field `secret_key`"),
            (5, 14, "credentials must name an environment variable"),
            (9, 15, "uses plain http"),
            (11, 10, "invalid CID \"Qm123\""),
            (12, 10, "has no clusters"),
            (12, 19, "unknown provider `ghost`"),
            (13, 15, "a meta value must be a string, found a list"),
            (16, 10, "is already pinned to arkive at pins.yaml:14:10"),
            (18, 1, "unknown field `extra` in the manifest"),
        ],
    ),
];

#[test]
fn bad_manifests_report_every_problem_at_its_place() {
    let failures: Vec<String> = BAD
        .iter()
        .filter_map(|(name, lines, expected)| {
            check_problems(name, yaml(lines).as_bytes(), expected).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_table_is_not_vacuous() {
    // Every bad case must exercise something: a case listing no problem
    // would pass as long as the manifest is refused for any reason.
    for (name, _, expected) in BAD {
        assert!(!expected.is_empty(), "{name}");
    }
    assert!(BAD.len() >= 40);
}

fn manifest_with_name(name: &str) -> String {
    yaml(&[
        "version: 1",
        "providers:",
        "  arkive:",
        "    type: pinarkive",
        "    api_key: ${K}",
        "pins:",
        "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        "    to: [arkive]",
        &format!("    name: {name}"),
    ])
}

#[test]
fn names_are_limited_to_255_characters() {
    let fits = "n".repeat(255);
    let m = ok(&manifest_with_name(&fits));
    let pin = m.pins.first().map(|(_, p)| p).expect("one pin");
    assert_eq!(pin.labels.name.as_deref(), Some(fits.as_str()));

    for n in [256, 10_000] {
        assert_problems(
            &format!("name of {n}"),
            manifest_with_name(&"n".repeat(n)).as_bytes(),
            &[(
                9,
                11,
                &format!("name is {n} characters long; the limit is 255"),
            )],
        );
    }
    // Characters, not bytes: 255 two-byte characters fit.
    ok(&manifest_with_name(&"é".repeat(255)));
}

#[test]
fn meta_keys_and_values_are_limited() {
    let long = "m".repeat(1025);
    let text = yaml(&[
        "version: 1",
        "providers:",
        "  arkive:",
        "    type: pinarkive",
        "    api_key: ${K}",
        "pins:",
        "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        "    to: [arkive]",
        "    meta:",
        // YAML caps implicit keys at 1024 characters; `?` writes a longer one.
        &format!("      ? {long}"),
        "      : x",
        &format!("      k: {long}"),
    ]);
    assert_problems(
        "long meta",
        text.as_bytes(),
        &[
            (10, 9, "meta key is 1025 characters long; the limit is 1024"),
            (
                12,
                10,
                "meta value is 1025 characters long; the limit is 1024",
            ),
        ],
    );
}

#[test]
fn bytes_that_are_not_utf8_are_refused_at_their_place() {
    let mut bytes = b"version: 1\nproviders: {}\npins:\n  - cid: Qm\xff\xfe\n".to_vec();
    assert_problems("invalid byte", &bytes, &[(4, 12, "not valid UTF-8")]);
    // Columns count characters before the bad byte, not bytes.
    bytes = "version: 1\n# café \u{e9}".as_bytes().to_vec();
    bytes.extend_from_slice(b"\xe9\n");
    assert_problems("after accents", &bytes, &[(2, 9, "not valid UTF-8")]);
}

/// A manifest whose `pins` nests `depth` levels deep in the given style.
fn deep(style: &str, depth: usize) -> String {
    let mut text = String::from("version: 1\nproviders: {}\npins:");
    match style {
        "block mapping" => {
            for i in 0..depth {
                text.push('\n');
                text.push_str(&" ".repeat(i + 1));
                text.push_str("k:");
            }
            text.push_str(" v");
        }
        "block list" => {
            for i in 0..depth {
                text.push('\n');
                text.push_str(&" ".repeat(i));
                text.push('-');
            }
            text.push_str(" v");
        }
        "compact list" => {
            text.push('\n');
            text.push_str(&"- ".repeat(depth));
            text.push('v');
        }
        "list of mappings" => {
            for i in 0..depth {
                text.push('\n');
                text.push_str(&"  ".repeat(i));
                text.push_str("- k:");
            }
            text.push_str(" v");
        }
        "flow list" => {
            text.push(' ');
            text.push_str(&"[".repeat(depth));
            text.push_str(&"]".repeat(depth));
        }
        "flow mapping" => {
            text.push(' ');
            text.push_str(&"{a: ".repeat(depth));
            text.push('1');
            text.push_str(&"}".repeat(depth));
        }
        other => unreachable!("{other}"),
    }
    text.push('\n');
    text
}

#[test]
fn deep_nesting_is_refused_before_the_loader_overflows_its_stack() {
    // Unchecked, the loader overflowed the stack from about 2,700 block
    // levels (and this test's thread has less stack than `main`). Indented
    // styles grow as depth², so they use fewer levels to stay under the
    // 32 MiB size limit (still well past where the stack gave out).
    // The position is where the 65th level opens (1 is the top mapping).
    for (style, depth, line, column) in [
        ("block mapping", 7_000, 67, 65),
        ("block list", 7_000, 67, 65),
        ("list of mappings", 5_000, 67, 129),
        ("compact list", 10_000, 4, 129),
        ("flow list", 10_000, 3, 70),
        ("flow mapping", 10_000, 3, 259),
    ] {
        assert_problems(
            style,
            deep(style, depth).as_bytes(),
            &[(line, column, "nested more than 64 levels deep")],
        );
    }
}

#[test]
fn moderate_nesting_reaches_the_walker() {
    // Below the limit the document loads and the walker names the problem.
    assert_problems(
        "block mapping 40",
        deep("block mapping", 40).as_bytes(),
        &[(4, 2, "`pins` must be a list, found a mapping")],
    );
    assert_problems(
        "flow list 40",
        deep("flow list", 40).as_bytes(),
        &[(3, 8, "a pin must be a mapping, found a list")],
    );
}

#[test]
fn brackets_in_quotes_comments_and_plain_text_are_not_nesting() {
    let brackets = "[{".repeat(40);
    let text = yaml(&[
        "version: 1",
        "providers:",
        "  arkive:",
        "    type: pinarkive",
        "    api_key: ${K}",
        &format!("# {brackets}"),
        "pins:",
        "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        "    to: [arkive]",
        &format!("    name: \"{brackets}\""),
        &format!("    meta: {{a: '{brackets}', b: \"x\\\"{brackets}\", c: 'it''s {brackets}'}}"),
        "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
        "    to: [arkive]",
        &format!("    name: plain {brackets}"),
    ]);
    let m = ok(&text);
    assert_eq!(m.pins.len(), 2);
}

const FULL: &[&str] = &[
    "# A comment before the document.",
    "version: 1",
    "providers:",
    "  aioz:",
    "    type: aioz",
    "    api_key: ${AIOZ_KEY}",
    "    secret_key: ${AIOZ_SECRET}",
    "  arkive:",
    "    type: pinarkive",
    "    api_key: ${ARKIVE_KEY}",
    "    auth: bearer",
    "    base_url: https://pin.example.com/v3/",
    "  local:",
    "    type: pinarkive",
    "    api_key: ${LOCAL_KEY}",
    "    auth: header",
    "    base_url: http://127.0.0.1:5001",
    "  lan:",
    "    type: aioz",
    "    api_key: ${LAN_KEY}",
    "    secret_key: ${LAN_SECRET}",
    "    base_url: http://10.0.0.7:8080",
    "    allow_insecure_http: true",
    "defaults:",
    "  to: [aioz, arkive/cl0-global]",
    "pins:",
    "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
    "    name: homepage",
    "  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
    "    to: [local, arkive]",
    "    name: \"docs: v2\"",
    "    meta: {team: web, build: 42}",
    "  - {cid: @V1@, to: [lan]}",
];

#[test]
fn a_good_manifest_gives_the_model() {
    let m = ok(&yaml(FULL));
    assert_eq!(m.path, Path::new("pins.yaml"));

    let secret = |var: &str| SecretRef { var: var.into() };
    let settings = |fields: &[(&str, Setting)]| {
        let mut settings = Settings::default();
        for (name, value) in fields {
            settings.insert(name, value.clone());
        }
        settings
    };
    let expected_providers = BTreeMap::from([
        (
            "aioz".to_string(),
            ProviderConfig {
                kind: ProviderKind::from_name("aioz").unwrap(),
                base_url: "https://api-ipfs.attoaioz.cyou".into(),
                settings: settings(&[
                    ("api_key", Setting::Secret(secret("AIOZ_KEY"))),
                    ("secret_key", Setting::Secret(secret("AIOZ_SECRET"))),
                ]),
                allow_insecure_http: false,
                unpin_guard: Default::default(),
                identity: None,
                rate_limit: ProviderKind::from_name("aioz")
                    .unwrap()
                    .default_rate_limit(),
                rate_limits: BTreeMap::new(),
            },
        ),
        (
            "arkive".to_string(),
            ProviderConfig {
                kind: ProviderKind::from_name("pinarkive").unwrap(),
                base_url: "https://pin.example.com/v3".into(),
                settings: settings(&[
                    ("api_key", Setting::Secret(secret("ARKIVE_KEY"))),
                    ("auth", Setting::Text("bearer".into())),
                ]),
                allow_insecure_http: false,
                unpin_guard: Default::default(),
                identity: None,
                rate_limit: ProviderKind::from_name("pinarkive")
                    .unwrap()
                    .default_rate_limit(),
                rate_limits: BTreeMap::new(),
            },
        ),
        (
            "local".to_string(),
            ProviderConfig {
                kind: ProviderKind::from_name("pinarkive").unwrap(),
                base_url: "http://127.0.0.1:5001".into(),
                settings: settings(&[
                    ("api_key", Setting::Secret(secret("LOCAL_KEY"))),
                    ("auth", Setting::Text("header".into())),
                ]),
                allow_insecure_http: false,
                unpin_guard: Default::default(),
                identity: None,
                rate_limit: ProviderKind::from_name("pinarkive")
                    .unwrap()
                    .default_rate_limit(),
                rate_limits: BTreeMap::new(),
            },
        ),
        (
            "lan".to_string(),
            ProviderConfig {
                kind: ProviderKind::from_name("aioz").unwrap(),
                base_url: "http://10.0.0.7:8080".into(),
                settings: settings(&[
                    ("api_key", Setting::Secret(secret("LAN_KEY"))),
                    ("secret_key", Setting::Secret(secret("LAN_SECRET"))),
                ]),
                allow_insecure_http: true,
                unpin_guard: Default::default(),
                identity: None,
                rate_limit: ProviderKind::from_name("aioz")
                    .unwrap()
                    .default_rate_limit(),
                rate_limits: BTreeMap::new(),
            },
        ),
    ]);
    assert_eq!(m.providers, expected_providers);
    let refs: Vec<&str> = m.providers["aioz"]
        .secret_refs()
        .map(|r| r.var.as_str())
        .collect();
    assert_eq!(refs, ["AIOZ_KEY", "AIOZ_SECRET"]);

    let v0_as_v1 = v1_of(V0);
    assert_ne!(v0_as_v1, OTHER);
    let key = |provider: &str, cluster: Option<&str>, cid: &str| PinKey {
        target: Target {
            provider: provider.into(),
            cluster: cluster.map(Into::into),
        },
        cid: cid.into(),
    };
    let pin = |cid: &str, name: Option<&str>, meta: &[(&str, &str)]| {
        let labels = Labels {
            name: name.map(Into::into),
            meta: meta
                .iter()
                .map(|&(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            replication: None,
        };
        DesiredPin::new(
            labels,
            (!cid.starts_with('b')).then(|| cid.into()),
            Vec::new(),
        )
    };
    let homepage = pin(V0, Some("homepage"), &[]);
    let docs = pin(OTHER, Some("docs: v2"), &[("build", "42"), ("team", "web")]);
    let expected_pins = BTreeMap::from([
        // `defaults.to`, keyed by the canonical CID, the CID kept as written.
        (key("aioz", None, &v0_as_v1), homepage.clone()),
        (key("arkive", Some("cl0-global"), &v0_as_v1), homepage),
        // Its own `to` replaces the defaults.
        (key("local", None, OTHER), docs.clone()),
        (key("arkive", None, OTHER), docs),
        // The same content as the first pin, on another target: not a duplicate.
        (key("lan", None, &v0_as_v1), pin(&v0_as_v1, None, &[])),
    ]);
    assert_eq!(m.pins, expected_pins.into_iter().collect::<Vec<_>>());
}

#[test]
fn the_example_manifest_of_the_repository_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pins.yaml");
    let bytes = std::fs::read(&path).expect("read pins.yaml");
    let m = parse(&path, &bytes).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(m.providers.len(), 2);
    assert_eq!(m.pins.len(), 3);
}

#[test]
fn byte_order_mark_crlf_and_document_markers_are_accepted() {
    let plain = ok(&yaml(FULL));
    let crlf = yaml(FULL).replace('\n', "\r\n");
    for (name, text) in [
        ("BOM", format!("\u{feff}{}", yaml(FULL))),
        ("CRLF", crlf),
        (
            "markers",
            format!("%YAML 1.2\n---\n{}...\n# end\n", yaml(FULL)),
        ),
    ] {
        let m = parse_text(&text).unwrap_or_else(|d| panic!("{name}: {d}"));
        assert_eq!(m.providers, plain.providers, "{name}");
        assert_eq!(m.pins, plain.pins, "{name}");
    }
}

#[test]
fn version_accepts_only_one() {
    for (written, valid) in [("1", true), ("\"1\"", true), ("1.0", false), ("0", false)] {
        let text = format!("version: {written}\nproviders: {{}}\npins: []\n");
        assert_eq!(parse_text(&text).is_ok(), valid, "{written}");
    }
}

#[test]
fn printed_problems_escape_control_characters_from_the_manifest() {
    let text = yaml(&[
        "version: 1",
        "providers:",
        "  \"p\\e[31m\":",
        "    api_key: ${K}",
        "pins: []",
        "\"k\\e]0;x\\a\": 1",
    ]);
    let diagnostics = parse_text(&text).expect_err("refused");
    let printed = diagnostics.to_string();
    assert!(printed.contains("provider `p\\u{1b}[31m`"), "{printed}");
    assert!(
        printed.contains("unknown field `k\\u{1b}]0;x\\u{7}`"),
        "{printed}"
    );
    assert!(
        !printed.chars().any(|c| c.is_control() && c != '\n'),
        "{printed:?}"
    );
}

#[test]
fn quoted_scalars_are_strings_not_null_or_booleans() {
    let text = yaml(&[
        "version: 1",
        "providers:",
        "  arkive:",
        "    type: pinarkive",
        "    api_key: ${K}",
        "pins:",
        "  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        "    to: [arkive]",
        "    name: \"null\"",
        "    meta: {empty: \"\", tilde: \"~\"}",
    ]);
    let m = ok(&text);
    let pin = m.pins.first().map(|(_, p)| p).expect("one pin");
    assert_eq!(pin.labels.name.as_deref(), Some("null"));
    assert_eq!(pin.labels.meta["empty"], "");
    assert_eq!(pin.labels.meta["tilde"], "~");

    let text = yaml(&[
        "version: 1",
        "providers:",
        "  arkive:",
        "    type: pinarkive",
        "    api_key: ${K}",
        "    base_url: http://10.0.0.7",
        "    allow_insecure_http: \"true\"",
        "pins:",
        "  - cid: \"\"",
        "    to: [arkive]",
        "    name: null",
    ]);
    assert_problems(
        "quoted boolean, empty CID, plain null",
        text.as_bytes(),
        &[
            (6, 15, "uses plain http"),
            (7, 26, "`allow_insecure_http` must be true or false"),
            (9, 10, "empty CID"),
            (11, 11, "`name` must be a string, found nothing"),
        ],
    );
}

#[test]
fn notify_takes_webhooks_and_says_where_one_is_wrong() {
    let good = yaml(&[
        "version: 1",
        "providers:",
        "  aioz: {type: aioz, api_key: \"${K}\", secret_key: \"${S}\"}",
        "notify:",
        "  - url: https://hooks.example/h?token=${HOOK_TOKEN}",
        "    format: slack",
        "    headers: {X-Key: \"${HOOK_KEY}\"}",
        "    events: [blocked, recovered]",
        "  - url: http://127.0.0.1:9000/h",
        "pins: []",
    ]);
    let m = ok(&good);
    assert_eq!(m.notify.len(), 2);
    assert_eq!(m.notify[0].format, super::NotifyFormat::Slack);
    assert_eq!(
        m.notify[0].events,
        [super::NotifyEvent::Blocked, super::NotifyEvent::Recovered]
    );
    assert_eq!(m.notify[0].url.vars(), ["HOOK_TOKEN"]);
    assert_eq!(m.notify[1].events.len(), 5, "every event by default");
    let bad = yaml(&[
        "version: 1",
        "providers:",
        "  aioz: {type: aioz, api_key: \"${K}\", secret_key: \"${S}\"}",
        "notify:",
        "  - url: http://hooks.example/h",
        "    format: teams",
        "    events: [drift, nope]",
        "  - url: https://h.example/${1X}",
        "    headers: {\"bad header\": x}",
        "    colour: red",
        "pins: []",
    ]);
    assert_problems(
        "bad webhooks",
        bad.as_bytes(),
        &[
            (5, 10, "a webhook takes https"),
            (6, 13, "unknown `format` \"teams\""),
            (7, 21, "unknown event \"nope\""),
            (8, 10, "is not an environment variable's name"),
            (9, 15, "is not a header name"),
            (10, 5, "colour"),
        ],
    );
}
