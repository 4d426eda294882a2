//! `pinsync init`: a first manifest to edit, rather than a blank page and
//! the README, and the `.gitignore` lines that keep the state's companion
//! files out of git.
//!
//! The manifest it writes passes `pinsync validate` and the schema as it
//! is: one provider block of the chosen type, with its optional fields
//! commented, and an example pin. For `pinning-service`, Pinata's block is
//! live and the other services' are ready to uncomment.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::manifest::{ProviderKind, SCHEMA_URL};
use crate::state::StateFile;

/// A service that speaks the Pinning Service API, with what a ready block
/// for it needs.
struct PinningService {
    /// The provider's name in the manifest.
    name: &'static str,
    /// The service, and its published rate limit if it has one.
    comment: &'static str,
    base_url: &'static str,
    token_var: &'static str,
    /// The `rate_limit` (and `rate_limits`) lines of its published limit,
    /// each with its comment (if not empty).
    pace: &'static [(&'static str, &'static str)],
}

/// The service whose block is written live.
const LIVE_SERVICE: PinningService = PinningService {
    name: "pinata",
    comment: "Pinata: 60, 250 or 500 requests a minute by plan",
    base_url: "https://api.pinata.cloud/psa",
    token_var: "PINATA_JWT",
    pace: &[
        (
            "rate_limit: 500/min",
            "the top plan's: pinsync slows down to what yours enforces",
        ),
        (
            "rate_limits: {list: 30/min}",
            "on every plan; a lookup before each add is a list",
        ),
    ],
};

/// Services whose blocks are written commented, ready to uncomment.
const READY_SERVICES: &[PinningService] = &[
    PinningService {
        name: "filebase",
        comment: "Filebase: 100 requests a second",
        base_url: "https://api.filebase.io/v1/ipfs",
        token_var: "FILEBASE_TOKEN",
        pace: &[("rate_limit: 100/s", "")],
    },
    PinningService {
        name: "foreverland",
        comment: "4EVERLAND",
        base_url: "https://api.4everland.dev",
        token_var: "FOREVERLAND_TOKEN",
        pace: &[],
    },
    PinningService {
        name: "crust",
        comment: "Crust",
        base_url: "https://pin.crustcode.com/psa",
        token_var: "CRUST_TOKEN",
        pace: &[],
    },
    PinningService {
        name: "aioz-psa",
        comment: "AIOZ W3IPFS: 180 requests a minute",
        base_url: "https://api-ipfs.attoaioz.cyou/api/psa",
        token_var: "AIOZ_PSA_TOKEN",
        pace: &[("rate_limit: 180/min", "")],
    },
    PinningService {
        name: "cluster",
        comment: "ipfs-cluster's pinsvcapi endpoint",
        base_url: "http://127.0.0.1:9097",
        token_var: "CLUSTER_TOKEN",
        pace: &[],
    },
];

/// Where inline comments start, so they line up.
const COMMENT_COLUMN: usize = 44;

/// `text`, padded to [`COMMENT_COLUMN`], then `# comment`.
fn commented(text: &str, comment: &str) -> String {
    format!("{text:<width$} # {comment}\n", width = COMMENT_COLUMN - 1)
}

impl PinningService {
    /// The block under `providers:`, each line prefixed by `prefix`
    /// (`# ` to leave it commented).
    fn block(&self, prefix: &str) -> String {
        let mut text = commented(&format!("  {prefix}{}:", self.name), self.comment);
        text.push_str(&format!("  {prefix}  type: pinning-service\n"));
        text.push_str(&format!("  {prefix}  base_url: {}\n", self.base_url));
        text.push_str(&format!("  {prefix}  token: ${{{}}}\n", self.token_var));
        for (line, comment) in self.pace {
            let line = format!("  {prefix}  {line}");
            if comment.is_empty() {
                text.push_str(&line);
                text.push('\n');
            } else {
                text.push_str(&commented(&line, comment));
            }
        }
        text
    }
}

/// What the starter manifest holds for one provider type.
struct Starter {
    /// Lines under `providers:`.
    providers: String,
    /// The live provider's name, which the example pin goes to.
    target: &'static str,
    /// Commented lines for the example pin, after its name.
    pin_extras: String,
    /// The environment variables `apply` will need.
    variables: Vec<&'static str>,
}

fn starter(kind: ProviderKind) -> Starter {
    match kind {
        ProviderKind::Aioz => Starter {
            providers: [
                commented("  aioz:", "AIOZ W3IPFS pinning API"),
                "    type: aioz\n".into(),
                "    api_key: ${AIOZ_PINNING_API_KEY}\n".into(),
                "    secret_key: ${AIOZ_PINNING_SECRET_KEY}\n".into(),
                "    # base_url: https://api-ipfs.attoaioz.cyou   (the default)\n".into(),
                "    # rate_limit: 180/min   (the default; `none` turns pacing off)\n".into(),
            ]
            .concat(),
            target: "aioz",
            pin_extras: commented(
                "    # meta: {team: web}",
                "a string map, sent as metadata.keyvalues",
            ),
            variables: vec!["AIOZ_PINNING_API_KEY", "AIOZ_PINNING_SECRET_KEY"],
        },
        ProviderKind::Pinarkive => Starter {
            providers: [
                commented(
                    "  arkive:",
                    "Pinarkive API v3: about 10 requests a second, 100 a minute",
                ),
                "    type: pinarkive\n".into(),
                "    api_key: ${PINARKIVE_API_KEY}\n".into(),
                commented(
                    "    # auth: bearer",
                    "send Authorization: Bearer, not X-API-Key",
                ),
                "    # base_url: https://api.pinarkive.com   (the default)\n".into(),
                "    # rate_limit: {rate: 100/min, burst: 10}   (the default)\n".into(),
            ]
            .concat(),
            target: "arkive",
            pin_extras: commented(
                "    # to: [arkive/cl1-eu]",
                "a cluster: cl0-global, cl1-eu, ...",
            ),
            variables: vec!["PINARKIVE_API_KEY"],
        },
        ProviderKind::PinningService => {
            let live = &LIVE_SERVICE;
            let mut providers = live.block("");
            providers.push_str(
                "  # Other services that speak the Pinning Service API: uncomment one,\n  \
                 # and name it in `defaults.to` or a pin's `to`.\n",
            );
            for service in READY_SERVICES {
                providers.push_str(&service.block("# "));
            }
            providers.push_str(&commented(
                "  #   # allow_insecure_http: true",
                "only for plain http to a host that is not loopback",
            ));
            Starter {
                providers,
                target: live.name,
                pin_extras: commented(
                    "    # origins: [/dnsaddr/node.example/p2p/...]",
                    "peers that have the data",
                ),
                variables: vec![live.token_var],
            }
        }
    }
}

/// The starter manifest for one provider type.
fn starter_manifest(kind: ProviderKind) -> String {
    let Starter {
        providers,
        target,
        pin_extras,
        ..
    } = starter(kind);
    let identity = if kind == ProviderKind::PinningService {
        commented(
            "# identity: my-site",
            "the mark on the requests this manifest makes (default pinsync)",
        )
    } else {
        String::new()
    };
    format!(
        "# yaml-language-server: $schema={SCHEMA_URL}
# Which CIDs must be pinned where. `pinsync validate` checks this file,
# `pinsync plan` shows what `pinsync apply` would do. Keys are never written
# here: each ${{VAR}} names the environment variable apply reads.
version: 1
{identity}providers:
{providers}defaults:
{to}{prune}pins:
  # An example: replace it with your CIDs.
  - cid: bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi
    name: example
{pin_extras}",
        to = commented(
            &format!("  to: [{target}]"),
            "targets of pins that name none"
        ),
        prune = commented(
            "# prune: true",
            "unpin what leaves this file (default: keep it)",
        ),
    )
}

/// What happened to the `.gitignore` beside the manifest.
#[derive(Debug)]
pub(crate) enum GitignoreChange {
    /// These lines were appended to it.
    Appended(Vec<String>),
    /// It already held every line.
    AlreadyThere,
    /// There is none: these are the lines it needs.
    Missing(Vec<String>),
}

/// What `init` did.
#[derive(Debug)]
pub(crate) struct Initialized {
    pub(crate) manifest: PathBuf,
    /// The name of the provider it declares.
    pub(crate) provider: &'static str,
    pub(crate) gitignore: PathBuf,
    pub(crate) gitignore_change: GitignoreChange,
    /// The environment variables `apply` will need.
    pub(crate) variables: Vec<&'static str>,
}

/// The `.gitignore` lines for the companions of every state beside a
/// manifest (`NAME.state.json`). The state itself is left out: some
/// projects commit it.
pub(crate) fn gitignore_lines() -> Vec<String> {
    StateFile::new("*.state.json").companion_patterns()
}

/// Writes the starter manifest to `path`, never over an existing file, then
/// appends the missing `.gitignore` lines to the `.gitignore` beside it, if
/// there is one.
pub(crate) fn init(path: &Path, kind: ProviderKind) -> anyhow::Result<Initialized> {
    let text = starter_manifest(kind);
    // create_new: an existing file (or a link, even a dangling one) is
    // never opened, so nothing is overwritten, even in a race.
    let mut file = match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => bail!(
            "{} already exists; pinsync init never overwrites a manifest \
             (remove it, or write another with -f PATH)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("create manifest {}", path.display())),
    };
    if let Err(e) = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
    {
        // A half-written starter would be refused by the next init.
        let _ = std::fs::remove_file(path);
        return Err(e).with_context(|| format!("write manifest {}", path.display()));
    }
    let gitignore = path.with_file_name(".gitignore");
    let gitignore_change = update_gitignore(&gitignore).with_context(|| {
        format!(
            "wrote {}, but could not update {}",
            path.display(),
            gitignore.display()
        )
    })?;
    let Starter {
        target, variables, ..
    } = starter(kind);
    Ok(Initialized {
        manifest: path.to_path_buf(),
        provider: target,
        gitignore,
        gitignore_change,
        variables,
    })
}

fn update_gitignore(path: &Path) -> std::io::Result<GitignoreChange> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Ok(GitignoreChange::Missing(gitignore_lines()));
        }
        Err(e) => return Err(e),
    };
    let present: Vec<&str> = existing.lines().map(str::trim).collect();
    let missing: Vec<String> = gitignore_lines()
        .into_iter()
        .filter(|line| !present.contains(&line.as_str()))
        .collect();
    if missing.is_empty() {
        return Ok(GitignoreChange::AlreadyThere);
    }
    let mut text = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# pinsync: the state's journal, lock and backup, and restored-over copies\n");
    for line in &missing {
        text.push_str(line);
        text.push('\n');
    }
    let mut file = OpenOptions::new().append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(GitignoreChange::Appended(missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parses(text: &str) -> Result<crate::manifest::Manifest, crate::manifest::Diagnostics> {
        crate::manifest::parse(Path::new("pins.yaml"), text.as_bytes())
    }

    /// Each ready Pinning Service block, uncommented in place of the live
    /// one, gives a manifest that validates with that service as its only
    /// provider.
    #[test]
    fn every_ready_pinning_service_block_validates_once_uncommented() {
        let text = starter_manifest(ProviderKind::PinningService);
        let live = &LIVE_SERVICE;
        assert!(text.contains(&live.block("")));
        for service in std::iter::once(live).chain(READY_SERVICES) {
            let swapped = if service.name == live.name {
                text.clone()
            } else {
                let block = service.block("# ");
                assert!(text.contains(&block), "{}", service.name);
                text.replace(&live.block(""), "")
                    .replace(&block, &service.block(""))
                    .replace(
                        &format!("to: [{}]", live.name),
                        &format!("to: [{}]", service.name),
                    )
            };
            let m = parses(&swapped).unwrap_or_else(|d| panic!("{}: {d}\n{swapped}", service.name));
            let config = &m.providers[service.name];
            assert_eq!(m.providers.len(), 1, "{}", service.name);
            assert_eq!(config.base_url, service.base_url);
            assert_eq!(config.api_key.var, service.token_var);
        }
    }

    #[test]
    fn the_starter_of_each_type_validates_and_names_its_variables() {
        for name in ProviderKind::NAMES {
            let kind = ProviderKind::from_name(name).unwrap();
            let m = parses(&starter_manifest(kind)).unwrap_or_else(|d| panic!("{name}: {d}"));
            assert_eq!(m.providers.len(), 1, "{name}");
            let config = m.providers.values().next().unwrap();
            assert_eq!(config.kind, kind);
            let vars: Vec<&str> = config.secret_refs().map(|s| s.var.as_str()).collect();
            assert_eq!(vars, starter(kind).variables, "{name}");
            assert_eq!(m.pins.len(), 1, "{name}");
        }
    }
}
