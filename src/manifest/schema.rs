//! The manifest's JSON Schema (draft-07), printed by `pinsync schema`, so
//! that editors complete, describe and check `pins.yaml` as it is typed
//! (yaml-language-server finds it from the first line of a manifest).
//!
//! It is built here with `json!` rather than kept as a `schema.json` file:
//! the values it lists come from the constants the parser checks against
//! (provider types, default endpoints, label limits), and the fields each
//! provider type needs or refuses come from an exhaustive `match`, so a new
//! provider type does not compile until the schema knows it. The tests check
//! every mapping's fields against the parser's lists and every type's rules
//! against the parser itself. A new field is one entry in `properties`.
//!
//! The schema states structure: types, fields, the shapes of credentials,
//! endpoints and targets, and the fields of each provider type. What takes
//! more than one value to decide (a target's provider is declared, a CID is
//! valid, a CID is not twice on one target) is left to `pinsync validate`.
//!
//! A file that `include:` names has a schema of its own under
//! `definitions/included_file`: `pins` and `defaults`, built from the same
//! pieces as the manifest's.

use serde_json::{Map, Value, json};

use super::parse::{MAX_IDENTITY_CHARS, is_flag, own_fields};
use super::{
    CallKind, DEFAULT_IDENTITY, MANIFEST_VERSION, MAX_META_CHARS, MAX_NAME_CHARS, MAX_ORIGIN_CHARS,
    MAX_ORIGINS, ProviderKind, UnpinGuard,
};
use crate::provider::FieldValue;

/// Where the schema is published; `pinsync schema` prints it as its `$id`.
pub(crate) const SCHEMA_URL: &str = "https://pinsync.dev/schema/pins-v1.json";

/// A provider or cluster name, as `is_valid_name` accepts it.
const NAME_PATTERN: &str = "^[A-Za-z0-9_-]+$";
/// `provider` or `provider/cluster`.
const TARGET_PATTERN: &str = "^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)?$";
/// `${VAR}`, as `SecretRef::parse` accepts it.
const CREDENTIAL_PATTERN: &str = "^\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}$";
/// http(s), without a query or fragment.
const BASE_URL_PATTERN: &str = "^https?://[^\\s?#]+$";
/// A CID written alone: multibase characters, no `:` or `.` of a URL.
const CID_PATTERN: &str = "^[A-Za-z0-9+/=_-]+$";
/// A multiaddr: starts with `/`, no whitespace.
const ORIGIN_PATTERN: &str = "^/\\S*$";

/// Plain YAML scalars that the parser reads as text: `name: 2024` is the
/// name "2024", though YAML (and so the schema's JSON) sees a number.
const TEXT_TYPES: [&str; 3] = ["string", "number", "boolean"];

/// Every provider type, in the order `type:` lists them.
fn kinds() -> impl Iterator<Item = ProviderKind> {
    ProviderKind::all()
}

/// Fields every type requires: its key, its required own fields, and
/// `base_url` for a type without a default endpoint.
fn required_fields(kind: ProviderKind) -> Vec<&'static str> {
    let t = kind.provider_type();
    let mut required = vec!["type"];
    required.extend(t.fields.iter().filter(|f| f.required).map(|f| f.name));
    if kind.default_base_url().is_none() {
        required.push("base_url");
    }
    required
}

/// Fields that are an error for this type: other types' keys and own
/// fields.
fn refused_fields(kind: ProviderKind) -> Vec<&'static str> {
    let t = kind.provider_type();
    own_fields().into_iter().filter(|f| !t.takes(f)).collect()
}

/// The types that take `field` as their key or as one of their own, as
/// `` `aioz` and `pinarkive` ``.
fn types_taking(field: &str) -> String {
    let names: Vec<String> = kinds()
        .filter(|k| k.provider_type().takes(field))
        .map(|k| format!("`{k}`"))
        .collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Every word any type offers for the choice `field`, each once.
fn choice_words(field: &str) -> Vec<&'static str> {
    let mut words = Vec::new();
    for kind in kinds() {
        if let Some(FieldValue::Choice(offered)) =
            kind.provider_type().field(field).map(|f| f.value)
        {
            for word in offered {
                if !words.contains(word) {
                    words.push(*word);
                }
            }
        }
    }
    words
}

/// The key fields and the types' own fields, each with its schema.
fn type_field_schemas() -> Map<String, Value> {
    let mut fields = Map::new();
    for kind in kinds() {
        for field in kind.provider_type().fields {
            let description = format!("{}: {}", types_taking(field.name), field.description);
            let value = match field.value {
                FieldValue::Secret => credential(&description),
                // Types may offer different words under one name (`auth`):
                // each type's rule narrows the union to its own.
                FieldValue::Choice(_) => json!({
                    "description": description,
                    "enum": choice_words(field.name),
                }),
                FieldValue::Flag => json!({
                    "description": description,
                    "type": "boolean",
                    "default": false,
                }),
                FieldValue::Text => json!({
                    "description": description,
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_NAME_CHARS,
                }),
                FieldValue::Replication => replication(&description),
                FieldValue::Duration => json!({
                    "description": description,
                    "type": "string",
                    "examples": ["90s", "30m", "1h"],
                }),
            };
            fields.entry(field.name).or_insert(value);
        }
    }
    fields
}

/// The manifest's JSON Schema.
pub(crate) fn schema() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_URL,
        "title": "pinsync manifest (pins.yaml)",
        "description": "Which CIDs must be pinned on which pinning service (and cluster). \
            `pinsync validate` checks it fully; `pinsync plan` shows what apply would change.",
        "type": "object",
        "additionalProperties": false,
        "required": ["version", "providers"],
        "properties": {
            "version": {
                "description": format!("The manifest format: always {MANIFEST_VERSION}."),
                "const": MANIFEST_VERSION,
            },
            "identity": {
                "description": format!(
                    "The value of `meta.pinsync` on the Pinning Service requests this manifest \
                     makes; only requests carrying it are ever removed. Default `{DEFAULT_IDENTITY}`."
                ),
                "type": "string",
                "pattern": NAME_PATTERN,
                "maxLength": MAX_IDENTITY_CHARS,
                "default": DEFAULT_IDENTITY,
            },
            "providers": {
                "description": "The pinning services, by a name of your choosing (letters, \
                    digits, '-' and '_'); targets name them.",
                "type": "object",
                "propertyNames": {"pattern": NAME_PATTERN},
                "additionalProperties": provider(),
            },
            "defaults": defaults(
                "Values for pins that give none (here and in included files, for the fields \
                 an included file's own `defaults` does not set)."
            ),
            "prune": {
                "description": "`true`: pins gone from the manifest are unpinned (as with \
                    `--prune`); otherwise they are kept pinned and marked orphaned.",
                "type": "boolean",
                "default": false,
            },
            "state": {
                "description": "Where the state is kept when --state and PINSYNC_STATE say \
                    nothing: a PostgreSQL workspace shared by every CI runner and watch server.",
                "type": "object",
                "additionalProperties": false,
                "required": ["url"],
                "properties": {
                    "url": credential(
                        "The environment variable holding the postgres:// URL, as ${VAR} (it \
                         may hold a password, so it is never written in the manifest)."
                    ),
                    "workspace": {
                        "description": "The workspace: one state each (sets the URL's workspace=).",
                        "type": "string",
                        "pattern": NAME_PATTERN,
                        "maxLength": 63,
                    },
                },
            },
            "notify": {
                "description": "Webhooks called on the events a person must act on: drift \
                    found, an apply failed, a safety guard refused, the lease was lost, \
                    recovered after a failure.",
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["url"],
                    "properties": {
                        "url": {
                            "description": "The webhook's URL (https://, or http:// to loopback); \
                                ${VAR} in it is filled from the environment, so a token \
                                stays out of the manifest.",
                            "type": "string",
                        },
                        "format": {
                            "description": "`json` (pinsync's versioned body, the default) or \
                                `slack` ({\"text\": ...}, for Slack-compatible webhooks).",
                            "enum": ["json", "slack"],
                        },
                        "headers": {
                            "description": "Headers to send; ${VAR} in a value is filled from \
                                the environment.",
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                        "events": {
                            "description": "The events it is called on (default: all).",
                            "type": "array",
                            "items": {"enum": ["drift", "apply_failed", "blocked", "lease_lost", "recovered"]},
                        },
                    },
                },
            },
            "include": include(),
            "pins": {
                "description": "What must be pinned: one entry per CID. Optional when \
                    `include` names files that hold the pins.",
                "type": "array",
                "items": pin(),
            },
        },
        "anyOf": [{"required": ["pins"]}, {"required": ["include"]}],
        // Without `defaults.to`, every pin must name its targets.
        "if": {
            "required": ["defaults"],
            "properties": {"defaults": {"required": ["to"]}},
        },
        "else": {
            "properties": {"pins": {"items": {"required": ["to"]}}},
        },
        "definitions": {
            "included_file": included_file(),
        },
    })
}

/// `defaults:`, of the manifest or of an included file.
fn defaults(description: &str) -> Value {
    json!({
        "description": description,
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "to": targets("Targets of the pins that have no `to`."),
        },
    })
}

/// `include:`: paths and globs, each a string or `{path, optional}`.
fn include() -> Value {
    let path = "A path or a glob (`*`, `?`, `[abc]`, `**`; `*` matches no `/` and no \
                leading `.`), relative to this manifest's directory.";
    json!({
        "description": "Files that hold more pins, read after this manifest's own, each \
            entry in turn, the files a glob matches in sorted order; a file named twice is \
            read once. A missing path, or a glob that matches no file, is an error unless \
            the entry is `{path: ..., optional: true}`. An included file holds only `pins` \
            and `defaults` (see definitions/included_file), and includes nothing itself.",
        "type": "array",
        "items": {
            "oneOf": [
                {"description": path, "type": "string", "minLength": 1},
                {
                    "description": "An entry with options.",
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["path"],
                    "properties": {
                        "path": {"description": path, "type": "string", "minLength": 1},
                        "optional": {
                            "description": "`true`: a missing file, or a glob matching \
                                nothing, is not an error.",
                            "type": "boolean",
                            "default": false,
                        },
                    },
                },
            ],
        },
    })
}

/// A file that `include:` names: pins, and defaults for them.
fn included_file() -> Value {
    json!({
        "title": "pinsync included file (pins.d/*.yaml)",
        "description": "Pins of a manifest kept in a file of their own, named by the main \
            manifest's `include`. Providers, state and the rest stay in the main manifest.",
        "type": "object",
        "additionalProperties": false,
        "required": ["pins"],
        "properties": {
            "defaults": defaults(
                "Values for this file's pins that give none; a field not set here is the \
                 main manifest's `defaults`."
            ),
            "pins": {
                "description": "What must be pinned: one entry per CID.",
                "type": "array",
                "items": pin(),
            },
        },
    })
}

fn provider() -> Value {
    let types: Vec<String> = kinds()
        .map(|k| format!("`{k}`: {}", k.provider_type().summary))
        .collect();
    let no_default: Vec<String> = kinds()
        .filter(|k| k.default_base_url().is_none())
        .map(|k| format!("`{k}`"))
        .collect();
    let defaults: Vec<String> = kinds()
        .filter_map(|k| k.default_base_url().map(|url| format!("{k}: {url}")))
        .collect();
    let guard = UnpinGuard::default();
    let mut provider = json!({
        "description": "One pinning service.",
        "type": "object",
        "additionalProperties": false,
        "required": ["type"],
        "properties": {
            "type": {
                "description": format!("The service's API. {}.", types.join("; ")),
                "enum": ProviderKind::names(),
            },
            "base_url": {
                "description": format!(
                    "The API's root. Defaults: {}; required for {} (e.g. \
                     https://api.pinata.cloud/psa). Must be https://, or http:// to loopback; \
                     plain http elsewhere needs `allow_insecure_http: true`.",
                    defaults.join(", "),
                    no_default.join(", ")
                ),
                "type": "string",
                "pattern": BASE_URL_PATTERN,
            },
            "allow_insecure_http": {
                "description": "`true` allows a plain http:// base_url to a host that is not \
                    loopback: the keys travel unencrypted.",
                "type": "boolean",
                "default": false,
            },
            "unpin_guard": {
                "description": "A plan that would unpin more than `count` and more than \
                    `percent`% of one target's pins is refused (exit 3) unless \
                    --max-unpins or --force-unpins allows it.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "count": {
                        "description": "Unpins of one target always allowed.",
                        "type": "integer",
                        "minimum": 0,
                        "maximum": u32::MAX,
                        "default": guard.count,
                    },
                    "percent": {
                        "description": "Share of one target's pins always allowed to go.",
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 100,
                        "default": guard.percent,
                    },
                },
            },
            "rate_limit": {
                "description": format!(
                    "The limit every call to this provider is paced at: `N/s`, `N/min` or \
                     `N/h` (like 180/min), `{{rate, burst}}`, or `none` to turn pacing off. \
                     Defaults: {}; a `pinning-service` has none unless set.",
                    rate_defaults()
                ),
                "oneOf": [rate_text(), {"const": "none"}, rate_mapping()],
            },
            "rate_limits": {
                "description": "Limits on one kind of call, on top of `rate_limit` (Pinata \
                    allows 30 lists a minute of its 180 calls).",
                "type": "object",
                "additionalProperties": false,
                "properties": CallKind::NAMES
                    .iter()
                    .map(|k| ((*k).to_owned(), json!({
                        "description": format!("Calls of kind `{k}`."),
                        "oneOf": [rate_text(), rate_mapping()],
                    })))
                    .collect::<Map<String, Value>>(),
            },
        },
        "allOf": kinds().map(type_rule).collect::<Vec<_>>(),
    });
    if let Some(properties) = provider["properties"].as_object_mut() {
        properties.extend(type_field_schemas());
    }
    provider
}

/// A rate limit as text: `N/s`, `N/min`, `N/h`.
fn rate_text() -> Value {
    json!({
        "type": "string",
        "pattern": "^\\s*[0-9]+\\s*/\\s*(s|sec|second|m|min|minute|h|hour)\\s*$",
    })
}

/// A rate limit with a burst: `{rate: 100/min, burst: 10}`.
fn rate_mapping() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["rate"],
        "properties": {
            "rate": rate_text(),
            "burst": {
                "description": "Calls that may go at once before the pace applies.",
                "type": "integer",
                "minimum": 1,
            },
        },
    })
}

fn rate_defaults() -> String {
    kinds()
        .filter_map(|k| k.default_rate_limit().map(|l| format!("{k} {l}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `if type is KIND then` its required fields, and no field it refuses.
fn type_rule(kind: ProviderKind) -> Value {
    // A flag another type takes may still be written `false`.
    let refused: Map<String, Value> = refused_fields(kind)
        .into_iter()
        .map(|f| {
            let rule = if is_flag(f) {
                json!({"const": false})
            } else {
                Value::Bool(false)
            };
            (f.to_owned(), rule)
        })
        .collect();
    let t = kind.provider_type();
    let mut refused = refused;
    for field in t.fields {
        if let FieldValue::Choice(words) = field.value {
            refused.insert(
                field.name.to_owned(),
                json!({"enum": words, "default": words[0]}),
            );
        }
    }
    // A field that needs another, and two that exclude each other.
    let needs: Map<String, Value> = t
        .fields
        .iter()
        .filter(|f| !f.requires.is_empty())
        .map(|f| (f.name.to_owned(), json!(f.requires)))
        .collect();
    let exclusive: Vec<Value> = t
        .fields
        .iter()
        .flat_map(|f| {
            f.conflicts
                .iter()
                .filter(move |o| **o < f.name)
                .map(move |o| (*o, f.name))
        })
        .map(|(a, b)| json!({"not": {"required": [a, b]}}))
        .collect();
    let mut then = json!({
        "required": required_fields(kind),
        "properties": refused,
    });
    if !needs.is_empty() {
        then["dependencies"] = Value::Object(needs);
    }
    if !exclusive.is_empty() {
        then["allOf"] = Value::Array(exclusive);
    }
    json!({
        "if": {
            "required": ["type"],
            "properties": {"type": {"const": kind.to_string()}},
        },
        "then": then,
    })
}

fn credential(description: &str) -> Value {
    json!({
        "description": description,
        "type": "string",
        "pattern": CREDENTIAL_PATTERN,
        "examples": ["${MY_API_KEY}"],
    })
}

fn targets(description: &str) -> Value {
    json!({
        "description": format!(
            "{description} Each is `provider` or `provider/cluster` (clusters are Pinarkive's, \
             e.g. cl0-global); each at most once."
        ),
        "type": "array",
        "minItems": 1,
        "uniqueItems": true,
        "items": {"type": "string", "pattern": TARGET_PATTERN},
    })
}

/// `{min, max}`: peers that pin each CID.
fn replication(description: &str) -> Value {
    json!({
        "description": description,
        "type": "object",
        "additionalProperties": false,
        "required": ["min"],
        "properties": {
            "min": {"description": "Peers that must pin each CID.", "type": "integer", "minimum": 1},
            "max": {
                "description": "Peers that may pin it (default: the cluster's setting).",
                "type": "integer",
                "minimum": 1,
            },
        },
    })
}

fn pin() -> Value {
    json!({
        "description": "One CID and where it must be pinned.",
        "type": "object",
        "additionalProperties": false,
        "required": ["cid"],
        "properties": {
            "cid": {
                "description": "A CIDv0 (Qm…) or CIDv1 (bafy…), written alone (not a path or \
                    URL). The provider receives it as written; Qm… and its CIDv1 are the same pin.",
                "type": "string",
                "pattern": CID_PATTERN,
            },
            "name": {
                "description": "A name sent to the provider (AIOZ metadata.name, Pinarkive \
                    customName, a Pinning Service request's name).",
                "type": TEXT_TYPES,
                "maxLength": MAX_NAME_CHARS,
            },
            "to": targets("Where this pin goes; without it, `defaults.to`."),
            "meta": {
                "description": "A string map, sent where the provider takes it (AIOZ \
                    metadata.keyvalues, a Pinning Service request's meta).",
                "type": "object",
                "propertyNames": {"maxLength": MAX_META_CHARS},
                "additionalProperties": {"type": TEXT_TYPES, "maxLength": MAX_META_CHARS},
            },
            "replication": replication(
                "On an ipfs-cluster target: how many peers pin this CID, `{min: 2, max: 3}`, \
                 in place of its provider's `replication`.",
            ),
            "origins": {
                "description": format!(
                    "Up to {MAX_ORIGINS} multiaddrs known to provide the data \
                     (/dnsaddr/…/p2p/…), sent to a `pinning-service`; a hint for fetching."
                ),
                "type": "array",
                "maxItems": MAX_ORIGINS,
                "items": {
                    "type": "string",
                    "pattern": ORIGIN_PATTERN,
                    "maxLength": MAX_ORIGIN_CHARS,
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::super::parse::{
        DEFAULTS_FIELDS, INCLUDE_FIELDS, INCLUDED_FILE_FIELDS, MANIFEST_FIELDS, NOTIFY_FIELDS,
        PIN_FIELDS, UNPIN_GUARD_FIELDS, provider_fields,
    };
    use super::*;

    fn field_names(object: &Value) -> BTreeSet<&str> {
        object["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect()
    }

    fn set<'a>(fields: &[&'a str]) -> BTreeSet<&'a str> {
        fields.iter().copied().collect()
    }

    #[test]
    fn every_mapping_has_exactly_the_fields_the_parser_accepts() {
        let schema = schema();
        let provider = &schema["properties"]["providers"]["additionalProperties"];
        let included = &schema["definitions"]["included_file"];
        for (what, object, parser) in [
            ("the manifest", &schema, MANIFEST_FIELDS),
            ("a provider", provider, &provider_fields()),
            (
                "unpin_guard",
                &provider["properties"]["unpin_guard"],
                UNPIN_GUARD_FIELDS,
            ),
            (
                "defaults",
                &schema["properties"]["defaults"],
                DEFAULTS_FIELDS,
            ),
            ("a pin", &schema["properties"]["pins"]["items"], PIN_FIELDS),
            (
                "a notify entry",
                &schema["properties"]["notify"]["items"],
                NOTIFY_FIELDS,
            ),
            (
                "an include entry",
                &schema["properties"]["include"]["items"]["oneOf"][1],
                INCLUDE_FIELDS,
            ),
            ("an included file", included, INCLUDED_FILE_FIELDS),
            (
                "an included file's defaults",
                &included["properties"]["defaults"],
                DEFAULTS_FIELDS,
            ),
            (
                "an included file's pin",
                &included["properties"]["pins"]["items"],
                PIN_FIELDS,
            ),
        ] {
            assert_eq!(field_names(object), set(parser), "{what}");
            assert_eq!(object["additionalProperties"], json!(false), "{what}");
        }
    }

    /// A manifest with one provider of `kind` holding `fields` (each
    /// `name: value`), and one pin on it.
    fn with_provider(kind: ProviderKind, fields: &[&str]) -> String {
        let mut text = format!("version: 1\nproviders:\n  p:\n    type: {kind}\n");
        for f in fields {
            text.push_str(&format!("    {f}\n"));
        }
        text.push_str(
            "pins:\n  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG\n    to: [p]\n",
        );
        text
    }

    fn parses(text: &str) -> bool {
        super::super::parse(Path::new("pins.yaml"), text.as_bytes()).is_ok()
    }

    /// `field: value` with a value the parser takes for that field.
    fn field_line(field: &str) -> String {
        let own = kinds()
            .flat_map(|k| k.provider_type().fields)
            .find(|f| f.name == field);
        let value = match (field, own.map(|f| f.value)) {
            (_, Some(FieldValue::Choice(words))) => words[words.len() - 1],
            (_, Some(FieldValue::Flag)) | ("allow_insecure_http", _) => "true",
            (_, Some(FieldValue::Secret)) => "${SOME_SECRET}",
            (_, Some(FieldValue::Text)) => "someone",
            (_, Some(FieldValue::Duration)) => "90m",
            (_, Some(FieldValue::Replication)) => "{min: 2, max: 3}",
            ("base_url", _) => "https://pin.example.com",
            ("unpin_guard", _) => "{count: 1, percent: 2}",
            ("rate_limit", _) => "{rate: 10/s, burst: 5}",
            ("rate_limits", _) => "{list: 30/min}",
            _ => "${SOME_KEY}",
        };
        format!("{field}: {value}")
    }

    /// The per-type rules the schema states are the parser's: a provider
    /// with exactly the required fields is accepted, and so is one with
    /// every field the schema allows; one without any required field is
    /// refused, and so is one with any field the schema refuses.
    #[test]
    fn each_types_required_and_refused_fields_are_the_parsers() {
        for kind in kinds() {
            let refused = refused_fields(kind);
            let lines =
                |names: &[&str]| -> Vec<String> { names.iter().map(|f| field_line(f)).collect() };
            let accepted = |lines: &[String]| {
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                parses(&with_provider(kind, &refs))
            };
            let required: Vec<&str> = required_fields(kind)
                .into_iter()
                .filter(|f| *f != "type")
                .collect();
            assert!(accepted(&lines(&required)), "{kind} with {required:?}");
            // Every field the type takes, but none that excludes one
            // already chosen.
            let t = kind.provider_type();
            let mut allowed: Vec<&str> = Vec::new();
            for f in provider_fields() {
                let excluded = t
                    .field(f)
                    .is_some_and(|f| f.conflicts.iter().any(|o| allowed.contains(o)));
                if f != "type" && !refused.contains(&f) && !excluded {
                    allowed.push(f);
                }
            }
            let needs_missing = |allowed: &[&str], f: &str| {
                t.field(f)
                    .is_some_and(|f| f.requires.iter().any(|n| !allowed.contains(n)))
            };
            while let Some(i) = allowed.iter().position(|f| needs_missing(&allowed, f)) {
                allowed.remove(i);
            }
            assert!(accepted(&lines(&allowed)), "{kind} with {allowed:?}");
            // Each relation between fields holds in the parser as the
            // schema states it.
            for f in t.fields {
                for needed in f.requires {
                    let alone: Vec<&str> = required.iter().copied().chain([f.name]).collect();
                    assert!(
                        !accepted(&lines(&alone)),
                        "{kind}: {} without {needed}",
                        f.name
                    );
                }
                for other in f.conflicts {
                    let with: Vec<&str> =
                        required.iter().copied().chain([f.name, *other]).collect();
                    let with: Vec<&str> = with
                        .into_iter()
                        .chain(
                            t.field(other)
                                .map_or(&[][..], |o| o.requires)
                                .iter()
                                .copied(),
                        )
                        .chain(f.requires.iter().copied())
                        .collect();
                    assert!(!accepted(&lines(&with)), "{kind}: {} with {other}", f.name);
                }
            }
            for missing in &required {
                let fewer: Vec<&str> = required.iter().copied().filter(|f| f != missing).collect();
                assert!(!accepted(&lines(&fewer)), "{kind} without {missing}");
            }
            for extra in &refused {
                let more: Vec<&str> = required.iter().chain([extra]).copied().collect();
                assert!(!accepted(&lines(&more)), "{kind} with {extra}");
            }
        }
    }

    #[test]
    fn every_provider_type_has_a_rule() {
        let schema = schema();
        let rules = schema["properties"]["providers"]["additionalProperties"]["allOf"]
            .as_array()
            .expect("allOf");
        let named: Vec<&str> = rules
            .iter()
            .map(|r| r["if"]["properties"]["type"]["const"].as_str().unwrap())
            .collect();
        assert_eq!(named, ProviderKind::names());
    }
}
