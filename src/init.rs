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
use crate::provider::{Starter, commented};
use crate::state::StateFile;

/// The starter manifest for one provider type.
pub(crate) fn starter_manifest(kind: ProviderKind) -> String {
    let Starter {
        providers,
        target,
        pin_extras,
        ..
    } = (kind.provider_type().starter)();
    let identity = if kind.capabilities().ownership_marks {
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
    } = (kind.provider_type().starter)();
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

    #[test]
    fn the_starter_of_each_type_validates_and_names_its_variables() {
        for kind in ProviderKind::all() {
            let name = kind.to_string();
            let m = parses(&starter_manifest(kind)).unwrap_or_else(|d| panic!("{name}: {d}"));
            assert_eq!(m.providers.len(), 1, "{name}");
            let config = m.providers.values().next().unwrap();
            assert_eq!(config.kind, kind);
            let vars: Vec<&str> = config.secret_refs().map(|s| s.var.as_str()).collect();
            assert_eq!(vars, (kind.provider_type().starter)().variables, "{name}");
            assert_eq!(m.pins.len(), 1, "{name}");
        }
    }
}
