//! `pinsync schema`: the JSON Schema editors check manifests with.
//!
//! - It is a draft-07 schema (the validator checks it against the
//!   meta-schema) with its `$id`, and every field has a description.
//! - Every manifest the repository shows (`pins.yaml`, `examples/*.yaml`,
//!   `examples/*/pins.yaml` with the files it includes, the README's
//!   manifest blocks with its included-file blocks beside them, and its
//!   ready provider blocks given a version and pins) matches it, and
//!   `pinsync validate` accepts it; the whole manifests start with the line
//!   that points editors at the schema. Every included file shown matches
//!   `definitions/included_file`.
//! - The structural cases of the bad-manifest corpus (wrong types, unknown
//!   fields, unknown provider types, missing fields) are refused by the
//!   schema at the places `validate` names; the corpus's other cases need
//!   what a schema cannot say (valid CIDs, declared targets, no duplicates)
//!   or are refused before there is YAML to check.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{RunExt as _, pinsync_bin, project_root};

/// What `pinsync schema` prints, parsed.
pub fn printed_schema() -> Value {
    let run = std::process::Command::new(pinsync_bin())
        .arg("schema")
        .env_clear()
        .run();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stderr, "", "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"))
}

/// A validator for the printed schema; building it checks the schema
/// against the draft-07 meta-schema.
pub fn schema_validator() -> jsonschema::Validator {
    jsonschema::draft7::new(&printed_schema()).expect("the schema is a valid draft-07 schema")
}

/// A YAML manifest as the JSON value editors check.
fn as_json(what: &str, yaml: &str) -> Value {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{what}: not YAML: {e}"))
}

/// Where the schema refuses `yaml`: the JSON Pointers of the values its
/// errors are about, each with the error.
fn refusals(validator: &jsonschema::Validator, what: &str, yaml: &str) -> Vec<(String, String)> {
    validator
        .iter_errors(&as_json(what, yaml))
        .map(|e| (e.instance_path().to_string(), e.to_string()))
        .collect()
}

/// Checks that `yaml` matches the schema and that `pinsync validate` accepts it.
pub fn assert_valid_both_ways(validator: &jsonschema::Validator, what: &str, yaml: &str) {
    assert_valid_with_files(validator, what, yaml, &[]);
}

/// [`assert_valid_both_ways`], with `beside` (paths relative to the
/// manifest, and their text) written next to it for its `include`.
fn assert_valid_with_files(
    validator: &jsonschema::Validator,
    what: &str,
    yaml: &str,
    beside: &[(String, String)],
) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pins.yaml");
    fs::write(&file, yaml).unwrap();
    for (path, text) in beside {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    assert_valid_at(validator, what, &file);
}

/// Checks that the manifest at `file` matches the schema and that
/// `pinsync validate` accepts it there (with the files it includes).
fn assert_valid_at(validator: &jsonschema::Validator, what: &str, file: &Path) {
    let yaml = fs::read_to_string(file).unwrap();
    let refused = refusals(validator, what, &yaml);
    assert!(
        refused.is_empty(),
        "{what}: refused by the schema: {refused:#?}\n{yaml}"
    );
    let run = std::process::Command::new(pinsync_bin())
        .args(["validate", "-f"])
        .arg(file)
        .env_clear()
        .run();
    assert_eq!(run.code, 0, "{what}: {run:?}\n{yaml}");
}

/// A validator for a file that `include:` names: the schema's
/// `definitions/included_file`.
fn included_file_validator() -> jsonschema::Validator {
    let schema = printed_schema();
    jsonschema::draft7::new(&schema["definitions"]["included_file"])
        .expect("definitions/included_file is a valid draft-07 schema")
}

/// The README's blocks that show an included file: those whose first line
/// is `# DIR/NAME.yaml`, with the line they start on, the path, the text.
fn readme_included_blocks() -> Vec<(usize, String, String)> {
    readme_yaml_blocks()
        .into_iter()
        .filter_map(|(line, text)| {
            let path = text.lines().next()?.strip_prefix("# ")?;
            (path.contains('/') && path.ends_with(".yaml") && !path.contains(' '))
                .then(|| (line, path.to_owned(), text.clone()))
        })
        .collect()
}

/// Every ```yaml block of the README, with the line it starts on.
pub fn readme_yaml_blocks() -> Vec<(usize, String)> {
    let readme = fs::read_to_string(project_root().join("README.md")).expect("read README.md");
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        match &mut open {
            None if line.trim_start() == "```yaml" => open = Some((i + 2, String::new())),
            None => {}
            Some(_) if line.trim_start() == "```" => blocks.extend(open.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert!(open.is_none(), "README.md: a ```yaml block is not closed");
    blocks
}

/// Whether a YAML text is a whole manifest: it has a top-level `version`.
pub fn is_manifest(yaml: &str) -> bool {
    yaml.lines().any(|l| l.starts_with("version:"))
}

/// `pins.yaml`, `examples/*.yaml` and `examples/*/pins.yaml` (a manifest
/// with the files it includes), by path.
pub fn example_manifest_files() -> Vec<PathBuf> {
    let mut files = vec![project_root().join("pins.yaml")];
    let mut examples: Vec<PathBuf> = fs::read_dir(project_root().join("examples"))
        .expect("read examples/")
        .map(|e| e.expect("entry").path())
        .filter_map(|p| {
            if p.is_dir() {
                Some(p.join("pins.yaml")).filter(|m| m.is_file())
            } else {
                Some(p).filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            }
        })
        .collect();
    examples.sort();
    assert!(!examples.is_empty(), "no examples/*.yaml");
    files.extend(examples);
    files
}

/// Every object schema reachable through `properties`,
/// `additionalProperties` and `items`, with its path.
fn walk<'a>(path: String, schema: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    out.push((path.clone(), schema));
    if let Some(props) = schema["properties"].as_object() {
        for (name, sub) in props {
            walk(format!("{path}.{name}"), sub, out);
        }
    }
    for key in ["additionalProperties", "items"] {
        if schema[key].is_object() {
            walk(format!("{path}[{key}]"), &schema[key], out);
        }
    }
}

#[test]
fn the_schema_is_draft_07_with_its_id_and_every_field_described() {
    let schema = printed_schema();
    schema_validator();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["$id"], "https://pinsync.dev/schema/pins-v1.json");
    let mut all = Vec::new();
    walk("manifest".into(), &schema, &mut all);
    for (name, sub) in schema["definitions"].as_object().expect("definitions") {
        walk(format!("definitions.{name}"), sub, &mut all);
    }
    assert!(
        schema["properties"]["include"]["description"].is_string(),
        "the schema knows include"
    );
    let mut undescribed = Vec::new();
    for (path, sub) in &all {
        if let Some(props) = sub["properties"].as_object() {
            for (name, field) in props {
                if field["description"].as_str().is_none_or(str::is_empty) {
                    undescribed.push(format!("{path}.{name}"));
                }
            }
        }
    }
    assert!(undescribed.is_empty(), "no description: {undescribed:?}");
    let provider = &schema["properties"]["providers"]["additionalProperties"];
    assert_eq!(
        provider["properties"]["type"]["enum"],
        serde_json::json!([
            "aioz",
            "pinarkive",
            "pinning-service",
            "kubo",
            "ipfs-cluster",
            "pinata",
            "quicknode",
            "lighthouse"
        ])
    );
    // `auth` is a word each type chooses from its own: every word is named,
    // and each type's rule narrows them to its own.
    assert_eq!(
        provider["properties"]["auth"]["enum"],
        serde_json::json!(["header", "bearer", "basic", "jwt"])
    );
    let rule = |kind: &str| {
        provider["allOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["if"]["properties"]["type"]["const"] == kind)
            .unwrap()["then"]["properties"]["auth"]["enum"]
            .clone()
    };
    assert_eq!(rule("pinarkive"), serde_json::json!(["header", "bearer"]));
    assert_eq!(rule("ipfs-cluster"), serde_json::json!(["basic", "jwt"]));
}

#[test]
fn every_example_manifest_matches_the_schema_and_validates() {
    let validator = schema_validator();
    let mut seen = 0;
    for file in example_manifest_files() {
        assert_valid_at(&validator, &file.display().to_string(), &file);
        seen += 1;
    }
    // The README's included files, beside each of its manifests.
    let included: Vec<(String, String)> = readme_included_blocks()
        .into_iter()
        .map(|(_, path, text)| (path, text))
        .collect();
    for (line, block) in readme_yaml_blocks() {
        let what = format!("README.md block at line {line}");
        if is_manifest(&block) {
            assert_valid_with_files(&validator, &what, &block, &included);
            seen += 1;
        } else if block.starts_with("providers:") {
            // Ready provider blocks, to paste into a manifest.
            let whole = format!("version: 1\n{block}pins: []\n");
            assert_valid_both_ways(&validator, &what, &whole);
            seen += 1;
        }
    }
    // pins.yaml, the emulator's, the README's manifest and provider blocks.
    assert!(seen >= 4, "only {seen} manifests checked");
}

#[test]
fn every_example_included_file_matches_the_included_file_schema() {
    let validator = included_file_validator();
    let mut files: Vec<(String, String)> = readme_included_blocks()
        .into_iter()
        .map(|(line, _, text)| (format!("README.md block at line {line}"), text))
        .collect();
    let readme = files.len();
    assert!(readme >= 2, "the README shows {readme} included files");
    for manifest in example_manifest_files() {
        let dir = manifest.parent().unwrap();
        if dir == project_root() || dir == project_root().join("examples") {
            continue;
        }
        for entry in fs::read_dir(dir.join("pins.d")).expect("an example's pins.d/") {
            let path = entry.unwrap().path();
            files.push((
                path.display().to_string(),
                fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    assert!(files.len() > readme, "no examples/*/pins.d/*.yaml");
    for (what, text) in &files {
        let refused = refusals(&validator, what, text);
        assert!(refused.is_empty(), "{what}: refused: {refused:#?}\n{text}");
    }
    // It is the schema of an included file, not of a manifest.
    let refused = refusals(
        &validator,
        "a manifest",
        "version: 1\nproviders: {}\npins: []\n",
    );
    assert!(!refused.is_empty(), "version and providers refused");
}

#[test]
fn a_manifest_needs_pins_or_include_and_each_include_entry_its_shape() {
    let validator = schema_validator();
    let head = "version: 1\nproviders: {}\n";
    let neither = refusals(&validator, "neither", head);
    assert!(
        !neither.is_empty(),
        "a manifest with neither pins nor include"
    );
    let include = format!("{head}include: [\"pins.d/*.yaml\", {{path: x.yaml, optional: true}}]\n");
    assert_eq!(refusals(&validator, "include", &include), []);
    let bad = format!("{head}include: [{{path: x.yaml, optional: yes, extra: 1}}, 3, \"\"]\n");
    let refused: Vec<String> = refusals(&validator, "bad include", &bad)
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    for at in ["/include/0", "/include/1", "/include/2"] {
        assert!(
            refused.iter().any(|r| r == at),
            "{at} not refused: {refused:?}"
        );
    }
}

/// The line editors (yaml-language-server) read a manifest's schema from.
pub fn schema_modeline() -> String {
    let id = printed_schema()["$id"].as_str().expect("$id").to_owned();
    format!("# yaml-language-server: $schema={id}")
}

#[test]
fn every_example_manifest_starts_with_the_schema_line() {
    let modeline = schema_modeline();
    let mut manifests: Vec<(String, String)> = example_manifest_files()
        .into_iter()
        .map(|f| (f.display().to_string(), fs::read_to_string(&f).unwrap()))
        .collect();
    manifests.extend(
        readme_yaml_blocks()
            .into_iter()
            .filter(|(_, block)| is_manifest(block))
            .map(|(line, block)| (format!("README.md block at line {line}"), block)),
    );
    assert!(manifests.len() >= 3, "{manifests:?}");
    for (what, text) in manifests {
        assert_eq!(text.lines().next(), Some(modeline.as_str()), "{what}");
    }
}

#[test]
fn a_manifest_with_every_field_matches_the_schema_and_validates() {
    let text = "version: 1
identity: team-web
prune: false
providers:
  aioz:
    type: aioz
    api_key: ${AIOZ_KEY}
    secret_key: ${AIOZ_SECRET}
    base_url: https://api-ipfs.attoaioz.cyou
    take_over_unmarked: false
    unpin_guard: {count: 0, percent: 100}
  arkive:
    type: pinarkive
    api_key: ${ARKIVE_KEY}
    auth: bearer
    base_url: http://10.0.0.7:8080
    allow_insecure_http: true
  psa:
    type: pinning-service
    token: ${PSA_TOKEN}
    base_url: http://127.0.0.1:9097
    take_over_unmarked: true
  node:
    type: kubo
    username: pinsync
    password: ${KUBO_PASSWORD}
    pin_timeout: 90m
  filebase-rpc:
    type: kubo
    base_url: https://rpc.filebase.io
    token: ${FILEBASE_RPC_TOKEN}
  cluster:
    type: ipfs-cluster
    username: pinsync
    password: ${CLUSTER_PASSWORD}
    auth: jwt
    replication: {min: 2, max: 3}
defaults:
  to: [aioz]
pins:
  - cid: Qmc1135ziMvmFG534i75E8HpJoLqzLzgKBxfjBV9cBsMAs
    name: 2024
    meta: {year: 2024, public: true, team: web}
  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi
    name: docs
    to: [arkive/cl0-global, psa]
    origins: [/dnsaddr/node.example/p2p/12D3KooWA]
";
    assert_valid_both_ways(&schema_validator(), "every field", text);
}

/// Kubo's credentials: a password needs its user name, and a token
/// excludes one; the schema says so where `validate` does.
#[test]
fn kubos_credential_fields_are_refused_together_by_both() {
    let validator = schema_validator();
    for (what, fields) in [
        ("a password without a user name", "    password: ${P}\n"),
        ("a user name without a password", "    username: me\n"),
        (
            "a token and a user name",
            "    token: ${T}\n    username: me\n    password: ${P}\n",
        ),
    ] {
        let text = format!(
            "version: 1\nproviders:\n  node:\n    type: kubo\n{fields}pins:\n  - cid: Qmc1135ziMvmFG534i75E8HpJoLqzLzgKBxfjBV9cBsMAs\n    to: [node]\n"
        );
        assert!(
            !refusals(&validator, what, &text).is_empty(),
            "the schema takes {what}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pins.yaml");
        fs::write(&file, &text).unwrap();
        let run = std::process::Command::new(pinsync_bin())
            .args(["validate", "-f"])
            .arg(&file)
            .env_clear()
            .run();
        assert_eq!(run.code, 1, "validate takes {what}: {run:?}");
        assert!(run.stderr.contains("pins.yaml:"), "{what}: {run:?}");
    }
}

/// Cases of `tests/corpus/manifests/` the schema must refuse, each with
/// the values it must name (JSON Pointers): the places `validate` reports,
/// as a schema sees them.
const STRUCTURAL: &[(&str, &[&str])] = &[
    ("aioz-without-secret-key", &["/providers/aioz"]),
    ("empty-file", &[""]),
    ("only-a-comment", &[""]),
    ("top-level-list", &[""]),
    ("version-missing", &[""]),
    ("version-2", &["/version"]),
    ("unknown-top-level-key", &[""]),
    ("provider-without-type", &["/providers/arkive"]),
    ("unknown-provider-type", &["/providers/web3/type"]),
    (
        "literal-credentials",
        &["/providers/aioz/api_key", "/providers/aioz/secret_key"],
    ),
    ("to-is-a-string", &["/pins/0/to"]),
    (
        "list-where-a-string-belongs",
        &["/pins/0/cid", "/pins/0/name"],
    ),
    ("meta-is-a-list", &["/pins/0/meta"]),
    ("meta-with-nested-mapping", &["/pins/0/meta/team"]),
    ("name-of-10000-characters", &["/pins/0/name"]),
    ("cid-as-gateway-url", &["/pins/0/cid"]),
    // Structural problems among semantic ones.
    (
        "every-problem-reported",
        &[
            "/providers/aioz/secret_key",
            "/providers/arkive/auth",
            "/pins/0/to",
            "/pins/2",
        ],
    ),
];

/// Structural cases of the table in `src/manifest/parse_tests.rs` (named
/// as there) and two it lacks (the fields of a Pinning Service, and
/// `unpin_guard`), kept here rather than added to the corpus directory,
/// whose every file also seeds the parser's mutation test. Each has the
/// places `validate` reports (`LINE:COL`) and the values the schema must
/// name.
const STRUCTURAL_INLINE: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "wrong container types",
        "version: 1\nproviders: []\ndefaults: [a]\npins: {}\n",
        &["2:12", "3:11", "4:7"],
        &["/providers", "/defaults", "/pins"],
    ),
    (
        "pins of the wrong shape, missing and unknown fields",
        "version: 1
providers:
  arkive:
    type: pinarkive
    api_key: ${ARKIVE_KEY}
defaults:
  to: [arkive]
pins:
  - QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG
  - name: no cid
  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi
    tags: [a]
  - {name: flow}
  - ~
",
        &["9:5", "10:5", "12:5", "13:5", "14:5"],
        &["/pins/0", "/pins/1", "/pins/2", "/pins/3", "/pins/4"],
    ),
    (
        "fields that do not belong to the provider type, unknown fields",
        "version: 1
providers:
  arkive:
    type: pinarkive
    api_key: ${ARKIVE_KEY}
    secret_key: ${ARKIVE_SECRET}
    auth: token
    region: eu
  aioz:
    type: aioz
    api_key: ${AIOZ_KEY}
    secret_key: ${AIOZ_SECRET}
    auth: bearer
    take_over_unmarked: true
pins: []
",
        &["6:17", "7:11", "8:5", "13:11", "14:25"],
        &[
            "/providers/arkive/secret_key",
            "/providers/arkive/auth",
            "/providers/arkive",
            "/providers/aioz/auth",
            "/providers/aioz/take_over_unmarked",
        ],
    ),
    (
        "origins that are not multiaddrs, too many of them, or not a list",
        "version: 1
providers:
  psa:
    type: pinning-service
    base_url: https://psa.example
    token: ${PSA_TOKEN}
defaults:
  to: [psa]
pins:
  - cid: QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG
    origins: [/dnsaddr/node.example/p2p/12D3KooW, 'https://node.example']
  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi
    origins: /dnsaddr/node.example
  - cid: Qmc1135ziMvmFG534i75E8HpJoLqzLzgKBxfjBV9cBsMAs
    origins: [/a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a, /a]
",
        &["11:51", "13:14", "15:14"],
        &["/pins/0/origins/1", "/pins/1/origins", "/pins/2/origins"],
    ),
    (
        "a pinning service with an api_key, no token and no base_url",
        "version: 1
providers:
  pinata:
    type: pinning-service
    api_key: ${PINATA_JWT}
pins: []
",
        &["4:5", "4:5", "5:14"],
        &["/providers/pinata", "/providers/pinata/api_key"],
    ),
    (
        "unpin_guard of the wrong shape",
        "version: 1
providers:
  arkive:
    type: pinarkive
    api_key: ${ARKIVE_KEY}
    unpin_guard: {count: many, percent: 150, ratio: 2}
  aioz:
    type: aioz
    api_key: ${AIOZ_KEY}
    secret_key: ${AIOZ_SECRET}
    unpin_guard: 10
pins: []
",
        &["6:26", "6:41", "6:46", "11:18"],
        &[
            "/providers/arkive/unpin_guard",
            "/providers/arkive/unpin_guard/count",
            "/providers/arkive/unpin_guard/percent",
            "/providers/aioz/unpin_guard",
        ],
    ),
];

/// Corpus cases left to `validate`, and why.
const NOT_STRUCTURAL: &[(&str, &str)] = &[
    ("alias-bomb", "refused before there is YAML to check"),
    ("anchor-and-alias", "refused before there is YAML to check"),
    ("yaml-tag", "refused before there is YAML to check"),
    ("duplicate-key", "refused before there is YAML to check"),
    ("nul-byte", "refused before there is YAML to check"),
    ("not-utf8", "refused before there is YAML to check"),
    ("second-document", "refused before there is YAML to check"),
    (
        "tabs-for-indentation",
        "refused before there is YAML to check",
    ),
    ("unclosed-bracket", "refused before there is YAML to check"),
    ("unclosed-quote", "refused before there is YAML to check"),
    ("bad-multibase-prefix", "CID validity"),
    ("bad-multihash-truncated", "CID validity"),
    ("cidv0-wrong-length", "CID validity"),
    (
        "duplicate-cid-v0-and-v1",
        "the same content twice on a target",
    ),
    ("cluster-on-aioz", "a target's provider type"),
    (
        "unknown-provider-in-target",
        "a target's provider is declared",
    ),
    ("plain-http-to-remote-host", "which hosts are loopback"),
    (
        "escape-sequences-in-names",
        "how names from the manifest are printed",
    ),
    (
        "name-with-control-character",
        "control characters in labels",
    ),
];

fn corpus_dir() -> PathBuf {
    project_root().join("tests/corpus/manifests")
}

/// What is wrong with the schema's refusal of `yaml`: it must name
/// exactly the `expected` values.
fn check_refused(
    validator: &jsonschema::Validator,
    name: &str,
    yaml: &str,
    expected: &[&str],
) -> Option<String> {
    let refused = refusals(validator, name, yaml);
    let places: BTreeSet<&str> = refused.iter().map(|(at, _)| at.as_str()).collect();
    let expected: BTreeSet<&str> = expected.iter().copied().collect();
    (places != expected)
        .then(|| format!("{name}: refused at {places:?}, expected {expected:?}: {refused:#?}"))
}

#[test]
fn the_schema_refuses_the_structural_errors_of_the_corpus_where_validate_does() {
    let validator = schema_validator();
    let mut wrong = Vec::new();
    for (name, expected) in STRUCTURAL {
        let file = corpus_dir().join(format!("{name}.yaml"));
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        wrong.extend(check_refused(&validator, name, &text, expected));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_schema_refuses_the_structural_cases_of_the_parsers_table_where_validate_does() {
    let validator = schema_validator();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pins.yaml");
    let mut wrong = Vec::new();
    for (name, yaml, positions, expected) in STRUCTURAL_INLINE {
        fs::write(&file, yaml).unwrap();
        let run = std::process::Command::new(pinsync_bin())
            .args(["validate", "-f"])
            .arg(&file)
            .env_clear()
            .run();
        let prefix = format!("{}:", file.display());
        let reported: Vec<String> = run
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|rest| {
                let mut parts = rest.splitn(3, ':');
                Some(format!("{}:{}", parts.next()?, parts.next()?))
            })
            .collect();
        if run.code != 1 || reported[..] != positions[..] {
            wrong.push(format!(
                "{name}: validate reported {reported:?}, expected {positions:?}: {run:?}"
            ));
        }
        wrong.extend(check_refused(&validator, name, yaml, expected));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_corpus_case_is_sorted_into_structural_or_not() {
    let mut names: Vec<String> = fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let sorted: BTreeSet<&str> = STRUCTURAL
        .iter()
        .map(|(n, _)| *n)
        .chain(NOT_STRUCTURAL.iter().map(|(n, _)| *n))
        .collect();
    let unsorted: Vec<&String> = names
        .iter()
        .filter(|n| !sorted.contains(n.as_str()))
        .collect();
    assert!(
        unsorted.is_empty(),
        "corpus cases neither structural nor not: {unsorted:?}"
    );
    let missing: Vec<&&str> = sorted
        .iter()
        .filter(|n| !Path::new(&corpus_dir()).join(format!("{n}.yaml")).exists())
        .collect();
    assert!(missing.is_empty(), "not in the corpus: {missing:?}");
}
