//! Every provider type pinsync speaks, in one list.
//!
//! A type is one module (`aioz`, `pinata`, `kubo`, ...) holding
//! its [`ProviderType`]: its config fields and defaults, its starter block
//! for `init`, what its API can do, and how to connect to it. The manifest's
//! parser, its JSON Schema, `init`, the plan and `connect` read these
//! values; none of them matches on a type's name. Adding a type is one
//! module and one line in [`TYPES`].

use std::sync::Arc;

use super::{Provider, Secret, http};
use crate::manifest::{ProviderConfig, RateLimit, SecretRef, Setting, Settings};

/// Every provider type, in the order `type:` lists them.
pub(crate) static TYPES: &[&ProviderType] = &[
    &super::aioz::TYPE,
    &super::pinarkive::TYPE,
    &super::pinning_service::TYPE,
    &super::kubo::TYPE,
    &super::ipfs_cluster::TYPE,
    &super::pinata::TYPE,
    &super::quicknode::TYPE,
    &super::lighthouse::TYPE,
];

/// One provider type: what the manifest may say about it, what its API can
/// do, and how to reach it.
pub(crate) struct ProviderType {
    /// Its name in `type:`.
    pub(crate) name: &'static str,
    /// The service's name in messages (`AIOZ unpins by pin id`).
    pub(crate) title: &'static str,
    /// One line for the schema's description of `type`.
    pub(crate) summary: &'static str,
    /// Fields of its own, beyond those every type takes: its credentials
    /// and options.
    pub(crate) fields: &'static [TypeField],
    /// The public endpoint used when the manifest gives no `base_url`;
    /// `None` makes `base_url` required.
    pub(crate) default_base_url: Option<&'static str>,
    /// The published limit pinsync paces itself at when the manifest says
    /// nothing; `None` paces nothing.
    pub(crate) default_rate_limit: Option<RateLimit>,
    /// Calls to one provider of this type at once, at most, whatever
    /// `--concurrency` says (a Kubo node fetches each pin's DAG itself).
    pub(crate) max_concurrency: Option<usize>,
    pub(crate) capabilities: Capabilities,
    /// The block `init --provider NAME` writes.
    pub(crate) starter: fn() -> Starter,
    /// The provider for one validated config, its credentials resolved.
    pub(crate) connect: fn(Connection<'_>) -> anyhow::Result<Arc<dyn Provider>>,
}

impl std::fmt::Debug for ProviderType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl ProviderType {
    /// The type named `name` in `type:`.
    pub(crate) fn named(name: &str) -> Option<&'static Self> {
        TYPES.iter().copied().find(|t| t.name == name)
    }

    /// Whether `field` is one of this type's own fields.
    pub(crate) fn takes(&self, field: &str) -> bool {
        self.field(field).is_some()
    }

    /// This type's own field named `name`.
    pub(crate) fn field(&self, name: &str) -> Option<&'static TypeField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field that holds its key, when it has exactly one required
    /// credential (to point a slip such as `api_key` for `token` at it).
    pub(crate) fn key_field(&self) -> Option<&'static str> {
        let mut required = self
            .fields
            .iter()
            .filter(|f| f.required && matches!(f.value, FieldValue::Secret));
        match (required.next(), required.next()) {
            (Some(f), None) => Some(f.name),
            _ => None,
        }
    }

    /// What is wrong with which of its own fields are set (`set` says
    /// which): a required one missing, one set without another it needs,
    /// or two that exclude each other. Each problem comes with the field
    /// to point at (`None`: the provider as a whole).
    pub(crate) fn relation_problems(
        &self,
        set: impl Fn(&str) -> bool,
    ) -> Vec<(Option<&'static str>, String)> {
        let mut problems = Vec::new();
        for field in self.fields {
            if !set(field.name) {
                if field.required {
                    problems.push((
                        None,
                        format!("missing field `{}` ({})", field.name, field.description),
                    ));
                }
                continue;
            }
            for needed in field.requires.iter().filter(|n| !set(n)) {
                problems.push((
                    Some(field.name),
                    format!("`{}` needs `{needed}` too", field.name),
                ));
            }
            // Each pair once, at the later field.
            for other in field
                .conflicts
                .iter()
                .filter(|o| set(o) && **o < field.name)
            {
                problems.push((
                    Some(field.name),
                    format!("`{other}` and `{}` cannot both be set", field.name),
                ));
            }
        }
        problems
    }

    /// What is wrong with `settings` that did not come from a validated
    /// manifest (a saved plan): fields this type does not declare, values
    /// of the wrong kind, and the relations between fields.
    pub(crate) fn problems(&self, settings: &Settings) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, value) in settings.iter() {
            let Some(field) = self.field(name) else {
                problems.push(format!(
                    "`{name}` is not used by provider type {}",
                    self.name
                ));
                continue;
            };
            let fits = match (field.value, value) {
                (FieldValue::Replication, Setting::Replication(r)) => r.check().is_ok(),
                (FieldValue::Secret, Setting::Secret(_))
                | (FieldValue::Flag, Setting::Flag(_))
                | (FieldValue::Duration, Setting::Seconds(1..=crate::manifest::MAX_SECONDS))
                | (FieldValue::Text, Setting::Text(_)) => true,
                (FieldValue::Choice(words), Setting::Text(t)) => words.contains(&t.as_str()),
                _ => false,
            };
            if !fits {
                problems.push(format!(
                    "`{name}` holds a value provider type {} does not take there",
                    self.name
                ));
            }
        }
        problems.extend(
            self.relation_problems(|f| settings.contains(f))
                .into_iter()
                .map(|(_, message)| message),
        );
        problems
    }
}

/// What a type's API can do, which the plan and its pacing ask about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Capabilities {
    /// Pins may name one of the account's clusters (`provider/cluster`).
    pub(crate) clusters: bool,
    /// What an unpin names the pin by.
    pub(crate) unpin_by: UnpinBy,
    /// A change of name or meta is a call (the Pinning Service API's
    /// replace); elsewhere labels are only recorded.
    pub(crate) replace: bool,
    /// CIDs one lookup asks for, where each pin is looked up before it is
    /// added: a Pinning Service would add a second request for a CID it
    /// holds, ipfs-cluster would overwrite another's pin, and Kubo would
    /// take over one it did not make.
    pub(crate) lookup_batch: Option<usize>,
    /// A pin is read before it is removed or replaced, to check that it is
    /// still this manifest's.
    pub(crate) reads_before_removing: bool,
    /// The service keeps a mark on each pin saying which manifest made it
    /// (the manifest's `identity`), so only those are ever removed.
    pub(crate) ownership_marks: bool,
    /// Each pin is held by several peers, as many as its `replication`
    /// says (ipfs-cluster).
    pub(crate) replication: bool,
}

impl Capabilities {
    /// Whether an unpin needs the id the service gave the pin.
    pub(crate) fn unpins_by_pin_id(&self) -> bool {
        self.unpin_by == UnpinBy::PinId
    }
}

/// How an unpin names the pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnpinBy {
    /// The id the service gave when it took the pin.
    PinId,
    /// The CID alone: on a service with clusters, from the cluster recorded
    /// or from every cluster.
    Cid,
}

/// A field one type takes, beyond those every type takes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TypeField {
    pub(crate) name: &'static str,
    pub(crate) required: bool,
    pub(crate) value: FieldValue,
    /// For the schema, and for the message when it is missing.
    pub(crate) description: &'static str,
    /// Fields that must be set with it (a password with its username).
    pub(crate) requires: &'static [&'static str],
    /// Fields that cannot be set with it (a token with a username).
    pub(crate) conflicts: &'static [&'static str],
}

impl TypeField {
    /// A field with no relation to the others.
    pub(crate) const fn new(
        name: &'static str,
        required: bool,
        value: FieldValue,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            required,
            value,
            description,
            requires: &[],
            conflicts: &[],
        }
    }
}

/// What a type's own field holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldValue {
    /// A credential, as `${VAR}`.
    Secret,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// `true` or `false`.
    Flag,
    /// Free text on one line (a user name).
    Text,
    /// A time: `90s`, `30m`, `1h`.
    Duration,
    /// `{min: 2, max: 3}`: peers that pin each CID.
    Replication,
}

/// What `init` writes for one type.
pub(crate) struct Starter {
    /// Lines under `providers:`.
    pub(crate) providers: String,
    /// The live provider's name, which the example pin goes to.
    pub(crate) target: &'static str,
    /// Commented lines for the example pin, after its name.
    pub(crate) pin_extras: String,
    /// The environment variables `apply` will need.
    pub(crate) variables: Vec<&'static str>,
}

/// Where the starter's inline comments start, so they line up.
const COMMENT_COLUMN: usize = 44;

/// `text`, padded to the comment column, then `# comment`.
pub(crate) fn commented(text: &str, comment: &str) -> String {
    format!("{text:<width$} # {comment}\n", width = COMMENT_COLUMN - 1)
}

/// An `Authorization` header value, by the scheme it uses.
pub(crate) enum Credential {
    Bearer(Secret),
    Basic(Secret),
}

impl Credential {
    pub(crate) fn header(self) -> Secret {
        match self {
            Self::Bearer(s) | Self::Basic(s) => s,
        }
    }
}

/// What a type's `connect` gets: a validated config, an HTTP client paced
/// for it, and its credentials, resolved.
pub(crate) struct Connection<'a> {
    pub(crate) config: &'a ProviderConfig,
    pub(crate) client: http::Client,
    pub(crate) secrets: &'a dyn Fn(&SecretRef) -> anyhow::Result<Secret>,
    /// What is redacted from this provider's answers: its credentials, and
    /// what the type adds (a Basic pair encoded, a token it is issued).
    pub(crate) redacted: super::secret::Secrets,
}

impl Connection<'_> {
    /// The value of a credential the config names.
    pub(crate) fn secret(&self, reference: &SecretRef) -> anyhow::Result<Secret> {
        (self.secrets)(reference)
    }

    /// Redacts `value`, made from the credentials, wherever they are.
    pub(crate) fn derived(&self, value: Secret) {
        self.redacted.add(value);
    }

    /// The `Authorization` a type with the usual optional credentials sends:
    /// `token` as Bearer, or `username` and `password` as Basic (the
    /// encoded pair redacted like the password); `None` without either.
    pub(crate) fn credential(&self) -> anyhow::Result<Option<Credential>> {
        let settings = &self.config.settings;
        if let Some(token) = settings.secret("token") {
            let header = self
                .secret(token)?
                .prefixed("Bearer ")
                .ok_or_else(|| anyhow::anyhow!("the token cannot follow `Bearer `"))?;
            return Ok(Some(Credential::Bearer(header)));
        }
        let Some(username) = settings.text("username") else {
            return Ok(None);
        };
        let password = self.required_secret("password")?;
        let (header, pair) = Secret::basic(username, &password).ok_or_else(|| {
            anyhow::anyhow!("the user name must be ASCII without `:` to go in a header")
        })?;
        // An echo of the header would show the encoded pair.
        self.derived(pair);
        Ok(Some(Credential::Basic(header)))
    }

    /// The mark on the pins this manifest makes, on a type that marks them.
    pub(crate) fn identity(&self) -> String {
        self.config
            .identity
            .as_deref()
            .unwrap_or(crate::manifest::DEFAULT_IDENTITY)
            .to_owned()
    }

    /// The value of the credential in `field`, which the type requires.
    pub(crate) fn required_secret(&self, field: &str) -> anyhow::Result<Secret> {
        let reference = self.config.settings.secret(field).ok_or_else(|| {
            anyhow::anyhow!("{} needs `{field}`", self.config.kind.provider_type().title)
        })?;
        self.secret(reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each type's fields are its own: no name is taken twice, none hides a
    /// field every type has, and what the registry publishes is valid.
    #[test]
    fn every_type_is_well_formed() {
        let common = crate::manifest::COMMON_PROVIDER_FIELDS;
        let mut names = Vec::new();
        for t in TYPES {
            assert!(!names.contains(&t.name), "{} registered twice", t.name);
            names.push(t.name);
            assert_eq!(ProviderType::named(t.name).map(|n| n.name), Some(t.name));
            let mut fields = Vec::new();
            for f in t.fields {
                assert!(!fields.contains(&f.name), "{}: {} twice", t.name, f.name);
                fields.push(f.name);
                if let FieldValue::Choice(words) = f.value {
                    assert!(!words.is_empty(), "{}: {}", t.name, f.name);
                }
                for other in f.requires.iter().chain(f.conflicts) {
                    assert!(t.takes(other), "{}: {} names {other}", t.name, f.name);
                }
            }
            for f in &fields {
                assert!(!common.contains(f), "{}: {f} is every type's", t.name);
            }
            if let Some(limit) = t.default_rate_limit {
                limit.check().unwrap();
            }
            if let Some(url) = t.default_base_url {
                crate::manifest::check_base_url(url, false).unwrap();
            }
            let starter = (t.starter)();
            assert!(starter.providers.contains(&format!("type: {}", t.name)));
        }
        assert!(ProviderType::named("nope").is_none());
    }
}
